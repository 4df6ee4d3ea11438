"""Smoke test of ``experiments/bmapest_table1.py``: the ``--quick`` run writes its report and its numbers.

The quick run (2 slices, the first two Table 1 rows, one fuzzy C-means baseline, tiny appendix runs, no U-Net, no
mixed model) takes about 10 s; it uses the reference data when present and the built-in brain otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bmapest_table1.py"
_TISSUES = ("CSF", "GM", "WM")
_METRICS = ("dice", "soft_dice", "psnr", "ssim")


def _load_script():
    spec = importlib.util.spec_from_file_location("bmapest_table1", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _finite_summary(summary: dict, *, exact_psnr_allowed: bool = False) -> None:
    """Every mean and std is a finite float; with ``exact_psnr_allowed`` a PSNR may be ``"inf"`` (a map found
    exactly: the report writes non-finite numbers as strings)."""
    for tissue in _TISSUES:
        for metric in _METRICS:
            for stat in ("mean", "std"):
                value = summary[tissue][metric][stat]
                if exact_psnr_allowed and metric == "psnr" and isinstance(value, str):
                    assert value in ("inf", "nan"), value
                    continue
                assert isinstance(value, float) and math.isfinite(value), (tissue, metric, stat, value)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bmapest_quick")
    result = _load_script().main(["--quick", "--out", str(out)])
    return out, result


def test_quick_run_writes_markdown_and_json(quick_run):
    out, _ = quick_run
    md = (out / "bmapest_table1_quick.md").read_text()
    for heading in ("## Table 1", "## Noise", "## Baselines", "## Appendix: parameterisations"):
        assert heading in md
    assert "python experiments/bmapest_table1.py --quick --out" in md
    data = json.loads((out / "bmapest_table1_quick.json").read_text())
    for key in ("meta", "paper", "subjects", "table1", "table1_ceiling", "noise", "baselines", "appendix"):
        assert key in data, key
    assert data["meta"]["quick"] is True and data["meta"]["torch_threads"] >= 1
    assert len(data["subjects"]) == 2
    assert list(data["table1"]) == ["T1, 1 contrast", "T1, 4 contrasts"]
    assert set(data["appendix"]) == {"parameterisation", "joint_vs_single", "loss"}
    assert "unet" not in data and "mixed" not in data["appendix"]


def test_quick_run_numbers_are_finite(quick_run):
    out, _ = quick_run
    data = json.loads((out / "bmapest_table1_quick.json").read_text())
    groups = [data["table1"], data["noise"], data["baselines"], data["appendix"]["parameterisation"]["runs"]]
    groups.append(data["appendix"]["loss"]["runs"])
    for group in groups:
        assert group
        for entry in group.values():
            _finite_summary(entry["summary"])
            assert len(entry["per_subject"]) >= 1
    for entry in data["appendix"]["joint_vs_single"]["runs"].values():
        _finite_summary(entry["joint"]["summary"])
        _finite_summary(entry["alone"]["summary"], exact_psnr_allowed=True)
    assert math.isfinite(data["meta"]["wall_s"]) and data["meta"]["wall_s"] > 0
