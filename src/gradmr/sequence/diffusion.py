"""Diffusion weighting: the Stejskal–Tanner pulsed-gradient spin echo (PGSE) and the b-matrix of any sequence.

b-matrix
--------
For the nominal echo pathway (the moment k(t) [1/m] is reset at an excitation and negated at a refocusing pulse,
as in :meth:`Sequence.kspace`), the attenuation of a spin population with diffusion tensor D is
``exp(−Σ_ij B_ij D_ij)`` with ``B = 4π² ∫ k(t) k(t)ᵀ dt`` from the excitation (Le Bihan et al., Radiology 1986;
Mattiello et al., MRM 1997), i.e. ``exp(−D·trace B)`` for isotropic D. In the events view the gradient is
constant within an event (as the PDG assumes), so k is linear within it and an event of duration T starting at
k₀ with moment g adds ``T·(k₀k₀ᵀ + (k₀gᵀ + gk₀ᵀ)/2 + ggᵀ/3)`` (:func:`b_matrix`). The b-value along a unit
direction n is ``nᵀBn`` (:func:`b_value_of`).

PGSE timing
-----------
One readout line per TR, as :func:`~gradmr.sequence.spin_echo.spin_echo` (CPMG phases, crushers, spoilers), with
one diffusion lobe on each side of the refocusing pulse: an event of duration δ and moment ``q·n`` (the same sign
on both sides, since the refocusing pulse negates the first). For two such lobes alone ``b = (2πq)²(Δ − δ/3)``
(Stejskal & Tanner, J. Chem. Phys. 1965), Δ the separation of their starts. The lobes take all the time the
echo leaves: the first starts right after the readout prephaser, the second ends right before the phase encoding
(which is played just before the readout, after both lobes, so that it has no cross-term with them and b is the
same on every line); δ is the shorter of the two gaps and Δ follows. That gives the lowest gradient amplitude
(least eddy currents) for the TE. q is then solved so that ``nᵀBn`` of the k-space centre line — lobes,
crushers, prephaser and readout, with their cross-terms — equals the requested b exactly (``nᵀBn`` is quadratic
in q, so three evaluations of :func:`b_value_of` give it); its largest per-axis component must fit in δ under
``system`` (:func:`~gradmr.sequence.system.min_moment_time`), or the builder raises and names the shortest TE that
fits. ``b_value=0`` keeps the timing without lobes. (A trapezoid of the same moment in the same time, as the Pulseq
export writes, has a slightly lower b than the constant-gradient event; the PDG simulates the events.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence as _AbcSequence

import torch

from ._checks import check_count, check_fits, check_flip, check_positive, ms
from .core import Repetition, Sequence
from .spin_echo import (
    _COMMON_PARAMETERS,
    DEFAULT_CRUSHER_CYCLES,
    DEFAULT_SLICE_THICKNESS,
    DEFAULT_SPOILER_CYCLES,
    TIME_SLACK,
    EchoTrain,
    _make_train,
    adc_phase_of_echo,
    lobe_time,
    make_repetition,
)
from .system import DEFAULT_SYSTEM, SystemLimits

#: Readouts :func:`dwi_pgse` builds (diffusion-weighted EPI is in the EPI module).
READOUTS = ("se",)

#: Units and one-line help of every user-facing parameter of the builders in this module.
PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "dwi_pgse": {
        **_COMMON_PARAMETERS,
        "b_value": ("s/m^2", "diffusion weighting along direction (1000 s/mm² = 1e9 s/m²)"),
        "direction": ("1", "diffusion-gradient direction (x, y, z), normalised by the builder"),
        "te": ("s", "echo time: excitation to the k = 0 sample"),
        "refocusing_angle": ("rad", "flip angle of the refocusing pulse"),
        "readout": ("", "'se': one line per TR"),
    },
}

_TWO_PI = 2 * math.pi


# ----------------------------------------------------------------------------------------------------------------
# b-matrix


def b_matrix(sequence: Sequence) -> torch.Tensor:
    """b-matrix [s/m²] of the nominal echo pathway at every ADC sample, shape ``(samples, 3, 3)``.

    ``B = 4π² ∫ k kᵀ dt`` from the last excitation to the sample (the end of its event), with k reset at an
    excitation, negated at a refocusing pulse and kept at any other pulse, and linear within each event.
    Differentiable in the event times and moments.
    """
    out = []
    k = None
    acc = None
    for rep in sequence:
        dtype, device = rep.gradm.dtype, rep.gradm.device
        if k is None:
            k = torch.zeros(3, dtype=dtype, device=device)
            acc = torch.zeros(3, 3, dtype=dtype, device=device)
        if rep.pulse_usage == "excitation":
            k = torch.zeros_like(k)
            acc = torch.zeros_like(acc)
        elif rep.pulse_usage == "refocusing":
            k = -k
        if rep.event_count == 0:
            continue
        g, dt = rep.gradm, rep.event_time
        k_start = k + torch.cumsum(g, 0) - g  # (events, 3)
        outer = (
            k_start[:, :, None] * k_start[:, None, :]
            + (k_start[:, :, None] * g[:, None, :] + g[:, :, None] * k_start[:, None, :]) / 2
            + g[:, :, None] * g[:, None, :] / 3
        )
        cum = acc + _TWO_PI**2 * torch.cumsum(dt[:, None, None] * outer, 0)
        out.append(cum[rep.adc_usage])
        k = k_start[-1] + g[-1]
        acc = cum[-1]
    if not out:
        return torch.zeros(0, 3, 3)
    return torch.cat(out, 0)


def _unit(direction) -> torch.Tensor:
    n = torch.as_tensor(direction, dtype=torch.float64).reshape(-1)
    if n.numel() != 3 or not torch.isfinite(n).all():
        raise ValueError(f"direction must be three finite numbers (x, y, z), got {direction!r}")
    norm = float(torch.linalg.vector_norm(n))
    if norm == 0:
        raise ValueError("direction must not be the zero vector")
    return n / norm


def b_value_of(sequence: Sequence, direction=None) -> torch.Tensor:
    """b-value [s/m²] of the k-space centre sample (the first sample of smallest |k|).

    With ``direction`` (3 numbers, normalised here): ``nᵀBn``, the b-value along it. Without: ``trace B``, the
    b-value that attenuates isotropic diffusion, ``exp(−D·trace B)``.
    """
    k = sequence.kspace()
    if k.shape[0] == 0:
        raise ValueError("the sequence has no ADC samples")
    centre = int(torch.argmin(torch.linalg.vector_norm(k.detach(), dim=1)))
    b = b_matrix(sequence)[centre]
    if direction is None:
        return torch.diagonal(b).sum()
    n = _unit(direction).to(b.dtype).to(b.device)
    return n @ b @ n


# ----------------------------------------------------------------------------------------------------------------
# PGSE


class _PgseTiming:
    """Event times of one PGSE line (see the module docstring); ``delta`` ≤ 0 means no room for the lobes.

    After the refocusing pulse: crusher, wait, second lobe, then the phase encoding (with the readout's ramp up) right
    before the ADC, so that the phase encoding has no cross-term with the lobes and b is the same on every line.
    """

    def __init__(self, train: EchoTrain, te: float) -> None:
        ro, system = train.ro, train.system
        half = te / 2
        self.train = train
        self.te = te
        self.t_pre = train.t_prephaser
        self.t_crush_before = train.t_crusher_before
        self.t_after = system.rf_gap + lobe_time((0.0, 0.0, train.crusher), system)
        self.t_encode = max(lobe_time((0.0, ro.max_phase_encode, 0.0), system), ro.ramp)
        first = self.t_pre + self.t_crush_before
        second = self.t_after + self.t_encode + ro.to_centre
        #: shortest TE without lobes [s]
        self.min_te = 2 * max(first, second)
        gap1 = half - first
        gap2 = half - second
        self.delta = min(gap1, gap2)
        self.wait1 = gap1 - self.delta
        self.wait2 = gap2 - self.delta
        # lobe starts, from the excitation centre
        self.start1 = self.t_pre
        self.start2 = half + self.t_after + self.wait2
        self.big_delta = self.start2 - self.start1
        self.system = system

    def repetitions(
        self, q: torch.Tensor, line: int | None, *, tr: float, shot: int, angle: float, dtype: torch.dtype
    ) -> list[Repetition]:
        train, ro = self.train, self.train.ro
        lobe = tuple(float(v) for v in q)
        zero = (0.0, 0.0, 0.0)
        exc = make_repetition(
            [
                (self.t_pre, (ro.prephase, 0.0, 0.0), False),
                (self.delta, lobe, False),
                (self.wait1, zero, False),
                (self.t_crush_before, (0.0, 0.0, train.crusher), False),
            ],
            angle=math.pi / 2,
            phase=train.excitation_phase,
            usage="excitation",
            dtype=dtype,
        )
        pe = 0.0 if line is None else line * ro.dk_y
        tail = tr - self.te
        events = [
            (self.t_after, (0.0, 0.0, train.crusher), False),
            (self.wait2, zero, False),
            (self.delta, lobe, False),
            (self.t_encode, (ro.ramp_area, pe, 0.0), False),
        ]
        events += [(ro.dwell, (ro.dk_x, 0.0, 0.0), line is not None)] * ro.nx
        events += [
            (train.t_final, train.final_spoiler(pe, shot), False),
            (tail - ro.from_centre - train.t_final, zero, False),
        ]
        refocus = make_repetition(
            events,
            angle=angle,
            phase=train.refocusing_phase,
            usage="refocusing",
            adc_phase=adc_phase_of_echo(1, train.excitation_phase, train.refocusing_phase),
            dtype=dtype,
        )
        return [exc, refocus]

    def lobe_fits(self, q: torch.Tensor) -> bool:
        if not bool(q.any()):
            return self.delta >= -TIME_SLACK
        return self.delta > 0 and lobe_time(q.tolist(), self.system) <= self.delta + TIME_SLACK


def _solve_lobe(
    timing: _PgseTiming, b_value: float, n: torch.Tensor, *, tr: float, angle: float
) -> torch.Tensor | None:
    """Lobe moment ``q·n`` [1/m] giving ``nᵀBn = b_value`` on the centre line; None if no positive q reaches it."""
    if b_value == 0:
        return torch.zeros(3, dtype=torch.float64)
    if timing.delta <= 0:
        return None
    # nᵀBn is exactly quadratic in q: sample it at 0 and ±q_ref (Stejskal–Tanner's q for the lobes alone)
    eff = timing.big_delta - timing.delta / 3
    q_ref = math.sqrt(b_value / eff) / _TWO_PI

    def b_of(q: float) -> float:
        reps = timing.repetitions(q * n, 0, tr=tr, shot=0, angle=angle, dtype=torch.float64)
        return float(b_value_of(Sequence(reps), n))

    f0, fp, fm = b_of(0.0), b_of(q_ref), b_of(-q_ref)
    a = (fp + fm) / 2 - f0
    b1 = (fp - fm) / 2
    c = f0 - b_value
    disc = b1 * b1 - 4 * a * c
    if a <= 0 or disc < 0:
        return None
    x = (-b1 + math.sqrt(disc)) / (2 * a)
    if x <= 0:
        return None
    return x * q_ref * n


def _min_te_for(b_value, n, *, make_timing, tr, angle, te_lo: float, te_hi: float) -> float | None:
    """Shortest TE [s] in ``(te_lo, te_hi]`` at which the lobes for ``b_value`` fit (bisection), or None."""

    def fits(te: float) -> bool:
        timing = make_timing(te)
        q = _solve_lobe(timing, b_value, n, tr=max(tr, 2 * te), angle=angle)
        return q is not None and timing.lobe_fits(q)

    if not fits(te_hi):
        return None
    lo, hi = te_lo, te_hi
    for _ in range(60):
        mid = (lo + hi) / 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-6:
            break
    return hi


def dwi_pgse(
    *,
    b_value: float = 1e9,
    direction: _AbcSequence[float] = (1.0, 0.0, 0.0),
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    te: float = 80e-3,
    tr: float = 3.0,
    dwell: float = 30e-6,
    readout: str = "se",
    refocusing_angle: float = math.pi,
    excitation_phase: float = math.pi / 2,
    refocusing_phase: float = 0.0,
    crusher_cycles: float = DEFAULT_CRUSHER_CYCLES,
    slice_thickness: float = DEFAULT_SLICE_THICKNESS,
    spoiler_cycles: float = DEFAULT_SPOILER_CYCLES,
    dummy_scans: int = 0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """Diffusion-weighted pulsed-gradient spin echo (Stejskal–Tanner), one line per TR.

    See the module docstring for the timing of the lobes (δ, Δ) and how q is chosen; :func:`b_value_of` of the
    result along ``direction`` equals ``b_value``.

    Parameters
    ----------
    b_value : float
        b-value along ``direction`` [s/m²] (1000 s/mm² = 1e9 s/m²), ≥ 0; 0 gives the same timing without lobes.
    direction : (x, y, z)
        Direction of the diffusion gradient; normalised here; must not be zero.
    matrix, fov, te, tr, dwell, refocusing_angle, excitation_phase, refocusing_phase, crusher_cycles, \
slice_thickness, spoiler_cycles, dummy_scans, system, dtype
        As for :func:`~gradmr.sequence.spin_echo.spin_echo`.
    readout : {"se"}
        One phase-encode line per TR (diffusion-weighted EPI is built elsewhere).

    Raises
    ------
    ValueError
        If the b-value does not fit in TE under ``system.max_grad`` and slew rate (the message names the shortest
        TE that fits), TE is shorter than the readout and crushers allow, TR too short, or the direction is zero.
    """
    if readout not in READOUTS:
        raise ValueError(
            f"readout must be one of {READOUTS} (diffusion-weighted EPI is another builder), got {readout!r}"
        )
    b_value = float(b_value)
    if not (b_value >= 0 and math.isfinite(b_value)):
        raise ValueError(f"b_value must be ≥ 0 s/m^2, got {b_value!r}")
    if b_value > 1e11:
        raise ValueError(f"b_value is in s/m^2 (1000 s/mm^2 = 1e9 s/m^2); {b_value:.4g} s/m^2 is implausibly large")
    n = _unit(direction)
    check_positive("te", te)
    check_positive("tr", tr)
    check_count("dummy_scans", dummy_scans, minimum=0)
    angle = check_flip("refocusing_angle", refocusing_angle)

    def make_train(spacing: float) -> EchoTrain:
        return _make_train(
            matrix=matrix,
            fov=fov,
            dwell=dwell,
            echo_spacing=spacing,
            angles=(angle,),
            crusher_cycles=crusher_cycles,
            slice_thickness=slice_thickness,
            spoiler_cycles=spoiler_cycles,
            excitation_phase=excitation_phase,
            refocusing_phase=refocusing_phase,
            system=system,
        )

    train = make_train(te)
    timing = _PgseTiming(train, te)
    check_fits("te", te + TIME_SLACK, timing.min_te, "the prephaser, crushers, phase encoding, RF gaps and readout")
    check_fits("tr", tr + TIME_SLACK, train.min_shot_time(), "te plus the rest of the readout, spoiler and RF gap")
    q = _solve_lobe(timing, b_value, n, tr=tr, angle=angle)
    if q is None or not timing.lobe_fits(q):
        te_min = _min_te_for(
            b_value, n, make_timing=lambda t: _PgseTiming(make_train(t), t), tr=tr, angle=angle, te_lo=te, te_hi=1.0
        )
        hint = f"; the shortest TE that fits is {ms(te_min)}" if te_min is not None else ""
        raise ValueError(
            f"b_value = {b_value / 1e6:.4g} s/mm^2 does not fit in te = {ms(te)} with max_grad = "
            f"{system.max_grad * 1e3:.3g} mT/m and max_slew = {system.max_slew:.3g} T/m/s{hint}"
        )
    reps: list[Repetition] = []
    lines: list[int | None] = [None] * dummy_scans + train.ro.lines()
    for i, line in enumerate(lines):
        reps += timing.repetitions(q, line, tr=tr, shot=i, angle=angle, dtype=dtype)
    return Sequence(reps)
