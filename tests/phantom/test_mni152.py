"""The shipped MNI ICBM152 tissue fractions: offline loading, volumes, slices, orientation, regeneration."""

from __future__ import annotations

import importlib
import importlib.util
import socket
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

import gradmr.phantom.mni152 as mni152
from gradmr.phantom.mni152 import (
    MNI152_TISSUES,
    ORIENTATIONS,
    mni152_affine,
    mni152_fractions,
    mni152_slice,
    mni152_source_sums,
    mni152_volume,
)
from shared_data import shared_data_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_mni152_data.py"
DATA = resources.files("gradmr.phantom").joinpath("data", "mni152_2mm.npz")
MM3 = 1e9  # mm³ per m³


def _no_network(*args, **kwargs):
    raise OSError("network access is blocked in this test")


@pytest.fixture
def offline(monkeypatch):
    """No network, and nilearn not importable: only the package data may be used."""
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    monkeypatch.setitem(sys.modules, "nilearn", None)


@pytest.fixture(scope="module")
def nilearn_maps():
    """The 1 mm nilearn templates ``(x, y, z)`` (gm, wm, brain mask) and their affine; nilearn is a dev dependency."""
    datasets = pytest.importorskip(
        "nilearn.datasets", reason="nilearn (dev dependency) not installed: cannot compare with the 1 mm templates"
    )
    imgs = {
        "gm": datasets.load_mni152_gm_template(),
        "wm": datasets.load_mni152_wm_template(),
        "mask": datasets.load_mni152_brain_mask(),
    }
    maps = {k: np.asarray(img.get_fdata(dtype=np.float64)) for k, img in imgs.items()}
    return maps, np.asarray(imgs["gm"].affine, dtype=np.float64)


def _load_script():
    spec = importlib.util.spec_from_file_location("make_mni152_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mni_index(x: float, y: float, z: float) -> tuple[int, int, int]:
    """(z, y, x) array index of the voxel nearest to MNI (x, y, z) mm."""
    i, j, k, _ = np.rint(np.linalg.solve(mni152_affine(), [x, y, z, 1.0])).astype(int)
    return int(k), int(j), int(i)


def _centroid_row(fr) -> float:
    t = fr.total()[0].double()
    rows = torch.arange(t.shape[0], dtype=torch.float64)[:, None]
    return float((t * rows).sum() / t.sum())


# ------------------------------------------------------------------ the data alone suffices
def test_loads_offline_without_nilearn(offline):
    with pytest.raises(ImportError):
        import nilearn  # noqa: F401
    with pytest.raises(OSError):
        socket.create_connection(("example.org", 80))
    module = importlib.reload(mni152)  # re-reads the notice and drops the cache: a fresh read under the guard
    fr = module.mni152_fractions()
    assert fr.names == MNI152_TISSUES
    assert fr.grid_shape == (80, 94, 76)
    assert fr.fractions.dtype == torch.float32
    assert torch.allclose(fr.voxel_size, torch.full((3,), 2e-3))
    assert module.mni152_slice(orientation="coronal", matrix=(32, 32)).grid_shape == (1, 32, 32)
    assert "Louis Collins" in module.MNI152_NOTICE and "McGill University" in module.MNI152_NOTICE
    assert set(module.mni152_source_sums()) == set(MNI152_TISSUES)


def test_notice_is_the_shared_one_verbatim():
    notice = resources.files("gradmr.phantom").joinpath("data", "ICBM152-2009a-NOTICE.txt").read_text("utf-8")
    assert mni152.MNI152_NOTICE == notice
    assert notice.startswith("Copyright (C) 1993-2004 Louis Collins")
    shared = (shared_data_dir() or Path("/nonexistent")) / "ICBM152-2009a-NOTICE.txt"
    if shared.is_file():  # the reference copy, where this machine has the shared data
        assert (
            shared.read_bytes()
            == resources.files("gradmr.phantom").joinpath("data", "ICBM152-2009a-NOTICE.txt").read_bytes()
        )


def test_file_is_small():
    with resources.as_file(DATA) as path:
        assert path.stat().st_size < 1_000_000


# ------------------------------------------------------------------ the volume
def test_fractions_are_valid_and_fresh():
    fr = mni152_fractions(dtype=torch.float64)
    fr.validate()
    f = fr.fractions
    assert f.dtype == torch.float64
    assert float(f.min()) >= 0.0 and float(f.max()) <= 1.0
    assert float(fr.total().max()) <= 1.0 + 1e-12
    for name in MNI152_TISSUES:
        assert float(fr[name].max()) > 0.99, f"{name} never fills a voxel"
    f.zero_()  # callers may change what they get; the next call is unaffected
    assert float(mni152_fractions().fractions.sum()) > 0


def test_volumes_match_source_sums():
    volumes = {k: v * MM3 for k, v in mni152_fractions(dtype=torch.float64).volumes().items()}
    sums = mni152_source_sums()
    expected = {"csf": 2.16e5, "gm": 1.008e6, "wm": 6.70e5}  # mm³, the ICBM152 templates at 1 mm
    for name in MNI152_TISSUES:
        assert volumes[name] == pytest.approx(sums[name], rel=0.05)
        assert volumes[name] == pytest.approx(sums[name], rel=0.005)  # what the uint8 rounding actually costs
        assert sums[name] == pytest.approx(expected[name], rel=0.01)


def test_source_sums_match_nilearn_templates(nilearn_maps):
    maps, _ = nilearn_maps
    csf = np.clip(maps["mask"] - maps["gm"] - maps["wm"], 0.0, 1.0)
    direct = {"csf": csf.sum(), "gm": maps["gm"].sum(), "wm": maps["wm"].sum()}
    sums = mni152_source_sums()
    volumes = {k: v * MM3 for k, v in mni152_fractions(dtype=torch.float64).volumes().items()}
    for name in MNI152_TISSUES:
        assert sums[name] == pytest.approx(direct[name], rel=1e-9)
        assert volumes[name] == pytest.approx(direct[name], rel=0.05)


def test_affine_places_landmarks():
    """RAS and the affine: the cerebellum is posterior-inferior, the cortex reaches high above the skull base."""
    f = mni152_fractions().fractions.numpy()
    tissue = f.sum(0)
    for x in (-25, 25):
        assert tissue[_mni_index(x, -65, -35)] > 0.8  # cerebellum
        assert tissue[_mni_index(x, 65, -35)] < 0.05  # below the frontal lobe, in front: orbit, no brain
    for x in (-40, 40):
        assert tissue[_mni_index(x, 0, 55)] > 0.8  # frontoparietal cortex and WM
        assert tissue[_mni_index(x, 0, -55)] < 0.05  # under the temporal lobe
    assert f[0][_mni_index(0, -20, 15)] > 0.5  # ventricular CSF near the centre


def test_volume_resampling():
    fr = mni152_volume(dtype=torch.float64)
    assert fr.grid_shape == (80, 94, 76)
    small = mni152_volume(shape=(40, 47, 38), dtype=torch.float64)
    assert small.grid_shape == (40, 47, 38)
    assert torch.allclose(small.voxel_size, torch.full((3,), 4e-3, dtype=torch.float64))
    padded = mni152_volume(fov=(0.2, 0.2, 0.2), dtype=torch.float64)
    assert padded.grid_shape == (100, 100, 100)
    for name in MNI152_TISSUES:
        assert small.volumes()[name] == pytest.approx(fr.volumes()[name], rel=1e-10)
        assert padded.volumes()[name] == pytest.approx(fr.volumes()[name], rel=1e-10)
    with pytest.raises(ValueError, match="shape"):
        mni152_volume(shape=(0, 10, 10))
    with pytest.raises(ValueError, match="fov"):
        mni152_volume(fov=(0.2, 0.2))


# ------------------------------------------------------------------ slices
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_slices_match_the_volume(orientation):
    """axial (y, x) = (A, R); coronal (y, x) = (S, R); sagittal (y, x) = (S, A); all slices of one volume."""
    vol = mni152_fractions().fractions  # (3, z, y, x)
    n = {"axial": vol.shape[1], "coronal": vol.shape[2], "sagittal": vol.shape[3]}[orientation]
    for index in (0, n // 3, n // 2, n - 1):
        s = mni152_slice(orientation=orientation, index=index)
        expected = vol.select(1 + ORIENTATIONS.index(orientation), index)  # axis z, y or x of (3, z, y, x)
        assert s.names == MNI152_TISSUES
        assert s.fractions.shape[1] == 1
        assert torch.equal(s.fractions[:, 0], expected)
        assert torch.allclose(s.voxel_size, torch.full((3,), 2e-3))
    in_plane = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}[orientation]  # of (z, y, x)
    areas = vol.sum(0).sum(in_plane)  # tissue area of every slice
    default = mni152_slice(orientation=orientation)  # the middle of the head: near the largest slice
    assert float(default.total().sum()) > 0.85 * float(areas.max())


def test_slices_cross_consistently():
    """One voxel seen in all three orientations (checks the in-plane axes against each other)."""
    k, j, i = 30, 50, 40
    ax = mni152_slice(orientation="axial", index=k).fractions[:, 0]
    co = mni152_slice(orientation="coronal", index=j).fractions[:, 0]
    sa = mni152_slice(orientation="sagittal", index=i).fractions[:, 0]
    assert torch.equal(ax[:, j, :], co[:, k, :])  # axial row (y = j) = coronal row (z = k), both along x
    assert torch.equal(co[:, :, i], sa[:, :, j])  # coronal column (x = i) = sagittal column (y = j), along z
    assert float(ax[:, j, i].sum()) > 0


def test_position_mm_selects_the_nearest_slice():
    a = mni152_affine()
    for orientation, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        for index in (3, 20):
            pos = a[axis, 3] + index * a[axis, axis] + 0.4
            by_pos = mni152_slice(orientation=orientation, position_mm=pos)
            assert torch.equal(by_pos.fractions, mni152_slice(orientation=orientation, index=index).fractions)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_resampling_keeps_in_slice_areas(orientation):
    s = mni152_slice(orientation=orientation, dtype=torch.float64)
    r = mni152_slice(orientation=orientation, matrix=(64, 64), dtype=torch.float64)
    assert r.grid_shape == (1, 64, 64)
    ny, nx = s.grid_shape[1:]
    assert float(r.voxel_size[0]) == pytest.approx(nx * 2e-3 / 64)
    assert float(r.voxel_size[1]) == pytest.approx(ny * 2e-3 / 64)
    assert float(r.voxel_size[2]) == pytest.approx(2e-3)  # the slice thickness
    padded = mni152_slice(orientation=orientation, matrix=(64, 64), fov=(0.24, 0.24), dtype=torch.float64)
    assert torch.allclose(padded.voxel_size[:2], torch.full((2,), 0.24 / 64, dtype=torch.float64))
    fov_only = mni152_slice(orientation=orientation, fov=(0.24, 0.24), dtype=torch.float64)
    assert fov_only.grid_shape == (1, 120, 120)
    for name in MNI152_TISSUES:
        area = s.volumes()[name]  # volumes of one slice: area × the same 2 mm thickness
        assert area > 0
        assert r.volumes()[name] == pytest.approx(area, rel=1e-10)
        assert padded.volumes()[name] == pytest.approx(area, rel=1e-10)
        assert fov_only.volumes()[name] == pytest.approx(area, rel=1e-10)
    assert float(r.fractions.min()) >= 0 and float(r.total().max()) <= 1 + 1e-12


def test_sagittal_cerebellum_is_posterior_inferior():
    s = mni152_slice(orientation="sagittal")  # mid-sagittal: image (y, x) = (superior, anterior)
    t = s.total()[0].double()
    rows = torch.nonzero(t.sum(1) > 0.5).flatten()
    bottom = t[int(rows[0]) : int(rows[0]) + (int(rows[-1]) - int(rows[0])) // 4]  # lowest quarter of the brain
    cols = torch.arange(t.shape[1], dtype=torch.float64)
    x_all = float((t * cols).sum() / t.sum())
    x_bottom = float((bottom * cols).sum() / bottom.sum())
    assert x_bottom < x_all - 8  # cerebellum and brainstem: > 16 mm posterior of the slice's centroid


def test_axial_and_coronal_orientation():
    # axial: the head is longer anterior-posterior (image y) than left-right (image x)
    ax = mni152_slice(orientation="axial").total()[0]
    assert torch.count_nonzero(ax.sum(1) > 0.5) > torch.count_nonzero(ax.sum(0) > 0.5) + 10
    # axial: low down only the cerebellum and the temporal poles: the tissue lies posterior (−y)
    assert (
        _centroid_row(mni152_slice(orientation="axial", position_mm=-35))
        < _centroid_row(mni152_slice(orientation="axial", position_mm=30)) - 5
    )
    # coronal: the frontal lobe sits higher (+y = superior) than the cerebellum at the back
    assert (
        _centroid_row(mni152_slice(orientation="coronal", position_mm=40))
        > _centroid_row(mni152_slice(orientation="coronal", position_mm=-65)) + 2
    )
    # axial middle: the lateral ventricles (CSF) near the centre
    mid = mni152_slice(orientation="axial", position_mm=15)["csf"][0]
    ny, nx = mid.shape
    assert float(mid[ny // 3 : 2 * ny // 3, nx // 3 : 2 * nx // 3].max()) > 0.9


def test_slice_errors():
    with pytest.raises(ValueError, match="orientation"):
        mni152_slice(orientation="oblique")
    with pytest.raises(ValueError, match=r"\[0, 79\]"):
        mni152_slice(orientation="axial", index=80)
    with pytest.raises(ValueError, match=r"\[0, 93\]"):
        mni152_slice(orientation="coronal", index=-1)
    with pytest.raises(ValueError, match="position_mm"):
        mni152_slice(orientation="sagittal", position_mm=200.0)
    with pytest.raises(ValueError, match="not both"):
        mni152_slice(index=3, position_mm=0.0)
    with pytest.raises(ValueError, match="matrix"):
        mni152_slice(matrix=(0, 64))
    with pytest.raises(ValueError, match="matrix"):
        mni152_slice(matrix=(64,))
    with pytest.raises(ValueError, match="fov"):
        mni152_slice(fov=(-0.1, 0.2))
    with pytest.raises(ValueError, match="dtype"):
        mni152_fractions(dtype=torch.int32)


# ------------------------------------------------------------------ regeneration
def test_script_reproduces_the_shipped_file(nilearn_maps, tmp_path):
    script = _load_script()
    maps, affine = nilearn_maps
    out = script.write(tmp_path / "mni152_2mm.npz", script.build(maps, affine))
    assert (tmp_path / "ICBM152-2009a-NOTICE.txt").read_text("utf-8") == mni152.MNI152_NOTICE
    with resources.as_file(DATA) as shipped_path:
        with np.load(shipped_path, allow_pickle=False) as shipped, np.load(out, allow_pickle=False) as fresh:
            assert sorted(shipped.files) == sorted(fresh.files)
            for key in shipped.files:
                assert shipped[key].dtype == fresh[key].dtype, key
                np.testing.assert_array_equal(shipped[key], fresh[key], err_msg=key)


def test_script_quantisation_keeps_sums_at_most_one():
    script = _load_script()
    rng = np.random.default_rng(0)
    f = rng.dirichlet(np.ones(3), size=5000).T  # sums exactly 1 (up to rounding): worst case for rounding up
    q = script.quantise(f)
    assert q.dtype == np.uint8
    assert int(q.astype(int).sum(0).max()) <= 255
    assert np.abs(q / 255.0 - f).max() <= 1.0 / 255 + 1e-12
    assert script.block_mean(np.ones((3, 5, 4))).shape == (2, 3, 2)
    assert script.block_mean(np.arange(27.0).reshape(3, 3, 3)).sum() * 8 == pytest.approx(np.arange(27.0).sum())
