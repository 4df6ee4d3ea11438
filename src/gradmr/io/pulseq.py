"""Import Pulseq ``.seq`` files (read with pypulseq) into a :class:`~gradmr.sequence.Sequence`.

How a Pulseq file becomes repetitions of events
-----------------------------------------------
* **RF** – every RF pulse (block, sinc, arbitrary shape) becomes an *instantaneous* pulse at its
  centre (``rf.delay + rf.center`` from the block start; pypulseq's ``calc_rf_center`` for files
  older than format 1.5). The flip angle is ``2π·|∫ signal dt|`` (signal in Hz) and the phase is
  ``rf.phase_offset + 2π·rf.freq_offset·rf.center + arg ∫ signal dt``. The ``freq_offset`` term is
  the phase the frequency-shifted waveform has at the centre (as pypulseq's ``rf_times`` reports it);
  with the usual off-centre-slice recipe ``phase_offset = −2π·freq_offset·center`` it cancels. The
  frequency offset itself (slice position) is otherwise ignored: slice selection is not simulated,
  the pulse acts on every voxel. ``freq_ppm``/``phase_ppm`` (B0-dependent offsets) are ignored.
  Shapes on the default RF raster are piecewise constant (sample ``i`` holds over
  ``[i, i+1)·raster``); shapes with an explicit time shape (e.g. ``make_block_pulse``) are
  piecewise linear between their points, as in the Pulseq specification.
* Each pulse starts a new :class:`~gradmr.sequence.Repetition`. Time before the first pulse (if
  any) becomes a first repetition with a 0 rad pulse (``pulse_usage="undefined"``). A sequence
  without RF becomes a single such repetition.
* ``rf.use`` → ``pulse_usage``: excitation → ``"excitation"``, refocusing → ``"refocusing"``,
  inversion → ``"inversion"``, saturation and preparation → ``"storage"`` (magnetisation
  preparation: the k-space trajectory is neither reset nor negated), other/undefined/missing →
  ``"undefined"``. Note that :meth:`Sequence.kspace` does not reset k at an ``"undefined"``
  pulse, whereas pypulseq's ``calculate_kspace`` treats undefined pulses as excitations; write
  ``use="excitation"`` in the generating script for a faithful trajectory.
* **Events** – event boundaries lie at block ends, RF centres and ADC samples (boundaries closer
  than :data:`TIME_TOLERANCE` are merged). Pulseq ADC sample ``i`` is at
  ``adc.delay + (i + 0.5)·dwell`` from its block start; it becomes the event that *ends* there.
  ``event_time`` is the interval length.
* **Gradients** – trapezoids, extended trapezoids and arbitrary waveforms are piecewise linear
  (arbitrary waveforms: samples at the raster centres, ``first``/``last`` at the shape edges, as
  pypulseq's ``waveforms`` does); each event's moment is their exact integral over the event
  (amplitudes in Hz/m, so moments are in 1/m). Gradient area played out during a pulse is split at
  its centre: before the centre to the previous repetition, after it to the new one.
* **ADC phase** – ``adc_phase = adc.phase_offset (+ adc.phase_modulation[i])``. Pulseq's
  convention (RF spoiling sets the RF and the ADC phase offsets equal, and the received signal is
  then independent of that phase) is the same as gradmr's ``s ← s·e^{−iφ_adc}``, so no conversion
  is needed. (MR-zero stores ``π/2 − phase_offset`` and multiplies by ``e^{+iφ}``: for the same
  file its signal is ``i·`` ours.) ``adc.freq_offset`` is ignored.
* Labels, triggers and soft delays (their default durations are used) are ignored.

Anything we cannot represent raises :class:`PulseqImportError` naming the 1-based block index.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..sequence.core import Repetition, Sequence

__all__ = ["PulseqImportError", "TIME_TOLERANCE", "load_pulseq", "read_definitions"]

#: Event boundaries closer than this [s] are merged (Pulseq rasters are ≥ 50 ns apart).
TIME_TOLERANCE = 1e-9

_USAGE_MAP = {
    "excitation": "excitation",
    "refocusing": "refocusing",
    "inversion": "inversion",
    "saturation": "storage",
    "preparation": "storage",
    "other": "undefined",
    "undefined": "undefined",
}


class PulseqImportError(ValueError):
    """A Pulseq file is malformed or holds something a :class:`Sequence` cannot represent."""


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Pulseq file not found: {str(p)!r}")
    return p


def _parse_value(tokens: list[str], raw: str) -> Any:
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        return raw
    if len(values) == 1:
        return values[0]
    return tuple(values)


def read_definitions(path: str | os.PathLike) -> dict[str, Any]:
    """The ``[DEFINITIONS]`` section of a Pulseq file.

    Numeric entries become ``float`` (one value) or a ``tuple`` of floats (e.g. ``FOV`` in m,
    as pypulseq writes it); other entries stay strings. A file without the section gives ``{}``.

    Raises ``FileNotFoundError`` for a missing file and :class:`PulseqImportError` for a file that
    is not a Pulseq file (no ``[VERSION]`` or ``[BLOCKS]`` section).
    """
    p = _check_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PulseqImportError(f"{str(p)!r} is malformed: not a text Pulseq file ({e})") from e
    definitions: dict[str, Any] = {}
    sections = set()
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped
            sections.add(section)
            continue
        if section == "[DEFINITIONS]":
            key, _, rest = stripped.partition(" ")
            rest = rest.strip()
            definitions[key] = _parse_value(rest.split(), rest)
    if not sections & {"[VERSION]", "[BLOCKS]"}:
        raise PulseqImportError(f"{str(p)!r} is malformed: no [VERSION] or [BLOCKS] section (not a Pulseq file?)")
    return definitions


def _close_files_in_traceback(e: BaseException) -> None:
    """pypulseq's reader leaves its file open when it fails: close it (else a ResourceWarning follows)."""
    tb = e.__traceback__
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, io.IOBase) and not value.closed:
                value.close()
        tb = tb.tb_next


def _read_seq(p: Path):
    import pypulseq as pp

    read_definitions(p)  # rejects files without Pulseq sections before pypulseq parses them
    seq = pp.Sequence()
    try:
        seq.read(str(p))
    except Exception as e:  # pypulseq raises anything from ValueError to IndexError on bad input
        _close_files_in_traceback(e)
        raise PulseqImportError(f"{str(p)!r} is malformed: pypulseq could not read it ({type(e).__name__}: {e})") from e
    if not getattr(seq, "block_events", None):
        raise PulseqImportError(f"{str(p)!r} is malformed: it holds no [BLOCKS] (not a Pulseq file, or truncated)")
    return seq


def _rf_integral(rf, raster: float) -> complex:
    """∫ signal dt [cycles] of an RF shape (piecewise constant on the raster, else linear)."""
    t = np.asarray(rf.t, dtype=float)
    s = np.asarray(rf.signal, dtype=complex)
    regular = len(t) > 0 and np.allclose(t, (np.arange(len(t)) + 0.5) * raster, rtol=0, atol=1e-3 * raster)
    if regular:
        return complex(s.sum() * raster)
    if len(t) < 2:
        raise ValueError("an RF shape with an explicit time shape needs at least two points")
    return complex(np.sum(0.5 * (s[1:] + s[:-1]) * np.diff(t)))


def _grad_knots(grad, grad_raster: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (from block start) and amplitudes [Hz/m] of a piecewise-linear gradient."""
    delay = float(grad.delay)
    if grad.type == "trap":
        r, f, d = float(grad.rise_time), float(grad.flat_time), float(grad.fall_time)
        a = float(grad.amplitude)
        t = delay + np.array([0.0, r, r + f, r + f + d])
        return t, np.array([0.0, a, a, 0.0])
    tt = np.asarray(grad.tt, dtype=float)
    w = np.asarray(grad.waveform, dtype=float)
    time_id = getattr(grad, "time_id", None)
    if time_id is not None and time_id > 0:
        # extended trapezoid: the points are the corners, tt starts at 0 and ends at the shape end
        return delay + tt, w
    # arbitrary waveform (regular raster or oversampled): samples at the raster (half-)centres,
    # first/last at the shape edges
    if time_id == -1:
        t_end = 0.5 * (len(w) + 1) * grad_raster
    else:
        t_end = float(grad.shape_dur)
    t = np.concatenate(([0.0], tt, [t_end]))
    a = np.concatenate(([float(grad.first)], w, [float(grad.last)]))
    return delay + t, a


class _PiecewiseLinear:
    """Cumulative integral of a piecewise-linear function given by knots (duplicate times = jumps)."""

    def __init__(self, t: np.ndarray, g: np.ndarray) -> None:
        self.t = t
        self.g = g
        dt = np.diff(t)
        self.cum = np.concatenate(([0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * dt)))
        with np.errstate(divide="ignore", invalid="ignore"):
            self.slope = np.where(dt > 0, np.diff(g) / np.where(dt > 0, dt, 1.0), 0.0)

    def integral(self, b: np.ndarray) -> np.ndarray:
        t = self.t
        if len(t) < 2:
            return np.zeros_like(b)
        j = np.clip(np.searchsorted(t, b, side="right") - 1, 0, len(t) - 2)
        x = b - t[j]
        f = self.cum[j] + self.g[j] * x + 0.5 * self.slope[j] * x * x
        f = np.where(b <= t[0], 0.0, f)
        return np.where(b >= t[-1], self.cum[-1], f)


def _block_error(index: int, message: str) -> PulseqImportError:
    return PulseqImportError(f"block {index}: {message}")


def load_pulseq(path: str | os.PathLike, *, dtype: torch.dtype = torch.float64) -> Sequence:
    """Read a Pulseq ``.seq`` file into a :class:`Sequence` (see the module docstring for the rules).

    Parameters
    ----------
    path : path-like
        The ``.seq`` file.
    dtype : torch.dtype
        Floating dtype of the returned tensors (times and moments are computed in float64).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    PulseqImportError
        The file is malformed, or a block holds something that cannot be represented (the
        message names the 1-based block index).
    """
    p = _check_path(path)
    seq = _read_seq(p)
    rf_raster = float(seq.rf_raster_time)
    grad_raster = float(seq.grad_raster_time)

    block_ids = list(seq.block_events.keys())
    durations = np.array([float(seq.block_durations[i]) for i in block_ids])
    if not np.all(np.isfinite(durations)) or np.any(durations < 0):
        raise PulseqImportError(f"{str(p)!r} is malformed: invalid block durations")
    starts = np.concatenate(([0.0], np.cumsum(durations)))
    total = float(starts[-1])

    pulses: list[tuple[float, float, float, str, int]] = []  # (time, angle, phase, usage, block)
    adc_times: list[np.ndarray] = []
    adc_phases: list[np.ndarray] = []
    knots: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {c: ([], []) for c in "xyz"}
    tol = TIME_TOLERANCE

    for n, bid in enumerate(block_ids):
        t0, dur = float(starts[n]), float(durations[n])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                block = seq.get_block(bid)
        except Exception as e:
            raise _block_error(bid, f"pypulseq could not decode it ({type(e).__name__}: {e})") from e

        rf = getattr(block, "rf", None)
        if rf is not None:
            center = getattr(rf, "center", None)
            if center is None or not np.isfinite(center):
                raise _block_error(bid, "the RF pulse has no defined centre")
            center = float(center)
            shape_dur = float(getattr(rf, "shape_dur", center))
            if center < -tol or center > shape_dur + tol:
                raise _block_error(
                    bid, f"the RF centre {center * 1e6:.4g} µs lies outside the pulse (0 … {shape_dur * 1e6:.4g} µs)"
                )
            tc = float(rf.delay) + center
            if tc > dur + tol:
                raise _block_error(
                    bid, f"the RF centre at {tc * 1e6:.4g} µs lies after the block end ({dur * 1e6:.4g} µs)"
                )
            try:
                integral = _rf_integral(rf, rf_raster)
            except ValueError as e:
                raise _block_error(bid, str(e)) from e
            if not np.isfinite(integral):
                raise _block_error(bid, "the RF waveform contains NaN or infinite values")
            angle = 2 * math.pi * abs(integral)
            phase = float(rf.phase_offset) + 2 * math.pi * float(getattr(rf, "freq_offset", 0.0)) * center
            phase += float(np.angle(integral))
            use = str(getattr(rf, "use", "undefined") or "undefined")
            pulses.append((t0 + tc, angle, phase, _USAGE_MAP.get(use, "undefined"), bid))

        for c in "xyz":
            grad = getattr(block, "g" + c, None)
            if grad is None:
                continue
            tk, gk = _grad_knots(grad, grad_raster)
            if not (np.all(np.isfinite(tk)) and np.all(np.isfinite(gk))):
                raise _block_error(bid, f"the g{c} gradient contains NaN or infinite values")
            if np.any(np.diff(tk) < -tol):
                raise _block_error(bid, f"the g{c} gradient has decreasing time points")
            if tk[-1] > dur + 1e-6 * max(dur, 1e-3) + tol:
                raise _block_error(
                    bid, f"the g{c} gradient ends at {tk[-1] * 1e6:.4g} µs, after the block end ({dur * 1e6:.4g} µs)"
                )
            # zero knots at both ends make the channel's global function zero between waveforms
            knots[c][0].append(np.concatenate(([tk[0]], tk, [tk[-1]])) + t0)
            knots[c][1].append(np.concatenate(([0.0], gk, [0.0])))

        adc = getattr(block, "adc", None)
        if adc is not None:
            ns = int(adc.num_samples)
            dwell = float(adc.dwell)
            if ns < 1 or not dwell > 0:
                raise _block_error(bid, f"the ADC has {ns} samples of dwell {dwell} s")
            ts = float(adc.delay) + (np.arange(ns) + 0.5) * dwell
            if ts[-1] > dur + tol:
                raise _block_error(
                    bid, f"the last ADC sample at {ts[-1] * 1e6:.4g} µs lies after the block end ({dur * 1e6:.4g} µs)"
                )
            ph = np.full(ns, float(adc.phase_offset))
            mod = np.asarray(getattr(adc, "phase_modulation", ()), dtype=float)
            if mod.size:
                if mod.size != ns:
                    raise _block_error(bid, f"the ADC phase modulation has {mod.size} values for {ns} samples")
                ph = ph + mod
            adc_times.append(t0 + ts)
            adc_phases.append(ph)

    # --- event boundaries -------------------------------------------------------------------
    pulse_times = np.array([q[0] for q in pulses])
    samples = np.concatenate(adc_times) if adc_times else np.zeros(0)
    sample_phase = np.concatenate(adc_phases) if adc_phases else np.zeros(0)
    if samples.size > 1 and np.any(np.diff(samples) <= tol):
        raise PulseqImportError(f"{str(p)!r}: ADC samples overlap in time")
    cand = np.sort(np.concatenate((samples, pulse_times, starts)))
    # merge boundaries closer than tol (the earlier of each pair is kept; samples and pulses are
    # then mapped to their nearest boundary)
    keep = np.concatenate(([True], np.diff(cand) > tol))
    bounds = cand[keep]
    bounds[0] = max(bounds[0], 0.0)

    def locate(times: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted(bounds, times), 0, bounds.size - 1)
        idx_lo = np.clip(idx - 1, 0, bounds.size - 1)
        closer = np.abs(bounds[idx_lo] - times) < np.abs(bounds[idx] - times)
        return np.where(closer, idx_lo, idx)

    n_events = bounds.size - 1
    event_time = np.diff(bounds)
    adc_usage = np.zeros(n_events, dtype=bool)
    adc_phase = np.zeros(n_events)
    if samples.size:
        si = locate(samples)
        if np.any(si == 0):
            raise PulseqImportError(f"{str(p)!r}: an ADC sample lies at the very start of the sequence")
        adc_usage[si - 1] = True
        adc_phase[si - 1] = sample_phase
        if adc_usage.sum() != samples.size:
            raise PulseqImportError(f"{str(p)!r}: ADC samples closer than {tol} s could not be separated")

    gradm = np.zeros((n_events, 3))
    for ci, c in enumerate("xyz"):
        if not knots[c][0]:
            continue
        pl = _PiecewiseLinear(np.concatenate(knots[c][0]), np.concatenate(knots[c][1]))
        if np.any(np.diff(pl.t) < -tol):
            raise PulseqImportError(f"{str(p)!r}: g{c} gradients of consecutive blocks overlap in time")
        gradm[:, ci] = np.diff(pl.integral(bounds))

    # --- repetitions --------------------------------------------------------------------------
    pulse_idx = [int(k) for k in locate(pulse_times)] if pulses else []
    specs: list[tuple[float, float, str]] = [(q[1], q[2], q[3]) for q in pulses]
    split = list(pulse_idx)
    if not pulses or pulse_idx[0] > 0:
        specs.insert(0, (0.0, 0.0, "undefined"))
        split.insert(0, 0)
    for prev, k, q in zip(pulse_idx, pulse_idx[1:], pulses[1:], strict=False):
        if k <= prev:
            raise _block_error(q[4], "its RF centre coincides with the previous one")
    split.append(n_events)

    def tens(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float64).to(dtype)

    reps = []
    for r, (angle, phase, usage) in enumerate(specs):
        a, b = split[r], split[r + 1]
        reps.append(
            Repetition(
                pulse_angle=torch.tensor(angle, dtype=dtype),
                pulse_phase=torch.tensor(phase, dtype=dtype),
                event_time=tens(event_time[a:b]),
                gradm=tens(gradm[a:b]),
                adc_usage=torch.as_tensor(adc_usage[a:b].copy()),
                adc_phase=tens(adc_phase[a:b]),
                pulse_usage=usage,
            )
        )
    out = Sequence(reps)
    if abs(float(sum(event_time)) - total) > 1e-6 * max(total, 1e-3):
        raise PulseqImportError(f"{str(p)!r}: internal timing mismatch ({sum(event_time)} s vs {total} s)")
    return out
