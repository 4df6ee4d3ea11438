"""The built-in procedural brain slice and the tissue table."""

import time

import pytest
import torch

from gradmr.phantom.brain import brain_phantom, tissue_fractions
from gradmr.phantom.fractions import BACKGROUND
from gradmr.phantom.tissues import BRAIN_TISSUES, tissue_table

#: A 128 × 128 build must be interactive.
BUILD_SECONDS = 1.0


def test_fractions_are_fractions_and_all_tissues_present():
    f = tissue_fractions((64, 64), (0.2, 0.2))
    assert f.shape == (3, 64, 64)
    assert (f >= 0).all() and (f <= 1).all()
    assert (f.sum(0) <= 1 + 1e-6).all()
    for i in range(3):
        assert (f[i] == 1).any(), f"no pure {BRAIN_TISSUES[i]} voxel"
    partial = (f.sum(0) > 0) & (f.max(0).values < 1)
    assert partial.any(), "supersampling should give partial-volume voxels"
    assert f[:, 0, :].sum() == 0 and f[:, :, 0].sum() == 0  # background at the edge of the FOV


def test_fractions_do_not_depend_on_matrix_in_the_mean():
    coarse = tissue_fractions((32, 32), (0.2, 0.2), supersampling=8)
    fine = tissue_fractions((128, 128), (0.2, 0.2), supersampling=2)
    # same anatomy: the tissue areas [m²] agree to a few per cent
    area = lambda f, n: f.sum((1, 2)) * (0.2 / n) ** 2  # noqa: E731
    assert torch.allclose(area(coarse, 32), area(fine, 128), rtol=0.03)


def test_not_left_right_symmetric():
    f = tissue_fractions((64, 64), (0.2, 0.2), supersampling=2)
    # grid centre is index 32; mirror about it (x index i ↔ 64 − i) on the columns 1 … 63
    mirrored = f[:, :, 1:].flip(-1)
    assert (f[:, :, 1:] - mirrored).abs().sum() > 10.0


@pytest.mark.parametrize("field", [1.5, 3.0])
def test_multi_pool_phantom_uses_the_table(field):
    p = brain_phantom((32, 32), field_strength=field, pools="multi")
    table = tissue_table(field)
    f = tissue_fractions((32, 32), (0.2, 0.2))
    assert p.pd.shape == (3, 1, 32, 32) and p.pool_count == 3
    for i, name in enumerate(BRAIN_TISSUES):
        t = table[name]
        assert torch.allclose(p.pd[i, 0], f[i] * t.pd)
        for attr in ("t1", "t2", "t2dash", "d"):
            assert torch.allclose(getattr(p, attr)[i], torch.tensor(getattr(t, attr), dtype=torch.float32))
    assert (p.b0 == 0).all() and (p.b1 == 1).all()
    assert torch.allclose(p.voxel_size, torch.tensor([0.2 / 32, 0.2 / 32, 5e-3]))
    p.validate()


def test_mixed_pool_phantom_is_linear_mixing():
    p = brain_phantom((32, 32), field_strength=1.5, pools="mixed", dtype=torch.float64)
    multi = brain_phantom((32, 32), field_strength=1.5, pools="multi", dtype=torch.float64)
    f = tissue_fractions((32, 32), (0.2, 0.2), dtype=torch.float64)
    assert p.pd.shape == (1, 1, 32, 32)
    assert torch.allclose(p.pd[0], multi.pd.sum(0))
    outside = f.sum(0) == 0
    assert outside.any()
    for name, value in BACKGROUND.items():
        assert (getattr(p, name)[0, 0][outside] == value).all()
    # BMapEst's mixing: fraction-weighted sum of the tissue values where there is tissue
    table = tissue_table(1.5)
    inside = ~outside
    expected = sum(f[i] * table[n].t1 for i, n in enumerate(BRAIN_TISSUES))
    assert torch.allclose(p.t1[0, 0][inside], expected[inside])
    full = f.sum(0) > 1 - 1e-12
    assert (p.t1[0, 0][full] >= table["wm"].t1 - 1e-12).all()
    assert torch.isclose(p.t1.max(), torch.tensor(table["csf"].t1, dtype=torch.float64))
    p.validate()


def test_bad_arguments():
    with pytest.raises(ValueError, match="pools"):
        brain_phantom((8, 8), pools="single")
    with pytest.raises(ValueError, match="matrix"):
        brain_phantom((8, 0))


def test_128_build_is_fast():
    # single-threaded and best of three: the cost of the build, not the load of a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        brain_phantom((16, 16))  # warm up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            brain_phantom((128, 128))
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < BUILD_SECONDS
