"""``gradmr mrf dictionary / match / train / evaluate`` end to end on small sizes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from gradmr.cli.main import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"

#: Noise-free matching on a 10 % grid: the log error is at most half a step, ln(1.1)/2 ≈ 0.048 → MSE ≤ 2.3e-3;
#: the T2 of 300 TRs is weaker encoded, so allow the bound of a full step, (ln 1.1)² ≈ 9.1e-3.
MATCH_LOG_MSE = 9.1e-3


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory):
    out = tmp_path_factory.mktemp("dict")
    _ok(runner.invoke(app, ["mrf", "dictionary", "--out", str(out), "--step", "0.1", "--frames", "300"]))
    return out


def test_dictionary_files(dictionary):
    info = json.loads((dictionary / "dictionary.json").read_text())
    assert info["frames"] == 300 and info["atoms"] > 1000
    assert (dictionary / "atoms.png").read_bytes().startswith(PNG)


def test_match_a_phantom_writes_maps_and_metrics(dictionary, tmp_path):
    _ok(
        runner.invoke(
            app, ["mrf", "match", "--dictionary", str(dictionary / "dictionary.npz"), "--out", str(tmp_path), "--small"]
        )
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["log_mse"] < MATCH_LOG_MSE
    t1 = nib.load(tmp_path / "t1.nii.gz").get_fdata()
    assert t1.max() > 3.0 and t1.max() < 5.0  # CSF at 3 T, in seconds
    for png in ("maps.png", "scatter.png"):
        assert (tmp_path / png).read_bytes().startswith(PNG)


def test_match_fingerprint_file(dictionary, tmp_path):
    import torch

    from gradmr.mrf import mrf_train, simulate_fingerprints
    from gradmr.mrf.models import fit_length

    x = simulate_fingerprints(fit_length(mrf_train("fisp"), 300), torch.tensor([1.2, 0.9]), torch.tensor([0.1, 0.07]))
    np.save(tmp_path / "fp.npy", x.numpy())
    _ok(
        runner.invoke(
            app,
            [
                "mrf",
                "match",
                "--dictionary",
                str(dictionary / "dictionary.npz"),
                "--out",
                str(tmp_path / "m"),
                "--fingerprints",
                str(tmp_path / "fp.npy"),
            ],
        )
    )
    t1 = np.load(tmp_path / "m" / "t1.npy")
    assert np.allclose(t1, [1.2, 0.9], rtol=0.1)
    np.save(tmp_path / "bad.npy", np.zeros((2, 50), np.float32))
    bad = runner.invoke(
        app,
        [
            "mrf",
            "match",
            "--dictionary",
            str(dictionary / "dictionary.npz"),
            "--out",
            str(tmp_path / "b"),
            "--fingerprints",
            str(tmp_path / "bad.npy"),
        ],
    )
    assert bad.exit_code != 0 and "samples" in bad.output


def test_train_resume_and_evaluate(tmp_path):
    args = ["mrf", "train", "--model", "fc", "--samples", "512", "--frames", "200", "--out", str(tmp_path / "t")]
    _ok(runner.invoke(app, args + ["--epochs", "1"]))
    _ok(runner.invoke(app, args + ["--epochs", "2"]))  # resumes: one more epoch
    history = json.loads((tmp_path / "t" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # 1-based
    _ok(
        runner.invoke(
            app,
            [
                "mrf",
                "evaluate",
                "--checkpoint",
                str(tmp_path / "t" / "checkpoint.pt"),
                "--out",
                str(tmp_path / "e"),
                "--small",
                "--snr",
                "30",
            ],
        )
    )
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["model"] == "fc" and np.isfinite(metrics["log_mse"]) and metrics["voxels"] > 1000
    assert (tmp_path / "e" / "t2.nii.gz").exists() and (tmp_path / "e" / "maps.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["mrf", "train", "--model", "resnet", "--out", "X"], "choose one of"),
        (["mrf", "train", "--train", "fisp,bssfp", "--out", "X"], "trains must be among"),
        (["mrf", "dictionary", "--t1-range", "5", "--out", "X"], "two numbers"),
        (["mrf", "train", "--snr", "-3", "--out", "X"], "must be > 0"),
    ],
)
def test_bad_options(args, match, tmp_path):
    args = [a if a != "X" else str(tmp_path / "x") for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert match in result.output
