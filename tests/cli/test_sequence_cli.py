"""``gradmr sequence list / show / export / contrast`` and ``gradmr simulate --sequence NAME KEY=VALUE`` for every
builder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from gradmr.cli.main import SEQUENCES, app
from gradmr.phantom import tissue_table
from gradmr.sequence import b_matrix
from gradmr.sequence.library import build, parameters, sequence_names
from gradmr.sim.contrast import contrast_curve

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"

#: Settings that keep each builder's simulation small (TSE-type trains need ny divisible by their ETL).
SMALL = {
    "flash": ["matrix=24"],
    "multi-echo-gre": ["matrix=24", "n_echoes=3"],
    "bssfp": ["matrix=24"],
    "ir-flash": ["matrix=24"],
    "spin-echo": ["matrix=24"],
    "tse": ["matrix=32"],
    "ir-se": ["matrix=24"],
    "flair": ["matrix=32"],
    "dir": ["matrix=32"],
    "dwi": ["matrix=24"],
    "radial": ["matrix=24"],
    "epi": ["matrix=24"],
    "spiral": ["matrix=24"],
    "mrf-fisp": ["n_frames=60"],
    "mrf-spline": ["n_frames=60"],
}


def _ok(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_cli_names_are_the_librarys():
    assert tuple(SEQUENCES) == sequence_names() == tuple(SMALL)


def test_list_gives_each_name_on_its_own_line_then_its_parameters():
    lines = _ok("sequence", "list").output.splitlines()
    names = [line for line in lines if line and not line.startswith(" ")]
    assert names == list(sequence_names())
    block = lines[lines.index("tse") + 1 : lines.index("ir-se")]
    for p in parameters("tse"):
        assert any(line.split()[0] == p for line in block[1:]), p
    assert any("te_eff" in line and "[s" in line and "80ms" in line for line in block)


@pytest.mark.parametrize("name", list(SMALL))
def test_simulate_every_builder(tmp_path, name):
    out = tmp_path / name
    _ok("simulate", "--sequence", name, *SMALL[name], "--out", str(out))
    run = json.loads((out / "run.json").read_text())
    signal = np.load(out / "signal.npy")
    assert signal.shape[0] == run["sequence"]["samples"] and np.isfinite(signal).all() and np.abs(signal).max() > 0
    if name.startswith("mrf-"):
        assert run["reconstruction"]["method"] == "none" and (out / "signal.png").is_file()
        return
    image = np.abs(np.load(out / "image.npy"))
    first = image[0] if name == "multi-echo-gre" else image
    assert first.shape[-2:] == tuple(int(v) for v in SMALL[name][0].split("=")[1:]) * 2
    assert (out / "image.png").read_bytes()[:8] == PNG
    # the head is in the image: the centre is brighter than the corners
    c = first[0]
    n = c.shape[-1]
    assert c[n // 2 - 2 : n // 2 + 2, n // 2 - 2 : n // 2 + 2].mean() > 3 * c[:3, :3].mean()
    if name == "multi-echo-gre":
        assert image.shape[0] == 3 and image[2].mean() < image[0].mean()  # T2* decay over the echoes


def test_simulate_settings_and_convenience_options(tmp_path):
    out = tmp_path / "se"
    _ok("simulate", "--sequence", "spin-echo", "matrix=24", "te=60ms", "--tr-ms", "2000", "--out", str(out))
    params = json.loads((out / "run.json").read_text())["sequence"]["builder_params_si"]
    assert params["te"] == pytest.approx(0.06) and params["tr"] == pytest.approx(2.0)
    bad = runner.invoke(app, ["simulate", "--sequence", "spin-echo", "matrix=24", "echoes=3", "--out", str(out)])
    assert bad.exit_code != 0 and "no parameter 'echoes'" in bad.output
    bad = runner.invoke(app, ["simulate", "--sequence", "mrf-fisp", "--te-ms", "2", "--tr-ms", "12", "--out", str(out)])
    assert bad.exit_code != 0 and "no parameter tr" in bad.output


def test_show_writes_the_diagram_and_prints_duration_and_sar(tmp_path):
    out = tmp_path / "tse.png"
    result = _ok("sequence", "show", "tse", "matrix=32", "--out", str(out), "--kspace", str(tmp_path / "k.png"))
    assert out.read_bytes()[:8] == PNG and (tmp_path / "k.png").read_bytes()[:8] == PNG
    assert "duration" in result.output and "SAR proxy" in result.output
    bad = runner.invoke(app, ["sequence", "show", "nonesuch"])
    assert bad.exit_code != 0 and "flash" in bad.output


def test_contrast_explorer_follows_t2_decay_on_spin_echo(tmp_path):
    """The explorer's spin-echo curve against TE follows the spin-echo signal equation for every tissue:
    S ∝ (1 − 2e^{−(TR−TE/2)/T1} + e^{−TR/T1})·e^{−TE/T2}·e^{−b·D} (the 90° leaves Mz = 0, so every line after the first
    sees this steady state; b is the crushers' and readout's diffusion weighting, from the sequence's b-matrix)."""
    tes = [0.03, 0.09]
    settings = {"matrix": (16, 16), "tr": 3.0}
    curves = contrast_curve("spin-echo", "te", tes, settings=settings)
    b = [float(b_matrix(build("spin-echo", **settings, te=te)).diagonal(dim1=-2, dim2=-1).sum(-1).max()) for te in tes]
    table = tissue_table(3.0)
    for tissue, curve in curves.items():
        ratio = float(curve[1] / curve[0])
        t = table[tissue]
        mz = [1 - 2 * math.exp(-(3.0 - te / 2) / t.t1) + math.exp(-3.0 / t.t1) for te in tes]
        expected = mz[1] / mz[0] * math.exp(-(tes[1] - tes[0]) / t.t2) * math.exp(-(b[1] - b[0]) * t.d)
        assert ratio == pytest.approx(expected, rel=1e-3), tissue
    out = tmp_path / "c.png"
    result = _ok(
        "sequence",
        "contrast",
        "spin-echo",
        "matrix=16",
        "--parameter",
        "te",
        "--values",
        "20ms:200ms:4",
        "--out",
        str(out),
    )
    assert out.read_bytes()[:8] == PNG and "csf" in result.output
    bad = runner.invoke(app, ["sequence", "contrast", "spin-echo", "--parameter", "ti", "--values", "1"])
    assert bad.exit_code != 0 and "no parameter 'ti'" in bad.output
