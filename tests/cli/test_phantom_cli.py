"""``gradmr phantom list / show / export`` and the phantom specifications that ``--phantom`` accepts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gradmr.cli.main import PHANTOMS, app
from gradmr.io import load_fractions_npz, load_phantom_npz
from gradmr.phantom.builtin import BUILTIN_PHANTOMS

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
#: |image| of a FLASH must follow the phantom's PD at least this well (Pearson r).
CORR_FLASH = 0.9


def _ok(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_list_names_every_builtin():
    assert tuple(BUILTIN_PHANTOMS) == PHANTOMS
    out = _ok("phantom", "list").output
    for name in (*PHANTOMS, "brainweb:NN", "FILE.npz", "DIRECTORY"):
        assert name in out


@pytest.mark.parametrize(
    "args",
    [
        ("brain",),
        ("mni152", "--orientation", "coronal", "--matrix", "48"),
        ("shepp-logan", "--matrix", "32", "--field-strength", "1.5"),
        ("random-blocks", "--matrix", "24"),
    ],
)
def test_show_writes_a_png(tmp_path, args):
    out = tmp_path / "p.png"
    _ok("phantom", "show", *args, "--out", str(out))
    assert out.read_bytes()[:8] == PNG


def test_export_mni152_and_simulate_its_fractions(tmp_path):
    d = tmp_path / "mni"
    _ok("phantom", "export", "mni152", "--out", str(d), "--matrix", "32", "--fov-mm", "200")
    for name in ("phantom.npz", "fractions.npz", "phantom.png", "phantom.json", "ICBM152-2009a-NOTICE.txt"):
        assert (d / name).is_file(), name
    assert (d / "maps" / "pd.nii.gz").is_file() and (d / "fractions" / "gm.nii.gz").is_file()
    assert "Louis Collins" in (d / "ICBM152-2009a-NOTICE.txt").read_text()
    meta = json.loads((d / "phantom.json").read_text())
    assert meta["tissues"] == ["csf", "gm", "wm"] and meta["grid_zyx"] == [1, 32, 32]
    fr = load_fractions_npz(d / "fractions.npz")
    ph = load_phantom_npz(d / "phantom.npz")
    assert ph.pool_count == 3 and fr.grid_shape == (1, 32, 32)
    # the exported fractions are a phantom specification themselves
    out = tmp_path / "sim"
    _ok("simulate", "--sequence", "flash", "--phantom", str(d / "fractions.npz"), "--out", str(out), "--fov-mm", "200")
    image = np.abs(np.load(out / "image.npy"))[0]
    pd = ph.total_pd()[0].numpy()
    assert np.corrcoef(image.ravel(), pd.ravel())[0, 1] > CORR_FLASH


def test_simulate_on_builtins(tmp_path):
    for spec in ("mni152", "shepp-logan:1.5"):
        out = tmp_path / spec.replace(":", "_")
        _ok("simulate", "--sequence", "flash", "--phantom", spec, "--matrix", "24", "--out", str(out))
        run = json.loads((out / "run.json").read_text())
        assert np.load(out / "image.npy").shape == (1, 24, 24), run


def test_export_without_fractions(tmp_path):
    _ok("phantom", "export", "shepp-logan", "--out", str(tmp_path / "sl"), "--matrix", "16")
    assert (tmp_path / "sl" / "phantom.npz").is_file() and not (tmp_path / "sl" / "fractions.npz").exists()


def test_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINWEB_DIR", str(tmp_path / "empty"))
    result = runner.invoke(app, ["phantom", "show", "brainweb:4", "--out", str(tmp_path / "b.png")])
    assert result.exit_code != 0 and "brainweb" in result.output.lower()
    result = runner.invoke(app, ["phantom", "show", "mni152", "--orientation", "oblique"])
    assert result.exit_code != 0 and "axial" in result.output
    result = runner.invoke(app, ["phantom", "show", "nonesuch"])
    assert result.exit_code != 0 and "mni152" in result.output
    result = runner.invoke(app, ["phantom", "show", "mni152", "--slice", "999"])
    assert result.exit_code != 0 and "index" in result.output
