"""MRF-FISP train (Jiang et al., MRM 2015;74:1621): its patterns, its structure, and its single-voxel fingerprint.

The reference fingerprint is an extended phase graph written here (Weigel, J Magn Reson Imaging 2015;41:266) for a
FISP train in which every TR shifts the states by one order: it reads the pulses, the sample time and the TR
durations from the built :class:`~gradmr.sequence.Sequence` and shares no code with the PDG.
"""

import math

import numpy as np
import pytest
import torch

from gradmr.phantom import VoxelPhantom, tissue_table
from gradmr.sequence.mrf import (
    JIANG_LOBE_PEAKS_DEG,
    JIANG_TR_RANGE,
    PARAMETERS,
    fisp_mrf,
    jiang_flip_angles,
    jiang_trs,
)
from gradmr.sequence.system import DEFAULT_SYSTEM, min_moment_time
from gradmr.sim.pdg import simulate_pdg

#: Issue's acceptance for the PDG fingerprint against the independent EPG.
FINGERPRINT_NRMSE = 0.01
#: GM and WM must be told apart: normalised inner product below this (issue).
DISTINGUISHABLE = 0.99
#: Resampling the 1040-TR native pattern to 1000 TRs moves a lobe's peak sample by < 0.1° (sin near its top).
PEAK_TOLERANCE_DEG = 0.1
#: "Smooth" TRs: consecutive TRs differ by less than 5 % of the 3 ms range (Perlin noise, period 100 TRs).
TR_SMOOTHNESS = 0.05
#: Float round-off of summed moments [1/m] and times [s].
K_ATOL = 1e-9
T_ATOL = 1e-12

VOXEL = (1e-3, 1e-3, 5e-3)  # the default spoiler (2 cycles / 5 mm) dephases this voxel by whole cycles


# ----------------------------------------------------------------------------- the reference EPG


def epg_fisp(seq, t1: float, t2: float) -> np.ndarray:
    """F0 at every ADC sample of a FISP train: RF (Weigel's matrix, φ as in docs/conventions.md), relaxation to the
    sample, sample F+0, relaxation to the end of the TR, then a shift of every state by one order."""
    n = len(seq)
    fp = np.zeros(n + 2, complex)  # F+_k, k = 0 … n+1
    fm = np.zeros(n + 2, complex)  # F−_k
    z = np.zeros(n + 2, complex)
    z[0] = 1.0

    def relax(t):
        nonlocal fp, fm, z
        e1, e2 = math.exp(-t / t1), math.exp(-t / t2)
        fp, fm, z = fp * e2, fm * e2, z * e1
        z[0] += 1 - e1

    out = []
    for rep in seq:
        a, phi = float(rep.pulse_angle), float(rep.pulse_phase)
        c2, s2, sa, ca = math.cos(a / 2) ** 2, math.sin(a / 2) ** 2, math.sin(a), math.cos(a)
        e, e2 = np.exp(1j * phi), np.exp(2j * phi)
        fp, fm, z = (
            c2 * fp + e2 * s2 * fm - 1j * e * sa * z,
            np.conj(e2) * s2 * fp + c2 * fm + 1j * np.conj(e) * sa * z,
            -0.5j * np.conj(e) * sa * fp + 0.5j * e * sa * fm + ca * z,
        )
        times = rep.event_time.numpy()
        adc = rep.adc_usage.numpy()
        if rep.pulse_usage == "inversion":
            relax(times.sum())  # no transverse magnetisation after an ideal inversion of the equilibrium
            continue
        t_sample = float(times[: int(np.flatnonzero(adc)[0]) + 1].sum())
        relax(t_sample)
        out.append(fp[0])
        relax(times.sum() - t_sample)
        fp = np.concatenate([[0], fp[:-1]])
        fm = np.concatenate([fm[1:], [0]])
        fp[0] = np.conj(fm[0])
    return np.asarray(out)


def pdg_fingerprint(seq, t1: float, t2: float, tau_resolution=None) -> np.ndarray:
    """PDG signal of one voxel without T2' or B0 (the EPG has neither)."""
    phantom = VoxelPhantom.create(
        pd=torch.ones(1, 1),
        t1=torch.full((1, 1), t1),
        t2=torch.full((1, 1), t2),
        t2dash=torch.full((1, 1), 1e6),
        voxel_size=VOXEL,
        dtype=torch.float64,
    )
    return simulate_pdg(seq, phantom, tau_resolution=tau_resolution)[:, 0].numpy()


def rel_error(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ----------------------------------------------------------------------------- patterns


def test_flip_angle_pattern_has_the_papers_lobes():
    deg = np.degrees(jiang_flip_angles(1000).numpy())
    assert deg.shape == (1000,)
    on = deg > 0
    starts = np.flatnonzero(on[1:] & ~on[:-1]) + 1
    ends = np.flatnonzero(on[:-1] & ~on[1:]) + 1
    lobes = [deg[s:e] for s, e in zip(np.r_[0, starts], np.r_[ends, 1000], strict=True)]
    assert len(lobes) == 5
    assert [round(float(lobe.max()), 1) for lobe in lobes] == pytest.approx(
        JIANG_LOBE_PEAKS_DEG, abs=PEAK_TOLERANCE_DEG
    )
    assert float(deg.max()) == pytest.approx(70.0, abs=PEAK_TOLERANCE_DEG)
    assert float(deg[on].min()) >= 5.0  # every lobe starts and ends at the 5° floor
    assert all(190 <= len(lobe) <= 200 for lobe in lobes)  # 200 native TRs resampled by 1000/1040
    gaps = starts - ends  # four gaps of 0°, 10 native TRs each
    assert gaps.size == 4 and all(9 <= g <= 10 for g in gaps)
    # each lobe is a half sine: symmetric and rising to its middle
    for lobe in lobes:
        assert np.argmax(lobe) == pytest.approx(len(lobe) / 2, abs=2)


def test_native_length_reproduces_the_pattern_exactly():
    deg = np.degrees(jiang_flip_angles(1040).numpy())
    j = np.arange(200)
    lobe3 = 5 + (70 - 5) * np.sin(np.pi * (j + 0.5) / 200)
    assert np.allclose(deg[420:620], lobe3)
    assert np.all(deg[620:630] == 0)


def test_tr_pattern_range_smoothness_and_seed():
    trs = jiang_trs(1000, seed=0).numpy()
    lo, hi = JIANG_TR_RANGE
    assert trs.min() == pytest.approx(lo) and trs.max() == pytest.approx(hi)
    assert (lo, hi) == (11.5e-3, 14.5e-3)
    assert np.abs(np.diff(trs)).max() < TR_SMOOTHNESS * (hi - lo)
    assert np.array_equal(trs, jiang_trs(1000, seed=0).numpy())
    assert not np.allclose(trs, jiang_trs(1000, seed=1).numpy())
    # not a trivial ramp: it turns many times
    turns = np.sum(np.diff(np.sign(np.diff(trs))) != 0)
    assert turns >= 10


# ----------------------------------------------------------------------------- structure


def test_train_structure():
    te, ti = 2e-3, 20e-3
    seq = fisp_mrf(te=te, inversion_time=ti)
    assert len(seq) == 1001 and seq.sample_count == 1000
    inv = seq[0]
    assert inv.pulse_usage == "inversion" and float(inv.pulse_angle) == pytest.approx(math.pi)
    assert float(inv.duration()) == pytest.approx(ti)
    alphas = torch.stack([rep.pulse_angle for rep in seq[1:]])
    assert torch.allclose(alphas, jiang_flip_angles(1000))
    durations = torch.stack([rep.duration() for rep in seq[1:]])
    assert torch.allclose(durations, jiang_trs(1000), atol=T_ATOL)
    spoiler = torch.tensor([0.0, 0.0, 2.0 / 5e-3], dtype=torch.float64)
    for rep in seq[1:]:
        assert float(rep.pulse_phase) == 0.0
        assert torch.allclose(rep.gradm.sum(0), spoiler, atol=K_ATOL)  # the same dephasing every TR
        i = int(torch.nonzero(rep.adc_usage)[0])
        assert float(rep.event_time[: i + 1].sum()) == pytest.approx(te)  # the sample at TE
        assert float(rep.gradm[: i + 1].abs().max()) == 0.0  # no gradient before it
        assert float(rep.event_time[0]) >= DEFAULT_SYSTEM.rf_gap
        assert float(rep.event_time[-1]) >= DEFAULT_SYSTEM.rf_gap + min_moment_time(float(spoiler[2]))
    assert float(seq.duration()) == pytest.approx(ti + float(jiang_trs(1000).sum()))


def test_spiral_readout_is_rewound_every_tr():
    seq = fisp_mrf(n_frames=12, readout="spiral", matrix=32, n_interleaves=4, inversion=False)
    per_tr = seq.sample_count // 12
    k = seq.kspace()[:, :2].reshape(12, per_tr, 2)
    assert torch.allclose(k[4], k[0], atol=K_ATOL)  # interleaves cycle
    assert not torch.allclose(k[1], k[0], atol=1.0)
    for rep in seq:
        assert torch.allclose(rep.gradm.sum(0)[:2], torch.zeros(2, dtype=torch.float64), atol=K_ATOL)
        g = rep.gradm[rep.adc_usage] / rep.event_time[rep.adc_usage, None]
        assert float(g.abs().max()) <= DEFAULT_SYSTEM.max_grad_hz


# ----------------------------------------------------------------------------- the fingerprint


@pytest.mark.parametrize("tissue", ["gm", "wm", "csf"])
def test_pdg_fingerprint_matches_epg_at_constant_tr(tissue):
    """The default flip-angle train (lobes, 0° gaps, inversion) at a constant TR of 12 ms."""
    t = tissue_table(3.0)[tissue]
    seq = fisp_mrf(trs=np.full(1000, 12e-3))
    assert rel_error(pdg_fingerprint(seq, t.t1, t.t2), epg_fisp(seq, t.t1, t.t2)) < FINGERPRINT_NRMSE


def test_pdg_fingerprint_matches_epg_with_the_default_varying_tr():
    """With a varying TR, paths meeting at one k arrive with different τ; without B0 and T2' τ does not matter, and
    merging by k alone (``tau_resolution=inf``, as an EPG does) keeps the graph small and exact."""
    t = tissue_table(3.0)["gm"]
    seq = fisp_mrf(n_frames=300)
    fingerprint = pdg_fingerprint(seq, t.t1, t.t2, tau_resolution=math.inf)
    assert rel_error(fingerprint, epg_fisp(seq, t.t1, t.t2)) < FINGERPRINT_NRMSE


def test_reference_epg_equals_an_isochromat_average():
    """The test's EPG itself, against spins spread over one full cycle of the spoiler (a few TRs suffice)."""
    seq = fisp_mrf(n_frames=60)
    t1, t2 = 1.0, 0.1
    spins = 256  # > 2·(TRs a transverse state survives) orders: no aliasing of the dephasing
    phase = 2 * np.pi * (np.arange(spins) + 0.5) / spins
    mp = np.zeros(spins, complex)
    mz = np.ones(spins)
    out = []
    for rep in seq:
        a = float(rep.pulse_angle)
        mm = np.conj(mp)
        mp, mz = (
            math.cos(a / 2) ** 2 * mp + math.sin(a / 2) ** 2 * mm - 1j * math.sin(a) * mz,
            (-0.5j * math.sin(a) * mp + 0.5j * math.sin(a) * mm + math.cos(a) * mz).real,
        )
        times = rep.event_time.numpy()
        ts = float(times[: int(np.flatnonzero(rep.adc_usage.numpy())[0]) + 1].sum()) if rep.adc_usage.any() else 0.0
        for dt, sample in ((ts, True), (times.sum() - ts, False)):
            mp = mp * math.exp(-dt / t2)
            mz = 1 + (mz - 1) * math.exp(-dt / t1)
            if sample and rep.adc_usage.any():
                out.append(mp.mean())
        if rep.pulse_usage != "inversion":
            mp = mp * np.exp(-1j * phase)
    assert rel_error(epg_fisp(seq, t1, t2), np.asarray(out)) < 1e-12


def test_gm_and_wm_fingerprints_are_distinguishable():
    table = tissue_table(3.0)
    seq = fisp_mrf()
    gm = epg_fisp(seq, table["gm"].t1, table["gm"].t2)
    wm = epg_fisp(seq, table["wm"].t1, table["wm"].t2)
    similarity = abs(np.vdot(gm, wm)) / (np.linalg.norm(gm) * np.linalg.norm(wm))
    assert similarity < DISTINGUISHABLE


# ----------------------------------------------------------------------------- errors and table


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fisp_mrf(n_frames=0), "n_frames must be an integer ≥ 1"),
        (lambda: fisp_mrf(n_frames=3, flip_angles=[0.1, 0.2]), "flip_angles must have n_frames = 3 values"),
        (lambda: fisp_mrf(n_frames=2, flip_angles=[10.0, 20.0]), "use gradmr.units.deg_to_rad"),
        (lambda: fisp_mrf(n_frames=2, trs=[12e-3, -1.0]), r"trs\[1\] must be > 0 s"),
        (lambda: fisp_mrf(n_frames=2, trs=[12e-3, 1e-3]), r"min\(trs\) = 1 ms is shorter than"),
        (lambda: fisp_mrf(te=0.2e-3), "te = 0.2 ms is shorter than the RF gap and one dwell"),
        (lambda: fisp_mrf(readout="epi"), "readout must be one of"),
        (lambda: fisp_mrf(inversion_time=0.5e-3), "inversion_time = 0.5 ms is shorter than"),
        (lambda: fisp_mrf(spoiler_cycles=-2.0), "spoiler_cycles must be ≥ 0"),
        (lambda: fisp_mrf(readout="spiral", n_interleaves=1), r"min\(trs\) = 11.5 ms is shorter than"),
        (lambda: jiang_trs(10, tr_range=(14e-3, 12e-3)), "tr_range must be"),
        (lambda: jiang_trs(10, raster=-1e-5), "raster must be ≥ 0 s"),
        (lambda: fisp_mrf(readout="spiral", dwell=4e-6), "dwell = 4 us must be a multiple of the gradient raster"),
    ],
)
def test_bad_parameters_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_parameter_table_covers_the_signature():
    import inspect

    params = [p for p in inspect.signature(fisp_mrf).parameters if p not in ("system", "dtype")]
    assert sorted(PARAMETERS["fisp_mrf"]) == sorted(params)


def test_trains_export_to_pulseq():
    """The TRs are on the block raster and every event fits: the Pulseq export writes the train."""
    export = pytest.importorskip("gradmr.io.pulseq_export")
    export.to_pulseq(fisp_mrf(n_frames=20))
    export.to_pulseq(fisp_mrf(n_frames=6, readout="spiral", matrix=32, n_interleaves=4))
