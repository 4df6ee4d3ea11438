"""Phantom and image files: npz and NIfTI round trips, defaults, orientation, errors."""

import matplotlib.image as mpimg
import nibabel as nib
import numpy as np
import pytest
import torch

from gradmr.io.images import save_nifti, save_png
from gradmr.io.phantom_files import load_phantom_nifti, load_phantom_npz, save_phantom_npz
from gradmr.phantom.brain import brain_phantom
from gradmr.phantom.core import MAP_DEFAULTS


def maps_2d(ny=5, nx=7):
    rng = np.random.default_rng(0)
    return {
        "PD": rng.random((ny, nx)),
        "T1": 0.5 + rng.random((ny, nx)),
        "T2": 0.05 + 0.1 * rng.random((ny, nx)),
    }


def test_npz_required_maps_and_defaults(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, **maps_2d())
    p = load_phantom_npz(path)
    assert p.grid_shape == (1, 5, 7)
    assert torch.allclose(p.voxel_size, torch.full((3,), 1e-3))
    for name in ("t2dash", "d", "b0", "b1"):
        assert (getattr(p, name) == MAP_DEFAULTS[name]).all()
    assert torch.allclose(p.t1[0, 0], torch.from_numpy(maps_2d()["T1"]).float())

    p = load_phantom_npz(path, voxel_size=(2e-3, 3e-3, 5e-3), dtype=torch.float64)
    assert p.pd.dtype == torch.float64 and p.voxel_size.tolist() == [2e-3, 3e-3, 5e-3]


@pytest.mark.parametrize("missing", ["PD", "T1", "T2"])
def test_npz_missing_required_key(tmp_path, missing):
    maps = maps_2d()
    del maps[missing]
    np.savez(tmp_path / "p.npz", **maps)
    with pytest.raises(KeyError, match=missing):
        load_phantom_npz(tmp_path / "p.npz")


def test_npz_shape_mismatch_and_ms_units(tmp_path):
    maps = maps_2d()
    np.savez(tmp_path / "a.npz", **maps, B0=np.zeros((5, 6)))
    with pytest.raises(ValueError, match="b0"):
        load_phantom_npz(tmp_path / "a.npz")
    maps["T1"] = maps["T1"] * 1000
    np.savez(tmp_path / "b.npz", **maps)
    with pytest.raises(ValueError, match="t1.*ms"):
        load_phantom_npz(tmp_path / "b.npz")


def test_npz_round_trip_3d_with_coils_and_pools(tmp_path):
    rng = np.random.default_rng(1)
    shape = (2, 3, 4)
    coil_sens = rng.standard_normal((2, *shape)) + 1j * rng.standard_normal((2, *shape))
    maps = {k: np.stack([v, v]).reshape(shape) if v.ndim == 2 else v for k, v in maps_2d(3, 4).items()}
    np.savez(tmp_path / "p.npz", **maps, D=np.full(shape, 1e-9), voxel_size=[1e-3, 2e-3, 4e-3], coil_sens=coil_sens)
    p = load_phantom_npz(tmp_path / "p.npz", dtype=torch.float64)
    assert p.grid_shape == shape and p.coil_count == 2
    assert p.voxel_size.tolist() == [1e-3, 2e-3, 4e-3]
    assert np.allclose(p.coil_sens.numpy(), coil_sens)
    save_phantom_npz(p, tmp_path / "q.npz")
    q = load_phantom_npz(tmp_path / "q.npz", dtype=torch.float64)
    for name in ("pd", "t1", "t2", "t2dash", "d", "b0", "b1", "coil_sens", "voxel_size"):
        assert torch.equal(getattr(p, name), getattr(q, name)), name
    multi = brain_phantom((8, 8), pools="multi", dtype=torch.float64)
    save_phantom_npz(multi, tmp_path / "m.npz")
    back = load_phantom_npz(tmp_path / "m.npz", dtype=torch.float64)
    assert back.pool_count == 3 and torch.equal(back.pd, multi.pd)


def write_nifti(path, xyz, zooms_mm):
    img = nib.Nifti1Image(xyz.astype(np.float32), np.diag([*zooms_mm, 1.0]))
    nib.save(img, str(path))


def test_nifti_directory_axes_and_voxel_size(tmp_path):
    rng = np.random.default_rng(2)
    xyz = rng.random((4, 3, 2))  # NIfTI (x, y, z)
    write_nifti(tmp_path / "pd.nii.gz", xyz, (1.5, 2.0, 3.0))
    write_nifti(tmp_path / "T1.nii", 1.0 + xyz, (1.5, 2.0, 3.0))
    write_nifti(tmp_path / "t2.nii.gz", 0.05 + 0 * xyz, (1.5, 2.0, 3.0))
    write_nifti(tmp_path / "b0.nii.gz", 10 * xyz, (1.5, 2.0, 3.0))
    p = load_phantom_nifti(tmp_path)
    assert p.grid_shape == (2, 3, 4)  # (z, y, x)
    assert torch.allclose(p.voxel_size, torch.tensor([1.5e-3, 2e-3, 3e-3]))
    # NIfTI voxel (i, j, k) is map index [k, j, i]
    assert p.pd[0, 1, 2, 3] == pytest.approx(float(np.float32(xyz[3, 2, 1])))
    assert p.b0[0, 1, 2, 3] == pytest.approx(float(np.float32(10 * xyz[3, 2, 1])), rel=1e-6)
    assert (p.b1 == 1).all() and (p.d == 0).all()
    # a mapping works too
    q = load_phantom_nifti({"pd": tmp_path / "pd.nii.gz", "t1": tmp_path / "T1.nii", "t2": tmp_path / "t2.nii.gz"})
    assert torch.equal(q.pd, p.pd) and (q.b0 == 0).all()


def test_nifti_missing_required_file(tmp_path):
    write_nifti(tmp_path / "pd.nii.gz", np.ones((2, 2, 1)), (1, 1, 1))
    write_nifti(tmp_path / "t1.nii.gz", np.ones((2, 2, 1)), (1, 1, 1))
    with pytest.raises(FileNotFoundError, match="t2"):
        load_phantom_nifti(tmp_path)
    with pytest.raises(FileNotFoundError, match="t2"):
        load_phantom_nifti({"pd": tmp_path / "pd.nii.gz", "t1": tmp_path / "t1.nii.gz"})


def test_save_nifti_round_trips_through_the_phantom_loader(tmp_path):
    phantom = brain_phantom((12, 10), fov=(0.2, 0.24), pools="mixed")
    for name in ("pd", "t1", "t2"):
        save_nifti(getattr(phantom, name)[0], phantom.voxel_size, tmp_path / f"{name}.nii.gz")
    back = load_phantom_nifti(tmp_path)
    assert back.grid_shape == phantom.grid_shape
    assert torch.allclose(back.voxel_size, phantom.voxel_size)
    for name in ("pd", "t1", "t2"):
        assert torch.allclose(getattr(back, name), getattr(phantom, name))
    img = nib.load(str(tmp_path / "pd.nii.gz"))
    # the affine puts voxel N//2 at the origin (docs/conventions.md)
    centre = img.affine @ np.array([5, 6, 0, 1])
    assert np.allclose(centre[:3], 0)
    with pytest.raises(TypeError):
        save_nifti(torch.ones(2, 2, dtype=torch.complex64), (1e-3, 1e-3, 1e-3), tmp_path / "c.nii")


def test_save_png(tmp_path):
    image = torch.zeros(1, 8, 6, dtype=torch.complex64)
    image[0, 7, 0] = 1j  # top-left when displayed with origin='lower'
    titled = save_png(image, tmp_path / "titled.png", title="test")
    assert titled.exists() and titled.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = save_png(image, tmp_path / "a.png")
    picture = mpimg.imread(str(out))[..., :3].mean(-1)
    dark_rows, dark_cols = np.nonzero(picture < 0.1)  # the image area (zeros are black; the page is white)
    top, bottom, left, right = dark_rows.min(), dark_rows.max(), dark_cols.min(), dark_cols.max()
    area = picture[top : bottom + 1, left : right + 1]
    rows, cols = np.nonzero(area > 0.9)
    h, w = area.shape
    # the bright voxel (y = 7, x = 0) is drawn at the top left: +y up, +x right
    assert rows.max() < h / 4 and cols.max() < w / 4
    with pytest.raises(ValueError):
        save_png(torch.zeros(2, 4, 4), tmp_path / "b.png")


def test_fractions_npz_is_accepted_as_a_phantom(tmp_path):
    from gradmr.io.phantom_files import load_fractions_npz, save_fractions_npz
    from gradmr.phantom.fractions import TissueFractions, phantom_from_fractions

    rng = np.random.default_rng(3)
    raw = rng.random((4, 5, 6))
    f = raw[:3] / raw.sum(0)
    np.savez(tmp_path / "f.npz", GM=f[0], WM=f[1], csf=f[2], voxel_size=[2e-3, 2e-3, 4e-3])
    fr = load_fractions_npz(tmp_path / "f.npz", dtype=torch.float64)
    assert fr.names == ("gm", "wm", "csf") and fr.voxel_size.tolist() == [2e-3, 2e-3, 4e-3]
    ph = load_phantom_npz(tmp_path / "f.npz", field_strength=1.5, dtype=torch.float64)
    ref = phantom_from_fractions(TissueFractions.create(torch.from_numpy(f), ("gm", "wm", "csf")), field_strength=1.5)
    assert ph.pool_count == 3 and torch.allclose(ph.pd, ref.pd) and torch.allclose(ph.t1, ref.t1)
    mixed = load_phantom_npz(tmp_path / "f.npz", model="mixed")
    assert mixed.pool_count == 1
    save_fractions_npz(fr, tmp_path / "g.npz")
    back = load_fractions_npz(tmp_path / "g.npz", dtype=torch.float64)
    assert torch.equal(back.fractions, fr.fractions)
    np.savez(tmp_path / "bad.npz", GM=f[0], WN=f[1])
    with pytest.raises(ValueError, match="WN"):
        load_fractions_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "over.npz", GM=f[0] + 0.6, WM=f[1] + 0.6)
    with pytest.raises(ValueError, match="sum to at most 1|must lie in"):
        load_phantom_npz(tmp_path / "over.npz")


def test_nifti_reorients_with_the_affine(tmp_path):
    rng = np.random.default_rng(4)
    xyz = rng.random((4, 3, 2))
    flipped = np.diag([-2.0, 2.0, 2.0, 1.0])  # stored right-to-left: canonical order flips x
    for name, arr in (("pd", xyz), ("t1", 1 + xyz), ("t2", 0.05 + 0 * xyz)):
        nib.save(nib.Nifti1Image(arr.astype(np.float32), flipped), str(tmp_path / f"{name}.nii.gz"))
    p = load_phantom_nifti(tmp_path)
    assert p.pd[0, 1, 2, 0] == pytest.approx(float(np.float32(xyz[3, 2, 1])))  # x index 3 → 0


def test_phantom_and_fractions_nifti_round_trip(tmp_path):
    from gradmr.io.phantom_files import load_fractions_nifti, save_fractions_nifti, save_phantom_nifti
    from gradmr.phantom.fractions import TissueFractions

    multi = brain_phantom((8, 6), pools="multi", dtype=torch.float64)
    save_phantom_nifti(multi, tmp_path / "maps")
    back = load_phantom_nifti(tmp_path / "maps", dtype=torch.float64)
    assert back.pool_count == 3
    for name in ("pd", "t1", "t2", "t2dash", "d", "b0", "b1"):
        assert torch.allclose(getattr(back, name), getattr(multi, name), rtol=1e-6), name
    assert torch.allclose(back.voxel_size, multi.voxel_size)
    from gradmr.phantom.brain import tissue_fractions

    fr = TissueFractions.create(tissue_fractions((8, 6)), ("csf", "gm", "wm"), voxel_size=(2e-3, 3e-3, 5e-3))
    save_fractions_nifti(fr, tmp_path / "fr")
    fb = load_fractions_nifti(tmp_path / "fr", dtype=torch.float64)
    assert set(fb.names) == {"csf", "gm", "wm"}
    assert torch.allclose(fb["gm"].float(), fr["gm"]) and torch.allclose(fb.voxel_size.float(), fr.voxel_size)
    with pytest.raises(FileNotFoundError, match="gm.nii.gz"):
        load_fractions_nifti(tmp_path / "maps")
