"""The MRF test set: mixed T1/T2/PD maps from the brain phantoms, their ranges and mask."""

from __future__ import annotations

import pytest
import torch

from gradmr.mrf.phantoms import DEFAULT_MNI_SLICES, MASK_THRESHOLD, T1_MAX, T2_MAX, mrf_test_maps
from gradmr.phantom import tissue_table

#: The default set: 19 axial MNI152 slices at 2 mm, counted once (the paper used 85,645 BrainWeb voxels).
DEFAULT_VOXELS = 87588
#: float32 maps against float64 table values.
RTOL = 1e-6


@pytest.fixture(scope="module")
def default_maps():
    return mrf_test_maps()


def _check_ranges(maps):
    t1, t2, pd = maps.voxels()
    assert float(t1.max()) <= T1_MAX and float(t2.max()) <= T2_MAX
    assert bool((t2 < t1).all()) and bool((t2 > 0).all())
    assert bool((pd > 0).all()) and float(pd.max()) <= 1 + RTOL
    outside = ~maps.mask
    for m in (maps.t1, maps.t2, maps.pd):
        assert float(m[outside].abs().max()) == 0


def test_default_set_size_and_ranges(default_maps):
    assert default_maps.shape == (len(DEFAULT_MNI_SLICES), 94, 76)
    assert default_maps.n_voxels == DEFAULT_VOXELS
    assert default_maps.names == ("csf", "gm", "wm")
    _check_ranges(default_maps)
    table = tissue_table(3.0)
    t1, t2, _ = default_maps.voxels()
    # mixtures of the three tissues stay within their extremes
    assert float(t1.min()) >= table["wm"].t1 * (1 - RTOL) and float(t1.max()) <= table["csf"].t1 * (1 + RTOL)
    assert float(t2.min()) >= table["wm"].t2 * (1 - RTOL) and float(t2.max()) <= table["csf"].t2 * (1 + RTOL)


def test_mask_threshold_and_mixing_rule(default_maps):
    f = default_maps.fractions
    total = f.sum(0)
    assert torch.equal(default_maps.mask, total >= MASK_THRESHOLD)
    table = tissue_table(3.0)
    # pure white matter: the table's values; a GM/WM mixture: the fraction-weighted mean, normalised by the sum
    pure = default_maps.mask & (f[2] >= 0.999)
    assert int(pure.sum()) > 100
    torch.testing.assert_close(default_maps.t1[pure], torch.full((int(pure.sum()),), table["wm"].t1), rtol=1e-3, atol=0)
    v = torch.nonzero(default_maps.mask & (f[1] > 0.3) & (f[2] > 0.3))[0]
    fr = f[:, v[0], v[1], v[2]].double()
    expected = sum(fr[i] * table[n].t1 for i, n in enumerate(("csf", "gm", "wm"))) / fr.sum()
    assert float(default_maps.t1[tuple(v)]) == pytest.approx(float(expected), rel=RTOL)
    expected_pd = sum(fr[i] * table[n].pd for i, n in enumerate(("csf", "gm", "wm")))
    assert float(default_maps.pd[tuple(v)]) == pytest.approx(float(expected_pd), rel=RTOL)


@pytest.mark.parametrize(
    ("kwargs", "voxels", "shape"),
    [
        (dict(small=True), 1286, (1, 47, 38)),
        (dict(slices=[30, 40]), None, (2, 94, 76)),
        (dict(phantom="brain", small=True), None, (1, 48, 48)),
        (dict(field=1.5), DEFAULT_VOXELS, None),
        (dict(preset="bmapest", small=True), 1286, None),
    ],
)
def test_other_sets_stay_in_range(kwargs, voxels, shape):
    maps = mrf_test_maps(**kwargs)
    _check_ranges(maps)
    assert maps.n_voxels > 500
    if voxels is not None:
        assert maps.n_voxels == voxels
    if shape is not None:
        assert maps.shape == shape


def test_small_set_voxel_size():
    maps = mrf_test_maps(small=True)
    torch.testing.assert_close(maps.voxel_size, torch.tensor([0.004, 0.004, 0.002]), rtol=1e-3, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(phantom="shepp"), "phantom must be one of"),
        (dict(slices=[80]), "axial z indices"),
        (dict(slices=[]), "at least one"),
        (dict(phantom="brain", slices=[1]), "only"),
        (dict(threshold=0.0), "threshold"),
        (dict(field=7.0), "field_strength"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mrf_test_maps(**kwargs)
