"""Tissue fractions → phantom: the multi-compartment and the linear-mixing models, gradients, bad input."""

import math

import pytest
import torch

from gradmr.phantom.fractions import BACKGROUND, TissueFractions, phantom_from_fractions
from gradmr.phantom.tissues import tissue_table
from gradmr.sequence import flash
from gradmr.sim import simulate

F64 = torch.float64
NAMES = ("csf", "gm", "wm")


def _random_fractions(shape=(1, 3, 4), seed=0, empty_voxel=False):
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(4, *shape, generator=g, dtype=F64) + 0.05  # 4th row: background share
    f = (raw / raw.sum(0))[:3]  # each in (0, 1), sum < 1
    if empty_voxel:
        f[:, 0, 0, 0] = 0.0
    return f


def test_multi_compartment_is_one_pool_per_tissue():
    f = _random_fractions()
    table = tissue_table(3.0)
    ph = phantom_from_fractions(TissueFractions.create(f, NAMES), model="multi")
    assert ph.pd.shape == (3, 1, 3, 4)
    for i, n in enumerate(NAMES):
        assert torch.allclose(ph.pd[i], f[i] * table[n].pd)
        for q in ("t1", "t2", "t2dash", "d"):
            assert torch.allclose(getattr(ph, q)[i], torch.full_like(f[i], getattr(table[n], q)))


def test_linear_mixing_is_bmapests_formula():
    f = _random_fractions(empty_voxel=True)
    table = tissue_table(preset="bmapest")
    ph = phantom_from_fractions(TissueFractions.create(f, NAMES), tissues=table, model="mixed")
    assert ph.pd.shape == (1, 1, 3, 4)
    occupied = f.sum(0) > 0
    for q in ("pd", "t1", "t2", "t2dash", "d"):
        expected = sum(f[i] * getattr(table[n], q) for i, n in enumerate(NAMES))
        got = getattr(ph, q)[0]
        assert torch.allclose(got[occupied], expected[occupied])
        if q != "pd":
            assert float(got[0, 0, 0]) == BACKGROUND[q]
    assert float(ph.pd[0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize("model", ["multi", "mixed"])
def test_gradcheck_in_the_fractions(model):
    f0 = _random_fractions(shape=(1, 2, 2), seed=3)

    def maps(f):
        ph = phantom_from_fractions(TissueFractions.create(f, NAMES), model=model)
        return torch.cat([getattr(ph, q).flatten() for q in ("pd", "t1", "t2", "t2dash", "d")])

    assert torch.autograd.gradcheck(maps, (f0.clone().requires_grad_(),))


def test_multi_compartment_signal_is_the_sum_of_the_tissue_signals():
    """Signals of the pools add: simulating all tissues at once equals the sum of one-tissue simulations."""
    f = _random_fractions(shape=(1, 8, 8), seed=5)
    vs = (0.2 / 8, 0.2 / 8, 5e-3)
    seq = flash(matrix=(8, 8), fov=(0.2, 0.2), flip_angle=math.radians(20), tr=10e-3, te=4e-3)
    together = simulate(seq, phantom_from_fractions(TissueFractions.create(f, NAMES, voxel_size=vs), model="multi"))
    parts = sum(
        simulate(seq, phantom_from_fractions(TissueFractions.create(f[i : i + 1], (n,), voxel_size=vs)))
        for i, n in enumerate(NAMES)
    )
    assert torch.allclose(together, parts, rtol=1e-4, atol=1e-6 * float(parts.abs().max()))


def test_create_from_mapping_and_access():
    f = _random_fractions(shape=(1, 2, 3))[:, 0]
    tf = TissueFractions.create({"GM": f[1], "WM": f[2]}, voxel_size=(1e-3, 1e-3, 2e-3))
    assert tf.names == ("gm", "wm") and tf.grid_shape == (1, 2, 3)
    assert torch.equal(tf["wm"][0], f[2])
    vol = tf.volumes()
    assert vol["gm"] == pytest.approx(float(f[1].sum()) * 2e-9, rel=1e-6)
    half = TissueFractions.create(torch.ones(1, 4, 6, dtype=F64) * 0.5, ("gm",)).resample((2, 3))
    assert torch.allclose(half.fractions, torch.full((1, 1, 2, 3), 0.5, dtype=F64))
    assert half.voxel_size.tolist() == pytest.approx([2e-3, 2e-3, 1e-3])
    with pytest.raises(KeyError, match="csf"):
        tf["csf"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.index_fill(0, torch.tensor([0]), 1.2), "csf must lie in \\[0, 1\\]"),
        (lambda f: f.index_fill(0, torch.tensor([1]), -0.1), "gm must lie in \\[0, 1\\]"),
        (lambda f: f + 0.3, "sum to at most 1"),
        (lambda f: f.index_fill(0, torch.tensor([2]), float("nan")), "wm contain NaN"),
    ],
)
def test_bad_fractions_are_rejected(change, match):
    with pytest.raises(ValueError, match=match):
        TissueFractions.create(change(_random_fractions()), NAMES)


def test_bad_arguments():
    f = _random_fractions()
    with pytest.raises(ValueError, match="with 2 tissues"):
        TissueFractions.create(f, ("csf", "gm"))
    with pytest.raises(ValueError, match="one shape"):
        TissueFractions.create({"gm": torch.zeros(2, 2), "wm": torch.zeros(3, 2)})
    tf = TissueFractions.create(f, ("csf", "gm", "tumour"))
    with pytest.raises(ValueError, match="tumour"):
        phantom_from_fractions(tf)
    with pytest.raises(ValueError, match="model"):
        phantom_from_fractions(TissueFractions.create(f, NAMES), model="average")
    with pytest.raises(ValueError, match="b0 must have shape"):
        phantom_from_fractions(TissueFractions.create(f, NAMES), b0=torch.zeros(2, 2))


def test_plane_cuts_ras_volumes():
    f = torch.zeros(1, 4, 5, 6, dtype=F64)  # (z, y, x)
    f[0, 1, 2, 3] = 1.0
    tf = TissueFractions.create(f, ("gm",), voxel_size=(1e-3, 2e-3, 3e-3))
    # (orientation, index, image (y, x) of the marked voxel, voxel size (x, y, z) of the slice)
    cases = [
        ("axial", 1, (2, 3), (1e-3, 2e-3, 3e-3)),
        ("coronal", 2, (1, 3), (1e-3, 3e-3, 2e-3)),
        ("sagittal", 3, (1, 2), (2e-3, 3e-3, 1e-3)),
    ]
    for orientation, index, yx, vs in cases:
        p = tf.plane(orientation, index)
        assert p.grid_shape[0] == 1 and p.voxel_size.tolist() == pytest.approx(vs)
        assert torch.nonzero(p.fractions[0, 0]).tolist() == [list(yx)], orientation
    assert tf.plane("axial").grid_shape == (1, 5, 6)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        tf.plane("coronal", 5)
    with pytest.raises(ValueError, match="orientation"):
        tf.plane("oblique")
