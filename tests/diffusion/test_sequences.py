"""Diffusion-encoding sequences, b-values, STA coefficient, decay kernels and HARDI directions."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import jnp_zeros, roots_legendre, spherical_jn

from gradmr.constants import GAMMA_BAR_HZ_PER_T
from gradmr.diffusion.directions import hardi_directions, unit_direction
from gradmr.diffusion.sequences import (
    COS_OGSE_INTERVALS_PER_LOBE,
    GAMMA_RAD_PER_S_PER_T,
    PGSE,
    CosOGSE,
    DoublePGSE,
    PiecewiseConstant,
    sta_prefactor,
)

D0 = 2e-9  # m²/s, the reference file's diffusivity
MS = 1e-3


def pgse_bracket(lam, delta, Delta):
    """Neuman / van Gelderen bracket 2λδ − 2 + 2e^{−λδ} + 2e^{−λΔ} − e^{−λ(Δ−δ)} − e^{−λ(Δ+δ)}."""
    e = np.exp
    return (
        2 * lam * delta
        - 2
        + 2 * e(-lam * delta)
        + 2 * e(-lam * Delta)
        - e(-lam * (Delta - delta))
        - e(-lam * (Delta + delta))
    )


def quad_kernels(durations, values, lam, nodes=48):
    """Independent I_f, I_F by Gauss–Legendre over every interval pair (s in interval i ≤ t in interval j)."""
    x, w = roots_legendre(nodes)
    x, w = (x + 1) / 2, w / 2  # on [0, 1]
    t0 = np.concatenate([[0.0], np.cumsum(durations)])
    f0 = np.concatenate([[0.0], np.cumsum(np.asarray(durations) * values)])  # F at the breakpoints

    def phi(which, k, t):
        return values[k] + 0 * t if which == "f" else f0[k] + values[k] * (t - t0[k])

    out = {}
    for which in ("f", "F"):
        total = 0.0
        for j in range(len(durations)):
            tt = t0[j] + durations[j] * x  # outer nodes in interval j
            wt = durations[j] * w
            for i in range(j + 1):
                if i < j:
                    ss = t0[i] + durations[i] * x
                    ws = durations[i] * w
                else:  # triangle: s = t0 + (t − t0) u
                    ss = t0[j] + (tt[:, None] - t0[j]) * x[None, :]
                    ws = (tt[:, None] - t0[j]) * w[None, :]
                ss = np.broadcast_to(ss, (nodes, nodes))
                ws = np.broadcast_to(ws, (nodes, nodes))
                integrand = phi(which, j, tt)[:, None] * phi(which, i, ss) * np.exp(-lam * (tt[:, None] - ss))
                total += np.sum(wt[:, None] * ws * integrand)
        out[which] = total
    return out["f"], out["F"]


def _random_pc_fix():
    """An irregular profile with gaps; the last value is set so that ∫f = 0."""
    h = np.array([1.3e-3, 0.7e-3, 2.1e-3, 0.4e-3, 1.6e-3, 0.9e-3])
    v = np.array([0.8, -0.3, 0.0, 1.0, -0.55, 0.0])
    v[-1] = -np.sum(h[:-1] * v[:-1]) / h[-1]
    return PiecewiseConstant(tuple(h), tuple(v))


# ------------------------------------------------------------------------------------------ construction & errors


def test_gamma():
    assert GAMMA_RAD_PER_S_PER_T == pytest.approx(2 * math.pi * GAMMA_BAR_HZ_PER_T, rel=1e-15)


def test_pgse_basics_and_intervals():
    s = PGSE(5 * MS, 10 * MS)
    assert s.echo_time == pytest.approx(15 * MS)
    assert s.diffusion_time == pytest.approx(10 * MS - 5 * MS / 3)
    h, v = s.intervals()
    np.testing.assert_allclose(h, [5 * MS, 5 * MS, 5 * MS], rtol=1e-15)
    np.testing.assert_array_equal(v, [1.0, 0.0, -1.0])
    assert h.dtype == np.float64 and v.dtype == np.float64
    h, v = PGSE(5 * MS, 5 * MS).intervals()  # no gap
    np.testing.assert_allclose(h, [5 * MS, 5 * MS])
    np.testing.assert_array_equal(v, [1.0, -1.0])
    assert s.int_F2() == pytest.approx((5 * MS) ** 2 * (10 * MS - 5 * MS / 3), rel=1e-15)
    assert PiecewiseConstant(*s.intervals()).int_F2() == pytest.approx(s.int_F2(), rel=1e-13)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.delta = 1.0


def test_profiles_and_types():
    s = PGSE(5 * MS, 10 * MS)
    t = np.array([-1e-3, 0.0, 2e-3, 5e-3, 7e-3, 10e-3, 14e-3, 15e-3, 15.1e-3])
    expected = np.array([0, 1, 1, 0, 0, -1, -1, -1, 0], dtype=float)
    np.testing.assert_array_equal(s.profile(t), expected)
    inner = np.array([-1e-3, 2e-3, 7e-3, 12e-3, 16e-3])  # float32 rounds the edges: test away from them
    out = s.profile(torch.tensor(inner, dtype=torch.float32))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), [0, 1, 0, -1, 0])
    assert isinstance(s.profile(2e-3), float) and s.profile(2e-3) == 1.0

    c = CosOGSE(5 * MS, 7 * MS, 2)
    tt = np.array([0.0, 1e-3, 4.9e-3, 6e-3, 7e-3, 8e-3, 12e-3, 12.5e-3])
    w = 2 * np.pi * 2 / (5 * MS)
    exp_c = np.array([1, np.cos(w * 1e-3), np.cos(w * 4.9e-3), 0, -1, -np.cos(w * 1e-3), -1, 0])
    np.testing.assert_allclose(c.profile(tt), exp_c, atol=1e-12)
    tg = torch.tensor([1e-3], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(c.profile(tg).sum(), tg)
    assert float(grad) == pytest.approx(-w * np.sin(w * 1e-3), rel=1e-12)

    pc = _random_pc_fix()
    h, v = pc.intervals()
    mids = np.cumsum(h) - h / 2
    np.testing.assert_allclose(pc.profile(mids), v, rtol=0, atol=0)


def test_double_pgse():
    s = DoublePGSE(3 * MS, 8 * MS, t_mix=4 * MS)
    assert s.echo_time == pytest.approx(2 * 11 * MS + 4 * MS)
    h, v = s.intervals()
    np.testing.assert_allclose(h, np.array([3, 5, 3, 4, 3, 5, 3]) * MS, rtol=1e-14)
    np.testing.assert_array_equal(v, [1, 0, -1, 0, 1, 0, -1])
    assert s.int_F2() == pytest.approx(2 * PGSE(3 * MS, 8 * MS).int_F2(), rel=1e-15)
    assert PiecewiseConstant(h, v).int_F2() == pytest.approx(s.int_F2(), rel=1e-13)
    h0, v0 = DoublePGSE(3 * MS, 3 * MS).intervals()  # back to back, no gaps
    np.testing.assert_array_equal(v0, [1, -1, 1, -1])
    assert DoublePGSE(3 * MS, 3 * MS).echo_time == pytest.approx(12 * MS)
    # with a long mixing time the two blocks decouple: I_f → 2 I_f(PGSE) (cross terms ∝ e^{−λ t_mix})
    lam = np.array([5e3, 2e4])
    far = DoublePGSE(3 * MS, 8 * MS, t_mix=1.0).kernel_f(lam)
    np.testing.assert_allclose(far, 2 * PGSE(3 * MS, 8 * MS).kernel_f(lam), rtol=1e-12)


def test_cos_ogse_b_and_intervals():
    c = CosOGSE(5 * MS, 5 * MS, 2)
    # reference §2: b = q² δ³/(4π² n²)
    assert c.int_F2() == pytest.approx((5 * MS) ** 3 / (4 * np.pi**2 * 4), rel=1e-15)
    # independent: ∫F² of the smooth profile by Gauss–Legendre on F(t) = δ/(2πn) sin(2πnt/δ) per lobe
    x, w = roots_legendre(200)
    t = (x + 1) / 2 * 5 * MS
    F = 5 * MS / (4 * np.pi) * np.sin(4 * np.pi * t / (5 * MS))
    assert 2 * np.sum(w * 2.5 * MS * F**2) == pytest.approx(c.int_F2(), rel=1e-13)
    assert c.diffusion_time == pytest.approx(5 * MS / 8)
    assert c.echo_time == pytest.approx(10 * MS)
    h, v = c.intervals(100)
    assert h.size == 200 and h.sum() == pytest.approx(10 * MS, rel=1e-14)
    np.testing.assert_allclose(v, c.profile(np.cumsum(h) - h / 2), atol=1e-12)  # midpoint values
    assert abs(np.sum(h * v)) < 1e-15  # midpoint cosines sum to zero: echo condition exact
    h, v = CosOGSE(5 * MS, 8 * MS, 1).intervals(100)
    assert h.size == 201 and v[100] == 0.0 and h[100] == pytest.approx(3 * MS)
    # the discretised ∫F² is low by ≈ (2πn/m)²/12
    m = 1000
    rel = c.int_F2_discrete(m) / c.int_F2() - 1
    assert rel == pytest.approx(-((2 * np.pi * 2 / m) ** 2) / 12, rel=1e-3)
    assert PGSE(5 * MS, 10 * MS).int_F2_discrete() == pytest.approx(PGSE(5 * MS, 10 * MS).int_F2(), rel=1e-14)


def test_piecewise_constant_normalisation_and_merge():
    pc = PiecewiseConstant((1e-3, 1e-3, 1e-3, 2e-3), (2.0, 2.0, 0.0, -2.0))
    assert pc.values == (1.0, 1.0, 0.0, -1.0)
    h, v = pc.intervals()
    np.testing.assert_allclose(h, [2e-3, 1e-3, 2e-3])
    np.testing.assert_array_equal(v, [1.0, 0.0, -1.0])
    assert pc.int_F2() == pytest.approx(PGSE(2e-3, 3e-3).int_F2(), rel=1e-13)
    # diffusion time = C², the narrow-pulse Δ: PGSE(δ→0) gives Δ
    narrow = PiecewiseConstant((1e-6, 10e-3 - 1e-6, 1e-6), (1, 0, -1))
    assert narrow.diffusion_time == pytest.approx(10e-3, rel=1e-3)
    assert pc.diffusion_time == pytest.approx(pc.sta_coefficient() ** 2, rel=1e-15)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PGSE(0.0, 10 * MS), "delta must be > 0"),
        (lambda: PGSE(-1 * MS, 10 * MS), "delta must be > 0"),
        (lambda: PGSE(5.0, 10.0), "milliseconds"),
        (lambda: PGSE(5 * MS, 10.0), "milliseconds"),
        (lambda: PGSE(5 * MS, 4 * MS), "Delta must be ≥ delta"),
        (lambda: PGSE(float("nan"), 10 * MS), "finite"),
        (lambda: PGSE("5", 10 * MS), "real number"),
        (lambda: DoublePGSE(5 * MS, 10 * MS, t_mix=-1 * MS), "t_mix must be ≥ 0"),
        (lambda: CosOGSE(5 * MS, 5 * MS, 0), "integer ≥ 1"),
        (lambda: CosOGSE(5 * MS, 5 * MS, 1.5), "integer ≥ 1"),
        (lambda: CosOGSE(5 * MS, 5 * MS, True), "integer ≥ 1"),
        (lambda: CosOGSE(5 * MS, 5 * MS, 2).intervals(7), "n_intervals"),
        (lambda: PiecewiseConstant((1e-3, 1e-3), (0.0, 0.0)), "must not all be 0"),
        (lambda: PiecewiseConstant((1e-3, 1e-3), (1.0, -0.9)), "echo condition"),
        (lambda: PiecewiseConstant((1e-3, -1e-3), (1.0, 1.0)), "durations must all be > 0"),
        (lambda: PiecewiseConstant((1e-3,), (1.0, -1.0)), "equal length"),
        (lambda: PiecewiseConstant((3.0, 3.0), (1.0, -1.0)), "milliseconds"),
        (lambda: PGSE(5 * MS, 10 * MS).gradient_amplitude(-1.0), "b must be ≥ 0"),
        (lambda: PGSE(5 * MS, 10 * MS).q_from_b(np.array([1e9, np.nan])), "finite"),
        (lambda: PGSE(5 * MS, 10 * MS).kernel_f(np.array([1.0, -5.0])), "lam must be ≥ 0"),
        (lambda: PGSE(5 * MS, 10 * MS).kernel_F(torch.tensor([np.nan])), "lam must be finite"),
        (lambda: unit_direction([0.0, 0.0, 0.0]), "non-zero"),
        (lambda: unit_direction([1.0, np.nan, 0.0]), "finite"),
        (lambda: unit_direction([1.0, 0.0]), "3-vector"),
        (lambda: unit_direction(torch.zeros(3)), "non-zero"),
        (lambda: hardi_directions(0), "integer ≥ 1"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ------------------------------------------------------------------------------------------ b-values


def test_b_value_conversions():
    s = PGSE(5 * MS, 10 * MS)
    b = 1000e6  # 1000 s/mm² in s/m²
    g = s.gradient_amplitude(b)
    assert isinstance(g, float)
    q = GAMMA_RAD_PER_S_PER_T * g
    assert q**2 * (5 * MS) ** 2 * (10 * MS - 5 * MS / 3) == pytest.approx(b, rel=1e-14)
    assert s.q_from_b(b) == pytest.approx(q, rel=1e-14)
    assert s.b_value(g) == pytest.approx(b, rel=1e-14)
    bs = np.array([0.0, 500e6, 3000e6])
    gs = s.gradient_amplitude(bs)
    assert isinstance(gs, np.ndarray)
    np.testing.assert_allclose(s.b_value(gs), bs, rtol=1e-14)
    np.testing.assert_allclose(s.b_value([0.01, 0.02]), s.b_value(np.array([0.01, 0.02])))
    gt = torch.tensor([0.01, 0.05], dtype=torch.float64, requires_grad=True)
    bt = s.b_value(gt)
    (grad,) = torch.autograd.grad(bt.sum(), gt)
    np.testing.assert_allclose(grad.numpy(), 2 * GAMMA_RAD_PER_S_PER_T**2 * s.int_F2() * gt.detach().numpy())
    bt2 = torch.tensor([1e9], dtype=torch.float32)
    assert s.gradient_amplitude(bt2).dtype == torch.float32
    # cos-OGSE: b = q² δ³/(4π²n²)
    c = CosOGSE(10 * MS, 10 * MS, 2)
    assert c.b_value(0.08) == pytest.approx((GAMMA_RAD_PER_S_PER_T * 0.08) ** 2 * (10 * MS) ** 3 / (16 * np.pi**2))


# ------------------------------------------------------------------------------------------ STA coefficient


def test_sta_pgse_closed_form_and_reference():
    for d, D in [(1, 2), (1, 10), (5, 10), (10, 100), (5, 5)]:
        s = PGSE(d * MS, D * MS)
        generic = PiecewiseConstant(*s.intervals()).sta_coefficient()
        assert s.sta_coefficient() == pytest.approx(generic, rel=1e-11)
    # narrow pulses: C → √Δ
    assert PGSE(1e-6, 20 * MS).sta_coefficient() == pytest.approx(math.sqrt(20 * MS), rel=1e-4)
    # reference §3: R = 20 µm, δ = 1 ms, A/V = 1/R: STA ADC/D0 = 0.91560 / 0.87485 / 0.82714 at Δ = 2 / 5 / 10 ms
    R = 20e-6
    for Delta, ref in [(2, 0.91560), (5, 0.87485), (10, 0.82714)]:
        s = PGSE(1 * MS, Delta * MS)
        by_hand = 1 - sta_prefactor() * math.sqrt(D0) / R * s.sta_coefficient()
        assert by_hand == pytest.approx(ref, abs=6e-6)
        assert s.sta_adc(D0, 1 / R) / D0 == pytest.approx(by_hand, rel=1e-14)
    # double PGSE uses the generic exact formula
    dp = DoublePGSE(2 * MS, 6 * MS, 3 * MS)
    assert dp.sta_coefficient() == pytest.approx(PiecewiseConstant(*dp.intervals()).sta_coefficient(), rel=1e-14)


def test_sta_brute_force_and_cos():
    # −∫∫ f f |t−s|^{3/2} by a fine midpoint grid for the random profile (singularity integrable, O(h^{2.5}))
    pc = _random_pc_fix()
    h, v = pc.intervals()
    n = 1400  # 5 µs cells: every breakpoint lies on a cell edge
    t = (np.arange(n) + 0.5) * pc.echo_time / n
    f = pc.profile(t)
    dt = pc.echo_time / n
    brute = -np.sum(f[:, None] * f[None, :] * np.abs(t[:, None] - t[None, :]) ** 1.5) * dt**2 / (2 * pc.int_F2())
    assert pc.sta_coefficient() == pytest.approx(brute, rel=1e-5)
    assert pc.sta_coefficient() > 0
    # cos-OGSE: Richardson value vs the exact C of a 4× finer midpoint profile (normalised by its own ∫F²)
    c = CosOGSE(5 * MS, 5 * MS, 1)
    h, v = c.intervals(1024)
    fine = PiecewiseConstant(h, v)
    assert c.sta_coefficient() == pytest.approx(fine.sta_coefficient(), rel=1e-10)
    # and it is of the expected size: an oscillation probes shorter times than a PGSE with the same lobes
    assert c.sta_coefficient() < PGSE(5 * MS, 5 * MS).sta_coefficient()


# ------------------------------------------------------------------------------------------ kernels


def test_kernel_pgse_bracket():
    for d, D in [(5, 10), (30, 40), (1, 40), (10, 100), (5, 5)]:
        s = PGSE(d * MS, D * MS)
        lam = np.array([20.0, 3e2, 4e3, 5e4, 7e5])
        # λ² I_f = bracket (the factor is 1: the self terms give 2(λδ − 1 + e^{−λδ}), the cross term the rest)
        np.testing.assert_allclose(s.kernel_f(lam) * lam**2, pgse_bracket(lam, d * MS, D * MS), rtol=1e-11)


def test_kernel_limits_and_identity():
    seqs = [PGSE(5 * MS, 10 * MS), DoublePGSE(3 * MS, 8 * MS, 2 * MS), CosOGSE(5 * MS, 7 * MS, 2), _random_pc_fix()]
    for s in seqs:
        h, v = s.intervals()
        f_start = np.cumsum(h * v) - h * v
        int_f2 = np.sum(h * v * v)
        int_F = np.sum(f_start * h + v * h * h / 2)
        int_F2 = s.int_F2_discrete()
        scale_f = np.sum(h) ** 2
        assert abs(s.kernel_f(0.0)) < 1e-14 * scale_f  # (∫f)²/2 = 0
        assert s.kernel_F(0.0) == pytest.approx(int_F**2 / 2, rel=1e-10, abs=1e-14 * scale_f**2)
        # λ → ∞: λ I_f → ∫f², λ I_F → ∫F² (corrections O(1/(λ h_min)))
        lam_big = 1e4 / h.min()
        assert s.kernel_f(lam_big) * lam_big == pytest.approx(int_f2, rel=3e-4)
        assert s.kernel_F(lam_big) * lam_big == pytest.approx(int_F2, rel=3e-4)
        # λ·TE up to 1e5 and far beyond: finite, positive, no overflow
        huge = np.array([1e5, 1e8, 1e12]) / s.echo_time
        kf, kF = s.kernel_f(huge), s.kernel_F(huge)
        assert np.all(np.isfinite(kf)) and np.all(kf > 0) and np.all(np.isfinite(kF)) and np.all(kF > 0)
        # identity I_F = (λ∫F² − I_f)/λ² (echo condition), moderate λ
        lam = np.array([50.0, 700.0, 9e3]) / s.echo_time  # (small λ: the right side cancels)
        np.testing.assert_allclose(s.kernel_F(lam), (lam * int_F2 - s.kernel_f(lam)) / lam**2, rtol=1e-9)


def test_kernel_brute_force_random_profile():
    pc = _random_pc_fix()
    h, v = pc.intervals()
    for lam in [0.0, 37.0, 850.0, 1.3e4]:
        ref_f, ref_F = quad_kernels(h, v, lam)
        assert pc.kernel_f(lam) == pytest.approx(ref_f, rel=1e-11, abs=1e-20)
        assert pc.kernel_F(lam) == pytest.approx(ref_F, rel=1e-11)


def test_kernel_small_lambda_continuity():
    # the series/recurrence switch at λh = 1 and λ → 0 are smooth: compare with the Taylor expansion at 0
    # I_f(λ) = λ ∫F² − λ² I_F(0) + O(λ³) (from the identity), for λ·TE ≪ 1
    s = _random_pc_fix()
    lam = np.array([1e-6, 1e-3, 1e-1])
    expansion = lam * s.int_F2() - lam**2 * s.kernel_F(0.0)
    np.testing.assert_allclose(s.kernel_f(lam), expansion, rtol=1e-6)
    h, _ = s.intervals()
    edge = np.array([1.0 - 1e-12, 1.0, 1.0 + 1e-12]) / h.max()
    kf = s.kernel_f(edge)
    assert np.all(np.abs(np.diff(kf)) < 1e-12 * abs(kf[1]))


def test_kernel_types_shapes_and_autograd():
    s = PGSE(5 * MS, 10 * MS)
    assert isinstance(s.kernel_f(100.0), float)
    arr = np.array([[0.0, 10.0, 1e3], [1e4, 1e5, 1e6]])
    out = s.kernel_F(arr)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)
    t32 = torch.tensor([10.0, 1e3], dtype=torch.float32)
    assert s.kernel_f(t32).dtype == torch.float32
    lam = torch.tensor([0.0, 0.5, 150.0, 3e3, 1e6], dtype=torch.float64, requires_grad=True)
    for kernel in (s.kernel_f, s.kernel_F):
        (grad,) = torch.autograd.grad(kernel(lam).sum(), lam)
        assert torch.all(torch.isfinite(grad))
        x = lam.detach().numpy()
        eps = 1e-6 * np.maximum(x, 1.0)
        fd = (kernel(x + eps) - kernel(np.maximum(x - eps, 0.0))) / (x + eps - np.maximum(x - eps, 0.0))
        np.testing.assert_allclose(grad.numpy(), fd, rtol=1e-5)
    # dI_f/dλ at 0 = ∫F² · (from I_f = λ∫F² − …)
    (g0,) = torch.autograd.grad(s.kernel_f(lam)[0], lam)
    assert float(g0[0]) == pytest.approx(s.int_F2(), rel=1e-12)


def _sphere_roots(count):
    f = lambda x: spherical_jn(1, x, derivative=True)  # noqa: E731
    grid = np.arange(0.5, (count + 2) * np.pi, 0.05)
    vals = f(grid)
    sign_change = np.nonzero(vals[:-1] * vals[1:] < 0)[0]
    roots = [brentq(f, grid[i], grid[i + 1], xtol=1e-14) for i in sign_change]
    return np.array(roots[:count])


def test_gpa_adc_reference_table():
    """Reference §3: low-b (GPA) ADC/D0 via the Neuman sums written with the kernel, ADC = Σ w_m I_f(Dα_m²)/∫F².

    The mapping: ln E = −2γ²g² Σ bracket_m/(D²α_m⁶(R²α_m² − c)) with bracket_m = λ_m² I_f(λ_m), λ_m = Dα_m², so
    w_m = 2/(α_m²(R²α_m² − c)) (sphere c = 2, j1' roots; cylinder c = 1, J1' roots), slab w_k = 8L²/(kπ)⁴, k odd.
    """
    R, L = 5e-6, 10e-6
    a_sph = _sphere_roots(60) / R
    a_cyl = jnp_zeros(1, 60) / R
    k = np.arange(1, 400, 2)
    a_slab = k * np.pi / L
    weights = {
        "sphere": (a_sph, 2 / (a_sph**2 * (R**2 * a_sph**2 - 2))),
        "cylinder": (a_cyl, 2 / (a_cyl**2 * (R**2 * a_cyl**2 - 1))),
        "slab": (a_slab, 8 * L**2 / (k * np.pi) ** 4),
    }
    # copied from /work/shared/data/diffusion-reference.md §3 (δ/Δ in ms: sphere R=5, cylinder ⊥ R=5, slab L=10)
    table = {
        (30, 40): (0.01432, 0.02211, 0.03797),
        (1, 40): (0.05601, 0.07168, 0.09783),
        (5, 10): (0.16832, 0.21924, 0.29099),
        (10, 100): (0.01065, 0.01547, 0.02432),
    }
    for (d, D), refs in table.items():
        s = PGSE(d * MS, D * MS)
        for name, ref in zip(("sphere", "cylinder", "slab"), refs, strict=True):
            alpha, w = weights[name]
            adc = np.sum(w * s.kernel_f(D0 * alpha**2)) / s.int_F2()
            assert adc / D0 == pytest.approx(ref, abs=6e-6), (name, d, D)
    # Σ_m w_m = ⟨x²⟩ (sum rule over the non-constant modes): R²/5 sphere, R²/4 disk, L²/12 slab
    assert np.sum(weights["slab"][1]) == pytest.approx(L**2 / 12, rel=1e-7)
    assert np.sum(weights["sphere"][1]) == pytest.approx(R**2 / 5, rel=2e-3)
    assert np.sum(weights["cylinder"][1]) == pytest.approx(R**2 / 4, rel=2e-3)


@pytest.mark.parametrize("m", [1000, None])
def test_cos_ogse_discretisation_error(m):
    # m intervals per lobe (None: the default, 200): kernels low by ≈ (2πn/m)²/12 relative to the smooth profile
    # (Richardson limit of m = 2000, 4000); normalised by int_F2_discrete the error shrinks
    per_lobe = m or COS_OGSE_INTERVALS_PER_LOBE
    assert COS_OGSE_INTERVALS_PER_LOBE == 200
    for n in (1, 2):
        c = CosOGSE(5 * MS, 5 * MS, n)
        lam = np.array([50.0, 2e3, 8e4])
        limit = (4 * c.kernel_f(lam, 4000) - c.kernel_f(lam, 2000)) / 3
        rel = c.kernel_f(lam, m) / limit - 1
        predicted = -((2 * np.pi * n / per_lobe) ** 2) / 12
        small = lam * (5 * MS / per_lobe) < 0.5  # the leading-order formula needs λ·(interval) ≪ 1
        np.testing.assert_allclose(rel[small], predicted, rtol=0.05)
        assert np.all(np.abs(rel) < 1.2 * abs(predicted))
        adc_rel = (c.kernel_f(lam, m) / c.int_F2_discrete(m)) / (limit / c.int_F2()) - 1
        assert np.all(np.abs(adc_rel) < 1.0e-6 * n**2 * (1000 / per_lobe) ** 2)
        limit_F = (4 * c.kernel_F(lam, 4000) - c.kernel_F(lam, 2000)) / 3
        np.testing.assert_allclose(
            c.kernel_F(lam, m) / c.int_F2_discrete(m), limit_F / c.int_F2(), rtol=3e-9 * n**2 * (1000 / per_lobe) ** 4
        )


# ------------------------------------------------------------------------------------------ directions


def test_unit_direction():
    np.testing.assert_allclose(unit_direction([3.0, 0.0, 4.0]), [0.6, 0.0, 0.8], rtol=1e-15)
    d = torch.tensor([1.0, 2.0, 2.0], requires_grad=True)
    u = unit_direction(d)
    assert u.dtype == torch.float64 and u.requires_grad
    np.testing.assert_allclose(u.detach().numpy(), [1 / 3, 2 / 3, 2 / 3], rtol=1e-15)


def test_hardi_directions():
    for n in (1, 7, 30):
        d = hardi_directions(n)
        assert d.shape == (n, 3) and d.dtype == np.float64
        np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-14)
        assert np.all(d[:, 2] >= 0)
    np.testing.assert_array_equal(hardi_directions(30), hardi_directions(30))
    assert np.abs(hardi_directions(30, seed=1) - hardi_directions(30)).max() > 0.1
    # known optima: 3 axes orthogonal, 6 axes = the icosahedron's (|cos| = 1/√5), full sphere 4 = tetrahedron
    # (cos = −1/3), 6 = octahedron
    g = np.abs(hardi_directions(3) @ hardi_directions(3).T - np.eye(3))
    assert g.max() < 1e-6
    d6 = hardi_directions(6)
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(np.abs(d6 @ d6.T)[off], 1 / np.sqrt(5), atol=1e-6)
    t4 = hardi_directions(4, hemisphere=False)
    np.testing.assert_allclose((t4 @ t4.T)[~np.eye(4, dtype=bool)], -1 / 3, atol=1e-6)
    o6 = hardi_directions(6, hemisphere=False)
    np.testing.assert_allclose(np.sort(np.abs(o6 @ o6.T), axis=1), np.tile([0, 0, 0, 0, 1, 1], (6, 1)), atol=1e-6)
    # near-uniform: second-moment tensor ≈ I/3, every axis has a neighbour within the expected spacing
    d = hardi_directions(60)
    np.testing.assert_allclose(d.T @ d / 60, np.eye(3) / 3, atol=2e-3)
    cos = np.abs(d @ d.T)
    np.fill_diagonal(cos, 0)
    min_angle = np.degrees(np.arccos(cos.max()))
    assert 15.0 < min_angle < 25.0  # area 2π / 60 axes ≈ (18.6°)²
