"""Where the project's reference data (``shared/data`` beside the repository) lives, for tests and experiments.

Looked up in this order: ``$GRADMR_SHARED_DATA``, ``<repo>/../shared/data``, ``/work/shared/data``. The package
itself never reads it (users do not have it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The reference-data folder, or ``None`` when this machine has none."""
    candidates = [os.environ.get("GRADMR_SHARED_DATA"), _REPO.parent / "shared" / "data", "/work/shared/data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def shared_file(name: str) -> Path:
    """Path of ``name`` in the reference data; skips the test, saying why, when the file is not on this machine."""
    d = shared_data_dir()
    if d is None or not (d / name).is_file():
        pytest.skip(f"reference file {name} not found (set GRADMR_SHARED_DATA to the shared/data folder)")
    return d / name
