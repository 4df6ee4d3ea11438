"""Dictionary matching: grids, exact matching of noise-free atoms, compression, chunking, noise, errors, files."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch

from gradmr.mrf import add_noise, mrf_train, simulate_fingerprints
from gradmr.mrf.dictionary import (
    Dictionary,
    MatchResult,
    build_dictionary,
    compress,
    load_dictionary,
    log_mse,
    match,
    save_dictionary,
    save_maps_nifti,
    t1_t2_grid,
)
from gradmr.mrf.phantoms import mrf_test_maps
from gradmr.sim.epg import FispTrain

#: Short trains keep the tests fast; the matching logic does not depend on the length.
FRAMES = 200
#: Coarse grid for the exact tests: T2 ≥ 20 ms keeps every atom identifiable (for T2 ≪ TR the fingerprint depends on
#: T2 only through its scale; see the module docs), 15 % steps keep neighbours' cosines ≤ 1 − 1.5e-5, far above
#: float32 rounding.
COARSE = dict(t1_range=(0.1, 5.0), t2_range=(0.02, 2.5), t1_step=0.15, t2_step=0.15)
#: Finer grid over the brain's range for the phantom tests.
FINE_STEP = 0.05
FINE = dict(t1_range=(0.5, 5.0), t2_range=(0.05, 2.5), t1_step=FINE_STEP, t2_step=FINE_STEP)
#: float32 atoms and inner products: PD of an exactly represented atom is recovered to a few ulps.
PD_RTOL = 1e-5
#: Largest cosine between the EPG fingerprint of a tissue and the atom it matches is ≤ 1 by Cauchy–Schwarz; float32
#: rounding of the normalised inner product may exceed it by this much.
SCORE_SLACK = 1e-6


@pytest.fixture(scope="module")
def train():
    return mrf_train("fisp", frames=FRAMES)


@pytest.fixture(scope="module")
def coarse(train):
    t1, t2 = t1_t2_grid(**COARSE)
    return compress(build_dictionary(train, t1, t2, progress=False))


@pytest.fixture(scope="module")
def fine(train):
    t1, t2 = t1_t2_grid(**FINE)
    return compress(build_dictionary(train, t1, t2, progress=False))


@pytest.fixture(scope="module")
def phantom_fingerprints(train):
    maps = mrf_test_maps(small=True)
    t1, t2, pd = maps.voxels()
    return maps, t1, t2, pd, simulate_fingerprints(train, t1, t2) * pd[:, None]


# ---------------------------------------------------------------------------------------------------------- grid


def test_grid_is_log_spaced_with_t2_below_t1():
    t1, t2 = t1_t2_grid((0.01, 5.0), (0.005, 2.5), t1_step=0.02, t2_step=0.02)
    for values, lo, hi in ((t1, 0.01, 5.0), (t2, 0.005, 2.5)):
        axis = torch.unique(values)
        ratio = axis[1:] / axis[:-1]
        assert float(axis[0]) == pytest.approx(lo, rel=1e-12) and float(axis[-1]) == pytest.approx(hi, rel=1e-12)
        assert float(ratio.max()) <= 1.02 + 1e-12
        assert float(ratio.max() - ratio.min()) < 1e-9  # equal steps in log scale
        assert axis.numel() == math.ceil(math.log(hi / lo) / math.log(1.02)) + 1
    assert bool((t2 < t1).all())
    full_t1, full_t2 = t1_t2_grid((0.01, 5.0), (0.005, 2.5), t2_below_t1=False)
    assert full_t1.numel() == 315 * 315
    assert t1.numel() == int((full_t2 < full_t1).sum()) == 60165


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(t1_range=(0.0, 5.0)), "t1_range must be finite and > 0"),
        (dict(t2_range=(-1.0, 2.5)), "t2_range must be finite and > 0"),
        (dict(t1_range=(5.0, 0.1)), "t1_range must be increasing"),
        (dict(t1_range=(0.1, 1.0), t2_range=(2.0, 3.0)), "empty grid"),
        (dict(t1_range=(10.0, 5000.0)), "milliseconds"),
        (dict(t1_step=0.0), "t1_step must be a relative step > 0"),
        (dict(t2_step=-0.02), "t2_step must be a relative step > 0"),
    ],
)
def test_grid_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        t1_t2_grid(**kwargs)


# ---------------------------------------------------------------------------------------------------------- exact


@pytest.mark.parametrize("use_compressed", [False, True])
def test_noise_free_atoms_match_themselves_and_give_pd(coarse, use_compressed):
    pd = 0.2 + 2 * torch.rand(coarse.size, generator=torch.Generator().manual_seed(1))
    x = coarse.atoms * (coarse.norms * pd)[:, None]  # PD × the un-normalised amplitude
    result = match(coarse, x, use_compressed=use_compressed)
    assert torch.equal(result.index, torch.arange(coarse.size))
    assert torch.equal(result.t1, coarse.t1) and torch.equal(result.t2, coarse.t2)
    torch.testing.assert_close(result.pd, pd, rtol=PD_RTOL, atol=0)
    assert float(result.score.min()) > 1 - SCORE_SLACK


def test_compressed_matching_agrees_with_full_matching(coarse, phantom_fingerprints):
    """Exact agreement on atoms is in the test above. Off the grid (the phantom's mixed tissues) a rank-6 basis
    (200 TRs, 99.99 % energy) moves 7 of 1,286 matches (measured) to atoms whose full-space cosine is within 1e-4 of
    the best: near-ties of long-T2 tissues, whose T2 200 TRs hardly encode."""
    assert coarse.rank is not None and coarse.rank < FRAMES and coarse.retained_energy >= 0.9999
    x = phantom_fingerprints[-1]
    full = match(coarse, x, use_compressed=False)
    short = match(coarse, x, use_compressed=True)
    assert float((full.index == short.index).double().mean()) >= 0.99
    cosine = (x * coarse.atoms[short.index]).sum(-1).abs() / torch.linalg.vector_norm(x, dim=-1)
    assert float((full.score - cosine).max()) < 1e-4
    same = full.index == short.index
    torch.testing.assert_close(short.pd[same], full.pd[same], rtol=1e-3, atol=0)  # 99.99 % of the energy kept


def test_sign_and_phase_do_not_change_the_match(coarse):
    idx = torch.arange(0, coarse.size, 7)
    x = coarse.atoms[idx] * coarse.norms[idx, None]
    phase = torch.exp(1j * torch.linspace(0, 2 * math.pi, idx.numel()))[:, None]
    for data in (-x, 1j * x, x * phase):
        result = match(coarse, data)
        assert torch.equal(result.index, idx)
        assert torch.equal(match(coarse, data, atom_chunk=100, chunk=9).index, idx)
        torch.testing.assert_close(result.pd, torch.ones(idx.numel()), rtol=PD_RTOL, atol=0)
    signed = match(coarse, x, signed=True)
    assert torch.equal(signed.index, idx) and float(signed.score.min()) > 1 - SCORE_SLACK
    assert float(signed.pd.min()) > 0


def test_zero_fingerprint_gets_pd_zero_and_the_first_atom(coarse):
    result = match(coarse, torch.zeros(3, FRAMES))
    assert torch.equal(result.index, torch.zeros(3, dtype=torch.int64))
    assert torch.equal(result.pd, torch.zeros(3)) and torch.equal(result.score, torch.zeros(3))


def test_leading_shape_is_kept(coarse):
    x = coarse.atoms[:12].reshape(3, 4, FRAMES)
    result = match(coarse, x)
    assert result.shape == (3, 4) and result.t1.shape == (3, 4)
    assert torch.equal(result.index.reshape(-1), torch.arange(12))


@pytest.mark.parametrize(
    "blocks",
    [dict(chunk=1), dict(chunk=50, atom_chunk=37), dict(chunk=100, atom_chunk=333), dict(max_bytes=4096)],
)
def test_chunked_matching_equals_unchunked(fine, phantom_fingerprints, blocks):
    x = add_noise(phantom_fingerprints[-1], 30.0, generator=torch.Generator().manual_seed(2))
    whole = match(fine, x, max_bytes=1e12)
    parts = match(fine, x, **blocks)
    assert torch.equal(parts.index, whole.index)


def test_off_grid_tissue_matches_a_neighbour():
    """Tissues at the geometric midpoints between grid values (both axes) match an atom within one step on each
    axis with the full 1000-TR train (measured: every one at the half-step distance, i.e. a nearest neighbour). With
    only 200 or 400 TRs T2 is encoded so weakly that 44 % and 19 % of them land two or more T2 steps away."""
    full = mrf_train("fisp")
    dictionary = build_dictionary(full, *t1_t2_grid(**COARSE), progress=False)
    axis1, axis2 = torch.unique(dictionary.t1), torch.unique(dictionary.t2)
    gen = torch.Generator().manual_seed(4)
    i1 = torch.randint(0, axis1.numel() - 1, (120,), generator=gen)
    i2 = torch.randint(0, axis2.numel() - 1, (120,), generator=gen)
    t1 = torch.sqrt(axis1[i1] * axis1[i1 + 1])
    t2 = torch.sqrt(axis2[i2] * axis2[i2 + 1])
    keep = (t2 < t1) & (t2 > 0.03)
    t1, t2 = t1[keep], t2[keep]
    assert t1.numel() > 50
    result = match(dictionary, simulate_fingerprints(full, t1, t2))
    step1, step2 = float(axis1[1] / axis1[0]), float(axis2[1] / axis2[0])
    assert float((result.t1.log() - t1.log()).abs().max()) <= math.log(step1) + 1e-9
    assert float((result.t2.log() - t2.log()).abs().max()) <= math.log(step2) + 1e-9


def test_noise_degrades_gracefully(fine, phantom_fingerprints):
    """Log-scale MSE on the small MNI slice (1,286 voxels) with 200 TRs and 5 % steps, measured: noise-free 2.2e-3
    (T1 1.9e-4 ≈ the grid's (ln 1.05)²/12 = 2.0e-4; T2 4.2e-3, poorly encoded by one flip-angle lobe), SNR 100
    2.2e-3, SNR 20 3.0e-3, SNR 10 5.3e-3."""
    _, t1, t2, pd, x = phantom_fingerprints
    errors = []
    for snr in (None, 100.0, 20.0, 10.0):
        noisy = add_noise(x, snr, generator=torch.Generator().manual_seed(3))
        errors.append(float(log_mse(match(fine, noisy), (t1, t2))))
    assert errors[0] < 3e-3
    assert errors == sorted(errors)
    assert errors[-1] < 8e-3
    t1_only = float(log_mse(match(fine, x), (t1, t2), per_parameter=True)[0])
    assert t1_only < 1.2 * math.log1p(FINE_STEP) ** 2 / 12  # nearest-neighbour quantisation of a uniform error


# ---------------------------------------------------------------------------------------------------------- errors


def test_build_rejects_bad_grids(train):
    with pytest.raises(ValueError, match="T2 > T1"):
        build_dictionary(train, torch.tensor([1.0, 0.5]), torch.tensor([0.1, 0.8]), progress=False)
    allowed = build_dictionary(
        train, torch.tensor([1.0, 0.5]), torch.tensor([0.1, 0.8]), t2_below_t1=False, progress=False
    )
    assert allowed.size == 2
    with pytest.raises(ValueError, match="empty"):
        build_dictionary(train, torch.zeros(0), torch.zeros(0), progress=False)
    with pytest.raises(ValueError, match="NaN"):
        build_dictionary(train, torch.tensor([1.0, math.nan]), torch.tensor([0.1, 0.1]), progress=False)
    with pytest.raises(ValueError, match="same shape"):
        build_dictionary(train, torch.tensor([1.0, 2.0]), torch.tensor([0.1]), progress=False)
    with pytest.raises(ValueError, match="milliseconds"):
        build_dictionary(train, torch.tensor([1000.0]), torch.tensor([100.0]), progress=False)
    with pytest.raises(ValueError, match="> 0"):
        build_dictionary(train, torch.tensor([1.0]), torch.tensor([0.0]), progress=False)


def test_build_rejects_flip_angles_in_degrees(train):
    degrees = FispTrain(flip=torch.rad2deg(train.flip), tr=train.tr, te=train.te, inversion_time=0.018)
    with pytest.raises(ValueError, match="degrees"):
        build_dictionary(degrees, torch.tensor([1.0]), torch.tensor([0.1]), progress=False)


def test_empty_dictionary_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        Dictionary(t1=torch.zeros(0), t2=torch.zeros(0), atoms=torch.zeros(0, 10), norms=torch.zeros(0))


def test_match_rejects_bad_fingerprints(coarse):
    x = coarse.atoms[:4].clone()
    x[2, 5] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        match(coarse, x)
    with pytest.raises(ValueError, match="N = 200"):
        match(coarse, torch.ones(3, FRAMES + 1))
    with pytest.raises(ValueError, match="real fingerprints"):
        match(coarse, coarse.atoms[:2] * 1j, signed=True)
    with pytest.raises(ValueError, match="chunk"):
        match(coarse, coarse.atoms[:2], chunk=0)


def test_compress_rejects_bad_rank(coarse):
    with pytest.raises(ValueError, match="rank"):
        compress(coarse, rank=0)
    with pytest.raises(ValueError, match="energy"):
        compress(coarse, energy=1.5)
    assert compress(coarse, rank=3).rank == 3


def test_log_mse():
    true = (torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.1, 0.2], dtype=torch.float64))
    pred = (true[0] * math.exp(0.1), true[1])
    assert float(log_mse(pred, true)) == pytest.approx(0.1**2 / 2, rel=1e-12)
    torch.testing.assert_close(log_mse(pred, true, per_parameter=True), torch.tensor([0.01, 0.0], dtype=torch.float64))
    stacked = torch.stack(true, -1)
    assert float(log_mse(stacked, stacked)) == 0.0
    with pytest.raises(ValueError, match="> 0"):
        log_mse((torch.tensor([0.0]), torch.tensor([1.0])), (torch.tensor([1.0]), torch.tensor([1.0])))


# ---------------------------------------------------------------------------------------------------------- files


def test_maps_nifti_round_trip(fine, phantom_fingerprints, tmp_path):
    maps, *_, x = phantom_fingerprints
    result = match(fine, x)
    paths = save_maps_nifti(result, tmp_path / "maps", maps.voxel_size, mask=maps.mask)
    assert sorted(p.name for p in paths.values()) == ["pd.nii.gz", "t1.nii.gz", "t2.nii.gz"]
    volume = result.unmask(maps.mask)
    for name, path in paths.items():
        img = nib.load(str(path))
        back = np.asarray(img.get_fdata(dtype=np.float32)).transpose(2, 1, 0)  # NIfTI (x, y, z) → (z, y, x)
        np.testing.assert_array_equal(back, getattr(volume, name).numpy().astype(np.float32))
        assert img.header.get_zooms()[:3] == pytest.approx((4.0, 4.0, 2.0), rel=1e-3)  # mm
    assert float(volume.t1[~maps.mask].abs().max()) == 0 and int(volume.index[~maps.mask].max()) == -1


def test_unmask_checks_the_voxel_count():
    result = MatchResult(*(torch.zeros(3) for _ in range(3)), torch.zeros(3, dtype=torch.int64), torch.zeros(3))
    with pytest.raises(ValueError, match="one value per mask voxel"):
        result.unmask(torch.ones(2, 2, dtype=torch.bool))


def test_dictionary_save_load_round_trip(coarse, tmp_path):
    path = save_dictionary(coarse.replace(name="fisp"), tmp_path / "dictionary")
    assert path.name == "dictionary.npz"
    back = load_dictionary(path)
    for field in ("t1", "t2", "atoms", "norms", "basis", "compressed"):
        assert torch.equal(getattr(back, field), getattr(coarse, field)), field
    assert back.b1 is None and back.name == "fisp" and back.n_states == coarse.n_states
    assert back.retained_energy == coarse.retained_energy
    for field in ("flip", "tr", "te", "phase"):
        assert torch.equal(getattr(back.train, field), getattr(coarse.train, field)), field
    assert back.train.inversion_time == coarse.train.inversion_time
    x = coarse.atoms[::5] * 3
    assert torch.equal(match(back, x).index, match(coarse, x).index)
    with pytest.raises(FileNotFoundError):
        load_dictionary(tmp_path / "missing.npz")


def test_build_from_a_train_name_with_b1():
    d = build_dictionary(
        "fisp", torch.tensor([1.0, 1.0]), torch.tensor([0.1, 0.1]), b1=torch.tensor([0.8, 1.2]), progress=False
    )
    assert d.name == "fisp" and d.frames == 1000 and d.b1.tolist() == pytest.approx([0.8, 1.2])
    assert float(d.atoms[0] @ d.atoms[1]) < 1 - 1e-4  # B1 changes the fingerprint
    assert match(d, d.atoms[1] * 2).b1.item() == pytest.approx(1.2)
