"""Helpers shared by the benchmarks, taken from the tests' own fixtures (one definition each).

The pypulseq-written FLASH comes from ``tests/pulseq_files.py`` and the MR-zero peer calls from
``tests/mrzero_peer.py`` (MR-zero, AGPL, is only *called*); errors use :func:`gradmr.metrics.nrmse`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gradmr.metrics import nrmse  # noqa: E402
from mrzero_peer import run_mrzero, to_mrzero  # noqa: E402
from pulseq_files import write_gre  # noqa: E402


def write_flash_seq(path, n: int) -> Path:
    """The benchmark's ``n × n`` FLASH: centred k-space grid, dwell 10 µs, TR 10 ms (see :func:`write_gre`)."""
    write_gre(path, n, dwell=10e-6, tr=10e-3, name=f"flash{n}")
    return Path(path)


__all__ = ["nrmse", "run_mrzero", "to_mrzero", "write_flash_seq"]
