"""``gradmr diffusion simulate / fit``: files, numbers against the reference table and the dense solver, parsing,
errors, and a radius fit round trip."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from gradmr.cli.diffusion_cmd import METHODS, _directions
from gradmr.cli.main import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
D = 2e-9  # m²/s, the default diffusivity
PGSE_5_10 = ["--delta", "5e-3", "--Delta", "10e-3"]

#: Exact slab signals, L = 10 µm, D = 2e-9 m²/s, b = 1000 and 3000 s/mm², from /work/shared/data/diffusion-reference.md
#: §2 ("Exact S(b)" table, rows "slab L=10"; an independent 1-D FE + Crank–Nicolson agrees to 1e-6).
SLAB_5_10 = (0.546705, 0.151183)
SLAB_30_40 = (0.926556, 0.793784)
#: A 1500-node interval with the matrix formalism (ℓ = 1 µm) reproduces them to 1.1e-6 (measured); allow 1e-5.
SLAB_TOL = 1e-5


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _simulate(out, *args: str):
    return runner.invoke(app, ["diffusion", "simulate", "--out", str(out), *args])


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, np.array([[float(v) for v in row] for row in reader])


@pytest.fixture(scope="module")
def sphere(tmp_path_factory):
    """A 5 µm sphere, PGSE 5/10 ms, along x, on a 343-node mesh."""
    out = tmp_path_factory.mktemp("sphere")
    args = ["--geometry", "sphere", "--radius", "5e-6", "--sequence", "pgse", *PGSE_5_10, "--nodes", "300"]
    result = _ok(_simulate(out, *args, "--b", "0,500e6,1000e6,2000e6,3000e6"))
    return out, result


def test_diffusion_commands_are_listed_and_methods_match_the_library():
    from gradmr.diffusion.simulate import METHODS as LIBRARY_METHODS

    result = _ok(runner.invoke(app, ["diffusion", "--help"]))
    assert "simulate" in result.output and "fit" in result.output
    assert METHODS == LIBRARY_METHODS


def test_simulate_sphere_writes_csv_png_and_run_json(sphere):
    out, result = sphere
    header, rows = _rows(out / "signals.csv")
    assert header == ["b", "gx", "gy", "gz", "signal"]
    assert rows.shape == (5, 5)  # one direction × five b-values
    b, g, s = rows[:, 0], rows[:, 1:4], rows[:, 4]
    np.testing.assert_array_equal(b, [0, 500e6, 1000e6, 2000e6, 3000e6])
    np.testing.assert_array_equal(g, np.tile([1.0, 0.0, 0.0], (5, 1)))
    assert abs(s[0] - 1.0) < 1e-12
    assert np.all(np.diff(s) < 0)  # PGSE on a sphere: monotone decay in b
    assert np.all(s[1:] > np.exp(-b[1:] * D))  # restricted: above free diffusion
    assert (out / "signals.png").read_bytes()[:8] == PNG
    run = json.loads((out / "run.json").read_text())
    p = run["parameters"]
    assert p["radius_m"] == 5e-6 and p["diffusivity_m2_per_s"] == D and p["b_s_per_m2"][-1] == 3e9
    assert run["sequences"][0]["delta_s"] == 5e-3 and run["sequences"][0]["Delta_s"] == 10e-3
    assert run["mesh"]["nodes"] == 343 and run["solver"]["modes"] > 0
    assert "343 nodes" in result.output and "modes" in result.output  # the one-line summary


def test_dense_agrees_with_mf(sphere, tmp_path):
    out, _ = sphere
    args = ["--geometry", "sphere", "--radius", "5e-6", *PGSE_5_10, "--nodes", "300", "--method", "dense"]
    _ok(_simulate(tmp_path, *args, "--b", "0,500e6,1000e6,2000e6,3000e6"))
    _, mf = _rows(out / "signals.csv")
    _, dense = _rows(tmp_path / "signals.csv")
    np.testing.assert_allclose(dense[:, :4], mf[:, :4])
    assert np.abs(dense[:, 4] - mf[:, 4]).max() < 1e-4


def test_slab_matches_the_reference_with_unit_suffixes(tmp_path):
    """SI options and unit suffixes (5ms, 10um, 1000s/mm2) give the same, exact slab signals."""
    si = ["--geometry", "slab", "--width", "10e-6", *PGSE_5_10, "--b", "1000e6,3000e6"]
    _ok(_simulate(tmp_path / "si", *si))
    suffixed = ["--geometry", "slab", "--width", "10um", "--delta", "5ms", "--Delta", "10ms"]
    _ok(_simulate(tmp_path / "suffix", *suffixed, "--b", "1000s/mm2,3000s/mm2"))
    for name in ("si", "suffix"):
        _, rows = _rows(tmp_path / name / "signals.csv")
        np.testing.assert_allclose(rows[:, 0], [1e9, 3e9])
        np.testing.assert_allclose(rows[:, 4], SLAB_5_10, atol=SLAB_TOL)


def test_btpde_matches_the_reference(tmp_path):
    """Crank–Nicolson time stepping, dt = 20 µs, 300-node slab: measured error 2.2e-5 at b = 3000 s/mm²."""
    args = ["--geometry", "slab", "--nodes", "300", "--method", "btpde", "--dt", "2e-5", *PGSE_5_10]
    result = _ok(_simulate(tmp_path, *args, "--b", "0,1000e6,3000e6"))
    _, rows = _rows(tmp_path / "signals.csv")
    np.testing.assert_allclose(rows[1:, 4], SLAB_5_10, atol=5e-5)
    assert "750 time steps per encoding" in result.output  # 5 ms / 20 µs · 2 + 5 ms / 20 µs
    assert json.loads((tmp_path / "run.json").read_text())["solver"]["steps_per_encoding"] == [750]


def test_several_sequences_add_a_sequence_column(tmp_path):
    args = ["--geometry", "slab", "--delta", "5e-3,30e-3", "--Delta", "10e-3,40e-3", "--b", "0,1000e6,3000e6"]
    _ok(_simulate(tmp_path, *args))
    header, rows = _rows(tmp_path / "signals.csv")
    assert header == ["b", "gx", "gy", "gz", "signal", "sequence"]
    np.testing.assert_array_equal(rows[:, 5], [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(rows[[1, 2], 4], SLAB_5_10, atol=SLAB_TOL)
    np.testing.assert_allclose(rows[[4, 5], 4], SLAB_30_40, atol=SLAB_TOL)
    run = json.loads((tmp_path / "run.json").read_text())
    assert [s["Delta_s"] for s in run["sequences"]] == [10e-3, 40e-3]


def test_cos_ogse_and_double_pgse_run(tmp_path):
    for kind, extra in (("cos-ogse", ["--n-periods", "2"]), ("double-pgse", ["--t-mix", "2e-3"])):
        out = tmp_path / kind
        args = ["--geometry", "slab", "--nodes", "200", "--sequence", kind, *extra, "--b", "0,1000e6"]
        _ok(_simulate(out, "--delta", "5e-3", "--Delta", "10e-3", *args))
        _, rows = _rows(out / "signals.csv")
        assert rows[0, 4] == pytest.approx(1.0, abs=1e-12)
        assert math.exp(-1e9 * D) < rows[1, 4] < 1.0
        run = json.loads((out / "run.json").read_text())
        assert run["sequences"][0]["type"] == kind


def test_directions_parsing():
    from gradmr.diffusion.directions import hardi_directions

    np.testing.assert_array_equal(_directions(None, 3, "sphere"), [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(_directions(["x;y", "z"], 3, "sphere"), np.eye(3))
    six = _directions(["hardi:6"], 3, "sphere")
    assert six.shape == (6, 3)
    np.testing.assert_allclose(six, hardi_directions(6))
    np.testing.assert_allclose(np.linalg.norm(six, axis=1), 1.0)
    np.testing.assert_allclose(_directions(["1,1,0"], 3, "sphere"), [[2**-0.5, 2**-0.5, 0.0]])
    np.testing.assert_allclose(_directions(["-2,0,0"], 1, "slab"), [[-1.0, 0.0, 0.0]])
    planar = _directions(["hardi:4"], 2, "disk")  # in-plane axes at 0°, 45°, 90°, 135°
    np.testing.assert_allclose(planar, [[1, 0, 0], [0.5**0.5, 0.5**0.5, 0], [0, 1, 0], [-(0.5**0.5), 0.5**0.5, 0]])


def test_hardi_directions_in_the_csv(tmp_path):
    args = ["--geometry", "sphere", "--nodes", "125", *PGSE_5_10, "--b", "0,1000e6", "--directions", "hardi:6"]
    _ok(_simulate(tmp_path, *args))
    _, rows = _rows(tmp_path / "signals.csv")
    assert rows.shape == (12, 5)
    np.testing.assert_allclose(np.linalg.norm(rows[:, 1:4], axis=1), 1.0, atol=1e-11)
    # a sphere is isotropic: the same signal along every direction (the mesh's cubic symmetry breaks it slightly)
    assert np.ptp(rows[1::2, 4]) < 2e-3


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        (["--radius", "-5e-6"], "--radius", "> 0"),
        (["--radius", "5"], "--radius", "metres"),
        (["--b", "0,500,1000"], "--b", "s/mm²"),
        (["--delta", "20e-3", "--Delta", "10e-3"], "--delta/--Delta", "Δ"),
        (["--delta", "5", "--Delta", "10"], "--delta/--Delta", "milliseconds"),
        (["--geometry", "cube"], "--geometry", "sphere-in-box"),
        (["--sequence", "stejskal"], "--sequence", "cos-ogse"),
        (["--geometry", "disk", "--directions", "z"], "--directions", "gz = 0"),
        (["--directions", "hardi:0"], "--directions", "N ≥ 1"),
        (["--directions", "1,0"], "--directions", "gx,gy,gz"),
        (["--permeability", "1e-5"], "--permeability", "one compartment"),
        (["--diffusivity", "2e-3"], "--diffusivity", "m²/s"),
        (["--method", "fem"], "--method", "btpde"),
        (["--method", "dense", "--nodes", "5000"], "--nodes", "4000"),
        (["--geometry", "sphere-in-box", "--half-width", "4e-6"], "--half-width", "--radius"),
    ],
)
def test_simulate_errors_name_the_option(tmp_path, args, option, message):
    base = {"--delta": "5e-3", "--Delta": "10e-3", "--b": "0,1000e6"}
    for i in range(0, len(args), 2):
        base.pop(args[i], None)
    flat = [v for kv in base.items() for v in kv]
    result = _simulate(tmp_path, *flat, *args)
    assert result.exit_code != 0
    assert option in result.output and message in result.output, result.output
    assert not (tmp_path / "signals.csv").exists()


def test_fit_rejects_a_csv_without_the_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("b,gx,gy,signal\n0,1,0,1\n1e9,1,0,0.7\n")
    result = runner.invoke(app, ["diffusion", "fit", "--csv", str(bad), *PGSE_5_10, "--out", str(tmp_path / "f")])
    assert result.exit_code != 0 and "--csv" in result.output and "gz" in result.output, result.output
    mm2 = tmp_path / "mm2.csv"
    mm2.write_text("b,gx,gy,gz,signal\n0,1,0,0,1\n1000,1,0,0,0.7\n")
    result = runner.invoke(app, ["diffusion", "fit", "--csv", str(mm2), *PGSE_5_10, "--out", str(tmp_path / "f")])
    assert result.exit_code != 0 and "s/mm²" in result.output, result.output


def test_fit_recovers_the_radius(sphere, tmp_path):
    """Signals of a 5 µm sphere (343 nodes), fitted from 3 µm on the same mesh size: within 1 %."""
    out, _ = sphere
    args = ["--csv", str(out / "signals.csv"), "--geometry", "sphere", "--sequence", "pgse", *PGSE_5_10]
    result = _ok(
        runner.invoke(
            app, ["diffusion", "fit", *args, "--initial-radius", "3e-6", "--nodes", "300", "--out", str(tmp_path)]
        )
    )
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["radius_m"] == pytest.approx(5e-6, rel=1e-2)
    assert f"{fit['radius_m'] * 1e6:.4f} µm" in result.output
    assert fit["iterations"] == len(fit["loss"]) >= 1 and fit["loss"][-1] < fit["loss"][0]
    assert fit["parameters"]["initial_radius_m"] == 3e-6 and fit["parameters"]["mesh_nodes"] == 343
    assert (tmp_path / "fit.png").read_bytes()[:8] == PNG
