"""Export a :class:`~gradmr.sequence.Sequence` to Pulseq (a ``pypulseq.Sequence`` or a ``.seq`` file).

The events view stores instantaneous pulses and gradient *moments*; a scanner needs RF pulses of finite duration and
gradient waveforms within its limits. The export turns one into the other so that reading the file back with
:func:`gradmr.io.load_pulseq` gives the same pulses at the same times, the same sample times and the same moment at
every event boundary (and so the same k-space at every sample).

How events become Pulseq blocks
-------------------------------
* **Time** – the sequence starts with the first repetition's pulse; a leading delay (a multiple of the block raster)
  is added where the first RF or ADC block needs room before it (the importer shows it as a first 0 rad repetition),
  and a trailing one where the last block needs room after the end. Nothing else moves.
* **RF** – each pulse of non-zero angle becomes a block or sinc pulse of :attr:`SystemLimits.rf_duration` whose
  *centre* sits at the repetition boundary (where the events view puts the instantaneous pulse), in a block that
  starts ``rf_dead_time`` before the pulse and ends ``rf_ringdown_time`` after it (rounded out to the block raster).
  The time comes from the neighbouring events: builders leave :attr:`SystemLimits.rf_gap` there. Flip angle →
  ``flip_angle`` (a negative angle is written as ``|α|`` with phase ``φ + π``), phase → ``phase_offset`` (wrapped to
  [0, 2π): pypulseq writes phases with 6 significant digits), ``pulse_usage`` → ``use``: excitation, refocusing,
  inversion as such, storage → ``"preparation"`` (which the importer maps back to storage), undefined →
  ``"undefined"`` (pypulseq 1.5 files pulses that differ only in their use as one library entry, so a pulse whose
  angle and phase were already written with another use gets its block started one block raster step earlier per
  such use: its RF delay, part of the entry, then differs). Zero-angle pulses are not written (the importer then
  sees no repetition boundary there, so :meth:`Sequence.kspace` no longer resets k at them). Pulses
  at the same instant (a repetition without events, or with events of zero duration) are merged when they rotate
  about the same axis (phases equal or opposite); otherwise that is an error.
* **Sinc pulses** (``rf="sinc"``) – Hanning-apodised sinc of time-bandwidth product :data:`SINC_TIME_BANDWIDTH`.
  With ``slice_thickness`` each pulse is slice-selective: a z trapezoid of amplitude ``TBW / (duration ·
  thickness)`` whose plateau covers the pulse. Its area before the pulse centre is compensated inside the event
  before the pulse (a pre-phaser) and its area after the centre inside the event after it (the rephaser), so every
  event keeps its moment in z as well; for a 2D sequence with zero z moments this is the usual balanced slice
  selection.
* **ADC** – a run of consecutive ADC events of equal duration and equal moment becomes one ADC of dwell = the
  event duration. Pulseq samples at ``delay + (i + ½)·dwell`` and the events view at the end of each event, so the
  ADC delay is ``(start of the run's first event) + ½·dwell`` from the block start: sample ``i`` then lands on the
  end of event ``i`` exactly. ``adc_phase`` → ``phase_offset`` (the same convention as gradmr's: both demodulate),
  with a ``phase_modulation`` where it changes within a run. A lone ADC event (or one that cannot join a run)
  becomes a one-sample ADC of dwell :data:`SINGLE_SAMPLE_DWELL` centred on the end of its event. ADC blocks reach
  ``adc_dead_time`` beyond the sampling window on both sides.
* **Gradients** – one continuous piecewise-linear waveform per axis, knots on the gradient raster, within
  ``max_grad`` and ``max_slew``, cut into extended trapezoids at block boundaries:

  - during a run of ADC events of equal duration and moment the gradient is flat at ``moment / duration`` (the
    readout plateau), from the gradient raster point at or before the run's start to the one at or after its end;
    so is a run of equal non-ADC events too short for a lobe each (a readout without sampling, say);
  - during a run of ADC events of equal duration whose moments vary (a spiral, a ramp-sampled readout) the gradient
    has a corner at every sample: ``(g_k + g_{k+1})/2·dwell = m_k`` fixes it up to an alternating component
    ``(−1)^k c``, chosen for the lowest slew rate; this needs the dwell to be a multiple of the gradient raster and
    the run to start on it;
  - it is zero during each block pulse (from and to the gradient raster points around the pulse), or the
    slice-select trapezoid during a slice-selective sinc;
  - every other event gets one lobe in the time left to it, starting at the amplitude its predecessor leaves
    (0, or a readout plateau) and ending at the amplitude its successor needs. The lobe is the **lowest-peak**
    extended trapezoid ``g_start → p → g_end`` that fills the available time, with ramps at the maximum slew rate
    (rounded up to the raster): of all shapes with the event's moment it has the smallest amplitude, and it is the
    closest to the constant gradient the events view (and the PDG's diffusion weighting) assumes within an event.
    Where rounding to the raster leaves no plateau, the best raster triangle/trapezoid is searched. Between two
    such events the waveform passes through zero at their boundary (held at zero over the raster step around a
    boundary that is not on the raster).

  Each event's integral is therefore exactly its moment (up to the 6 significant digits pypulseq writes amplitudes
  with), and the moment at every ADC sample is exact. An event whose moment cannot fit raises ``ValueError`` naming
  the repetition, the event, the moment, the time it has and the minimum it would need (and
  :func:`~gradmr.sequence.system.min_moment_time`).
* **Rasters** – RF and ADC starts must fall on the RF raster and dwells on the ADC raster; event times that do not
  allow this (e.g. an odd dwell in µs with a 1 µs RF raster, or a TI computed to the nanosecond) raise
  ``ValueError`` unless ``round_times=True``, which moves pulse starts and sampling windows onto the RF raster (by
  at most half a step, 0.5 µs by default) together with the event boundaries they sit on.
* **Blocks** – one per RF pulse, one per ADC, and gradient-only blocks between them, cut at the boundaries of the
  events that got a lobe (at the block raster point at or before each), so that the importer finds the same events
  again rather than one long event per gap (which matters for the PDG's diffusion weighting, computed per event).
* **Precision** – pypulseq writes gradient and RF amplitudes and phases with 6 significant digits: every block's
  moments are off by up to 5e-6 relative in the file, which long balanced or RF-spoiled trains accumulate.

Definitions written: ``FOV`` (when given; a 2D FOV gets the slice thickness, or :data:`FOV_Z_2D`, as its third
value) and ``Name``, besides the rasters and ``TotalDuration`` that pypulseq writes itself (which the importer and
:func:`gradmr.io.read_definitions` read).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..sequence.core import Sequence
from ..sequence.system import DEFAULT_SYSTEM, SystemLimits, min_moment_time

__all__ = [
    "FOV_Z_2D",
    "MOMENT_ATOL",
    "RF_SHAPES",
    "SINC_APODIZATION",
    "SINC_TIME_BANDWIDTH",
    "SINGLE_SAMPLE_DWELL",
    "to_pulseq",
    "write_pulseq",
]

#: RF pulse shapes the export writes.
RF_SHAPES = ("block", "sinc")
#: Time-bandwidth product of the sinc pulses (as pypulseq's examples).
SINC_TIME_BANDWIDTH = 4.0
#: Apodisation of the sinc pulses (0.5: Hanning).
SINC_APODIZATION = 0.5
#: Dwell time of the one-sample ADCs written for lone ADC events [s].
SINGLE_SAMPLE_DWELL = 10e-6
#: z value of the ``FOV`` definition for a 2D ``fov`` without a slice thickness [m] (the built-in brain's slice);
#: Pulseq readers (MR-zero's pulseq-rs among them) expect three values.
FOV_Z_2D = 5e-3
#: Moments closer than this [1/m] are equal (ADC runs) or zero (events without time); far below any imaging moment.
MOMENT_ATOL = 1e-6
#: Times closer than this to a raster point are on it [s] (Pulseq rasters are ≥ 100 ns).
_TIME_ATOL = 1e-9
#: Relative tolerance of the internal check that the waveforms reproduce every event's moment.
_VERIFY_RTOL = 1e-9

_USE = {
    "excitation": "excitation",
    "refocusing": "refocusing",
    "inversion": "inversion",
    "storage": "preparation",
    "undefined": "undefined",
}


# ----------------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------------


def _us(t: float) -> str:
    return f"{t * 1e6:.6g} µs"


def _ms(t: float) -> str:
    return f"{t * 1e3:.4g} ms"


def _wrap(phase: float) -> float:
    """Phase in [0, 2π)."""
    w = math.fmod(phase, 2 * math.pi)
    return w + 2 * math.pi if w < 0 else w


class _Raster:
    """Rounding of times [s] to integer steps of a raster, with a tolerance of :data:`_TIME_ATOL`."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.tol = _TIME_ATOL / step

    def floor(self, t: float) -> int:
        return math.floor(t / self.step + self.tol)

    def ceil(self, t: float) -> int:
        return math.ceil(t / self.step - self.tol)

    def on(self, t: float) -> bool:
        return abs(t / self.step - round(t / self.step)) <= self.tol

    def snap(self, t: float) -> float:
        return round(t / self.step) * self.step


def _cumulative(t: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """∫_{-∞}^{b} of a piecewise-linear function given by knots ``(t, g)`` (zero outside; duplicate times = jumps)."""
    if len(t) < 2:
        return np.zeros_like(b, dtype=float)
    dt = np.diff(t)
    cum = np.concatenate(([0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * dt)))
    slope = np.where(dt > 0, np.diff(g) / np.where(dt > 0, dt, 1.0), 0.0)
    j = np.clip(np.searchsorted(t, b, side="right") - 1, 0, len(t) - 2)
    x = b - t[j]
    f = cum[j] + g[j] * x + 0.5 * slope[j] * x * x
    f = np.where(b <= t[0], 0.0, f)
    return np.where(b >= t[-1], cum[-1], f)


# ----------------------------------------------------------------------------------------------------------------------
# one lobe: the lowest-peak extended trapezoid on the raster
# ----------------------------------------------------------------------------------------------------------------------


def _trapezoid_area(p: float, ga: float, gb: float, duration: float, smax: float) -> float:
    r1, r2 = abs(p - ga) / smax, abs(p - gb) / smax
    return 0.5 * (ga + p) * r1 + p * (duration - r1 - r2) + 0.5 * (p + gb) * r2


def _lobe(n: int, ga: float, gb: float, area: float, dt: float, gmax: float, smax: float):
    """Knots ``[(step, amplitude), …]`` of the lowest-peak extended trapezoid ``ga → p → gb`` over ``n`` raster steps
    of ``dt`` with the given area, ramps at most ``smax``, ``|p| ≤ gmax``; ``None`` if there is none.

    The area of ``ga → p → gb`` with ramps at the maximum slew rate grows monotonically with ``p`` (its derivative is
    the plateau length), so the continuous solution is found by bisection; ramps are then rounded up to the raster and
    ``p`` re-solved (the area is linear in ``p`` for fixed ramps). Where that leaves no room, all raster ramp pairs are
    tried and the feasible one with the lowest ``|p|`` is kept.
    """
    area_tol = MOMENT_ATOL * 1e-3 + 1e-12 * abs(area)
    if n <= 0:
        # no raster step of its own (an event shorter than the raster, between two zero holds): nothing to play
        ok = abs(ga - gb) <= 1e-9 * gmax and abs(area) <= MOMENT_ATOL
        return [] if ok else None
    duration = n * dt
    if abs(gb - ga) > smax * duration * (1 + 1e-12):
        return None
    # a straight ramp (or a constant) already has the area
    if abs(0.5 * (ga + gb) * duration - area) <= area_tol:
        return [(0, ga), (n, gb)]
    lo = max(-gmax, 0.5 * (ga + gb - smax * duration))
    hi = min(gmax, 0.5 * (ga + gb + smax * duration))
    if lo > hi:
        return None
    f_lo = _trapezoid_area(lo, ga, gb, duration, smax)
    f_hi = _trapezoid_area(hi, ga, gb, duration, smax)
    if area < f_lo - area_tol or area > f_hi + area_tol:
        return None
    a, b = lo, hi
    for _ in range(200):
        mid = 0.5 * (a + b)
        if _trapezoid_area(mid, ga, gb, duration, smax) < area:
            a = mid
        else:
            b = mid
        if b - a <= 1e-15 * max(gmax, 1.0):
            break
    p_cont = 0.5 * (a + b)

    def solve(r1: int, r2: int) -> float:
        return (area - 0.5 * ga * r1 * dt - 0.5 * gb * r2 * dt) / (duration - 0.5 * (r1 + r2) * dt)

    def feasible(p: float, r1: int, r2: int) -> bool:
        if abs(p) > gmax:
            return False
        for g, r in ((ga, r1), (gb, r2)):
            if r == 0 and abs(p - g) > 1e-9 * gmax:
                return False
            if r > 0 and abs(p - g) > smax * r * dt * (1 + 1e-12):
                return False
        return True

    def steps(p: float, g: float) -> int:
        return max(0, math.ceil(abs(p - g) / (smax * dt) - 1e-9))

    r1, r2 = steps(p_cont, ga), steps(p_cont, gb)
    for _ in range(30):
        if r1 + r2 > n:
            break
        p = solve(r1, r2)
        if feasible(p, r1, r2):
            return _lobe_knots(n, ga, gb, p, r1, r2)
        if abs(p) > gmax:
            break
        r1, r2 = max(r1, steps(p, ga)), max(r2, steps(p, gb))
    # fallback: every raster ramp pair (near the continuous one for long lobes)
    if n <= 400:
        r1s, r2s = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    else:
        c1, c2 = steps(p_cont, ga), steps(p_cont, gb)
        r1s, r2s = np.meshgrid(np.arange(max(0, c1 - 40), c1 + 41), np.arange(max(0, c2 - 40), c2 + 41), indexing="ij")
    r1s, r2s = r1s.ravel(), r2s.ravel()
    keep = r1s + r2s <= n
    r1s, r2s = r1s[keep], r2s[keep]
    ps = (area - 0.5 * ga * r1s * dt - 0.5 * gb * r2s * dt) / (duration - 0.5 * (r1s + r2s) * dt)
    ok = np.abs(ps) <= gmax
    for g, r in ((ga, r1s), (gb, r2s)):
        ok &= np.where(r == 0, np.abs(ps - g) <= 1e-9 * gmax, np.abs(ps - g) <= smax * r * dt * (1 + 1e-12))
    if not ok.any():
        return None
    best = int(np.flatnonzero(ok)[np.argmin(np.abs(ps[ok]))])
    return _lobe_knots(n, ga, gb, float(ps[best]), int(r1s[best]), int(r2s[best]))


def _lobe_knots(n: int, ga: float, gb: float, p: float, r1: int, r2: int) -> list[tuple[int, float]]:
    knots = [(0, ga)]
    if r1 > 0:
        knots.append((r1, p))
    if n - r2 > r1:
        knots.append((n - r2, p))
    if r2 > 0 or knots[-1][0] < n:
        knots.append((n, gb))
    return knots


def _min_lobe_steps(n: int, ga: float, gb: float, area: float, dt: float, gmax: float, smax: float) -> int | None:
    """Fewest raster steps (> n) in which :func:`_lobe` succeeds, or ``None`` if none up to 10⁷ steps does."""
    hi = max(n + 1, 1)
    while _lobe(hi, ga, gb, area, dt, gmax, smax) is None:
        hi *= 2
        if hi > 10**7:
            return None
    lo = n  # infeasible
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _lobe(mid, ga, gb, area, dt, gmax, smax) is None:
            lo = mid
        else:
            hi = mid
    return hi


# ----------------------------------------------------------------------------------------------------------------------
# the plan: pulses, readouts, fixed gradient regions, lobes, blocks
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class _Pulse:
    time: float
    angle: float
    phase: float
    usage: str
    rep: int


@dataclass
class _Region:
    """A stretch where the gradient is fixed: zero (or slice select) during a pulse, a plateau during a readout."""

    start: int  # gradient raster steps
    end: int
    knots: list[list[tuple[int, float]]]  # per axis
    label: str

    def first(self, axis: int) -> float:
        return self.knots[axis][0][1]

    def last(self, axis: int) -> float:
        return self.knots[axis][-1][1]


@dataclass
class _Block:
    start: int  # gradient raster steps (multiples of the block raster)
    end: int
    label: str
    rf: _Pulse | None = None
    adc: dict | None = None


def _event_label(rep: int, event: int) -> str:
    return f"repetition {rep}, event {event}"


def _check_options(system, rf, slice_thickness, fov, name) -> tuple | None:
    if not isinstance(system, SystemLimits):
        raise TypeError(f"system must be a gradmr SystemLimits, got {type(system).__name__}")
    if rf not in RF_SHAPES:
        raise ValueError(f"rf must be one of {RF_SHAPES}, got {rf!r}")
    if slice_thickness is not None:
        if rf != "sinc":
            raise ValueError("slice_thickness needs rf='sinc' (block pulses are not slice-selective)")
        st = float(slice_thickness)
        if not (0 < st <= 1 and math.isfinite(st)):
            raise ValueError(f"slice_thickness must be in (0, 1] m, got {slice_thickness!r}")
    fov_values = None
    if fov is not None:
        fov_values = tuple(float(v) for v in np.atleast_1d(np.asarray(fov, dtype=float)))
        if len(fov_values) not in (2, 3) or not all(0 < v <= 1 for v in fov_values):
            raise ValueError(f"fov must be 2 or 3 lengths in (0, 1] m, got {fov!r}")
    if not isinstance(name, str) or not name or any(c in name for c in "\r\n"):
        raise ValueError(f"name must be a non-empty one-line string, got {name!r}")
    for finer, coarser in (
        ("grad_raster_time", "block_duration_raster"),
        ("rf_raster_time", "block_duration_raster"),
        ("adc_raster_time", "rf_raster_time"),
    ):
        ratio = getattr(system, coarser) / getattr(system, finer)
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f"system.{coarser} must be a multiple of system.{finer}")
    return fov_values


@dataclass
class _Events:
    """The events of the whole sequence on one time axis (float64 numpy)."""

    bounds: np.ndarray  # (events + 1,) boundaries [s]; event k lasts from bounds[k] to bounds[k + 1]
    moment: np.ndarray  # (events, 3) [1/m]
    adc: np.ndarray  # (events,) bool
    phase: np.ndarray  # (events,) [rad]
    rep: np.ndarray  # (events,) repetition of each event
    index: np.ndarray  # (events,) index within its repetition
    rep_first: np.ndarray  # (reps,) index into bounds of each repetition's start

    @property
    def count(self) -> int:
        return len(self.moment)

    def label(self, k: int) -> str:
        return _event_label(int(self.rep[k]), int(self.index[k]))


def _times(t) -> np.ndarray:
    """Event times as float64 numpy; lower precisions through their shortest decimal form, so that a float32 30e-6 s
    is 30 µs again (its binary error would otherwise put summed times off the rasters)."""
    t = t.detach().to("cpu")
    if t.dtype == torch.float64:
        return t.numpy()
    return np.array(t.float().numpy().astype(str), dtype=np.float64)


def _flatten(sequence: Sequence) -> _Events:
    times, moments, adc, phase, rep_of, index_of, rep_first = [], [], [], [], [], [], []
    count = 0
    for r, rep in enumerate(sequence):
        rep_first.append(count)
        count += rep.event_count
        times.append(_times(rep.event_time))
        moments.append(rep.gradm.detach().to("cpu").double().numpy().reshape(-1, 3))
        adc.append(rep.adc_usage.detach().to("cpu").numpy().astype(bool))
        phase.append(rep.adc_phase.detach().to("cpu").double().numpy())
        rep_of.append(np.full(len(times[-1]), r))
        index_of.append(np.arange(len(times[-1])))

    def cat(parts, empty):
        return np.concatenate(parts) if parts else empty

    durations = cat(times, np.zeros(0))
    return _Events(
        bounds=np.concatenate(([0.0], np.cumsum(durations))),
        moment=cat(moments, np.zeros((0, 3))),
        adc=cat(adc, np.zeros(0, dtype=bool)),
        phase=cat(phase, np.zeros(0)),
        rep=cat(rep_of, np.zeros(0)).astype(int),
        index=cat(index_of, np.zeros(0)).astype(int),
        rep_first=np.array(rep_first, dtype=int),
    )


def _pulses(sequence: Sequence, ev: _Events) -> list[_Pulse]:
    """Pulses to write: zero angles dropped, negative ones flipped, coinciding ones merged (same axis) or refused."""
    raw = []
    for r, rep in enumerate(sequence):
        angle = float(rep.pulse_angle.detach())
        phase = float(rep.pulse_phase.detach())
        if angle < 0:
            angle, phase = -angle, phase + math.pi
        if angle > 0:
            raw.append(_Pulse(float(ev.bounds[ev.rep_first[r]]), angle, phase, rep.pulse_usage, r))
    out: list[_Pulse] = []
    for p in raw:
        if out and abs(p.time - out[-1].time) <= _TIME_ATOL:
            q = out[-1]
            d = math.remainder(p.phase - q.phase, 2 * math.pi)
            if abs(d) <= 1e-9:
                angle = q.angle + p.angle
            elif abs(abs(d) - math.pi) <= 1e-9:
                angle = q.angle - p.angle
            else:
                raise ValueError(
                    f"repetitions {q.rep} and {p.rep}: their pulses fall on the same instant (no event time between "
                    f"them) but rotate about different axes (phases {q.phase:.4g} and {p.phase:.4g} rad); one Pulseq "
                    "RF pulse cannot represent that: give the first repetition events of at least 2·rf_gap"
                )
            usage = p.usage if p.usage != "undefined" else q.usage
            phase = q.phase
            if angle < 0:
                angle, phase = -angle, phase + math.pi
            out[-1] = _Pulse(q.time, angle, phase, usage, q.rep)
            if angle <= 1e-12:
                out.pop()
            continue
        out.append(p)
    return out


@dataclass
class _Group:
    """Consecutive events played as one fixed gradient: a plateau (constant moment per event) or a shaped readout
    (ADC events of one duration whose moments vary), with an ADC or not."""

    first: int
    stop: int  # one past the last event
    kind: str  # "plateau" or "shaped"
    adc: bool


def _groups(ev: _Events, system: SystemLimits) -> tuple[list[_Group], list[int]]:
    """Plateau and shaped runs, and the lone ADC events (one-sample ADCs on a free gradient)."""
    dur = np.diff(ev.bounds)
    groups: list[_Group] = []
    singles: list[int] = []

    def same_moment(i: int, j: int) -> bool:
        return bool(np.all(np.abs(ev.moment[j] - ev.moment[i]) <= MOMENT_ATOL + 1e-9 * np.abs(ev.moment[i])))

    k = 0
    while k < ev.count:
        j = k + 1
        while (
            j < ev.count
            and ev.rep[j] == ev.rep[k]
            and ev.adc[j] == ev.adc[k]
            and abs(dur[j] - dur[k]) <= _TIME_ATOL * 1e-3
        ):
            j += 1
        if ev.adc[k]:
            if j - k == 1:
                singles.append(k)
            elif not dur[k] > 0:
                raise ValueError(f"{ev.label(k)}: ADC events of zero duration in a row (samples at one instant)")
            elif all(same_moment(k, i) for i in range(k + 1, j)):
                groups.append(_Group(k, j, "plateau", True))
            else:
                groups.append(_Group(k, j, "shaped", True))
        elif dur[k] > 0 and j - k >= 2:
            # equal-duration non-ADC events of which some are too short for a lobe of their own: one gradient
            # through all of them (a readout without sampling, a dummy spiral interleaf)
            if any(
                min_moment_time(float(np.abs(ev.moment[i]).max()), system) > dur[i] + _TIME_ATOL for i in range(k, j)
            ):
                kind = "plateau" if all(same_moment(k, i) for i in range(k + 1, j)) else "shaped"
                groups.append(_Group(k, j, kind, False))
        k = j
    return groups, singles


def _round_times(ev: _Events, pulses: list[_Pulse], groups: list[_Group], singles: list[int], system, dwell1):
    """Move pulse starts and ADC sampling windows onto the RF raster (by at most half a step) by moving the event
    boundaries they sit on; the moments stay with their events."""
    rf_raster = _Raster(system.rf_raster_time)
    b = ev.bounds
    for p in pulses:
        i = int(ev.rep_first[p.rep])
        t0 = b[i] - 0.5 * system.rf_duration
        b[i] += rf_raster.snap(t0) - t0
        p.time = float(b[i])
    for g in groups:
        if g.adc:
            tau = b[g.first + 1] - b[g.first]
            w = b[g.first] + 0.5 * tau
            b[g.first : g.stop + 1] += rf_raster.snap(w) - w
    for k in singles:
        w = b[k + 1] - 0.5 * dwell1
        b[k + 1] += rf_raster.snap(w) - w
    short = np.flatnonzero(np.diff(b) < -_TIME_ATOL)
    if len(short):
        raise ValueError(f"{ev.label(int(short[0]))}: rounding times to the RF raster leaves it a negative duration")
    ev.bounds = np.maximum.accumulate(b)


def _plan(sequence: Sequence, system: SystemLimits, slice_thickness: float | None, round_times: bool):
    grad = _Raster(system.grad_raster_time)
    rf_raster = _Raster(system.rf_raster_time)
    adc_raster = _Raster(system.adc_raster_time)
    dt = system.grad_raster_time
    block_steps = round(system.block_duration_raster / dt)
    gmax, smax = system.max_grad_hz, system.max_slew_hz
    hint = " (or export with round_times=True)"

    def block_floor(t: float) -> int:
        return math.floor(t / system.block_duration_raster + _TIME_ATOL / system.block_duration_raster) * block_steps

    def block_ceil(t: float) -> int:
        return math.ceil(t / system.block_duration_raster - _TIME_ATOL / system.block_duration_raster) * block_steps

    ev = _flatten(sequence)
    pulses = _pulses(sequence, ev)
    groups, singles = _groups(ev, system)
    single_dwell = adc_raster.snap(SINGLE_SAMPLE_DWELL)
    if round_times:
        _round_times(ev, pulses, groups, singles, system, single_dwell)
    n_events = ev.count
    ev_start, ev_end, ev_m = ev.bounds[:-1], ev.bounds[1:], ev.moment
    t_end = float(ev.bounds[-1])
    d_rf = system.rf_duration

    regions: list[_Region] = []
    blocks: list[_Block] = []

    # --- pulses -------------------------------------------------------------------------------------------------------
    g_ss = 0.0
    if slice_thickness is not None:
        g_ss = SINC_TIME_BANDWIDTH / (d_rf * slice_thickness)
        if g_ss > gmax:
            raise ValueError(
                f"slice_thickness = {slice_thickness * 1e3:.4g} mm needs a slice-select gradient of "
                f"{g_ss / gmax * system.max_grad * 1e3:.4g} mT/m with a {_ms(d_rf)} sinc of "
                f"time-bandwidth product {SINC_TIME_BANDWIDTH:g}, above max_grad = {system.max_grad * 1e3:.4g} mT/m; "
                f"use a slice of at least {SINC_TIME_BANDWIDTH / (d_rf * gmax) * 1e3:.4g} mm or a longer "
                "SystemLimits.rf_duration"
            )
    # pypulseq 1.5 keys its RF library on the pulse data without the use, so two pulses that differ only in their use
    # (an inversion and a refocusing 180°) would be written as one: the later uses get their block started one block
    # raster step earlier per use already seen, so that their RF delays (part of the data) differ
    uses_seen: dict[tuple[float, float], list[str]] = {}
    for p in pulses:
        t0 = p.time - 0.5 * d_rf
        if not rf_raster.on(t0):
            raise ValueError(
                f"repetition {p.rep}: its pulse starts (centre − ½ rf_duration) at {_us(t0)}, not on the RF raster "
                f"({_us(system.rf_raster_time)}); put the event times on the raster{hint}"
            )
        lo, hi = grad.floor(t0), grad.ceil(p.time + 0.5 * d_rf)
        label = f"the RF pulse of repetition {p.rep}"
        knots = [[(lo, 0.0), (hi, 0.0)] for _ in range(3)]
        if g_ss > 0:
            ramp = max(1, math.ceil(g_ss / (smax * dt) - 1e-9))
            lo, hi = lo - ramp, hi + ramp
            knots = [[(lo, 0.0), (hi, 0.0)], [(lo, 0.0), (hi, 0.0)]]
            knots.append([(lo, 0.0), (lo + ramp, g_ss), (hi - ramp, g_ss), (hi, 0.0)])
        regions.append(_Region(lo, hi, knots, label))
        seen = uses_seen.setdefault((round(p.angle, 6), round(_wrap(p.phase), 6)), [])
        if _USE[p.usage] not in seen:
            seen.append(_USE[p.usage])
        b_lo = block_floor(t0 - system.rf_dead_time) - seen.index(_USE[p.usage]) * block_steps
        b_hi = block_ceil(p.time + 0.5 * d_rf + system.rf_ringdown_time)
        blocks.append(_Block(b_lo, b_hi, label, rf=p))

    # --- readouts: plateaus and shaped runs, with their ADCs; lone samples --------------------------------------------
    in_group = np.zeros(n_events, dtype=bool)
    for g in groups:
        i, j = g.first, g.stop
        in_group[i:j] = True
        r, e0, e1 = int(ev.rep[i]), int(ev.index[i]), int(ev.index[j - 1])
        what = "readout" if g.adc else "constant gradient"
        label = f"the {what} of repetition {r}, events {e0}–{e1}"
        tau = ev_end[i] - ev_start[i]
        t_a, t_b = ev_start[i], ev_end[j - 1]
        if g.kind == "plateau":
            amp = ev_m[i:j].mean(axis=0) / tau
            if np.any(np.abs(amp) > gmax * (1 + 1e-9)):
                raise ValueError(
                    f"{label}: its gradient (moment per event / event time) is "
                    f"{np.abs(amp).max() / gmax * system.max_grad * 1e3:.4g} mT/m, above max_grad = "
                    f"{system.max_grad * 1e3:.4g} mT/m; use a longer dwell or a larger FOV"
                )
            amp = np.clip(amp, -gmax, gmax)
            lo, hi = grad.floor(t_a), grad.ceil(t_b)
            regions.append(_Region(lo, hi, [[(lo, float(a)), (hi, float(a))] for a in amp], label))
        else:
            steps = tau / dt
            if abs(steps - round(steps)) > 1e-6 or not grad.on(t_a):
                raise ValueError(
                    f"{label}: its moments change from sample to sample, which needs a gradient with a corner at every "
                    f"sample: the dwell ({_us(tau)}) must be a multiple of the gradient raster "
                    f"({_us(dt)}) and the readout must start on it (it starts at {_us(t_a)})"
                )
            n = j - i
            # the gradient at the event boundaries: (g_k + g_{k+1})/2·tau = m_k; of the one-parameter family of
            # solutions g_k = p_k + (−1)^k c, the one with the lowest slew rate (max_k |s_k d_k − 2c| with
            # d_k = p_{k+1} − p_k, s_k = (−1)^k, is least for c = (max + min)/4 of s_k d_k)
            alt = np.where(np.arange(n + 1) % 2 == 0, 1.0, -1.0)
            q = np.concatenate((np.zeros((1, 3)), np.cumsum(-alt[1:, None] * 2 * ev_m[i:j] / tau, axis=0)))
            part = -alt[:, None] * q
            e_k = alt[:n, None] * np.diff(part, axis=0)
            c = 0.25 * (e_k.max(axis=0) + e_k.min(axis=0))
            amps = part + alt[:, None] * c
            slope = np.abs(np.diff(amps, axis=0)).max(initial=0.0) / tau
            if np.abs(amps).max() > gmax * (1 + 1e-9) or slope > smax * (1 + 1e-9):
                raise ValueError(
                    f"{label}: the smoothest gradient through its per-sample moments reaches "
                    f"{np.abs(amps).max() / gmax * system.max_grad * 1e3:.4g} mT/m and "
                    f"{slope / smax * system.max_slew:.4g} T/m/s (limits {system.max_grad * 1e3:.4g} mT/m, "
                    f"{system.max_slew:.4g} T/m/s)"
                )
            lo, k_steps = grad.floor(t_a), round(steps)
            knots = [[(lo + k * k_steps, float(amps[k, a])) for k in range(n + 1)] for a in range(3)]
            regions.append(_Region(lo, lo + n * k_steps, knots, label))
        if g.adc:
            if not adc_raster.on(tau):
                raise ValueError(
                    f"{label}: the dwell (event time) {_us(tau)} is not on the ADC raster "
                    f"({_us(system.adc_raster_time)})"
                )
            _adc_block(blocks, label, t_a + 0.5 * tau, adc_raster.snap(tau), j - i, ev.phase[i:j], system, hint)
    for k in singles:
        label = f"the ADC sample of {ev.label(k)}"
        _adc_block(blocks, label, ev_end[k] - 0.5 * single_dwell, single_dwell, 1, ev.phase[k : k + 1], system, hint)

    # --- fixed regions: order, merge equal plateaus, overlaps, and the virtual start and end --------------------------
    regions.sort(key=lambda g: (g.start, g.end))
    merged: list[_Region] = []
    for g in regions:
        if merged and g.start <= merged[-1].end and _same_plateau(merged[-1], g):
            last = merged[-1]
            end = max(last.end, g.end)
            merged[-1] = _Region(
                last.start,
                end,
                [[(last.start, kn[0][1]), (end, kn[0][1])] for kn in last.knots],
                f"{last.label} and {g.label}",
            )
            continue
        merged.append(g)
    regions = merged
    for a, b in zip(regions, regions[1:], strict=False):
        if b.start < a.end:
            raise ValueError(
                f"{a.label} and {b.label} overlap: their gradients need {_us((a.end - b.start) * dt)} more time "
                f"between them (the pulse itself takes ½ rf_duration = {_us(0.5 * d_rf)} from each neighbouring event"
                + (", the slice-select ramps more" if g_ss > 0 else "")
                + "; a readout plateau reaches to the gradient raster points around it)"
            )
    first_step = min([0] + [g.start for g in regions])
    start_region = _Region(first_step, first_step, [[(first_step, 0.0)] for _ in range(3)], "the sequence start")
    tail_start = max([grad.floor(t_end)] + [g.end for g in regions])
    if regions and regions[-1].end >= grad.floor(t_end):
        last = regions[-1]
        last_amp = max(abs(last.last(a)) for a in range(3))
        if last_amp > 0 and not np.any(ev_end > last.end * dt + _TIME_ATOL):
            tail_start = last.end + math.ceil(last_amp / (smax * dt) - 1e-9)
    end_region = _Region(tail_start, tail_start, [[(tail_start, 0.0)] for _ in range(3)], "the sequence end")
    all_regions = [start_region] + regions + [end_region]

    # fixed-waveform integrals (zero between regions): what each event already gets from the regions
    fixed_axes = []
    for a in range(3):
        ts, gs = [], []
        for g in regions:
            kt = [k[0] for k in g.knots[a]]
            kg = [k[1] for k in g.knots[a]]
            ts.append(np.array([kt[0]] + kt + [kt[-1]], dtype=float) * dt)
            gs.append(np.array([0.0] + kg + [0.0]))
        fixed_axes.append((np.concatenate(ts), np.concatenate(gs)) if ts else (np.zeros(0), np.zeros(0)))

    fixed_cum = [_cumulative(ts, gs, ev.bounds) if len(ts) > 1 else np.zeros(n_events + 1) for ts, gs in fixed_axes]

    def fixed_integral(a: int, k: int) -> float:
        """What the regions give event k on axis a."""
        return float(fixed_cum[a][k + 1] - fixed_cum[a][k])

    # --- lobes of the free events, gap by gap -------------------------------------------------------------------------
    free = np.flatnonzero(~in_group)
    gap_u = np.array([g.end for g in all_regions[:-1]], dtype=float) * dt
    gap_v = np.array([g.start for g in all_regions[1:]], dtype=float) * dt
    chains: list[list[int]] = [[] for _ in range(len(all_regions) - 1)]
    # the gap an event overlaps (gaps are sorted and disjoint): the first one ending after the event starts
    s_free, e_free = ev_start[free], ev_end[free]
    reach = np.where(e_free - s_free > _TIME_ATOL, e_free, s_free)
    first_gap = np.searchsorted(gap_v, s_free + _TIME_ATOL, side="right")
    for k, g_i, r_k in zip(free, first_gap, reach, strict=True):
        s, e = ev_start[k], ev_end[k]
        if g_i < len(gap_u) and gap_u[g_i] < r_k - _TIME_ATOL:
            if g_i + 1 < len(gap_u) and gap_u[g_i + 1] < r_k - _TIME_ATOL:
                raise RuntimeError(f"internal error: {ev.label(k)} spans several gradient gaps")
            chains[int(g_i)].append(int(k))
            continue
        # entirely inside a fixed region: it gets what the region plays
        for a in range(3):
            if abs(fixed_integral(a, k) - ev_m[k, a]) > MOMENT_ATOL:
                _raise_no_room(system, int(ev.rep[k]), int(ev.index[k]), ev_m[k], e - s, 0.0, None)

    lobes: list[list[tuple[int, float]]] = [[], [], []]
    for gi, chain in enumerate(chains):
        u_reg, v_reg = all_regions[gi], all_regions[gi + 1]
        u, v = u_reg.end, v_reg.start
        if not chain:
            for a in range(3):
                g0, g1 = u_reg.last(a), v_reg.first(a)
                if abs(g1 - g0) > smax * (v - u) * dt * (1 + 1e-12):
                    raise ValueError(
                        f"there is no time between {u_reg.label} and {v_reg.label} for the gradient to change from "
                        f"{g0:.6g} to {g1:.6g} Hz/m"
                    )
                lobes[a] += [(u, g0), (v, g1)]
            continue
        for pos, k in enumerate(chain):
            s, e = ev_start[k], ev_end[k]
            lo = u if pos == 0 else grad.ceil(s)
            hi = v if pos == len(chain) - 1 else grad.floor(e)
            for a in range(3):
                ga = u_reg.last(a) if pos == 0 else 0.0
                gb = v_reg.first(a) if pos == len(chain) - 1 else 0.0
                target = ev_m[k, a] - fixed_integral(a, k)
                knots = _lobe(hi - lo, ga, gb, target, dt, gmax, smax)
                if knots is None:
                    free_steps = max(hi - lo, 0)
                    need = _min_lobe_steps(free_steps, ga, gb, target, dt, gmax, smax)
                    _raise_no_room(
                        system,
                        int(ev.rep[k]),
                        int(ev.index[k]),
                        ev_m[k],
                        e - s,
                        free_steps * dt,
                        None if need is None else (need - free_steps) * dt + (e - s),
                        axis=a,
                        ends=(ga, gb),
                    )
                lobes[a] += [(lo + st, amp) for st, amp in knots]

    # --- per-axis waveforms -------------------------------------------------------------------------------------------
    waveforms = []
    for a in range(3):
        knots = [kn for g in all_regions for kn in g.knots[a]] + lobes[a]
        knots.sort(key=lambda kn: kn[0])
        ts, gs = [], []
        for t_k, g_k in knots:
            if ts and t_k == ts[-1]:
                if abs(g_k - gs[-1]) > 1e-6 * gmax:
                    raise RuntimeError(f"internal error: the {'xyz'[a]} gradient jumps at step {t_k}")
                continue
            ts.append(t_k)
            gs.append(g_k)
        waveforms.append((np.array(ts, dtype=np.int64), np.array(gs, dtype=float)))
        if abs(gs[0]) > 0 or abs(gs[-1]) > 0:
            raise RuntimeError("internal error: a gradient does not start and end at zero")

    _verify(waveforms, ev_start, ev_end, ev_m, dt, gmax, smax)

    # --- blocks -------------------------------------------------------------------------------------------------------
    blocks.sort(key=lambda b: (b.start, b.end))
    for a, b in zip(blocks, blocks[1:], strict=False):
        if b.start < a.end:
            raise ValueError(
                f"{a.label} and {b.label} are too close: their blocks (with the RF dead and ringdown times, the ADC "
                f"dead time and half a dwell around each sample) overlap by {_us((a.end - b.start) * dt)}"
                + (
                    "; consecutive ADC events must share their duration to form one readout"
                    if a.adc is not None and b.adc is not None
                    else ""
                )
            )
    last_step = max([tail_start, grad.ceil(t_end)] + [b.end for b in blocks] + [int(w[0][-1]) for w in waveforms])
    first_step = min([0] + [b.start for b in blocks] + [int(w[0][0]) for w in waveforms])
    first_step = math.floor(first_step / block_steps) * block_steps
    last_step = math.ceil(last_step / block_steps) * block_steps
    # gradient-only stretches are cut at the free events' boundaries (on the block raster; an off-raster boundary at
    # the raster point before it), so that the importer sees (nearly) the same events again
    free_bounds = np.concatenate((ev_start[free], ev_end[free]))
    cuts = np.unique([block_floor(t) for t in free_bounds]).astype(int) if len(free) else np.zeros(0, dtype=int)
    timeline: list[_Block] = []
    cursor = first_step

    def fill(lo: int, hi: int) -> None:
        inner = cuts[(cuts > lo) & (cuts < hi)]
        for a, b in zip(np.concatenate(([lo], inner)), np.concatenate((inner, [hi])), strict=True):
            timeline.append(_Block(int(a), int(b), "gradients"))

    for b in blocks:
        if b.start > cursor:
            fill(cursor, b.start)
        timeline.append(b)
        cursor = b.end
    if last_step > cursor:
        fill(cursor, last_step)
    return timeline, waveforms


def _same_plateau(a: _Region, b: _Region) -> bool:
    """Both regions are constant on every axis, at the same amplitude."""
    for ka, kb in zip(a.knots, b.knots, strict=True):
        values = [k[1] for k in ka] + [k[1] for k in kb]
        if max(values) - min(values) > 1e-9 * max(1.0, max(abs(v) for v in values)):
            return False
    return True


def _adc_block(blocks, label, window, dwell, samples, phases, system, hint) -> None:
    rf_raster = _Raster(system.rf_raster_time)
    if not rf_raster.on(window):
        raise ValueError(
            f"{label}: its sampling window starts (first sample − ½ dwell) at {_us(window)}, not on the RF raster "
            f"({_us(system.rf_raster_time)}), which Pulseq requires of ADC delays; use event times on the raster and a "
            f"dwell of an even number of RF raster steps{hint}"
        )
    steps = round(system.block_duration_raster / system.grad_raster_time)
    br = system.block_duration_raster
    lo = math.floor((window - system.adc_dead_time) / br + _TIME_ATOL / br) * steps
    hi = math.ceil((window + samples * dwell + system.adc_dead_time) / br - _TIME_ATOL / br) * steps
    adc = {"window": rf_raster.snap(window), "dwell": dwell, "samples": samples, "phases": np.array(phases, float)}
    blocks.append(_Block(lo, hi, label, adc=adc))


def _verify(waveforms, ev_start, ev_end, ev_m, dt, gmax, smax) -> None:
    """Check the waveforms against every event's moment and the limits (an internal consistency check)."""
    if len(ev_start) == 0:
        return
    bounds = np.concatenate((ev_start[:1], ev_end))
    scale = max(float(np.abs(ev_m).max(initial=0.0)), gmax * dt)
    for a, (ts, gs) in enumerate(waveforms):
        t = ts.astype(float) * dt
        got = np.diff(_cumulative(t, gs, bounds))
        err = np.abs(got - ev_m[:, a])
        if err.max(initial=0.0) > _VERIFY_RTOL * scale + MOMENT_ATOL * 1e-3:
            k = int(err.argmax())
            raise RuntimeError(
                f"internal error: the {'xyz'[a]} waveform gives event {k} a moment of {got[k]:.9g} instead of "
                f"{ev_m[k, a]:.9g} 1/m"
            )
        if np.abs(gs).max(initial=0.0) > gmax * (1 + 1e-9):
            raise RuntimeError(f"internal error: the {'xyz'[a]} waveform exceeds max_grad")
        if len(ts) > 1 and np.abs(np.diff(gs) / (np.diff(ts) * dt)).max() > smax * (1 + 1e-9):
            raise RuntimeError(f"internal error: the {'xyz'[a]} waveform exceeds max_slew")


def _raise_no_room(system, rep, event, moment, event_time, free_time, need, axis=None, ends=None):
    m = np.asarray(moment, dtype=float)
    mmt = max(min_moment_time(float(v), system) for v in m)
    where = _event_label(rep, event)
    detail = ""
    mt_per_hz = system.max_grad / system.max_grad_hz * 1e3
    if ends is not None and (ends[0] != 0 or ends[1] != 0):
        detail = (
            f" (its {'xyz'[axis]} gradient must also go from {ends[0] * mt_per_hz:.4g} to {ends[1] * mt_per_hz:.4g} "
            "mT/m for the neighbouring readout)"
        )
    need_text = f"it needs at least {_ms(need)}" if need is not None else "no duration is enough"
    raise ValueError(
        f"{where}: its moment ({m[0]:.6g}, {m[1]:.6g}, {m[2]:.6g}) 1/m does not fit in its {_ms(event_time)}, of which "
        f"{_ms(free_time)} are free of RF pulses and readout plateaus{detail}; {need_text} "
        f"(min_moment_time = {_ms(mmt)} for a lobe from and to zero, plus the neighbouring pulse's rf_gap = "
        f"{_ms(system.rf_gap)} where it borders one)"
    )


# ----------------------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------------------


def _opts(system: SystemLimits):
    import pypulseq as pp

    return pp.Opts(
        max_grad=system.max_grad_hz,
        grad_unit="Hz/m",
        max_slew=system.max_slew_hz,
        slew_unit="Hz/m/s",
        rf_dead_time=system.rf_dead_time,
        rf_ringdown_time=system.rf_ringdown_time,
        adc_dead_time=system.adc_dead_time,
        grad_raster_time=system.grad_raster_time,
        rf_raster_time=system.rf_raster_time,
        adc_raster_time=system.adc_raster_time,
        block_duration_raster=system.block_duration_raster,
    )


def to_pulseq(
    sequence: Sequence,
    *,
    system: SystemLimits = DEFAULT_SYSTEM,
    rf: str = "block",
    slice_thickness: float | None = None,
    fov=None,
    name: str = "gradmr",
    round_times: bool = False,
):
    """The sequence as a ``pypulseq.Sequence`` with real RF pulses, ADCs and gradients (rules in the module docstring).

    Parameters
    ----------
    sequence : Sequence
        What to export; its tensors are detached and read as float64 (float32 event times through their shortest
        decimal form, so that times meant to be on the rasters are).
    system : SystemLimits
        Gradient limits, RF duration, dead times and rasters the waveforms obey.
    rf : {"block", "sinc"}
        RF pulse shape, of duration ``system.rf_duration``.
    slice_thickness : float, optional
        Slice thickness [m] of slice-selective sinc pulses (``rf="sinc"`` only); without it the pulses are not
        slice-selective.
    fov : 2 or 3 floats, optional
        Field of view [m], written as the ``FOV`` definition.
    name : str
        The ``Name`` definition.
    round_times : bool
        Move pulse starts and ADC sampling windows that are off the RF raster onto it (by at most half a raster
        step, moving the event boundaries they sit on; the moments stay with their events) instead of raising.

    Returns
    -------
    pypulseq.Sequence
        Passes ``check_timing()``; ``write(path)`` it, or use :func:`write_pulseq`.

    Raises
    ------
    ValueError
        An event's moment does not fit in the time it has (the message names the repetition, the event, the moment,
        and the time needed), a readout gradient exceeds ``max_grad``, blocks would overlap (an ADC sample too close
        to a pulse), times are off the RF/ADC rasters, or an option is invalid.
    """
    import pypulseq as pp

    if not isinstance(sequence, Sequence):
        raise TypeError(f"sequence must be a gradmr Sequence, got {type(sequence).__name__}")
    fov_values = _check_options(system, rf, slice_thickness, fov, name)
    sequence.validate()
    if len(sequence) == 0 or (sequence.duration() == 0 and not any(float(r.pulse_angle) for r in sequence)):
        raise ValueError("the sequence is empty: nothing to export")
    timeline, waveforms = _plan(
        sequence, system, None if slice_thickness is None else float(slice_thickness), bool(round_times)
    )

    opts = _opts(system)
    seq = pp.Sequence(opts)
    dt = system.grad_raster_time
    rf_raster = _Raster(system.rf_raster_time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypulseq's own deprecation notes
        for block in timeline:
            a, b = block.start, block.end
            events = []
            if block.rf is not None:
                p = block.rf
                delay = rf_raster.snap(p.time - 0.5 * system.rf_duration - a * dt)
                common = dict(
                    flip_angle=p.angle,
                    duration=system.rf_duration,
                    phase_offset=_wrap(p.phase),
                    delay=delay,
                    system=opts,
                    use=_USE[p.usage],
                )
                if rf == "block":
                    events.append(pp.make_block_pulse(**common))
                else:
                    events.append(
                        pp.make_sinc_pulse(time_bw_product=SINC_TIME_BANDWIDTH, apodization=SINC_APODIZATION, **common)
                    )
            if block.adc is not None:
                adc = block.adc
                phases = adc["phases"]
                offset_phase = _wrap(float(phases[0]))
                modulation = None
                if np.any(np.abs(phases - phases[0]) > 0):
                    modulation = np.array([math.remainder(float(ph - phases[0]), 2 * math.pi) for ph in phases])
                events.append(
                    pp.make_adc(
                        num_samples=int(adc["samples"]),
                        dwell=adc["dwell"],
                        delay=rf_raster.snap(adc["window"] - a * dt),
                        phase_offset=offset_phase,
                        phase_modulation=modulation,
                        system=opts,
                    )
                )
            for axis, (ts, gs) in enumerate(waveforms):
                inner = (ts > a) & (ts < b)
                va, vb = np.interp([a, b], ts, gs, left=0.0, right=0.0)
                amps = np.concatenate(([va], gs[inner], [vb]))
                if np.all(amps == 0):
                    continue
                times = np.concatenate(([a], ts[inner], [b])).astype(float) - a
                events.append(
                    pp.make_extended_trapezoid(
                        "xyz"[axis],
                        amplitudes=amps,
                        times=times * dt,
                        max_grad=system.max_grad_hz * (1 + 1e-9),
                        max_slew=system.max_slew_hz * (1 + 1e-9),
                        system=opts,
                    )
                )
            events.append(pp.make_delay((b - a) * dt))
            seq.add_block(*events)
    if fov_values is not None:
        values = list(fov_values)
        if len(values) == 2:
            values.append(float(slice_thickness) if slice_thickness is not None else FOV_Z_2D)
        seq.set_definition("FOV", values)
    seq.set_definition("Name", name)
    return seq


def write_pulseq(
    sequence: Sequence,
    path: str | os.PathLike,
    *,
    system: SystemLimits = DEFAULT_SYSTEM,
    rf: str = "block",
    slice_thickness: float | None = None,
    fov=None,
    name: str = "gradmr",
    round_times: bool = False,
) -> Path:
    """Export with :func:`to_pulseq` and write the ``.seq`` file; returns its path.

    Raises ``RuntimeError`` if pypulseq's ``check_timing()`` finds an error (it should not: that would be a bug in
    the export), besides the errors of :func:`to_pulseq`.
    """
    seq = to_pulseq(
        sequence,
        system=system,
        rf=rf,
        slice_thickness=slice_thickness,
        fov=fov,
        name=name,
        round_times=round_times,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok, report = seq.check_timing()
        if not ok:
            first = ", ".join(f"block {e.block}: {e.event}.{e.field} {e.error_type}" for e in report[:3])
            raise RuntimeError(f"pypulseq's timing check failed ({len(report)} errors; {first})")
        p = Path(path)
        seq.write(str(p), check_timing=False)
    return p
