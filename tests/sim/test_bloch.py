"""Tests of the Bloch isochromat reference simulator against ODEs, closed forms and the conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from gradmr.phantom import VoxelPhantom
from gradmr.sequence import Repetition, Sequence, flash
from gradmr.sim.bloch import lorentzian_quantiles, simulate_bloch, spin_offsets, subgrid_shape

DT = torch.float64

#: Single isochromat vs solve_ivp (DOP853, rtol 1e-11, atol 1e-13 per event): the ODE error
#: accumulates over a few events (measured difference 7e-13); 1e-8 leaves margin and still catches any sign error.
ODE_ATOL = 1e-8
#: Closed forms that the isochromat model satisfies exactly (one spin, no T2'): only float64
#: rounding and residual transients (< 1e-9 by construction of each test) remain.
EXACT_RTOL = 1e-7
#: bSSFP vs an independent 4×4 affine matrix model of every repetition: float64 rounding only.
MATRIX_ATOL = 1e-10
#: FID of N spins with stratified Lorentzian quantiles vs exp(−t/T2'): the midpoint rule on
#: ∫ cos(τ·tan(π(u−½))) du errs in the outer strata, whose offsets are spaced by more than π/τ
#: (about √(τN) of them), so the error falls only as N^(−1/2): measured max over τ = t/T2' ≤ 3 is
#: 0.35/√N at N = 4096 (0.30/√N at 16384, 0.82/√N at 64). Tolerance 0.5/√N.
LORENTZ_ERR_COEFF = 0.5
#: float32 vs float64 signal of an 8 × 8 FLASH (|s| up to ~5 at the k-space centre): float32 rounding
#: over ~80 repetitions, measured 4e-6.
FLOAT32_ATOL = 1e-4


# ---------------------------------------------------------------------------------------- helpers
def _phantom(shape=(1, 1), **maps) -> VoxelPhantom:
    maps.setdefault("pd", torch.ones(shape, dtype=DT))
    maps.setdefault("t1", 1.0)
    maps.setdefault("t2", 0.1)
    # Python floats as float64 tensors: VoxelPhantom.create converts scalars via float32 first
    maps = {k: torch.tensor(v, dtype=DT) if isinstance(v, float) else v for k, v in maps.items()}
    return VoxelPhantom.create(dtype=DT, **maps)


def _rep(angle, phase, times, gradm=None, adc=None, adc_phase=None) -> Repetition:
    """A repetition from plain lists; ``adc`` is a list of bools, ``gradm`` a list of (x, y, z)."""
    n = len(times)
    return Repetition(
        pulse_angle=torch.as_tensor(angle, dtype=DT),
        pulse_phase=torch.as_tensor(phase, dtype=DT),
        event_time=torch.as_tensor(times, dtype=DT),
        gradm=torch.zeros(n, 3, dtype=DT) if gradm is None else torch.as_tensor(gradm, dtype=DT).reshape(n, 3),
        adc_usage=torch.zeros(n, dtype=torch.bool) if adc is None else torch.as_tensor(adc, dtype=torch.bool),
        adc_phase=torch.zeros(n, dtype=DT) if adc_phase is None else torch.as_tensor(adc_phase, dtype=DT),
    )


def _rf_matrix(alpha: float, phi: float) -> np.ndarray:
    """Rotation by α about n = (cos φ, sin φ, 0) in the sense of docs/conventions.md.

    The conventions' formula (φ = 0 takes ẑ to −ŷ, M⁺ = −i sin α) is the *right-handed*
    Rodrigues rotation R = cos α I + sin α [n]× + (1 − cos α) n nᵀ about n.
    """
    n = np.array([math.cos(phi), math.sin(phi), 0.0])
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return math.cos(alpha) * np.eye(3) + math.sin(alpha) * cross + (1 - math.cos(alpha)) * np.outer(n, n)


# ---------------------------------------------------------------- (1) single isochromat vs an ODE
def _bloch_ode_reference(seq: Sequence, r: np.ndarray, b0: float, b1: float, t1: float, t2: float) -> np.ndarray:
    """M⁺ at every sample of ``seq`` for one spin at ``r`` (M0 = 1), by integrating the Bloch equation.

    Free precession in the rotating frame with the conventions' sign (phase −2π Δf t, i.e. the
    left-handed precession of dM/dt = γ M × B for γ > 0 and B along +z):
        dMx/dt =  ω My − Mx/T2,   dMy/dt = −ω Mx − My/T2,   dMz/dt = (1 − Mz)/T1,
    with ω = 2π (B0 + k·r / dt) constant within an event of moment k and duration dt.
    """
    m = np.array([0.0, 0.0, 1.0])
    out = []
    for rep in seq:
        m = _rf_matrix(b1 * float(rep.pulse_angle), float(rep.pulse_phase)) @ m
        for dt, k, adc, phi in zip(
            rep.event_time.tolist(), rep.gradm.tolist(), rep.adc_usage.tolist(), rep.adc_phase.tolist(), strict=True
        ):
            omega = 2 * math.pi * (b0 + float(np.dot(k, r)) / dt)

            def rhs(_t, y, omega=omega):
                return [omega * y[1] - y[0] / t2, -omega * y[0] - y[1] / t2, (1 - y[2]) / t1]

            sol = solve_ivp(rhs, (0.0, dt), m, method="DOP853", rtol=1e-11, atol=1e-13)
            m = sol.y[:, -1]
            if adc:
                out.append(complex(m[0], m[1]) * complex(math.cos(phi), -math.sin(phi)))
    return np.array(out)


def test_single_isochromat_matches_bloch_ode():
    vs = 2e-3
    pd = torch.zeros(3, 3, dtype=DT)
    pd[0, 2] = 0.8  # voxel (y=0, x=2): position ((2 − 1)·vs, (0 − 1)·vs, 0)
    coil = torch.full((1, 3, 3), 0.7 * complex(math.cos(0.4), math.sin(0.4)), dtype=torch.complex128)
    b0, b1, t1, t2 = 23.0, 0.9, 0.6, 0.08
    phantom = _phantom(pd=pd, t1=t1, t2=t2, b0=b0, b1=b1, coil_sens=coil, voxel_size=(vs, vs, vs))
    seq = Sequence(
        [
            _rep(
                math.radians(70),
                0.3,
                [1e-3, 2e-3, 0.5e-3, 5e-3],
                [(50, 0, 0), (0, -30, 0), (20, 10, 0), (0, 0, 0)],
                [False, True, True, False],
                [0, 0.2, -1.0, 0],
            ),
            _rep(
                math.radians(120),
                1.7,
                [0.7e-3, 1.3e-3, 3e-3],
                [(-40, 25, 0), (10, 0, 0), (0, 0, 0)],
                [True, False, True],
                [1.7, 0, 0.5],
            ),
            _rep(math.radians(30), -0.5, [4e-3, 1e-3], [(0, 60, 0), (-15, -15, 0)], [True, True], [-0.5, 2.0]),
        ]
    )
    sig = simulate_bloch(seq, phantom, spins_per_voxel=1, t2dash=False)
    assert sig.shape == (6, 1) and sig.dtype == torch.complex128
    r = np.array([vs, -vs, 0.0])
    expected = 0.7 * np.exp(0.4j) * 0.8 * _bloch_ode_reference(seq, r, b0, b1, t1, t2)
    np.testing.assert_allclose(sig[:, 0].numpy(), expected, rtol=0, atol=ODE_ATOL)


# -------------------------------------------------------------------------- conventions and signs
def test_rf_convention_examples():
    """φ = 0 on ẑ gives M⁺ = −i sin α; φ = π/2 gives +sin α; B1 scales the flip angle."""
    alpha = 0.7
    times, adc = [0.0], [True]
    for phi, expected in ((0.0, -1j * math.sin(alpha)), (math.pi / 2, math.sin(alpha))):
        s = simulate_bloch(Sequence([_rep(alpha, phi, times, adc=adc)]), _phantom(), spins_per_voxel=1, t2dash=False)
        assert abs(complex(s[0, 0]) - expected) < 1e-14
    s = simulate_bloch(Sequence([_rep(math.pi, 0.0, times, adc=adc)]), _phantom(b1=0.5), spins_per_voxel=1)
    assert abs(complex(s[0, 0]) - (-1j)) < 1e-14


def test_adc_phase_follows_rf_phase():
    """An RF pulse of phase φ received with ADC phase φ gives a signal independent of φ."""
    sigs = [
        complex(
            simulate_bloch(
                Sequence([_rep(0.4, phi, [1e-3], adc=[True], adc_phase=[phi])]), _phantom(b0=30.0), spins_per_voxel=1
            )[0, 0]
        )
        for phi in (0.0, 1.0, -2.5, 4.0)
    ]
    assert np.ptp(np.real(sigs)) < 1e-14 and np.ptp(np.imag(sigs)) < 1e-14


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("spins", [1, 64])
def test_readout_phase_is_exp_minus_2pi_i_k_x(axis, spins):
    """An off-centre voxel in a readout along ``axis`` has s(k) = D(k)·exp(−2πi k·x0), D real > 0."""
    vs, n_grid, n_k = 1e-3, 8, 16
    shape = [1, 1, 1]  # (z, y, x)
    shape[2 - axis] = n_grid
    pd = torch.zeros(shape, dtype=DT)
    index = [0, 0, 0]
    index[2 - axis] = 6
    pd[tuple(index)] = 1.0
    x0 = (6 - n_grid // 2) * vs
    dk = 0.5 / vs / n_k  # k_max·vs = ½: the sub-grid average stays positive
    g = np.zeros((n_k, 3))
    g[:, axis] = dk
    seq = Sequence([_rep(math.pi / 2, math.pi / 2, [1e-5] * n_k, g, [True] * n_k)])
    sig = simulate_bloch(seq, _phantom(pd=pd, t2=1.0, voxel_size=(vs, vs, vs)), spins_per_voxel=spins, t2dash=False)
    k = dk * np.arange(1, n_k + 1)
    decay = np.exp(-1e-5 * np.arange(1, n_k + 1) / 1.0)  # T2 = 1 s
    n_axis = subgrid_shape(spins, 3 if axis == 2 else 2)[axis]  # sub-grid (x, y[, z]); 3D only for z
    frac = (np.arange(n_axis) + 0.5) / n_axis - 0.5
    dirichlet = np.cos(2 * np.pi * np.outer(k, frac * vs)).mean(axis=1)
    expected = dirichlet * decay * np.exp(-2j * np.pi * k * x0)
    np.testing.assert_allclose(sig[:, 0].numpy(), expected, rtol=0, atol=1e-12)


def test_off_resonance_phase_sign():
    """B0 > 0 gives the phase −2π B0 t (T1, T2 long)."""
    b0, dt = 100.0, 1e-4
    seq = Sequence([_rep(math.pi / 2, math.pi / 2, [dt] * 20, adc=[True] * 20)])
    sig = simulate_bloch(seq, _phantom(b0=b0, t1=1e3, t2=1e3), spins_per_voxel=1)
    t = dt * np.arange(1, 21)
    np.testing.assert_allclose(sig[:, 0].numpy(), np.exp(-t / 1e3 - 2j * np.pi * b0 * t), atol=1e-12)


def test_spoiler_of_one_cycle_per_voxel_dephases_exactly():
    """k = 1/voxel_size in x: the regular sub-grid of 8 × 8 spins sums to zero."""
    vs = 1e-3
    seq = Sequence([_rep(math.pi / 2, 0.0, [1e-3], [(1 / vs, 0, 0)], [True])])
    sig = simulate_bloch(seq, _phantom(voxel_size=(vs, vs, vs)), spins_per_voxel=64, t2dash=False)
    assert abs(complex(sig[0, 0])) < 1e-14


def test_flash_image_lands_in_the_right_place():
    """A FLASH of an off-centre block, reconstructed with a centred inverse DFT, shows the block.

    T2 = 5 ms ≪ TR: transverse magnetisation is gone before the 8 × 8 spin sub-grid would alias
    the accumulated spoiler (2 cycles per voxel per TR; 8 spins resolve up to 4 cycles).
    """
    n, vs = 16, 1e-3
    pd = torch.zeros(n, n, dtype=DT)
    pd[3:6, 9:14] = 1.0  # rows are y, columns x
    seq = flash(matrix=(n, n), fov=(n * vs, n * vs), flip_angle=math.radians(10), tr=10e-3, dwell=10e-6, dummy_scans=20)
    sig = simulate_bloch(seq, _phantom(pd=pd, t1=0.1, t2=5e-3, voxel_size=(vs, vs, vs)), spins_per_voxel=64)
    kspace = sig[:, 0].reshape(n, n)
    image = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(kspace))).abs()
    image = image / image.max()
    assert torch.equal(image > 0.5, pd > 0)
    assert image[pd == 0].max() < 0.1  # no ghosts, edges ringing only


# -------------------------------------------------------------------------------- (2) closed forms
def test_spoiled_gre_steady_state_matches_ernst():
    alpha, tr, te, t1, t2 = math.radians(30), 50e-3, 1e-3, 0.5, 2e-3  # T2 ≪ TR: transverse gone
    reps = 100  # transient (cos α·E1)^n = 0.78^n < 1e-9 after 90 reps; e^{−TR/T2} = 2e-11
    seq = Sequence([_rep(alpha, 0.0, [te, tr - te], adc=[True, False]) for _ in range(reps)])
    sig = simulate_bloch(seq, _phantom(t1=t1, t2=t2), spins_per_voxel=1, t2dash=False)
    e1 = math.exp(-tr / t1)
    ernst = math.sin(alpha) * (1 - e1) / (1 - math.cos(alpha) * e1) * math.exp(-te / t2)
    # φ = 0 excites to −y: M⁺ = −i·|M⁺|
    np.testing.assert_allclose(sig[-10:, 0].numpy(), -1j * ernst, rtol=EXACT_RTOL, atol=0)


@pytest.mark.parametrize(("t2dash", "spins"), [(False, 1), (True, 1024)])
def test_spin_echo_steady_state(t2dash, spins):
    """90°(φ = 90°) – TE/2 – 180°(φ = 0) – TE/2 – echo, repeated every TR; B0 and T2' refocus."""
    te, tr, t1, t2, t2d = 10e-3, 1.0, 0.8, 50e-3, 5e-3
    tau = te / 2
    rep90 = _rep(math.pi / 2, math.pi / 2, [tau], adc=[True])  # FID sample at TE/2
    rep180 = _rep(math.pi, 0.0, [tau, tr - te], adc=[True, False])  # echo at TE
    seq = Sequence([rep90, rep180] * 4)
    phantom = _phantom(pd=torch.full((1, 1), 0.7, dtype=DT), t1=t1, t2=t2, t2dash=t2d, b0=37.0)
    sig = simulate_bloch(seq, phantom, spins_per_voxel=spins, t2dash=t2dash)[:, 0].numpy()
    echoes, fids = sig[1::2], sig[0::2]
    e_te = math.exp(-te / t2)
    # first TR starts from equilibrium; later ones from Mz = 1 − 2e^{−(TR−τ)/T1} + e^{−TR/T1} (exact)
    mz_ss = 1 - 2 * math.exp(-(tr - tau) / t1) + math.exp(-tr / t1)
    expected = 0.7 * e_te * np.array([1.0] + [mz_ss] * 3)
    np.testing.assert_allclose(echoes, expected, rtol=EXACT_RTOL, atol=0)  # real, positive: refocused
    # the textbook PD·(1 − e^{−TR/T1})·e^{−TE/T2} (TE ≪ T1) is within 1 % of it
    assert abs(echoes[-1] / (0.7 * (1 - math.exp(-tr / t1)) * e_te) - 1) < 0.01
    # the FID at TE/2 has dephased by B0 (and by T2' where simulated)
    fid_mag = 0.7 * math.exp(-tau / t2) * (math.exp(-tau / t2d) if t2dash else 1.0)
    atol = LORENTZ_ERR_COEFF / math.sqrt(spins) if t2dash else 1e-12
    np.testing.assert_allclose(abs(fids[0]), fid_mag, rtol=0, atol=atol)


def test_inversion_recovery():
    """180° – TI – 90° read: Mz(TI) = 1 − 2e^{−TI/T1} (+ e^{−TR/T1} in steady state), null at T1·ln 2."""
    t1, t2, tr = 0.9, 10e-3, 3.0
    for ti in (0.05, 0.2, t1 * math.log(2), 0.8, 2.0):
        inv = _rep(math.pi, 0.0, [ti])
        read = _rep(math.pi / 2, math.pi / 2, [0.0, tr - ti], adc=[True, False])  # sample right at the pulse
        sig = simulate_bloch(Sequence([inv, read] * 3), _phantom(t1=t1, t2=t2), spins_per_voxel=1, t2dash=False)
        sig = sig[:, 0].numpy()
        first = 1 - 2 * math.exp(-ti / t1)
        steady = first + math.exp(-tr / t1)
        np.testing.assert_allclose(sig, [first, steady, steady], rtol=EXACT_RTOL, atol=1e-14)
        if ti == t1 * math.log(2):
            assert abs(sig[0]) < 1e-14


def _bssfp_matrix_model(n_reps, alpha, tr, t1, t2, df) -> np.ndarray:
    """Samples at TE = TR/2 of alternating-phase bSSFP with 4×4 affine matrices (independent model)."""

    def rf(phi):
        a = np.eye(4)
        a[:3, :3] = _rf_matrix(alpha, phi)
        return a

    def free(t):
        theta = -2 * np.pi * df * t  # M⁺ → M⁺ e^{iθ}
        e1, e2 = math.exp(-t / t1), math.exp(-t / t2)
        a = np.zeros((4, 4))
        a[:2, :2] = e2 * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        a[2, 2], a[2, 3], a[3, 3] = e1, 1 - e1, 1.0
        return a

    m = np.array([0.0, 0.0, 1.0, 1.0])
    half = free(tr / 2)
    out = []
    for i in range(n_reps):
        phi = math.pi * (i % 2)
        m = half @ rf(phi) @ m
        out.append(complex(m[0], m[1]) * np.exp(-1j * phi))
        m = half @ m
    return np.array(out)


def test_bssfp_matches_closed_form_and_matrix_model():
    alpha, tr, t1, t2 = math.radians(50), 4e-3, 0.3, 0.06
    b0 = np.array([0.0, 10.0, -10.0, 40.0, -40.0, 80.0, 0.4 / tr])  # Hz; one voxel (and coil) each
    k = len(b0)
    coil = torch.eye(k, dtype=torch.complex128).reshape(k, 1, 1, k)  # coil c sees only voxel c
    phantom = _phantom(
        pd=torch.ones(1, k, dtype=DT), t1=t1, t2=t2, b0=torch.as_tensor(b0[None], dtype=DT), coil_sens=coil
    )
    n_reps = 1500
    seq = Sequence(
        [
            _rep(alpha, math.pi * (i % 2), [tr / 2, tr / 2], adc=[True, False], adc_phase=[math.pi * (i % 2), 0])
            for i in range(n_reps)
        ]
    )
    sig = simulate_bloch(seq, phantom, spins_per_voxel=1, t2dash=False).numpy()  # (reps, voxels)
    for c in range(k):
        expected = _bssfp_matrix_model(n_reps, alpha, tr, t1, t2, b0[c])
        np.testing.assert_allclose(sig[:, c], expected, rtol=0, atol=MATRIX_ATOL)
    # on resonance, steady state (transient < 1e-9 after 1500 reps): Freeman–Hill closed form at TE = TR/2
    e1, e2 = math.exp(-tr / t1), math.exp(-tr / t2)
    mss = math.sin(alpha) * (1 - e1) / (1 - (e1 - e2) * math.cos(alpha) - e1 * e2) * math.exp(-tr / 2 / t2)
    np.testing.assert_allclose(np.abs(sig[-2:, 0]), mss, rtol=EXACT_RTOL)
    # the profile is symmetric in ±Δf and is the lowest near the band edge at ±1/(2TR)
    np.testing.assert_allclose(np.abs(sig[-1, 1]), np.abs(sig[-1, 2]), rtol=1e-9)
    np.testing.assert_allclose(np.abs(sig[-1, 3]), np.abs(sig[-1, 4]), rtol=1e-9)
    assert np.abs(sig[-1, 6]) < np.abs(sig[-1, 0])


def test_fid_with_lorentzian_t2dash():
    t2, t2d, n_samples, dt = 80e-3, 5e-3, 60, 0.25e-3  # up to 3 T2'
    seq = Sequence([_rep(math.pi / 2, math.pi / 2, [dt] * n_samples, adc=[True] * n_samples)])
    spins = 16384
    sig = simulate_bloch(seq, _phantom(t1=1.0, t2=t2, t2dash=t2d), spins_per_voxel=spins, seed=3)[:, 0].numpy()
    t = dt * np.arange(1, n_samples + 1)
    np.testing.assert_allclose(sig, np.exp(-t / t2 - t / t2d), rtol=0, atol=LORENTZ_ERR_COEFF / math.sqrt(spins))
    # without T2' the ensemble only decays with T2
    sig = simulate_bloch(seq, _phantom(t1=1.0, t2=t2, t2dash=t2d), spins_per_voxel=16, t2dash=False)[:, 0].numpy()
    np.testing.assert_allclose(sig, np.exp(-t / t2), rtol=0, atol=1e-12)


# -------------------------------------------------------------------------- spins and T2' helpers
def test_spin_offsets_and_quantiles():
    assert subgrid_shape(64, 2) == (8, 8) and subgrid_shape(64, 3) == (4, 4, 4) and subgrid_shape(12, 2) == (4, 3)
    off2 = spin_offsets(64, three_d=False)
    assert (
        off2.shape == (64, 3) and torch.all(off2[:, 2] == 0) and torch.allclose(off2.mean(0), torch.zeros(3, dtype=DT))
    )
    off3 = spin_offsets(64, three_d=True)
    assert off3.abs().max() < 0.5 and len(torch.unique(off3[:, 2])) == 4
    q = lorentzian_quantiles(1000)
    assert torch.allclose(q, -q.flip(0)) and torch.all(q.diff() > 0)


def test_seed_changes_pairing_but_not_fid():
    seq = Sequence([_rep(math.pi / 2, 0.0, [1e-3] * 4, [(300, 0, 0)] * 4, [True] * 4)])
    ph = _phantom(t2dash=4e-3, voxel_size=(1e-3, 1e-3, 1e-3))
    a, b = (simulate_bloch(seq, ph, spins_per_voxel=64, seed=s) for s in (0, 1))
    assert not torch.allclose(a, b)  # offsets meet different positions under a gradient
    assert torch.equal(simulate_bloch(seq, ph, spins_per_voxel=64, seed=0), a)  # deterministic


# ---------------------------------------------------------------------------------- dtypes, masks
def test_float32_matches_float64_and_empty_voxels_are_skipped():
    n, vs = 8, 1e-3
    pd = torch.zeros(n, n, dtype=DT)
    pd[2:6, 3:7] = 1.0
    seq = flash(matrix=(n, n), fov=(n * vs, n * vs), flip_angle=math.radians(20), tr=5e-3, dwell=10e-6)
    ph = _phantom(
        pd=pd,
        t1=0.8,
        t2=0.07,
        t2dash=0.02,
        b0=torch.randn(n, n, generator=torch.Generator().manual_seed(1), dtype=DT) * 20,
        voxel_size=(vs, vs, vs),
    )
    s64 = simulate_bloch(seq, ph, spins_per_voxel=16)
    s32 = simulate_bloch(seq.to(dtype=torch.float32), ph.to(dtype=torch.float32), spins_per_voxel=16)
    assert s32.dtype == torch.complex64 and s64.dtype == torch.complex128
    assert (s32.to(torch.complex128) - s64).abs().max() < FLOAT32_ATOL
    # PD requiring grad keeps all voxels (also the empty ones): same signal
    s_all = simulate_bloch(seq, ph.replace(pd=ph.pd.clone().requires_grad_()), spins_per_voxel=16)
    assert torch.allclose(s_all.detach(), s64, rtol=0, atol=1e-12)


def test_progress_and_empty_sequence():
    ph = _phantom()
    seq = Sequence([_rep(0.3, 0.0, [1e-3], adc=[True])])
    assert simulate_bloch(seq, ph, progress=True).shape == (1, 1)
    assert simulate_bloch(Sequence([_rep(0.3, 0.0, [1e-3])]), ph).shape == (0, 1)


# -------------------------------------------------------------------------------------- gradcheck
def test_gradcheck():
    vs = 5e-3

    def run(pd, t1, t2, t2d, b0, b1, flip, event_time, moment):
        phantom = VoxelPhantom(
            pd=pd[None, None],
            t1=t1[None, None],
            t2=t2[None, None],
            t2dash=t2d[None, None],
            d=torch.zeros(1, 1, 2, 2, dtype=DT),
            b0=b0[None, None],
            b1=b1[None, None],
            coil_sens=torch.tensor([[[[1.0, 0.8j], [0.5, 1.0 - 0.3j]]]], dtype=torch.complex128),
            voxel_size=torch.tensor([vs, vs, vs], dtype=DT),
        )
        zero = torch.zeros((), dtype=DT)
        g0 = torch.stack([moment, zero + 10.0, zero])
        rep0 = _rep(
            0.0,
            0.3,
            [0.0, 0.5e-3, 0.5e-3, 2e-3],
            [(0, 0, 0), (20, 0, 0), (20, 0, 0), (-40, 5, 0)],
            [False, True, True, False],
        )
        rep0 = rep0.replace(
            pulse_angle=flip,
            event_time=torch.cat([event_time[None], rep0.event_time[1:]]),
            gradm=torch.cat([g0[None], rep0.gradm[1:]]),
        )
        rep1 = _rep(0.0, 1.1, [1e-3, 1e-3], [(0, 30, 0), (-25, 0, 0)], [True, True], [1.1, 0.4])
        rep1 = rep1.replace(pulse_angle=1.5 * flip)
        sig = simulate_bloch(Sequence([rep0, rep1]), phantom, spins_per_voxel=4, t2dash=True)
        return torch.view_as_real(sig)

    gen = torch.Generator().manual_seed(0)

    def rand(lo, hi, shape=(2, 2)):
        return (lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=DT)).requires_grad_()

    inputs = (
        rand(0.5, 1.0),  # pd
        rand(0.3, 1.0),  # t1 [s]
        rand(0.005, 0.05),  # t2 [s]
        rand(0.002, 0.01),  # t2' [s]
        rand(-50.0, 50.0),  # b0 [Hz]
        rand(0.8, 1.2),  # b1
        torch.tensor(0.6, dtype=DT, requires_grad=True),  # flip [rad]
        torch.tensor(1.5e-3, dtype=DT, requires_grad=True),  # event time [s]
        torch.tensor(70.0, dtype=DT, requires_grad=True),  # gradient moment [1/m]
    )
    assert torch.autograd.gradcheck(run, inputs, eps=1e-7, atol=1e-6, rtol=1e-4)


# ------------------------------------------------------------------------------------ bad inputs
def test_diffusion_raises_unless_ignored():
    seq = Sequence([_rep(0.5, 0.0, [1e-3], [(100, 0, 0)], [True])])
    ph = _phantom(d=2e-9)
    with pytest.raises(ValueError, match="diffusion='ignore'"):
        simulate_bloch(seq, ph)
    ignored = simulate_bloch(seq, ph, diffusion="ignore")
    assert torch.equal(ignored, simulate_bloch(seq, _phantom()))
    with pytest.raises(ValueError, match="diffusion must be one of"):
        simulate_bloch(seq, _phantom(), diffusion="walk")


@pytest.mark.parametrize("spins", [0, -3, 2.5, True])
def test_bad_spins_per_voxel(spins):
    with pytest.raises(ValueError, match="spins_per_voxel"):
        simulate_bloch(Sequence([_rep(0.5, 0.0, [1e-3], adc=[True])]), _phantom(), spins_per_voxel=spins)
