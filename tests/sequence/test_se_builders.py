"""Spin-echo family builders: SE, TSE, IR-SE, FLAIR, DIR and PGSE diffusion, simulated with the PDG."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from gradmr.phantom import VoxelPhantom, brain_phantom, tissue, tissue_fractions
from gradmr.recon import kspace_indices, reconstruct_cartesian
from gradmr.sequence import Repetition, Sequence
from gradmr.sequence.diffusion import b_matrix, b_value_of, dwi_pgse
from gradmr.sequence.inversion import double_inversion_recovery, flair, ir_spin_echo, null_inversion_time
from gradmr.sequence.spin_echo import spin_echo, tse_line_order, turbo_spin_echo
from gradmr.sequence.system import DEFAULT_SYSTEM, min_moment_time
from gradmr.sim import simulate
from gradmr.sim.pdg import simulate_pdg

F64 = torch.float64

#: The PDG keeps states down to 1e-4 of M0 (its ``min_emitted``/``min_latent``); where the expected value models
#: exactly what the PDG simulates, the two agree to this (relative or in units of M0).
PDG_TOL = 1e-4
#: The issue's acceptance check for diffusion: signal(b)/signal(0) = exp(−bD) within 1 %.
DIFFUSION_RTOL = 1e-2
#: Time comparisons in the limits checks [s] (round-off of sums of event times).
TIME_EPS = 1e-12
#: FLAIR: CSF below this fraction of its signal without the inversion (issue's criterion).
FLAIR_CSF_FRACTION = 0.10
#: DIR: each nulled tissue below this fraction of its signal without the inversions (issue's criterion).
DIR_FRACTION = 0.05
#: Voxels counted as one tissue: fraction above this.
PURE = 0.9

N = 32
FOV = (0.2, 0.2)
TISSUES = ("csf", "gm", "wm")


# ---------------------------------------------------------------------------------------------------------------
# helpers


def uniform(n: int, t1: float, t2: float, *, t2dash: float = 1e3, d: float = 0.0) -> VoxelPhantom:
    """An ``n × n`` single-tissue phantom filling the FOV."""
    one = torch.ones(n, n, dtype=F64)
    return VoxelPhantom.create(
        pd=one,
        t1=one * t1,
        t2=one * t2,
        t2dash=one * t2dash,
        d=one * d,
        voxel_size=(FOV[0] / n, FOV[1] / n, 5e-3),
        dtype=F64,
    )


def centre_sample(seq: Sequence, signal: torch.Tensor) -> complex:
    """The k = 0 sample (first one)."""
    k = seq.kspace()
    i = int(torch.nonzero(torch.linalg.vector_norm(k, dim=1) < 1e-9)[0])
    return complex(signal[i, 0])


def brain_means(seq: Sequence, field_strength: float = 3.0) -> dict[str, float]:
    """Mean |image| of the built-in brain per tissue over voxels of fraction > :data:`PURE`."""
    phantom = brain_phantom((N, N), field_strength=field_strength, fov=FOV, dtype=F64)
    signal = simulate(seq, phantom)
    image = reconstruct_cartesian(signal, seq.kspace(), fov=(*FOV, 5e-3), matrix=(1, N, N))[0, 0].abs()
    fractions = tissue_fractions((N, N), FOV)
    return {name: float(image[fractions[i] > PURE].mean()) for i, name in enumerate(TISSUES)}


def assert_within_limits(seq: Sequence, system=DEFAULT_SYSTEM, dwell: float = 30e-6) -> None:
    """Every event fits its moment, the RF gaps and the readout ramps under ``system``.

    * Readout events (ADC, or of length ``dwell`` in dummy shots) are segments of a flat gradient ≤ ``max_grad``.
    * An event next to a readout run must take its x gradient from or to the plateau G: it needs the ramp time
      ``G/slew`` (on the gradient raster), during which the ramp itself covers ``G·t_ramp/2``, plus a lobe for the
      rest of its x moment; y and z need a lobe from and to zero (``min_moment_time``).
    * Every other event: ``min_moment_time`` of each axis's moment.
    * The first event after a pulse and the last one before the next pulse: also the RF gap.
    """
    gap, raster = system.rf_gap, system.grad_raster_time

    def ramp(g: float) -> float:
        return math.ceil(abs(g) / system.max_slew_hz / raster - 1e-9) * raster

    for r, rep in enumerate(seq):
        t = rep.event_time.tolist()
        m = rep.gradm.tolist()
        readout = [a or ti == dwell for a, ti in zip(rep.adc_usage.tolist(), t, strict=True)]
        need = []
        for e in range(rep.event_count):
            if readout[e]:
                # flat readout: a constant moment per dwell, within max_grad
                assert max(abs(v) for v in m[e]) / t[e] <= system.max_grad_hz * (1 + 1e-12), (r, e)
                need.append(0.0)
                continue
            before = e + 1 < rep.event_count and readout[e + 1]
            after = e > 0 and readout[e - 1]
            mx = m[e][0]
            if before or after:
                g = m[e + 1][0] / t[e + 1] if before else m[e - 1][0] / t[e - 1]
                t_ramp = ramp(g)
                rest = mx - (g * t_ramp / 2)
                x_need = t_ramp + min_moment_time(rest, system)
            else:
                x_need = min_moment_time(mx, system)
            need.append(max(x_need, min_moment_time(m[e][1], system), min_moment_time(m[e][2], system)))
            assert need[e] <= t[e] + TIME_EPS, f"repetition {r} event {e}: {m[e]} in {t[e]} s"
        assert t[0] >= gap + need[0] - TIME_EPS, f"repetition {r}: first event shorter than the RF gap"
        if r + 1 < len(seq):
            assert t[-1] >= gap + need[-1] - TIME_EPS, f"repetition {r}: last event shorter than the RF gap"


def assert_cartesian_grid(seq: Sequence, nx: int, ny: int) -> None:
    """Every grid point of the (ny, nx) matrix sampled exactly once."""
    idx = kspace_indices(seq.kspace(), fov=(*FOV, 5e-3), matrix=(1, ny, nx))
    flat = idx[:, 1] * nx + idx[:, 2]
    assert torch.equal(torch.sort(flat).values, torch.arange(nx * ny))


def epg_cpmg(angles, *, esp: float, t1: float, t2: float) -> list[complex]:
    """Echo amplitudes F0 of a CPMG train from equilibrium, by an extended phase graph written out here.

    90° about +y (phase π/2), refocusing about +x (phase 0) with the rotation of ``docs/conventions.md``; every half
    echo spacing shifts the states by one unit (crushers) and relaxes them.
    """
    size = 2 * len(angles) + 4
    fp = [0j] * size  # F+_k, k ≥ 0
    fm = [0j] * size  # F−_k, k ≥ 0 (F−_0 = conj F+_0)
    z = [0j] * size
    z[0] = 1.0

    def rotate(alpha: float, phi: float) -> None:
        c2, s2, s = math.cos(alpha / 2) ** 2, math.sin(alpha / 2) ** 2, math.sin(alpha)
        e1, e2 = cmath.exp(1j * phi), cmath.exp(2j * phi)
        for k in range(size):
            a, b, c = fp[k], fm[k], z[k]
            fp[k] = c2 * a + e2 * s2 * b - 1j * e1 * s * c
            fm[k] = e2.conjugate() * s2 * a + c2 * b + 1j * e1.conjugate() * s * c
            z[k] = -0.5j * e1.conjugate() * s * a + 0.5j * e1 * s * b + math.cos(alpha) * c

    def relax_shift(tau: float) -> None:
        nonlocal fp, fm
        e1, e2 = math.exp(-tau / t1), math.exp(-tau / t2)
        for k in range(size):
            z[k] *= e1
        z[0] += 1 - e1
        # F+ moves up, F− moves down; F−_0 becomes F+_1's conjugate partner
        new_fp = [0j] + fp[:-1]
        new_fp[0] = fm[1].conjugate()
        new_fm = fm[1:] + [0j]
        new_fm[0] = new_fp[0].conjugate()
        fp = [v * e2 for v in new_fp]
        fm = [v * e2 for v in new_fm]

    rotate(math.pi / 2, math.pi / 2)
    echoes = []
    for alpha in angles:
        relax_shift(esp / 2)
        rotate(alpha, 0.0)
        relax_shift(esp / 2)
        echoes.append(fp[0])
    return echoes


def without_phase_encoding(seq: Sequence) -> Sequence:
    """The same sequence with every y moment set to 0: each echo then samples the centre line."""
    reps = []
    for rep in seq:
        g = rep.gradm.clone()
        g[:, 1] = 0
        reps.append(rep.replace(gradm=g))
    return Sequence(reps)


def ti_of(seq: Sequence) -> list[float]:
    """Durations of the inversion repetitions of the first shot [s]."""
    out = []
    for rep in seq:
        if rep.pulse_usage != "inversion":
            if out:
                break
            continue
        out.append(float(rep.duration()))
    return out


# ---------------------------------------------------------------------------------------------------------------
# spin echo


def test_spin_echo_grid_duration_and_limits():
    seq = spin_echo(matrix=(N, 24), fov=FOV, te=30e-3, tr=0.5, dummy_scans=2)
    assert len(seq) == 2 * (24 + 2)
    assert float(seq.duration()) == pytest.approx((24 + 2) * 0.5, rel=1e-12)
    assert_cartesian_grid(seq, N, 24)
    assert_within_limits(seq)
    # the refocusing pulse at TE/2, the echo (k = 0) at TE after the excitation
    assert float(seq[0].duration()) == pytest.approx(15e-3, rel=1e-12)
    times = seq.sample_times()
    k = seq.kspace()
    centre = int(torch.nonzero(torch.linalg.vector_norm(k, dim=1) < 1e-9)[0])
    start = float(seq[: 2 * (2 + 12)].duration())  # line 0 is the 13th imaging TR after 2 dummies
    assert float(times[centre]) - start == pytest.approx(30e-3, abs=1e-12)
    assert [r.pulse_usage for r in seq[:2]] == ["excitation", "refocusing"]
    # SAR proxy: one 90° and one 180° per TR
    expected = 26 * ((math.pi / 2) ** 2 + math.pi**2) / float(seq.duration())
    assert float(seq.sar_proxy()) == pytest.approx(expected, rel=1e-12)


def test_spin_echo_t2_decay_with_t2dash_refocused():
    """Uniform tissue, TR ≫ T1: S(TE2)/S(TE1) = exp(−ΔTE/T2) although T2' (5 ms) is far shorter than ΔTE."""
    t1, t2 = 0.5, 0.08
    phantom = uniform(8, t1, t2, t2dash=5e-3)
    values = []
    for te in (20e-3, 70e-3):
        seq = spin_echo(matrix=(8, 8), fov=FOV, te=te, tr=12 * t1)
        values.append(centre_sample(seq, simulate(seq, phantom)))
    ratio = values[1] / values[0]
    assert abs(ratio.imag) < PDG_TOL
    assert ratio.real == pytest.approx(math.exp(-50e-3 / t2), rel=PDG_TOL)
    # and the absolute value: every voxel's M0 · exp(−TE/T2), k = 0 is the sum over the 64 voxels
    assert values[0].real / 64 == pytest.approx(math.exp(-20e-3 / t2), rel=PDG_TOL)


def test_spin_echo_steady_state_with_long_t2_short_tr():
    """T2 comparable to TR: the varying spoilers leave the steady state of Z alone (no refocused leftovers)."""
    t1, t2, te, tr = 4.163, 1.65, 0.1, 0.5
    seq = spin_echo(matrix=(8, 8), fov=FOV, te=te, tr=tr, dummy_scans=3)
    value = centre_sample(seq, simulate(seq, uniform(8, t1, t2))) / 64
    z_after_refocus = -(1 - math.exp(-te / 2 / t1))
    z = 1 - (1 - z_after_refocus) * math.exp(-(tr - te / 2) / t1)
    assert value.real == pytest.approx(z * math.exp(-te / t2), rel=PDG_TOL)


def test_spin_echo_t2_weighted_brain_3t():
    means = brain_means(spin_echo(matrix=(N, N), fov=FOV, te=100e-3, tr=4.0))
    assert means["csf"] > means["gm"] > means["wm"]


# ---------------------------------------------------------------------------------------------------------------
# turbo spin echo


def test_tse_line_order_puts_centre_at_effective_echo():
    order = tse_line_order(32, 8, 3)
    assert len(order) == 4 and all(len(s) == 8 for s in order)
    assert sorted(v for s in order for v in s) == list(range(-16, 16))
    shot = next(s for s in order if 0 in s)
    assert shot.index(0) == 3
    # the effective echo in the middle of a centred train: the plain linear order
    assert tse_line_order(16, 4, 2) == [[-8, -4, 0, 4], [-7, -3, 1, 5], [-6, -2, 2, 6], [-5, -1, 3, 7]]


def test_tse_grid_timing_and_centre_at_te_eff():
    seq = turbo_spin_echo(
        matrix=(N, N), fov=FOV, te_eff=30e-3, echo_spacing=10e-3, echo_train_length=8, tr=1.0, dummy_scans=1
    )
    assert len(seq) == 9 * (4 + 1)
    assert float(seq.duration()) == pytest.approx(5 * 1.0, rel=1e-12)
    assert_cartesian_grid(seq, N, N)
    assert_within_limits(seq)
    # the k = 0 sample is 30 ms after its shot's excitation
    k = seq.kspace()
    centre = int(torch.nonzero(torch.linalg.vector_norm(k, dim=1) < 1e-9)[0])
    t_centre = float(seq.sample_times()[centre])
    assert (t_centre % 1.0) == pytest.approx(30e-3, abs=1e-9)


def test_tse_echo_amplitudes_follow_the_epg():
    """One shot, phase encoding removed: each echo's centre sample equals the EPG's F0 (CPMG, any angles)."""
    t1, t2, esp = 1.0, 0.1, 10e-3
    phantom = uniform(1, t1, t2, t2dash=5e-3)
    results = {}
    for name, angles in {
        "180": [math.pi] * 8,
        "120": [math.radians(120)] * 8,
        "variable": [math.radians(a) for a in (160, 120, 90, 70, 70, 90, 120, 150)],
    }.items():
        seq = turbo_spin_echo(
            matrix=(8, 8),
            fov=FOV,
            te_eff=40e-3,
            echo_spacing=esp,
            echo_train_length=8,
            tr=1.0,
            refocusing_angles=angles,
            dummy_scans=0,
        )
        probe = without_phase_encoding(seq)
        signal = simulate_pdg(probe, phantom)[:, 0]
        echoes = signal.reshape(8, 8)[:, 8 // 2].tolist()  # (echo, sample): sample nx//2 is k = 0
        expected = epg_cpmg(angles, esp=esp, t1=t1, t2=t2)
        for got, want in zip(echoes, expected, strict=True):
            assert abs(got - want) < PDG_TOL
        results[name] = [abs(v) for v in echoes]
    # 180°: pure T2 decay (CPMG keeps the echoes on the exp(−t/T2) curve)
    for j, v in enumerate(results["180"]):
        assert v == pytest.approx(math.exp(-(j + 1) * esp / t2), rel=PDG_TOL)
    # lower (constant) refocusing angles give lower late echoes
    assert results["120"][-1] < results["180"][-1]
    # a train that dips and rises again stores magnetisation along z, where it decays with T1 ≫ T2: its late
    # echoes exceed the T2 decay of the 180° train (the basis of TRAPS / SPACE-like trains, Hennig et al. MRM 2003)
    assert results["variable"][-1] > results["180"][-1]


def test_tse_sar_grows_with_refocusing_angle():
    kwargs = dict(matrix=(16, 16), fov=FOV, te_eff=40e-3, echo_spacing=10e-3, echo_train_length=8, tr=1.0)
    low = turbo_spin_echo(refocusing_angles=math.radians(120), **kwargs)
    high = turbo_spin_echo(refocusing_angles=math.pi, **kwargs)
    assert float(low.duration()) == float(high.duration())
    assert float(low.sar_proxy()) < float(high.sar_proxy())
    shots = 2 + 1
    expected = shots * ((math.pi / 2) ** 2 + 8 * math.pi**2) / float(high.duration())
    assert float(high.sar_proxy()) == pytest.approx(expected, rel=1e-12)


def test_tse_brain_t2_weighted_3t():
    seq = turbo_spin_echo(matrix=(N, N), fov=FOV, te_eff=100e-3, echo_spacing=10e-3, echo_train_length=16, tr=4.0)
    means = brain_means(seq)
    assert means["csf"] > means["gm"] > means["wm"]


# ---------------------------------------------------------------------------------------------------------------
# inversion recovery


def test_flair_nulls_csf_on_a_uniform_phantom():
    """Default TI = the steady-state null of CSF's T1 for this TR and train: the PDG signal of pure CSF is ~0."""
    csf = tissue("csf", 3.0)
    kwargs = dict(matrix=(8, 8), fov=FOV, te=40e-3, echo_spacing=10e-3, echo_train_length=8, tr=6.0)
    seq = flair(**kwargs)
    reference = turbo_spin_echo(
        matrix=(8, 8), fov=FOV, te_eff=40e-3, echo_spacing=10e-3, echo_train_length=8, tr=6.0, dummy_scans=1
    )
    phantom = uniform(8, csf.t1, csf.t2)
    nulled = abs(centre_sample(seq, simulate(seq, phantom)))
    full = abs(centre_sample(reference, simulate(reference, phantom)))
    assert nulled < PDG_TOL * full
    # long-TR limit of the null: T1·ln 2 is an upper bound (recovery before the inversion is incomplete)
    assert 0 < ti_of(seq)[0] < csf.t1 * math.log(2)


@pytest.mark.parametrize("field_strength", [3.0, 1.5])
def test_flair_brain_csf_dark(field_strength):
    kwargs = dict(matrix=(N, N), fov=FOV, echo_spacing=10e-3, echo_train_length=8, tr=9.0)
    seq = flair(te=80e-3, field_strength=field_strength, **kwargs)
    assert_within_limits(seq)
    assert_cartesian_grid(seq, N, N)
    reference = turbo_spin_echo(te_eff=80e-3, dummy_scans=1, **kwargs)
    fl = brain_means(seq, field_strength)
    t2w = brain_means(reference, field_strength)
    assert fl["csf"] < FLAIR_CSF_FRACTION * t2w["csf"]
    assert fl["csf"] < fl["gm"] and fl["csf"] < fl["wm"]
    assert float(seq.duration()) == pytest.approx(5 * 9.0, rel=1e-12)


def test_flair_se_readout_matches_spin_echo_layout():
    seq = flair(matrix=(16, 16), fov=FOV, te=80e-3, tr=9.0, readout="se", dummy_scans=0)
    assert [r.pulse_usage for r in seq[:3]] == ["inversion", "excitation", "refocusing"]
    assert float(seq.duration()) == pytest.approx(16 * 9.0, rel=1e-12)
    assert_within_limits(seq)
    assert_cartesian_grid(seq, 16, 16)
    inv = seq[0]
    assert float(inv.pulse_angle) == pytest.approx(math.pi) and inv.gradm[0].abs().sum() > 0


def test_ir_spin_echo_t1_weighted_brain():
    seq = ir_spin_echo(matrix=(N, N), fov=FOV, te=12e-3, tr=2.5)
    assert_within_limits(seq)
    means = brain_means(seq)
    assert means["wm"] > means["gm"] > means["csf"]
    assert means["csf"] < 0.1 * means["wm"]
    sar = ((2 * math.pi**2 + (math.pi / 2) ** 2) * (N + 1)) / float(seq.duration())
    assert float(seq.sar_proxy()) == pytest.approx(sar, rel=1e-12)


def test_ir_spin_echo_given_ti_is_used():
    seq = ir_spin_echo(matrix=(8, 8), fov=FOV, ti=0.4, te=15e-3, tr=1.5)
    assert ti_of(seq) == [pytest.approx(0.4, abs=1e-12)]
    assert float(seq.duration()) == pytest.approx(9 * 1.5, rel=1e-12)


def test_dir_nulls_csf_and_wm():
    kwargs = dict(matrix=(N, N), fov=FOV, echo_spacing=10e-3, echo_train_length=8, tr=12.0)
    seq = double_inversion_recovery(te=30e-3, **kwargs)
    assert_within_limits(seq)
    ti_gap, ti2 = ti_of(seq)
    assert ti_gap > 0 and ti2 > 0
    reference = turbo_spin_echo(te_eff=30e-3, dummy_scans=1, **kwargs)
    dir_means = brain_means(seq)
    ref_means = brain_means(reference)
    assert dir_means["csf"] < DIR_FRACTION * ref_means["csf"]
    assert dir_means["wm"] < DIR_FRACTION * ref_means["wm"]
    assert dir_means["gm"] > dir_means["csf"] and dir_means["gm"] > dir_means["wm"]


def test_dir_null_is_exact_on_uniform_phantoms_at_1p5t():
    kwargs = dict(matrix=(8, 8), fov=FOV, te=20e-3, tr=10.0, readout="se", field_strength=1.5)
    seq = double_inversion_recovery(**kwargs)
    reference = spin_echo(matrix=(8, 8), fov=FOV, te=20e-3, tr=10.0, dummy_scans=1)
    for name in ("csf", "wm"):
        t = tissue(name, 1.5)
        phantom = uniform(8, t.t1, t.t2)
        nulled = abs(centre_sample(seq, simulate(seq, phantom)))
        full = abs(centre_sample(reference, simulate(reference, phantom)))
        assert nulled < PDG_TOL * full, name


# ---------------------------------------------------------------------------------------------------------------
# diffusion


def test_b_value_of_two_lobes_is_stejskal_tanner():
    """Hand-built: 90° – lobe (δ, q) – gap – 180° – gap – lobe – sample at the echo; b = (2πq)²(Δ − δ/3)."""
    delta, gap, q = 10e-3, 15e-3, 2e4
    zero = [0.0, 0.0, 0.0]
    lobe = [0.0, q, 0.0]

    def rep(angle, usage, times, moments, adc_last=False):
        r = Repetition.create(len(times), pulse_angle=angle, pulse_usage=usage)
        adc = torch.zeros(len(times), dtype=torch.bool)
        adc[-1] = adc_last
        return r.replace(
            event_time=torch.tensor(times, dtype=F64), gradm=torch.tensor(moments, dtype=F64), adc_usage=adc
        )

    seq = Sequence(
        [
            rep(math.pi / 2, "excitation", [delta, gap], [lobe, zero]),
            rep(math.pi, "refocusing", [gap, delta, 1e-6], [zero, lobe, zero], adc_last=True),
        ]
    )
    big_delta = delta + 2 * gap
    expected = (2 * math.pi * q) ** 2 * (big_delta - delta / 3)
    assert float(b_value_of(seq, (0, 1, 0))) == pytest.approx(expected, rel=1e-12)
    assert float(b_value_of(seq)) == pytest.approx(expected, rel=1e-12)
    assert float(b_value_of(seq, (1, 0, 0))) == 0.0
    b = b_matrix(seq)
    assert b.shape == (1, 3, 3)


@pytest.mark.parametrize("d", [1e-9, 3e-9])
def test_dwi_attenuation_is_exp_minus_bd(d):
    """Issue acceptance: on a uniform phantom of known D, S(b)/S(0) = exp(−bD) within 1 % along x, y and z."""
    b = 1e9  # 1000 s/mm²
    phantom = uniform(8, 1.0, 0.1, t2dash=10.0, d=d)
    reference = dwi_pgse(b_value=0.0, matrix=(8, 8), fov=FOV, te=80e-3, tr=1.0)
    s0 = centre_sample(reference, simulate(reference, phantom))
    # b = 0 keeps the timing; only the crushers and imaging gradients remain (≪ 1 s/mm²)
    assert float(b_value_of(reference)) < 1e-4 * b
    assert float(reference.duration()) == pytest.approx(8 * 1.0, rel=1e-12)
    for direction in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        seq = dwi_pgse(b_value=b, direction=direction, matrix=(8, 8), fov=FOV, te=80e-3, tr=1.0)
        assert float(b_value_of(seq, direction)) == pytest.approx(b, rel=1e-9)
        assert [float(r.duration()) for r in seq] == pytest.approx([float(r.duration()) for r in reference])
        ratio = centre_sample(seq, simulate(seq, phantom)) / s0
        assert abs(ratio.imag) < PDG_TOL
        assert ratio.real == pytest.approx(math.exp(-b * d), rel=DIFFUSION_RTOL)


def test_dwi_grid_limits_and_oblique_direction():
    seq = dwi_pgse(b_value=1e9, direction=(1, 1, 1), matrix=(16, 16), fov=FOV, te=80e-3, tr=1.0)
    assert_within_limits(seq)
    assert_cartesian_grid(seq, 16, 16)
    n = torch.tensor([1.0, 1.0, 1.0], dtype=F64) / math.sqrt(3)
    lobe = seq[0].gradm[1]
    torch.testing.assert_close(lobe / lobe.norm(), n)
    assert float(b_value_of(seq, (2, 2, 2))) == pytest.approx(1e9, rel=1e-9)
    # the phase encoding comes after both lobes: the echo (k_x = 0) of every line has the same b along n
    k = seq.kspace()
    b_lines = torch.einsum("i,sij,j->s", n, b_matrix(seq)[k[:, 0].abs() < 1e-9], n)
    assert b_lines.shape == (16,)
    torch.testing.assert_close(b_lines, torch.full_like(b_lines, 1e9), rtol=1e-6, atol=0.0)
    # each lobe event: Stejskal–Tanner with the builder's own δ, Δ gives b up to the small cross-terms
    delta = float(seq[0].event_time[1])
    start1 = float(seq[0].event_time[0])
    start2 = float(seq[0].duration() + seq[1].event_time[:2].sum())
    q = float(lobe.norm())
    nominal = (2 * math.pi * q) ** 2 * (start2 - start1 - delta / 3)
    assert nominal == pytest.approx(1e9, rel=1e-2)


def test_dwi_b_fits_at_the_reported_minimum_te():
    with pytest.raises(ValueError, match=r"does not fit in te = 50 ms.*shortest TE that fits is") as info:
        dwi_pgse(b_value=3e9, matrix=(16, 16), fov=FOV, te=50e-3, tr=1.0)
    te_min = float(str(info.value).rsplit("is ", 1)[1].split(" ms")[0]) * 1e-3
    seq = dwi_pgse(b_value=3e9, matrix=(16, 16), fov=FOV, te=te_min + 1e-4, tr=1.0)
    assert float(b_value_of(seq, (1, 0, 0))) == pytest.approx(3e9, rel=1e-9)
    assert_within_limits(seq)


# ---------------------------------------------------------------------------------------------------------------
# every builder: duration, SAR proxy, limits

_HALF, _PI = math.pi / 2, math.pi
_BUILDERS = {
    # name: (builder, arguments, shots incl. dummies, flip angles of one shot)
    "spin_echo": (spin_echo, dict(te=30e-3, tr=0.8), 16, [_HALF, _PI]),
    "tse": (
        turbo_spin_echo,
        dict(te_eff=20e-3, echo_spacing=10e-3, echo_train_length=4, tr=0.8, refocusing_angles=2.5),
        4 + 1,
        [_HALF] + [2.5] * 4,
    ),
    "ir_se": (ir_spin_echo, dict(te=15e-3, tr=1.5), 16 + 1, [_PI, _HALF, _PI]),
    "flair": (flair, dict(te=40e-3, echo_spacing=10e-3, echo_train_length=8, tr=6.0), 2 + 1, [_PI, _HALF] + [_PI] * 8),
    "dir": (
        double_inversion_recovery,
        dict(te=20e-3, echo_spacing=10e-3, echo_train_length=4, tr=8.0, dummy_scans=2),
        4 + 2,
        [_PI, _PI, _HALF] + [_PI] * 4,
    ),
    "dwi": (dwi_pgse, dict(b_value=5e8, direction=(0, 1, 1), te=70e-3, tr=0.8, dummy_scans=1), 16 + 1, [_HALF, _PI]),
}


@pytest.mark.parametrize("name", list(_BUILDERS))
def test_duration_sar_and_limits_of_every_builder(name):
    builder, kwargs, shots, angles = _BUILDERS[name]
    seq = builder(matrix=(16, 16), fov=FOV, **kwargs)
    tr = kwargs["tr"]
    assert float(seq.duration()) == pytest.approx(shots * tr, rel=1e-12)
    assert len(seq) == shots * len(angles)
    assert [float(r.pulse_angle) for r in seq] == pytest.approx(angles * shots)
    assert float(seq.sar_proxy()) == pytest.approx(shots * sum(a * a for a in angles) / (shots * tr), rel=1e-12)
    assert_within_limits(seq)
    assert_cartesian_grid(seq, 16, 16)


def _shortest(build, lo: float, hi: float, raster: float = 10e-6) -> float:
    """Shortest time on the raster for which ``build(t)`` does not raise (bisection)."""
    while hi - lo > raster / 4:
        mid = (lo + hi) / 2
        try:
            build(mid)
            hi = mid
        except ValueError:
            lo = mid
    t = math.ceil(hi / raster - 1e-6) * raster
    while True:
        try:
            build(t - raster)
        except ValueError:
            return t
        t -= raster


@pytest.mark.parametrize("name", list(_BUILDERS))
def test_every_builder_exports_to_pulseq(name):
    """The sizing rules are what the Pulseq export needs: every builder exports (limits, RF gaps, ramps)."""
    export = pytest.importorskip("gradmr.io.pulseq_export")
    builder, kwargs, _, _ = _BUILDERS[name]
    export.to_pulseq(builder(matrix=(16, 16), fov=FOV, **kwargs))


@pytest.mark.parametrize("etl", [1, 4])
def test_shortest_echo_spacing_exports_to_pulseq(etl):
    export = pytest.importorskip("gradmr.io.pulseq_export")

    def build(esp: float) -> Sequence:
        return turbo_spin_echo(
            matrix=(64, 64), fov=FOV, te_eff=esp, echo_spacing=esp, echo_train_length=etl, tr=0.2, dummy_scans=0
        )

    esp = _shortest(build, 1e-3, 20e-3)
    with pytest.raises(ValueError, match="echo_spacing"):
        build(esp - 10e-6)
    export.to_pulseq(build(esp)[: 2 * (1 + etl)])


# ---------------------------------------------------------------------------------------------------------------
# bad parameters


def test_error_te_too_short():
    with pytest.raises(ValueError, match=r"te = 2 ms is shorter than the prephaser, crushers, RF gaps and readout"):
        spin_echo(matrix=(16, 16), te=2e-3, tr=1.0)


def test_error_tr_shorter_than_echo_train():
    with pytest.raises(ValueError, match=r"tr = 100 ms is shorter than the echo train"):
        turbo_spin_echo(matrix=(16, 16), te_eff=40e-3, echo_spacing=10e-3, echo_train_length=16, tr=0.1)


def test_error_ti_not_below_tr():
    with pytest.raises(ValueError, match=r"ti = 9000 ms must be shorter than tr"):
        flair(matrix=(16, 16), ti=9.0, tr=9.0, te=80e-3, echo_train_length=8)


def test_error_refocusing_angles_wrong_length():
    with pytest.raises(ValueError, match=r"echo_train_length = 8 angles, got 3"):
        turbo_spin_echo(matrix=(16, 16), te_eff=40e-3, echo_train_length=8, refocusing_angles=[3.0, 2.0, 1.0])


def test_error_refocusing_angles_in_degrees():
    with pytest.raises(ValueError, match=r"refocusing_angles\[0\] must be in \(0, π\] rad, got 180.*deg_to_rad"):
        turbo_spin_echo(matrix=(16, 16), te_eff=40e-3, echo_train_length=8, refocusing_angles=180.0)


def test_error_te_eff_not_an_echo_time():
    with pytest.raises(ValueError, match=r"te_eff = 45 ms must be one of the echo times"):
        turbo_spin_echo(matrix=(16, 16), te_eff=45e-3, echo_spacing=10e-3, echo_train_length=8)


def test_error_etl_must_divide_lines():
    with pytest.raises(ValueError, match=r"echo_train_length = 6 must divide .* ny = 16"):
        turbo_spin_echo(matrix=(16, 16), te_eff=30e-3, echo_spacing=10e-3, echo_train_length=6)


def test_error_b_value_does_not_fit():
    with pytest.raises(ValueError, match=r"b_value = 1000 s/mm\^2 does not fit in te = 20 ms"):
        dwi_pgse(b_value=1e9, matrix=(16, 16), te=20e-3, tr=1.0)


def test_error_zero_direction():
    with pytest.raises(ValueError, match="direction must not be the zero vector"):
        dwi_pgse(direction=(0, 0, 0), matrix=(16, 16))


def test_error_dwell_too_short_for_max_grad():
    with pytest.raises(ValueError, match=r"dwell = 1 µs needs a readout gradient .* above max_grad"):
        spin_echo(matrix=(16, 16), dwell=1e-6)


def test_error_tse_options_with_se_readout_and_half_dir_times():
    with pytest.raises(ValueError, match="echo_train_length applies to readout='tse' only"):
        flair(matrix=(16, 16), readout="se", echo_train_length=8)
    with pytest.raises(ValueError, match="give both ti1 and ti2, or neither"):
        double_inversion_recovery(matrix=(16, 16), ti1=3.0)
    with pytest.raises(ValueError, match="readout must be one of"):
        flair(matrix=(16, 16), readout="epi")


def test_error_ti_shorter_than_inversion_spoiler_and_dir_gap():
    with pytest.raises(ValueError, match=r"ti = 0.1 ms is shorter than the inversion spoiler and RF gaps allows"):
        flair(matrix=(16, 16), ti=1e-4, tr=9.0, te=80e-3, echo_train_length=8)
    with pytest.raises(ValueError, match=r"ti1 = 500 ms must exceed ti2 = 499 ms by at least"):
        double_inversion_recovery(matrix=(16, 16), ti1=0.5, ti2=0.499, echo_train_length=8)


def test_error_no_null_within_the_possible_inversion_times():
    # the longest possible TI (2 ms) is far below T1·ln(1 + Z_a) for T1 = 4 s
    with pytest.raises(ValueError, match=r"too short to null T1 = 4000 ms"):
        null_inversion_time(4.0, tr=1.0, pulses=[], ti_min=1e-3, ti_max=2e-3)
    # a null for the same T1 at a long TR is T1·ln(1 + Z_a) with Z_a = 1 − e^{−(TR − TI)/T1}
    ti = null_inversion_time(4.0, tr=40.0, pulses=[], ti_min=1e-3, ti_max=39.0)
    assert ti == pytest.approx(4.0 * math.log(2 - math.exp(-(40.0 - ti) / 4.0)), rel=1e-9)
