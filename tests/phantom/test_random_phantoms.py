"""Seeded random tissue properties and random block phantoms."""

import math

import numpy as np
import pytest
import torch

from gradmr.phantom.core import VoxelPhantom
from gradmr.phantom.random_phantoms import BACKGROUND, random_block_phantom, random_tissue_properties

N = 10_000
#: The median of 10 000 uniform draws on an interval of width w has a standard deviation of about w/(2·√N) = w/200;
#: 0.05 in log units is ≥ 2.7 of those for every range below (and the seeds are fixed).
MEDIAN_TOL = 0.05


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ tissue properties
def test_same_seed_same_draws_different_seed_different_draws():
    a = random_tissue_properties(100, seed=7)
    assert _equal(a, random_tissue_properties(100, seed=7))
    b = random_tissue_properties(100, seed=8)
    assert all(not torch.equal(a[k], b[k]) for k in ("pd", "t1", "t2", "b0"))
    assert set(a) == {"pd", "t1", "t2", "b0", "b1"}
    assert all(v.shape == (100,) and v.dtype == torch.float32 for v in a.values())


def test_generator_is_accepted_and_advanced():
    gen = torch.Generator().manual_seed(7)
    first = random_tissue_properties(50, seed=gen)
    assert _equal(first, random_tissue_properties(50, seed=7))
    second = random_tissue_properties(50, seed=gen)
    assert not torch.equal(first["t1"], second["t1"])


def test_float64_draws_are_the_float32_draws():
    a = random_tissue_properties(200, seed=3, dtype=torch.float64)
    b = random_tissue_properties(200, seed=3, dtype=torch.float32)
    assert all(torch.equal(a[k].float(), b[k]) for k in a)


def test_ranges_are_respected_and_t2_le_t1():
    ranges = {
        "t1_range": (0.3, 2.5),
        "t2_range": (0.02, 0.8),
        "pd_range": (0.4, 0.9),
        "b0_range": (-30.0, 10.0),
        "b1_range": (0.7, 1.3),
    }
    p = random_tissue_properties(N, seed=1, dtype=torch.float64, **ranges)
    for name, (lo, hi) in ranges.items():
        v = p[name[:2]]
        assert v.min() >= lo and v.max() <= hi, name
        assert v.min() < lo + 0.01 * (hi - lo) and v.max() > hi - 0.01 * (hi - lo), name  # the range is used
    assert (p["t2"] <= p["t1"]).all()
    q = random_tissue_properties(N, seed=1)  # float32 keeps the order too
    assert (q["t2"] <= q["t1"]).all()


def test_without_constraint_t2_may_exceed_t1():
    p = random_tissue_properties(N, seed=2, t2_le_t1=False)
    assert (p["t2"] > p["t1"]).any()


def test_degenerate_ranges_give_constants():
    p = random_tissue_properties(10, seed=0, b1_range=(1.0, 1.0), pd_range=(0.5, 0.5), t1_range=(1.0, 1.0))
    assert (p["b1"] == 1.0).all() and (p["pd"] == 0.5).all() and (p["t1"] == 1.0).all()
    assert (p["t2"] <= 1.0).all()


def test_log_uniform_t1_without_constraint():
    lo, hi = math.log(0.1), math.log(4.0)
    logt1 = random_tissue_properties(N, seed=11, t2_le_t1=False)["t1"].double().log()
    assert float(logt1.median()) == pytest.approx((lo + hi) / 2, abs=MEDIAN_TOL)
    # each quarter of the log range holds a quarter of the draws
    quarters = torch.histc(logt1, bins=4, min=lo, max=hi) / N
    assert torch.allclose(quarters, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)
    logt2 = random_tissue_properties(N, seed=12, t2_le_t1=False)["t2"].double().log()
    assert float(logt2.median()) == pytest.approx((math.log(0.01) + math.log(2.0)) / 2, abs=MEDIAN_TOL)


def test_uniform_when_not_log():
    t1 = random_tissue_properties(N, seed=13, t2_le_t1=False, log_uniform=False)["t1"].double()
    assert float(t1.median()) == pytest.approx((0.1 + 4.0) / 2, abs=0.05)


def test_t2_le_t1_is_rejection_from_the_joint_law():
    # Rejection keeps the joint density flat on {log T2 ≤ log T1}: the log-T1 density is proportional to the length
    # of the allowed log-T2 interval, clip(l1 − log 0.01, 0, log 2 − log 0.01). Its median, by quadrature:
    l1 = np.linspace(math.log(0.1), math.log(4.0), 200_001)
    weight = np.clip(l1 - math.log(0.01), 0, math.log(2.0) - math.log(0.01))
    cdf = np.cumsum(weight) / weight.sum()
    expected = float(l1[np.searchsorted(cdf, 0.5)])
    logt1 = random_tissue_properties(N, seed=14)["t1"].double().log()
    assert float(logt1.median()) == pytest.approx(expected, abs=MEDIAN_TOL)
    assert expected - (math.log(0.1) + math.log(4.0)) / 2 > 0.2  # and that differs from the unconstrained middle


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must"),
        ({"n": 2.5}, "n must"),
        ({"seed": 1.5}, "seed"),
        ({"seed": None}, "seed"),
        ({"t1_range": (0.0, 1.0)}, "t1_range"),
        ({"t1_range": (2.0, 1.0)}, "t1_range"),
        ({"t2_range": (0.1,)}, "t2_range"),
        ({"pd_range": (-1.0, 1.0)}, "pd_range"),
        ({"b1_range": (0.5, 20.0)}, "b1_range"),
        ({"t1_range": (0.1, 0.2), "t2_range": (0.5, 1.0)}, "T2 ≤ T1"),
        ({"dtype": torch.int64}, "dtype"),
    ],
)
def test_bad_property_inputs(kwargs, match):
    kwargs = {"n": 10, "seed": 0, **kwargs}
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        random_tissue_properties(n, **kwargs)


# ------------------------------------------------------------------------------------------------ block phantom
def test_block_phantom_reproducible_and_seed_dependent():
    a = random_block_phantom((32, 32), seed=5)
    b = random_block_phantom((32, 32), seed=5)
    c = random_block_phantom((32, 32), seed=6)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("pd", "t1", "t2", "b0", "b1"))
    assert not torch.equal(a.pd, c.pd)
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(random_block_phantom((32, 32), seed=gen).pd, a.pd)


def test_block_phantom_shape_background_and_ranges():
    p = random_block_phantom(
        (40, 48), seed=3, n_blocks=(3, 6), t1_range=(0.2, 3.0), t2_range=(0.02, 1.0), b0_range=(-20.0, 20.0)
    )
    assert isinstance(p, VoxelPhantom)
    assert p.pd.shape == (1, 1, 40, 48) and p.pd.dtype == torch.float32
    assert torch.allclose(p.voxel_size, torch.tensor([0.2 / 48, 0.2 / 40, 5e-3]))
    bg = p.pd == 0
    assert bg.any() and (~bg).any()
    for name in ("t1", "t2", "b0", "b1"):
        assert (getattr(p, name)[bg] == BACKGROUND[name]).all(), name
    fg = ~bg
    assert (p.t1[fg] >= 0.2).all() and (p.t1[fg] <= 3.0).all()
    assert (p.t2[fg] >= 0.02).all() and (p.t2[fg] <= 1.0).all()
    assert (p.b0[fg].abs() <= 20.0).all()
    assert (p.t2 <= p.t1).all()
    assert len(torch.unique(p.pd[fg])) <= 6
    p.validate()


@pytest.mark.parametrize("shape", ["rectangle", "ellipse"])
def test_one_block_lies_inside_the_grid(shape):
    size = 7
    for seed in range(40):
        p = random_block_phantom(
            (20, 24), seed=seed, n_blocks=1, block_size=size, shape=shape, pd_range=(0.5, 1.0), dtype=torch.float64
        )
        ys, xs = torch.nonzero(p.pd[0, 0] > 0, as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        # a whole block: never cut by the edge of the grid
        if shape == "rectangle":
            assert (h, w) == (size, size) and ys.numel() == size * size
        else:
            assert (h, w) == (size, size) and size * size * 0.6 < ys.numel() < size * size
        assert len(torch.unique(p.pd[p.pd > 0])) == 1


def test_blocks_larger_than_the_grid_are_clipped():
    p = random_block_phantom((8, 10), seed=0, n_blocks=1, block_size=50, pd_range=(0.5, 1.0))
    assert (p.pd > 0).all()


def test_later_blocks_overwrite_and_zero_blocks_give_background():
    empty = random_block_phantom((16, 16), seed=0, n_blocks=0)
    assert (empty.pd == 0).all()
    full = random_block_phantom((16, 16), seed=1, n_blocks=5, block_size=16, pd_range=(0.5, 1.0))
    assert len(torch.unique(full.pd)) == 1  # every block covers the grid; the last one is what remains


def test_block_phantom_3d():
    p = random_block_phantom((6, 16, 16), seed=2, fov=(0.16, 0.16, 0.06), shape="ellipse")
    assert p.pd.shape == (1, 6, 16, 16)
    assert torch.allclose(p.voxel_size, torch.tensor([0.01, 0.01, 0.01]))
    p.validate()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"matrix": (8,)}, "matrix"),
        ({"n_blocks": (5, 2)}, "n_blocks"),
        ({"n_blocks": -1}, "n_blocks"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": (2.5, 4)}, "block_size"),
        ({"shape": "circle"}, "shape"),
        ({"fov": (0.2, 0.2, 0.2)}, "fov"),
        ({"seed": "abc"}, "seed"),
        ({"t2_range": (-0.1, 0.2)}, "t2_range"),
    ],
)
def test_bad_block_inputs(kwargs, match):
    kwargs = {"matrix": (8, 8), "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        random_block_phantom(**kwargs)
