"""Non-Cartesian 2D spoiled gradient echoes: radial (golden-angle) spokes and Archimedean spirals, and blipped EPI.

All three builders keep the spoiling of :func:`~gradmr.sequence.flash`: quadratic RF spoiling (ADC phase = RF
phase), the in-plane readout moment rewound at the end of every TR and then a constant spoiler along x
(``spoiler_cycles`` per voxel). Every TR therefore has the *same* net moment as a FLASH TR, so the echo pathways and
the contrast equal those of a FLASH with the same flip angle, TE and TR; only the order (and, for EPI, the time) in
which k-space is sampled differs. Reconstruct radial and spiral data with
:func:`gradmr.recon.noncartesian.reconstruct_noncartesian` (exact CG) and EPI data, which lie on the Cartesian grid,
with :func:`gradmr.recon.reconstruct_cartesian`, both from ``seq.kspace()``.

Angle convention (radial and spiral)
    An angle θ is measured in the x–y plane from +x towards +y (counter-clockwise with +y up, as the images are
    drawn). A radial spoke at θ runs along ``u = (cos θ, sin θ)`` from ``−k_max·u`` through the centre; a spiral
    interleaf ``j`` is the first one rotated by ``2π j / n_interleaves``.

Scanner limits
    Events are sized with :class:`~gradmr.sequence.system.SystemLimits`. Radial and EPI: one flat readout gradient
    ``1/(fov·dwell)`` per axis ≤ ``max_grad``, the same moment in every dwell event (EPI: between lines a blip
    event long enough to turn it around at ``max_slew`` and to step k_y). Spiral: a gradient with a corner at
    every sample (piecewise linear from 0, so dwell and TE must lie on the gradient raster), designed under
    ``max_grad`` and ``max_slew``; each dwell event holds its exact integral. The event after each pulse and the one
    before the next leave :attr:`~gradmr.sequence.system.SystemLimits.rf_gap` and room for their lobes and for
    ramping the readout gradient up or down (:func:`~gradmr.sequence.system.min_moment_time`), so that
    :mod:`gradmr.io.pulseq_export` can write every event as real gradients.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._checks import check_count, check_fits, check_flip, check_fov, check_matrix, check_positive
from .core import Repetition, Sequence
from .flash import RF_SPOIL_117
from .system import DEFAULT_SYSTEM, SystemLimits, min_moment_time

#: The golden ratio φ = (1 + √5)/2.
GOLDEN_RATIO = (1 + math.sqrt(5)) / 2

#: Golden-angle increment of radial spokes, π/φ = 111.246…° (Winkelmann et al., IEEE TMI 2007;26:68) [rad].
GOLDEN_ANGLE = math.pi / GOLDEN_RATIO

#: Fraction of ``max_grad`` and ``max_slew`` the spiral design aims at, so that its discretisation (knots a dwell
#: apart, a finite design grid) stays within the limits.
SPIRAL_SAFETY = 0.98

#: Default repetitions without ADC before the acquisition: 100 TRs (1 s at the default TR) bring GM and WM to
#: within a few per cent of the RF-spoiled steady state. Without them every spoke (interleaf) carries a different
#: transient signal, which the golden-angle (interleaved) order spreads into streaks, and a spiral of a few
#: interleaves shows the transient (proton-density-like) contrast instead of the T1-weighted steady state.
DEFAULT_DUMMY_SCANS = 100

#: Slack on timing checks [s]: sums of raster-rounded times carry float round-off.
_TIME_EPS = 1e-12

#: Points of the spiral design grid per turn of the spiral.
_SPIRAL_GRID_PER_TURN = 2000

__all__ = [
    "DEFAULT_DUMMY_SCANS",
    "epi",
    "GOLDEN_ANGLE",
    "GOLDEN_RATIO",
    "PARAMETERS",
    "radial_gre",
    "spiral_gre",
    "spiral_trajectory",
    "spoke_angles",
]


def _check_size(matrix) -> int:
    """A square in-plane matrix as one integer (an int, or two equal ints)."""
    values = (matrix,) if isinstance(matrix, int | np.integer) else tuple(matrix)
    if len(values) == 2 and values[0] == values[1]:
        values = values[:1]
    if len(values) != 1 or isinstance(values[0], bool) or int(values[0]) != values[0] or int(values[0]) < 2:
        raise ValueError(f"matrix must be one integer N ≥ 2 (an N × N image), got {matrix!r}")
    return int(values[0])


def _check_fov(fov) -> float:
    values = (fov,) if isinstance(fov, int | float) else tuple(float(v) for v in fov)
    if len(values) == 2 and values[0] == values[1]:
        values = values[:1]
    if len(values) != 1 or not 0 < float(values[0]) <= 1:
        raise ValueError(f"fov must be one length in (0, 1] m (a square field of view), got {fov!r}")
    return float(values[0])


def _raster(t: float, system: SystemLimits) -> float:
    """``t`` rounded up to the gradient raster [s]."""
    r = system.grad_raster_time
    return math.ceil(t / r - 1e-9) * r


def _ramp(gradient_hz: float, system: SystemLimits) -> tuple[float, float]:
    """Time [s] to ramp a gradient [Hz/m] to or from zero at the maximum slew, and the moment [1/m] of that ramp."""
    t = _raster(abs(gradient_hz) / system.max_slew_hz, system)
    return t, abs(gradient_hz) * t / 2


def _spoil_phase(increment: float, n: int) -> float:
    return increment * n * (n + 1) / 2


def spoke_angles(n: int, golden: bool = True, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Angles of ``n`` radial spokes [rad], shape ``(n,)``, in ``[0, π)``.

    ``golden=True``: ``θ_i = (i · π/φ) mod π`` (increment :data:`GOLDEN_ANGLE` = 111.246…°, Winkelmann et al. 2007),
    so that any run of consecutive spokes covers k-space nearly uniformly. ``golden=False``: ``θ_i = i·π/n``, uniform
    over 180°. Angles are measured from +x towards +y; a spoke at θ is read from ``−k_max (cos θ, sin θ)`` outwards
    through the centre, so a spoke and its reverse (θ + π) are the same line and one half-turn covers k-space.
    """
    n = check_count("n", n)
    i = torch.arange(n, dtype=torch.float64)
    theta = torch.remainder(i * GOLDEN_ANGLE, math.pi) if golden else i * (math.pi / n)
    return theta.to(dtype)


def radial_gre(
    *,
    matrix: int = 64,
    fov: float = 0.2,
    n_spokes: int | None = None,
    flip_angle: float = math.radians(10.0),
    tr: float = 10e-3,
    te: float | None = None,
    dwell: float = 30e-6,
    golden_angle: bool = True,
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    dummy_scans: int = DEFAULT_DUMMY_SCANS,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A 2D radial spoiled gradient echo: one spoke through the k-space centre per TR.

    Parameters
    ----------
    matrix : int
        N: samples per spoke and the N × N image it resolves (two equal ints are accepted).
    fov : float
        Field of view [m] (square); k-space steps along a spoke are 1/fov.
    n_spokes : int, optional
        Number of spokes; default ``ceil(π/2 · N)``, which samples the rim of k-space at the Nyquist distance.
    flip_angle : float
        Excitation flip angle [rad], in (0, π].
    tr : float
        Repetition time [s].
    te : float, optional
        Echo time [s], pulse to the k = 0 sample; default: the shortest the system allows (RF gap, prewinder and
        readout ramp).
    dwell : float
        ADC dwell [s]; the readout gradient is ``1/(fov · dwell)`` [Hz/m] and must stay ≤ ``system.max_grad``.
    golden_angle : bool
        Golden-angle spoke order (see :func:`spoke_angles`); otherwise uniform over 180°.
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad] (pulse ``n`` has phase ``inc·n(n+1)/2``, demodulated at the ADC).
    spoiler_cycles : float
        Spoiler along x after the rewound readout, in cycles per voxel (moment ``spoiler_cycles · N / fov``).
    dummy_scans : int
        Repetitions without ADC before the spokes (same spoiling), to approach the steady state
        (:data:`DEFAULT_DUMMY_SCANS`).
    system : SystemLimits
        Gradient and RF limits the events are sized for.

    Returns
    -------
    Sequence
        ``dummy_scans + n_spokes`` repetitions of ``N + 2`` events. Spoke ``i`` at angle θ_i (:func:`spoke_angles`)
        samples ``k = (n − N//2)/fov · (cos θ_i, sin θ_i)`` for n = 0 … N − 1; sample ``N//2`` of each spoke is the
        centre and lies at TE, as in :func:`~gradmr.sequence.flash`.
    """
    n = _check_size(matrix)
    fov = _check_fov(fov)
    spokes = math.ceil(math.pi / 2 * n) if n_spokes is None else check_count("n_spokes", n_spokes)
    check_flip("flip_angle", flip_angle)
    check_positive("tr", tr)
    check_positive("dwell", dwell)
    check_count("dummy_scans", dummy_scans, minimum=0)
    if not math.isfinite(spoiler_cycles) or spoiler_cycles < 0:
        raise ValueError(f"spoiler_cycles must be ≥ 0, got {spoiler_cycles}")
    dk = 1.0 / fov
    g_read = dk / dwell  # Hz/m along the spoke; worst axis when the spoke lies on it
    if g_read > system.max_grad_hz:
        raise ValueError(
            f"dwell = {dwell * 1e6:.3g} us is shorter than fov = {fov * 1e3:.3g} mm allows with max_grad = "
            f"{system.max_grad * 1e3:.3g} mT/m (minimum {dk / system.max_grad_hz * 1e6:.3g} us)"
        )
    t_ramp, m_ramp = _ramp(g_read, system)
    half = n // 2
    pre_moment = (half + 1) * dk  # |prewinder| along the spoke, before the first sample event
    end_moment = (n - half - 1) * dk  # k at the last sample
    spoiler = spoiler_cycles * n * dk
    min_pre = system.rf_gap + min_moment_time(pre_moment + m_ramp, system) + t_ramp
    t_to_center = (half + 1) * dwell
    if te is None:
        te = max(_raster(min_pre, system), min_pre) + t_to_center
    check_positive("te", te)
    why = "the RF gap, the prewinder, the readout ramp and half the readout"
    check_fits("te", te, min_pre + t_to_center - _TIME_EPS, why)
    pre = te - t_to_center
    post = tr - pre - n * dwell
    min_post = t_ramp + min_moment_time(end_moment + m_ramp + spoiler, system) + system.rf_gap
    check_fits(
        "tr", tr, pre + n * dwell + min_post - _TIME_EPS, "te, the second half of the readout, rewinder and spoiler"
    )

    angles = spoke_angles(spokes, golden_angle, dtype=torch.float64).tolist()
    schedule = [None] * dummy_scans + angles
    reps = []
    for i, theta in enumerate(schedule):
        phase = _spoil_phase(rf_spoil_increment, i)
        u = (math.cos(theta or 0.0), math.sin(theta or 0.0))
        rep = Repetition.create(n + 2, pulse_angle=flip_angle, pulse_phase=phase, dtype=dtype)
        event_time = torch.full((n + 2,), dwell, dtype=dtype)
        event_time[0] = pre
        event_time[-1] = post
        gradm = torch.zeros(n + 2, 3, dtype=dtype)
        for a in range(2):
            gradm[0, a] = -pre_moment * u[a]
            gradm[1:-1, a] = dk * u[a]
            gradm[-1, a] = -end_moment * u[a]
        gradm[-1, 0] += spoiler
        adc = torch.zeros(n + 2, dtype=torch.bool)
        if theta is not None:
            adc[1:-1] = True
        adc_phase = torch.full((n + 2,), phase, dtype=dtype) * adc
        reps.append(rep.replace(event_time=event_time, gradm=gradm, adc_usage=adc, adc_phase=adc_phase))
    return Sequence(reps)


def _spiral_design(n: int, fov: float, n_int: int, dwell: float, system: SystemLimits) -> tuple[np.ndarray, np.ndarray]:
    """``(k, g)`` of the first interleaf at ``t = i·dwell``: positions [1/m] and gradients [Hz/m], ``(samples + 1, 2)``.

    The gradient is piecewise linear between these knots (``g[0] = 0``), the waveform a Pulseq arbitrary gradient
    with a corner at every sample would play; ``k`` is its exact integral (trapezoids), so the events' moments
    ``k[i] − k[i−1] = (g[i−1] + g[i])/2 · dwell`` and the knots satisfy the limits whenever the continuous design does.
    """
    k_max = n / (2 * fov)
    lam = n_int / (2 * math.pi * fov)
    theta_max = k_max / lam
    v_max = SPIRAL_SAFETY * min(system.max_grad_hz, 1.0 / (fov * dwell))
    s_max = SPIRAL_SAFETY * system.max_slew_hz
    points = max(4000, int(2 * _SPIRAL_GRID_PER_TURN * theta_max / (2 * math.pi)))
    # quadratic in the grid index: fine near the centre, where the speed starts from 0 and one dwell covers little
    theta = theta_max * np.linspace(0.0, 1.0, points + 1) ** 2
    speed = lam * np.sqrt(1 + theta**2)  # |dk/dθ|
    curvature = (2 + theta**2) / (lam * (1 + theta**2) ** 1.5)
    ds = 0.5 * (speed[1:] + speed[:-1]) * np.diff(theta)  # arc length per grid step
    limit = np.minimum(v_max, np.sqrt(s_max / curvature))
    v = np.empty_like(theta)
    v[0] = 0.0
    for i in range(points):  # forward pass: accelerate with what the curvature leaves of the slew
        centripetal = curvature[i] * v[i] ** 2
        accel = math.sqrt(max(s_max**2 - centripetal**2, 0.0))
        v[i + 1] = min(limit[i + 1], math.sqrt(v[i] ** 2 + 2 * accel * ds[i]))
    t = np.concatenate([[0.0], np.cumsum(2 * ds / (v[1:] + v[:-1]))])
    ts = np.arange(int(math.floor(t[-1] / dwell + 1e-9)) + 1) * dwell
    th = np.interp(ts, t, theta)
    tangent = (
        np.stack([np.cos(th) - th * np.sin(th), np.sin(th) + th * np.cos(th)], axis=1) / np.sqrt(1 + th**2)[:, None]
    )
    g = np.interp(ts, t, v)[:, None] * tangent
    k = np.concatenate([np.zeros((1, 2)), np.cumsum((g[1:] + g[:-1]) / 2 * dwell, axis=0)])
    inside = np.flatnonzero(np.linalg.norm(k, axis=1) <= k_max)
    last = int(inside[-1]) if inside.size else 0
    return k[: last + 1], g[: last + 1]


def spiral_trajectory(
    *,
    matrix: int = 64,
    fov: float = 0.2,
    n_interleaves: int = 8,
    dwell: float = 10e-6,
    system: SystemLimits = DEFAULT_SYSTEM,
) -> torch.Tensor:
    """k-space positions of the first interleaf of an Archimedean spiral, sampled every ``dwell``.

    The path is ``k(θ) = λθ·(cos θ, sin θ)`` with ``λ = n_interleaves / (2π·fov)`` (adjacent interleaves are
    ``1/fov`` apart at every radius: Nyquist for a field of view ``fov``), from the centre to
    ``k_max = N / (2·fov)``. It is traversed as fast as the limits allow (the time-optimal design along a fixed path of
    Lustig, Kim & Pauly, IEEE TMI 2008;27:866, forward pass only, since the speed limit only grows outwards): the
    speed ``|dk/dt| = γ̄|G|`` is limited by ``max_grad``, by the readout bandwidth ``1/(fov·dwell)`` (at most one
    ``1/fov`` step between samples along the path) and by the curvature (``κ·v² ≤ max_slew``), and the acceleration
    by the slew left over (``|d²k/dt²| ≤ max_slew``), all at :data:`SPIRAL_SAFETY` of the limit. The vector
    magnitude is limited, so each axis is too. The gradient is then taken at the samples and played piecewise
    linearly between them (a corner at every sample, starting from 0): the positions are its integral, within a
    fraction of a percent of a step of the Archimedean path.

    Returns
    -------
    Tensor, shape ``(samples + 1, 2)``, float64
        ``k`` in x, y [1/m] at ``t = i·dwell``, i = 0 … samples; row 0 is the centre (zero gradient there). The last
        sample is the last one inside ``k_max``.
    """
    n = _check_size(matrix)
    fov = _check_fov(fov)
    n_int = check_count("n_interleaves", n_interleaves)
    check_positive("dwell", dwell)
    k, _ = _spiral_design(n, fov, n_int, dwell, system)
    return torch.from_numpy(k)


def _check_spiral_timing(te: float, dwell: float, system: SystemLimits) -> None:
    """A spiral's gradient has a corner at every sample: the dwell and the readout start must lie on the gradient
    raster (so that the waveform can be written as a Pulseq arbitrary gradient)."""
    r = system.grad_raster_time
    for name, value in (("dwell", dwell), ("te", te)):
        steps = value / r
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"{name} = {value * 1e6:.4g} us must be a multiple of the gradient raster ({r * 1e6:.3g} us) for a "
                "spiral readout (its gradient changes at every sample)"
            )


def spiral_gre(
    *,
    matrix: int = 64,
    fov: float = 0.2,
    n_interleaves: int = 8,
    flip_angle: float = math.radians(10.0),
    tr: float = 10e-3,
    te: float | None = None,
    dwell: float = 10e-6,
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    dummy_scans: int = DEFAULT_DUMMY_SCANS,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A 2D spiral-out spoiled gradient echo: one Archimedean interleaf per TR, starting at the k-space centre.

    Parameters
    ----------
    matrix : int
        N: the spiral reaches ``k_max = N/(2·fov)``, the resolution of an N × N image.
    fov : float
        Field of view [m] (square); interleaves are 1/fov apart.
    n_interleaves : int
        Interleaves (TRs) that together sample k-space at the Nyquist density; interleaf ``j`` is the first rotated by
        ``2πj/n_interleaves``. Fewer interleaves mean longer readouts (more T2* blurring).
    flip_angle : float
        Excitation flip angle [rad], in (0, π].
    tr : float
        Repetition time [s].
    te : float, optional
        Echo time [s]: pulse to the start of the spiral, where k = 0 (the spiral is centre-out, so the centre of
        k-space is sampled at TE); default and minimum: ``system.rf_gap``. A multiple of the gradient raster.
    dwell : float
        ADC dwell [s], a multiple of the gradient raster (the gradient has a corner at every sample); also caps the
        gradient at ``1/(fov·dwell)`` so that samples along the path are ≤ 1/fov apart.
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad], as :func:`~gradmr.sequence.flash`.
    spoiler_cycles : float
        Spoiler along x after the rewinder, in cycles per voxel (moment ``spoiler_cycles · N / fov``).
    dummy_scans : int
        Repetitions without ADC before the interleaves (:data:`DEFAULT_DUMMY_SCANS`).
    system : SystemLimits
        Gradient and RF limits; the spiral is designed within ``max_grad`` and ``max_slew``
        (:func:`spiral_trajectory`).

    Returns
    -------
    Sequence
        ``dummy_scans + n_interleaves`` repetitions: a TE event, one ADC event per dwell with that dwell's moment, and a
        rewinder + spoiler event.
    """
    n = _check_size(matrix)
    fov = _check_fov(fov)
    n_int = check_count("n_interleaves", n_interleaves)
    check_flip("flip_angle", flip_angle)
    check_positive("tr", tr)
    check_positive("dwell", dwell)
    check_count("dummy_scans", dummy_scans, minimum=0)
    if not math.isfinite(spoiler_cycles) or spoiler_cycles < 0:
        raise ValueError(f"spoiler_cycles must be ≥ 0, got {spoiler_cycles}")
    if te is None:
        te = system.rf_gap
    check_positive("te", te)
    check_fits("te", te, system.rf_gap - _TIME_EPS, "the RF pulse's gap")
    _check_spiral_timing(te, dwell, system)
    k_np, g_np = _spiral_design(n, fov, n_int, dwell, system)
    k = torch.from_numpy(k_np)
    samples = k.shape[0] - 1
    moments = k[1:] - k[:-1]  # (samples, 2): the moment of each dwell event
    g_end = float(np.abs(g_np[-1]).max())  # the gradient the rewinder ramps down from
    t_ramp, m_ramp = _ramp(g_end, system)
    spoiler = spoiler_cycles * n / fov
    rewind = float(k[-1].abs().max()) + m_ramp + spoiler
    min_post = t_ramp + min_moment_time(rewind, system) + system.rf_gap
    check_fits(
        "tr", tr, te + samples * dwell + min_post - _TIME_EPS, "te, the spiral readout, its rewinder and the spoiler"
    )
    post = tr - te - samples * dwell

    events = samples + 2
    reps = []
    schedule = [None] * dummy_scans + list(range(n_int))
    for i, j in enumerate(schedule):
        phase = _spoil_phase(rf_spoil_increment, i)
        rot = 2 * math.pi * (j or 0) / n_int
        c, s = math.cos(rot), math.sin(rot)
        rep = Repetition.create(events, pulse_angle=flip_angle, pulse_phase=phase, dtype=dtype)
        event_time = torch.full((events,), dwell, dtype=dtype)
        event_time[0] = te
        event_time[-1] = post
        gradm = torch.zeros(events, 3, dtype=dtype)
        if j is not None:  # dummy scans play no spiral: the same net moment (the spoiler) without the readout
            mx, my = moments[:, 0], moments[:, 1]
            gradm[1:-1, 0] = (c * mx - s * my).to(dtype)
            gradm[1:-1, 1] = (s * mx + c * my).to(dtype)
            gradm[-1, :2] = -gradm[1:-1, :2].sum(dim=0)
        gradm[-1, 0] += spoiler
        adc = torch.zeros(events, dtype=torch.bool)
        if j is not None:
            adc[1:-1] = True
        adc_phase = torch.full((events,), phase, dtype=dtype) * adc
        reps.append(rep.replace(event_time=event_time, gradm=gradm, adc_usage=adc, adc_phase=adc_phase))
    return Sequence(reps)


def epi(
    *,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    n_shots: int = 1,
    flip_angle: float = math.radians(90.0),
    tr: float = 3.0,
    te: float | None = None,
    dwell: float = 10e-6,
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    dummy_scans: int = 0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A 2D blipped gradient-echo EPI, single-shot or interleaved (segmented): readout along x, blips along y.

    Every line samples the Cartesian grid ``k_x = (n − nx//2)/fov_x``, n = 0 … nx − 1 (as
    :func:`~gradmr.sequence.flash`), alternately from −k_x,max upwards and from +k_x,max downwards; between lines a
    *blip* event turns the readout gradient around (ramp at the maximum slew, one extra dwell of moment so that the
    next line starts one step beyond the last sample) and steps ``k_y`` by ``n_shots/fov_y``. Shot ``s`` acquires the
    lines ``s, s + n_shots, s + 2·n_shots, …`` (index 0 is ``k_y = −ny//2/fov_y``), so the echo train of each shot is
    ``ny/n_shots`` lines long. Reconstruct with :func:`gradmr.recon.reconstruct_cartesian` (the samples lie on the
    grid); T2* decays along the train, i.e. along k_y: the longer the train, the more the image blurs along y.

    Parameters
    ----------
    matrix : (nx, ny)
        Samples per line and lines; ``ny`` a multiple of ``n_shots``.
    fov : (fov_x, fov_y)
        Field of view [m].
    n_shots : int
        Excitations (segments) per image; 1 is single-shot EPI.
    flip_angle : float
        Excitation flip angle [rad], in (0, π].
    tr : float
        Repetition time [s] (between shots).
    te : float, optional
        Echo time [s]: pulse to the k = 0 sample of the line of the train that passes k_y = 0 (the centre of k-space
        for the shot that contains that line, the nearest line for the others); default: the shortest possible.
    dwell : float
        ADC dwell [s]; the readout gradient ``1/(fov_x·dwell)`` must stay ≤ ``system.max_grad``.
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad] between shots, as :func:`~gradmr.sequence.flash`.
    spoiler_cycles : float
        Spoiler along x after the train (both axes rewound first), in cycles per voxel.
    dummy_scans : int
        Shots without ADC before the acquisition (the same gradients, to approach the steady state).
    system : SystemLimits
        Gradient and RF limits the events are sized for.

    Returns
    -------
    Sequence
        ``dummy_scans + n_shots`` repetitions: a prewinder event, then per line ``nx`` ADC events (flat gradient) and a
        blip event between lines, and a rewinder + spoiler event.
    """
    nx, ny = check_matrix(matrix)
    fov_x, fov_y = check_fov(fov)
    shots = check_count("n_shots", n_shots)
    if ny % shots:
        raise ValueError(f"n_shots = {shots} must divide the number of lines ny = {ny}")
    check_flip("flip_angle", flip_angle)
    check_positive("tr", tr)
    check_positive("dwell", dwell)
    check_count("dummy_scans", dummy_scans, minimum=0)
    if not math.isfinite(spoiler_cycles) or spoiler_cycles < 0:
        raise ValueError(f"spoiler_cycles must be ≥ 0, got {spoiler_cycles}")
    dkx, dky = 1.0 / fov_x, 1.0 / fov_y
    g_read = dkx / dwell
    if g_read > system.max_grad_hz:
        raise ValueError(
            f"dwell = {dwell * 1e6:.3g} us is shorter than fov_x = {fov_x * 1e3:.3g} mm allows with max_grad = "
            f"{system.max_grad * 1e3:.3g} mT/m (minimum {dkx / system.max_grad_hz * 1e6:.3g} us)"
        )
    t_ramp, m_ramp = _ramp(g_read, system)
    lines = ny // shots
    half_x, half_y = nx // 2, ny // 2
    # blip: hold +g for one dwell (the extra step), turn the readout around, step k_y by n_shots lines
    t_blip = _raster(max(dwell + 2 * t_ramp, min_moment_time(shots * dky, system)), system)
    t_line = nx * dwell
    centre_shot, centre_line = half_y % shots, half_y // shots
    to_centre = centre_line * (t_line + t_blip) + (half_x + 1 if centre_line % 2 == 0 else half_x) * dwell
    pre_x = (half_x + 1) * dkx + m_ramp
    pre_y = max(abs(s - half_y) for s in range(shots)) * dky
    min_pre = system.rf_gap + min_moment_time(max(pre_x, pre_y), system) + t_ramp
    if te is None:
        te = max(_raster(min_pre, system), min_pre) + to_centre
    check_positive("te", te)
    check_fits("te", te, min_pre + to_centre - _TIME_EPS, "the RF gap, the prewinder and the echo train to k = 0")
    pre = te - to_centre
    train = lines * t_line + (lines - 1) * t_blip
    end_y = max(abs(s + (lines - 1) * shots - half_y) for s in range(shots)) * dky
    spoiler = spoiler_cycles * nx * dkx
    min_post = t_ramp + min_moment_time(max(half_x * dkx + m_ramp + spoiler, end_y), system) + system.rf_gap
    check_fits("tr", tr, pre + train + min_post - _TIME_EPS, "te, the rest of the echo train, rewinder and spoiler")
    del centre_shot  # every shot has the same timing; the centre shot only names which one hits k_y = 0

    events = 1 + lines * nx + (lines - 1) + 1
    event_time = torch.empty(events, dtype=torch.float64)
    adc = torch.zeros(events, dtype=torch.bool)
    event_time[0] = pre
    event_time[-1] = tr - pre - train
    reps = []
    for i, shot in enumerate([0] * dummy_scans + list(range(shots))):
        acquire = i >= dummy_scans
        phase = _spoil_phase(rf_spoil_increment, i)
        gradm = torch.zeros(events, 3, dtype=torch.float64)
        gradm[0, 0] = -(half_x + 1) * dkx
        gradm[0, 1] = (shot - half_y) * dky
        pos = 1
        for m in range(lines):
            sign = 1.0 if m % 2 == 0 else -1.0
            gradm[pos : pos + nx, 0] = sign * dkx
            event_time[pos : pos + nx] = dwell
            adc[pos : pos + nx] = True
            pos += nx
            if m < lines - 1:
                gradm[pos, 0] = sign * dkx  # one more step the same way: the next line starts beyond the last sample
                gradm[pos, 1] = shots * dky
                event_time[pos] = t_blip
                pos += 1
        k_end = gradm[:-1].sum(dim=0)
        gradm[-1, :2] = -k_end[:2]
        gradm[-1, 0] += spoiler
        rep = Repetition.create(events, pulse_angle=flip_angle, pulse_phase=phase, dtype=dtype)
        use = adc & acquire
        reps.append(
            rep.replace(
                event_time=event_time.to(dtype),
                gradm=gradm.to(dtype),
                adc_usage=use.clone(),
                adc_phase=torch.full((events,), phase, dtype=dtype) * use,
            )
        )
    return Sequence(reps)


_COMMON = {
    "matrix": ("1", "N: samples per spoke / spiral radius in k-space steps; the image is N × N"),
    "fov": ("m", "field of view (square)"),
    "flip_angle": ("rad", "excitation flip angle"),
    "tr": ("s", "repetition time"),
    "te": ("s", "echo time (pulse to the k-space centre); default: shortest possible"),
    "dwell": ("s", "ADC dwell time"),
    "rf_spoil_increment": ("rad", "quadratic RF-spoiling phase increment (0: none)"),
    "spoiler_cycles": ("1", "x spoiler after the rewound readout, cycles per voxel"),
    "dummy_scans": ("1", "repetitions without ADC before the acquisition"),
}

PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "radial_gre": {
        **_COMMON,
        "n_spokes": ("1", "number of spokes; default ceil(π/2 · N) (Nyquist at the rim)"),
        "golden_angle": ("", "golden-angle (111.25°) spoke order instead of uniform over 180°"),
    },
    "epi": {
        **_COMMON,
        "matrix": ("1", "(nx, ny): samples per line and lines (ny a multiple of n_shots)"),
        "fov": ("m", "(fov_x, fov_y) field of view"),
        "n_shots": ("1", "excitations (interleaved segments) per image; 1 = single-shot"),
        "te": ("s", "echo time (pulse to the train's k = 0 sample); default: shortest possible"),
        "tr": ("s", "repetition time between shots"),
        "spoiler_cycles": ("1", "x spoiler after the rewound train, cycles per voxel"),
        "dummy_scans": ("1", "shots without ADC before the acquisition"),
    },
    "spiral_gre": {
        **_COMMON,
        "te": ("s", "echo time: pulse to the start of the centre-out spiral; default: the RF gap"),
        "n_interleaves": ("1", "spiral interleaves (one per TR) for Nyquist sampling"),
    },
}
