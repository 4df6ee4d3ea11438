"""``gradmr bmapest``: the files it writes and what they hold."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gradmr.cli.main import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def test_bmapest_writes_maps_figures_and_metrics(tmp_path):
    out = tmp_path / "bm"
    result = runner.invoke(
        app, ["bmapest", "--contrasts", "T1,T2", "--echoes", "2", "--matrix", "24", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name in ("maps.png", "loss.png"):
        assert (out / name).read_bytes()[:8] == PNG
    for tissue in ("csf", "gm", "wm"):
        assert (out / "estimate" / f"{tissue}.nii.gz").is_file() and (out / "truth" / f"{tissue}.nii.gz").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"CSF", "GM", "WM", "seconds"}
    for tissue in ("CSF", "GM", "WM"):
        assert {"dice", "soft_dice", "psnr", "ssim"} <= set(metrics[tissue])
        assert metrics[tissue]["psnr"] > 30  # noise-free, four contrasts, the exact forward model
    assert "| Configuration |" in (out / "metrics.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["contrasts"][:2] == ["T1_TI100ms", "T1_TI500ms"] and len(run["contrasts"]) == 4


def test_bmapest_with_noise_and_adam(tmp_path):
    out = tmp_path / "bm"
    args = ["bmapest", "--contrasts", "T1", "--echoes", "4", "--matrix", "16", "--snr-db", "30", "--noise", "rician"]
    result = runner.invoke(app, [*args, "--optimizer", "adam", "--epochs", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["noise"] == {"snr_db": 30.0, "kind": "rician", "seed": 0} and run["estimator"]["optimizer"] == "adam"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--contrasts", "T1,T3"], "T3"),
        (["--model", "average"], "multi"),
        (["--phantom", "shepp-logan"], "no tissue fractions"),
    ],
)
def test_bmapest_errors(tmp_path, args, message):
    result = runner.invoke(app, ["bmapest", "--matrix", "16", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code != 0 and message in result.output
