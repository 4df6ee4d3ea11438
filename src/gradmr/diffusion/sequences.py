"""Diffusion-encoding gradient sequences and their time kernels.

The diffusion gradient is ``g(t) = g · f(t) · d`` with ``g`` in T/m, ``d`` a unit direction and ``f`` a dimensionless
time profile with ``max|f| = 1``. With ``q = γ g`` (rad/(s·m), γ = 2π·GAMMA_BAR_HZ_PER_T) and ``F(t) = ∫_0^t f``
(in s), the b-value is ``b = q² ∫_0^TE F(t)² dt`` (s/m²). Every sequence satisfies the echo condition
``F(TE) = 0``. All times are in seconds.

Besides ``echo_time``, ``profile``, ``intervals``, ``int_F2``, b/q/g conversions, ``diffusion_time`` and the
short-time-approximation coefficient, each sequence gives the two decay kernels the matrix formalism needs,
vectorised over decay rates ``λ ≥ 0`` (1/s)::

    I_f(λ) = ∫_0^TE dt ∫_0^t ds f(t) f(s) e^{−λ(t−s)}     (s²)
    I_F(λ) = ∫_0^TE dt ∫_0^t ds F(t) F(s) e^{−λ(t−s)}     (s⁴)

For a Laplace eigenbasis with eigenvalues ``λ_k = D μ_k`` and coupling ``B_0k = ⟨u_0, d·x u_k⟩`` the low-b ADC is
``Σ_k B_0k² I_f(λ_k) / ∫F²``; the homogenised ADC is ``D − D²/(V ∫F²) Σ_k h_k² I_F(λ_k)``. For a single PGSE,
``λ² I_f(λ) = 2λδ − 2 + 2e^{−λδ} + 2e^{−λΔ} − e^{−λ(Δ−δ)} − e^{−λ(Δ+δ)}`` (the Neuman / van Gelderen bracket).

The kernels are exact for piecewise-constant profiles (then ``F`` is piecewise linear): on each interval the state
``w(t) = ∫_0^t φ(s) e^{−λ(t−s)} ds`` (φ = f or F) is advanced in closed form with the moments
``M_p(x) = ∫_0^1 r^p e^{−xr} dr`` (x = λh), which are evaluated by a series for x < 1 and by the upward recurrence
``M_p = (p M_{p−1} − e^{−x})/x`` otherwise; only decaying exponentials ever appear, so nothing overflows for
λ·TE up to 1e5 and beyond, and λ → 0 has no cancellation. The recurrence is O(K) in the number of intervals K.

The cosine OGSE is approximated, as in SpinDoctor, by ``n_intervals`` piecewise-constant intervals per lobe with the
midpoint value of the cosine. With m intervals per lobe the kernels are low by the relative factor ≈ (2πn/m)²/12
(the midpoint sampling attenuates the fundamental): 1000 intervals give 3.3e-6·n² (measured 3.24e-6 for n = 1,
1.30e-5 for n = 2, 5.2e-5 for n = 4); the default :data:`COS_OGSE_INTERVALS_PER_LOBE` = 200 gives 8.2e-5·n², which
moves a signal by < 2e-5 at b ≤ 3000 s/mm² (measured on the reference's cos-OGSE cases) while keeping the solvers'
cost (one step or Taylor stage per interval) five times lower. Normalising by
:meth:`DiffusionSequence.int_F2_discrete` instead of ``int_F2`` cancels most of it (ADC from I_f: 0.9e-6·n², HADC
from I_F: < 3e-9·n²). The reference table's N_int = 1000 vs 2000 difference (≤ 3e-5 in the signal) is of this kind.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import GAMMA_BAR_HZ_PER_T

__all__ = [
    "GAMMA_RAD_PER_S_PER_T",
    "COS_OGSE_INTERVALS_PER_LOBE",
    "DiffusionSequence",
    "PGSE",
    "DoublePGSE",
    "CosOGSE",
    "PiecewiseConstant",
    "sta_prefactor",
]

#: Proton gyromagnetic ratio γ = 2π·γ̄ in rad/(s·T).
GAMMA_RAD_PER_S_PER_T: float = 2.0 * math.pi * GAMMA_BAR_HZ_PER_T

#: Default number of midpoint intervals per cosine lobe of :class:`CosOGSE` (kernels and ``intervals()``).
COS_OGSE_INTERVALS_PER_LOBE: int = 200

# Guards against milliseconds passed where seconds are expected.
_MAX_LOBE_S = 0.5
_MAX_TIME_S = 5.0
# Relative tolerance of the echo condition |∫f| ≤ tol·∫|f| for PiecewiseConstant.
_ECHO_RTOL = 1e-9
# Series/recurrence switch for the moments M_p(x) and number of series terms (|x| < 1: last term < 1e-19).
_SERIES_X = 1.0
_SERIES_TERMS = 20


# ----------------------------------------------------------------------------------------------------------------
# array-type helpers


def _to_tensor(x):
    """x → (float64 tensor, kind, original torch dtype or None); kind in {'torch', 'numpy', 'scalar'}."""
    if isinstance(x, torch.Tensor):
        return (x if x.dtype == torch.float64 else x.to(torch.float64)), "torch", x.dtype
    kind = "numpy" if isinstance(x, np.ndarray) or np.ndim(x) > 0 else "scalar"
    return torch.from_numpy(np.array(x, dtype=np.float64)), kind, None


def _from_tensor(y: torch.Tensor, kind: str, dtype):
    if kind == "torch":
        return y.to(dtype) if dtype is not None and dtype.is_floating_point else y
    if kind == "numpy":
        return y.detach().cpu().numpy()
    return float(y)


def _check_finite_nonneg(x, name: str) -> None:
    if isinstance(x, torch.Tensor):
        xd = x.detach()
        bad_nan = bool(torch.isnan(xd).any()) or bool(torch.isinf(xd).any())
        bad_neg = bool((xd < 0).any())
    else:
        arr = np.asarray(x, dtype=np.float64)
        bad_nan = not bool(np.all(np.isfinite(arr)))
        bad_neg = bool(np.any(arr < 0))
    if bad_nan:
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if bad_neg:
        raise ValueError(f"{name} must be ≥ 0")


def _time(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a real number of seconds, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a single real number of seconds, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _check_upper(v: float, limit: float, name: str) -> None:
    if v > limit:
        raise ValueError(
            f"{name}={v:g} s is longer than {limit:g} s; times are in seconds "
            f"(did you pass milliseconds? {v:g} ms = {v * 1e-3:g} s)"
        )


# ----------------------------------------------------------------------------------------------------------------
# kernels of piecewise-constant profiles


def _moments(x: torch.Tensor):
    """M_p(x) = ∫_0^1 r^p e^{−xr} dr for p = 0, 1, 3 and e^{−x}; x ≥ 0 (tiny negative values are fine).

    x < 1: Horner series of M_3 and the (stable) downward recurrence M_{p−1} = (x M_p + e^{−x})/p;
    x ≥ 1: the (stable) upward recurrence M_p = (p M_{p−1} − e^{−x})/x from M_0 = −expm1(−x)/x.
    """
    small = x < _SERIES_X
    xs = torch.where(small, x, torch.zeros_like(x))
    es = torch.exp(-xs)
    # M_3(x) = Σ_n (−x)^n / (n! (n+4)), Horner from the last term (no denormals for tiny x)
    m3s = torch.full_like(x, 1.0 / (math.factorial(_SERIES_TERMS - 1) * (_SERIES_TERMS + 3)))
    for n in range(_SERIES_TERMS - 2, -1, -1):
        m3s = m3s * (-xs) + 1.0 / (math.factorial(n) * (n + 4))
    m2s = (xs * m3s + es) / 3.0
    m1s = (xs * m2s + es) / 2.0
    m0s = xs * m1s + es
    xl = torch.where(small, torch.ones_like(x), x)
    el = torch.exp(-xl)
    m0l = -torch.expm1(-xl) / xl
    m1l = (m0l - el) / xl
    m2l = (2.0 * m1l - el) / xl
    m3l = (3.0 * m2l - el) / xl
    m0 = torch.where(small, m0s, m0l)
    m1 = torch.where(small, m1s, m1l)
    m3 = torch.where(small, m3s, m3l)
    return m0, m1, m3, torch.exp(-x)


def _scan(decay: torch.Tensor, drive: torch.Tensor) -> torch.Tensor:
    """States w_k before each interval of w_{k+1} = decay_k w_k + drive_k, w_0 = 0; (K, N) → (K, N). O(K)."""
    w = torch.zeros_like(drive[0])
    states = [w]
    for k in range(drive.shape[0] - 1):
        w = decay[k] * w + drive[k]
        states.append(w)
    return torch.stack(states)


def _kernel_pc(durations: np.ndarray, values: np.ndarray, lam, which: str, echo_time: float):
    """I_f (which='f') or I_F (which='F') of the piecewise-constant profile, for rates ``lam`` of any shape."""
    lam_t, kind, dtype = _to_tensor(lam)
    if bool(torch.isnan(lam_t.detach()).any()) or bool(torch.isinf(lam_t.detach()).any()):
        raise ValueError("lam must be finite (rates in 1/s), got NaN or inf")
    if bool((lam_t.detach() * echo_time < -1e-8).any()):
        raise ValueError("lam must be ≥ 0 (decay rates in 1/s)")
    shape = lam_t.shape
    lam_flat = lam_t.reshape(1, -1)
    h = torch.as_tensor(durations, dtype=torch.float64, device=lam_t.device).reshape(-1, 1)
    v = torch.as_tensor(values, dtype=torch.float64, device=lam_t.device).reshape(-1, 1)
    # the moments depend on λh only: evaluate them once per distinct duration (OGSE lobes share one)
    h_unique, inverse = np.unique(np.asarray(durations, dtype=np.float64), return_inverse=True)
    hu = torch.as_tensor(h_unique, dtype=torch.float64, device=lam_t.device).reshape(-1, 1)
    index = torch.as_tensor(inverse.reshape(-1), device=lam_t.device)
    m0, m1, m3, decay = (m.index_select(0, index) for m in _moments(lam_flat * hu))
    psi = m0 - m1  # ∫_0^1 (1−r) e^{−xr} dr
    if which == "f":
        own = (v * v * h * h * psi).sum(0)
        drive = v * h * m0
        coupling = drive
    else:
        fk = torch.cumsum(v * h, 0) - v * h  # F at the start of each interval
        omega = (2.0 * m0 - 3.0 * m1 + m3) / 6.0  # ∫_0^1 (1−r)²(2+r)/6 e^{−xr} dr
        own = (fk * fk * h * h * psi + fk * v * h**3 * psi + v * v * h**4 * omega).sum(0)
        drive = fk * h * m0 + v * h * h * psi
        coupling = fk * h * m0 + v * h * h * m1
    states = _scan(decay, drive)
    out = (own + (coupling * states).sum(0)).reshape(shape)
    return _from_tensor(out, kind, dtype)


def _int_F2_pc(durations: np.ndarray, values: np.ndarray) -> float:
    h, v = durations, values
    fk = np.cumsum(v * h) - v * h
    return float(np.sum(fk * fk * h + fk * v * h * h + v * v * h**3 / 3.0))


def _sta_sum_pc(durations: np.ndarray, values: np.ndarray) -> float:
    """−∫∫ f(t) f(s) |t−s|^{3/2} dt ds = Σ_pq J_p J_q G(t_p − t_q), J the jumps of f, G(x) = (4/35)|x|^{7/2}."""
    t = np.concatenate([[0.0], np.cumsum(durations)])
    v = np.concatenate([[0.0], values, [0.0]])
    jumps = np.diff(v)
    total = 0.0
    chunk = 1024
    for start in range(0, t.size, chunk):
        dt = np.abs(t[start : start + chunk, None] - t[None, :])
        total += float(jumps[start : start + chunk] @ (dt**3.5) @ jumps)
    return 4.0 / 35.0 * total


def _merge(durations, values) -> tuple[np.ndarray, np.ndarray]:
    """Drop empty intervals and merge neighbours with equal values."""
    h = np.asarray(durations, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = h > 0
    h, v = h[keep], v[keep]
    new_group = np.concatenate([[True], v[1:] != v[:-1]])
    group = np.cumsum(new_group) - 1
    return np.bincount(group, weights=h), v[new_group]


def sta_prefactor() -> float:
    """4/(3√π), the constant of the short-time approximation ADC ≈ D0(1 − 4/(3√π)·√D0·(A/V)·C)."""
    return 4.0 / (3.0 * math.sqrt(math.pi))


# ----------------------------------------------------------------------------------------------------------------
# sequences


class DiffusionSequence(ABC):
    """A diffusion-encoding time profile f(t) on [0, TE] with max|f| = 1 and ∫f = 0.

    Subclasses are frozen dataclasses of floats (s); sequence timings are not differentiable, the rates ``lam``
    of the kernels and ``g``/``b`` of the conversions are (torch tensors keep their autograd history).
    """

    @property
    @abstractmethod
    def echo_time(self) -> float:
        """Echo time TE (s): the end of the profile."""

    @property
    @abstractmethod
    def diffusion_time(self) -> float:
        """Effective diffusion time (s); see each subclass for its definition."""

    @abstractmethod
    def intervals(self, n_intervals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(durations (K,) s, values (K,)) float64 of the piecewise-constant profile on [0, TE].

        Adjacent equal values are merged and zero-gradient gaps appear with value 0; exact for piecewise-constant
        sequences (``n_intervals`` ignored), an approximation for smooth ones.
        """

    @abstractmethod
    def int_F2(self) -> float:
        """∫_0^TE F(t)² dt (s³), exact."""

    def int_F2_discrete(self, n_intervals: int | None = None) -> float:
        """∫F² (s³) of the piecewise-constant profile ``intervals(n_intervals)`` that the kernels integrate.

        Equal to :meth:`int_F2` for piecewise-constant sequences. For :class:`CosOGSE` it is smaller by
        ≈ (2πn/m)²/12 (m intervals per lobe), the same factor as the kernels' leading discretisation error, so
        ``kernel / int_F2_discrete()`` (an ADC) is more accurate than ``kernel / int_F2()``.
        """
        h, v = self.intervals(n_intervals)
        return _int_F2_pc(h, v)

    # -- generic piecewise-constant implementations -----------------------------------------------------------

    def profile(self, t):
        """f(t), vectorised; float, numpy array or torch tensor in → the same type out; 0 outside [0, TE].

        Intervals are closed on the left, the last one also on the right (f(TE) is the last value).
        """
        tt, kind, dtype = _to_tensor(t)
        h, v = self.intervals()
        breaks = torch.as_tensor(np.concatenate([[0.0], np.cumsum(h)]), dtype=torch.float64, device=tt.device)
        vals = torch.as_tensor(v, dtype=torch.float64, device=tt.device)
        idx = torch.searchsorted(breaks, tt.detach().contiguous(), right=True) - 1
        idx = torch.where(tt == breaks[-1], torch.full_like(idx, vals.numel() - 1), idx)
        inside = (idx >= 0) & (idx < vals.numel())
        out = torch.where(inside, vals[idx.clamp(0, vals.numel() - 1)], torch.zeros_like(tt))
        return _from_tensor(out, kind, dtype)

    def sta_coefficient(self) -> float:
        """C = −∫∫ f(t)f(s)|t−s|^{3/2} dt ds / (2∫F²) (s^½), for ADC ≈ D0(1 − 4/(3√π)·√D0·(A/V)·C).

        Exact for piecewise-constant profiles (double antiderivative (4/35)|x|^{7/2} of |x|^{3/2} at the jumps).
        For narrow pulses C → √Δ.
        """
        h, v = self.intervals()
        return _sta_sum_pc(h, v) / (2.0 * self.int_F2())

    def sta_adc(self, diffusivity, surface_to_volume):
        """Short-time-approximation ADC D0(1 − 4/(3√π)·√D0·(A/V)·C) (m²/s); A/V in 1/m; arrays/tensors broadcast."""
        c = self.sta_coefficient()
        if isinstance(diffusivity, torch.Tensor):
            root = torch.sqrt(diffusivity)
        else:
            root = np.sqrt(diffusivity)
        out = diffusivity * (1.0 - sta_prefactor() * root * surface_to_volume * c)
        return float(out) if np.ndim(out) == 0 and not isinstance(out, torch.Tensor) else out

    def kernel_f(self, lam, n_intervals: int | None = None):
        """I_f(λ) = ∫_0^TE dt ∫_0^t ds f(t) f(s) e^{−λ(t−s)} (s²) for rates λ ≥ 0 (1/s) of any shape.

        Same type and shape as ``lam``; I_f(0) = (∫f)²/2 = 0, I_f(λ) → ∫f²/λ as λ → ∞.
        """
        h, v = self.intervals(n_intervals)
        return _kernel_pc(h, v, lam, "f", self.echo_time)

    def kernel_F(self, lam, n_intervals: int | None = None):
        """I_F(λ) = ∫_0^TE dt ∫_0^t ds F(t) F(s) e^{−λ(t−s)} (s⁴) for rates λ ≥ 0 (1/s) of any shape.

        Same type and shape as ``lam``; I_F(0) = (∫F)²/2, I_F(λ) → ∫F²/λ as λ → ∞, and
        I_F = (λ∫F² − I_f)/λ² (echo condition).
        """
        h, v = self.intervals(n_intervals)
        return _kernel_pc(h, v, lam, "F", self.echo_time)

    # -- b-value conversions -------------------------------------------------------------------------------------

    def b_value(self, g):
        """b = (γ g)² ∫F² (s/m²) for gradient amplitude(s) g (T/m); float/numpy/torch in → same out."""
        if isinstance(g, torch.Tensor):
            return (GAMMA_RAD_PER_S_PER_T**2 * self.int_F2()) * g * g
        if np.ndim(g) > 0 or isinstance(g, np.ndarray):
            g = np.asarray(g, dtype=np.float64)
            return GAMMA_RAD_PER_S_PER_T**2 * self.int_F2() * g * g
        return GAMMA_RAD_PER_S_PER_T**2 * self.int_F2() * float(g) ** 2

    def q_from_b(self, b):
        """q = γg = √(b/∫F²) (rad/(s·m)) for b ≥ 0 (s/m²); float/numpy/torch in → same out."""
        _check_finite_nonneg(b, "b")
        if isinstance(b, torch.Tensor):
            return torch.sqrt(b / self.int_F2())
        if np.ndim(b) > 0 or isinstance(b, np.ndarray):
            return np.sqrt(np.asarray(b, dtype=np.float64) / self.int_F2())
        return math.sqrt(float(b) / self.int_F2())

    def gradient_amplitude(self, b):
        """g = √(b/∫F²)/γ (T/m) for b ≥ 0 (s/m²); float/numpy/torch in → same out."""
        return self.q_from_b(b) / GAMMA_RAD_PER_S_PER_T


def _check_pgse_times(delta, Delta) -> tuple[float, float]:
    d = _time(delta, "delta")
    D = _time(Delta, "Delta")
    if not d > 0:
        raise ValueError(f"delta must be > 0 s (gradient pulse duration), got {d:g}")
    _check_upper(d, _MAX_LOBE_S, "delta")
    if D < d:
        raise ValueError(f"Delta must be ≥ delta (pulse separation ≥ pulse duration), got Delta={D:g} < delta={d:g}")
    _check_upper(D, _MAX_TIME_S, "Delta")
    return d, D


@dataclass(frozen=True)
class PGSE(DiffusionSequence):
    """Pulsed-gradient spin echo: f = +1 on [0, δ), −1 on [Δ, Δ+δ]; TE = Δ+δ.

    Attributes:
        delta: pulse duration δ (s), 0 < δ ≤ 0.5.
        Delta: pulse separation Δ (s), δ ≤ Δ ≤ 5.
    """

    delta: float
    Delta: float

    def __post_init__(self):
        d, D = _check_pgse_times(self.delta, self.Delta)
        object.__setattr__(self, "delta", d)
        object.__setattr__(self, "Delta", D)

    @property
    def echo_time(self) -> float:
        return self.Delta + self.delta

    @property
    def diffusion_time(self) -> float:
        """Δ − δ/3 (s), so that b = q² δ² (Δ − δ/3)."""
        return self.Delta - self.delta / 3.0

    def intervals(self, n_intervals=None):
        d, D = self.delta, self.Delta
        return _merge([d, D - d, d], [1.0, 0.0, -1.0])

    def int_F2(self) -> float:
        """δ²(Δ − δ/3) (s³)."""
        return self.delta**2 * (self.Delta - self.delta / 3.0)

    def sta_coefficient(self) -> float:
        """(4/35)[(Δ+δ)^{7/2} + (Δ−δ)^{7/2} − 2(δ^{7/2} + Δ^{7/2})] / (δ²(Δ−δ/3)) (s^½)."""
        d, D = self.delta, self.Delta
        s = (D + d) ** 3.5 + (D - d) ** 3.5 - 2.0 * (d**3.5 + D**3.5)
        return 4.0 / 35.0 * s / self.int_F2()


@dataclass(frozen=True)
class DoublePGSE(DiffusionSequence):
    """Two PGSE blocks with the same direction: +1 [0,δ), −1 [Δ,Δ+δ), then, after a mixing time, +1 and −1 again.

    The second block starts at Δ+δ+t_mix; TE = 2(Δ+δ) + t_mix.

    Attributes:
        delta: pulse duration δ (s), 0 < δ ≤ 0.5.
        Delta: pulse separation within a block Δ (s), δ ≤ Δ ≤ 5.
        t_mix: gap between the two blocks (s), 0 ≤ t_mix ≤ 5.
    """

    delta: float
    Delta: float
    t_mix: float = 0.0

    def __post_init__(self):
        d, D = _check_pgse_times(self.delta, self.Delta)
        tm = _time(self.t_mix, "t_mix")
        if tm < 0:
            raise ValueError(f"t_mix must be ≥ 0 s, got {tm:g}")
        _check_upper(tm, _MAX_TIME_S, "t_mix")
        object.__setattr__(self, "delta", d)
        object.__setattr__(self, "Delta", D)
        object.__setattr__(self, "t_mix", tm)

    @property
    def echo_time(self) -> float:
        return 2.0 * (self.Delta + self.delta) + self.t_mix

    @property
    def diffusion_time(self) -> float:
        """Δ − δ/3 (s) of each block (b = 2q²δ²(Δ − δ/3))."""
        return self.Delta - self.delta / 3.0

    def intervals(self, n_intervals=None):
        d, D, tm = self.delta, self.Delta, self.t_mix
        return _merge([d, D - d, d, tm, d, D - d, d], [1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0])

    def int_F2(self) -> float:
        """2δ²(Δ − δ/3) (s³)."""
        return 2.0 * self.delta**2 * (self.Delta - self.delta / 3.0)


@dataclass(frozen=True)
class CosOGSE(DiffusionSequence):
    """Cosine oscillating-gradient spin echo (SpinDoctor's convention).

    f = cos(2πnt/δ) on [0, δ), −cos(2πn(t−Δ)/δ) on [Δ, Δ+δ]; TE = Δ+δ; ∫F² = δ³/(4π²n²).
    The kernels and ``intervals()`` use the midpoint piecewise-constant approximation with ``n_intervals`` per
    lobe (default :data:`COS_OGSE_INTERVALS_PER_LOBE`); ``int_F2`` is exact for the smooth profile.

    Attributes:
        delta: lobe duration δ (s), 0 < δ ≤ 0.5.
        Delta: lobe separation Δ (s), δ ≤ Δ ≤ 5.
        n: number of periods per lobe, integer ≥ 1.
    """

    delta: float
    Delta: float
    n: int

    def __post_init__(self):
        d, D = _check_pgse_times(self.delta, self.Delta)
        n = self.n
        if isinstance(n, bool) or not isinstance(n, numbers.Real) or not float(n).is_integer() or n < 1:
            raise ValueError(f"n (periods per lobe) must be an integer ≥ 1, got {n!r}")
        object.__setattr__(self, "delta", d)
        object.__setattr__(self, "Delta", D)
        object.__setattr__(self, "n", int(n))

    @property
    def echo_time(self) -> float:
        return self.Delta + self.delta

    @property
    def diffusion_time(self) -> float:
        """δ/(4n) (s): a quarter of the oscillation period, 1/(4 f_osc)."""
        return self.delta / (4.0 * self.n)

    def profile(self, t):
        tt, kind, dtype = _to_tensor(t)
        d, D, n = self.delta, self.Delta, self.n
        w = 2.0 * math.pi * n / d
        lobe1 = (tt >= 0) & (tt < d)
        lobe2 = (tt >= D) & (tt <= D + d)
        out = torch.where(lobe1, torch.cos(w * tt), torch.zeros_like(tt))
        out = torch.where(lobe2, -torch.cos(w * (tt - D)), out)
        return _from_tensor(out, kind, dtype)

    def _n_per_lobe(self, n_intervals) -> int:
        m = COS_OGSE_INTERVALS_PER_LOBE if n_intervals is None else n_intervals
        if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 4 * self.n:
            raise ValueError(f"n_intervals (per lobe) must be an integer ≥ 4n = {4 * self.n}, got {m!r}")
        return int(m)

    def intervals(self, n_intervals: int | None = None):
        """Midpoint piecewise-constant approximation: exactly ``n_intervals`` per lobe (default 1000; not merged,
        even where two midpoint values coincide), then the gap Δ−δ with value 0 if Δ > δ."""
        m = self._n_per_lobe(n_intervals)
        d, D = self.delta, self.Delta
        lobe = np.cos(2.0 * np.pi * self.n * (np.arange(m) + 0.5) / m)
        gap = [D - d] if D > d else []
        h = np.concatenate([np.full(m, d / m), gap, np.full(m, d / m)])
        v = np.concatenate([lobe, [0.0] * len(gap), -lobe])
        return h, v

    def int_F2(self) -> float:
        """δ³/(4π²n²) (s³)."""
        return self.delta**3 / (4.0 * math.pi**2 * self.n**2)

    def sta_coefficient(self) -> float:
        """Numeric: the exact C of the midpoint approximations with 128n and 256n intervals per lobe, each
        normalised by its own ∫F², Richardson-extrapolated in 1/m⁴ (their error; measured relative error < 1e-10
        for n ≤ 4)."""
        c = []
        for m in (128 * self.n, 256 * self.n):
            h, v = self.intervals(m)
            c.append(_sta_sum_pc(h, v) / (2.0 * _int_F2_pc(h, v)))
        return (16.0 * c[1] - c[0]) / 15.0


@dataclass(frozen=True)
class PiecewiseConstant(DiffusionSequence):
    """Any piecewise-constant profile: value ``values[k]`` for ``durations[k]`` seconds, starting at t = 0.

    ``values`` are normalised on construction to max|f| = 1 (the stored field is ``values / max|values|``, so
    ``g`` always means the peak amplitude). The echo condition |∫f| ≤ 1e-9·∫|f| is required. Adjacent equal
    values are merged by ``intervals()``.

    Attributes:
        durations: tuple of K interval durations (s), each > 0, total ≤ 5 s.
        values: tuple of K profile values (dimensionless), normalised to max|f| = 1.
    """

    durations: tuple
    values: tuple

    def __post_init__(self):
        h = np.asarray(self.durations, dtype=np.float64).reshape(-1)
        v = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if h.size == 0 or h.shape != v.shape:
            raise ValueError(f"durations and values must be non-empty and of equal length, got {h.size} and {v.size}")
        if not (np.all(np.isfinite(h)) and np.all(np.isfinite(v))):
            raise ValueError("durations and values must be finite")
        if np.any(h <= 0):
            raise ValueError(f"durations must all be > 0 s, got min {h.min():g}")
        _check_upper(float(h.sum()), _MAX_TIME_S, "sum(durations)")
        vmax = np.abs(v).max()
        if vmax == 0:
            raise ValueError("values must not all be 0 (max|values| is normalised to 1)")
        v = v / vmax
        area = float(np.sum(h * v))
        if abs(area) > _ECHO_RTOL * float(np.sum(h * np.abs(v))):
            raise ValueError(
                f"the profile violates the echo condition: ∫f dt = {area:.3e} s (normalised values), must be 0 "
                f"within {_ECHO_RTOL:g}·∫|f| dt"
            )
        object.__setattr__(self, "durations", tuple(float(x) for x in h))
        object.__setattr__(self, "values", tuple(float(x) for x in v))

    @property
    def echo_time(self) -> float:
        return float(np.sum(self.durations))

    @property
    def diffusion_time(self) -> float:
        """C² (s), C = :meth:`sta_coefficient`: the PGSE Δ of the narrow-pulse limit with the same short-time ADC."""
        return self.sta_coefficient() ** 2

    def intervals(self, n_intervals=None):
        return _merge(self.durations, self.values)

    def int_F2(self) -> float:
        """Exact: Σ_k F_k² h_k + F_k v_k h_k² + v_k² h_k³/3 with F_k = F at the start of interval k."""
        h, v = self.intervals()
        return _int_F2_pc(h, v)
