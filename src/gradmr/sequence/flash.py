"""Spoiled FLASH / GRE (2D and 3D Cartesian), and the Cartesian gradient-echo machinery the GRE family shares.

Event layout of one repetition (one TR)::

    pulse | prewinder | ADC × nx (echo 1) | [gap | ADC × nx (echo 2) | …] | spoiler/rewinder | [wait]

Timing follows the scanner limits of :class:`~gradmr.sequence.system.SystemLimits` (default
:data:`~gradmr.sequence.system.DEFAULT_SYSTEM`), so that every event can be written as real gradients:

* The event right after a pulse and the one right before the next pulse each include
  :attr:`~gradmr.sequence.system.SystemLimits.rf_gap` for the pulse itself.
* Every non-ADC event is at least as long as its gradient lobe needs, per axis: a lobe built at maximum amplitude
  and slew (:func:`~gradmr.sequence.system.min_moment_time`) *plus* the ramps of the readout gradient at its
  ends. The readout runs at a constant amplitude ``(1/fov_x)/dwell`` during its ADC events; its ramp up belongs to
  the event before the readout (the prewinder, or the gap between echoes) and its ramp down to the event after it,
  whose moments include those ramps (ramp time ``G/slew`` on the gradient raster; moment ``G·t/2``).
* Minimum times are rounded up to the gradient raster. A TE or TR given shorter than the minimum raises an error
  that names the minimum.
* A repetition without ADC (a dummy scan) has each readout as one event of the whole readout's moment and time:
  the same gradient, but a lobe an exporter can write from and to zero.

Samples of a readout sit at ``k_x = n/fov_x`` for ``n = −nx/2 … nx/2 − 1`` (a sample is taken at the end of its
event), phase encodes at ``k_y = m/fov_y`` (and ``k_z = p/fov_z`` in 3D), so a centred inverse FFT
(:func:`gradmr.recon.reconstruct_cartesian`) reconstructs every image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as _AbcSequence
from dataclasses import dataclass

import torch

from ._checks import check_count, check_fits, check_flip, check_fov, check_matrix, check_positive, ms
from .core import Repetition, Sequence
from .system import DEFAULT_SYSTEM, SystemLimits, min_moment_time

#: Quadratic RF-spoiling phase increment that is the usual choice (Zur et al., MRM 1991) [rad].
RF_SPOIL_117 = math.radians(117.0)

#: Orders of the phase encoding the builders accept.
ORDERS = ("linear", "centric")

#: Slack for comparing a given time with a computed minimum [s] (float rounding of sums of event times).
_TIME_SLACK = 1e-12


PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "flash": {
        "matrix": ("1", "(nx, ny) or (nx, ny, nz): readout samples, phase-encode lines[, partitions]"),
        "fov": ("m", "(x, y) or (x, y, z) field of view; k-space steps are 1/fov"),
        "flip_angle": ("rad", "excitation flip angle, in (0, π]"),
        "tr": ("s", "repetition time"),
        "te": ("s", "echo time, pulse to the k = 0 sample; default: the shortest the system allows"),
        "dwell": ("s", "ADC dwell time"),
        "rf_spoil_increment": ("rad", "quadratic RF-spoiling increment (0: no RF spoiling)"),
        "spoiler_cycles": ("1", "gradient spoiler after the readout, cycles per voxel along x"),
        "order": ("", "phase-encode order: linear or centric (3D: centric by |k|)"),
        "dummy_scans": ("1", "repetitions without ADC before the imaging ones"),
    }
}


# ------------------------------------------------------------------------------------------- phase encoding
def phase_encode_order(n: int, order: str) -> list[int]:
    """Phase-encode line indices ``-n//2 … n - n//2 - 1`` in acquisition order.

    ``order`` is ``"linear"`` (from −k_max up) or ``"centric"`` (0, −1, 1, −2, 2, …).
    """
    lines = list(range(-(n // 2), n - n // 2))
    if order == "linear":
        return lines
    if order == "centric":
        return sorted(lines, key=lambda i: (abs(i), i >= 0))
    raise ValueError(f"order must be 'linear' or 'centric', got {order!r}")


def phase_encode_order_3d(
    ny: int, nz: int, order: str, *, fov: tuple[float, float] = (1.0, 1.0)
) -> list[tuple[int, int]]:
    """Phase-encode index pairs ``(line, partition)`` of a 3D Cartesian scan in acquisition order.

    Parameters
    ----------
    ny, nz : int
        Lines (y) and partitions (z); indices run ``-n//2 … n - n//2 - 1``.
    order : {"linear", "centric"}
        ``"linear"``: partitions in the outer loop and lines in the inner loop, both from −k_max up.
        ``"centric"``: by distance ``|k| = √((m/fov_y)² + (p/fov_z)²)`` from the centre, ``(0, 0)`` first; ties go
        by ``|p|``, then negative before positive partition, then the 2D centric order of lines (so with
        ``nz = 1`` this is :func:`phase_encode_order` ``(ny, "centric")``).
    fov : (fov_y, fov_z)
        Field of view [m] along y and z: the distance is measured in k [1/m].
    """
    if order not in ORDERS:
        raise ValueError(f"order must be 'linear' or 'centric', got {order!r}")
    pairs = [(m, p) for p in phase_encode_order(nz, "linear") for m in phase_encode_order(ny, "linear")]
    if order == "linear":
        return pairs
    fy, fz = (float(v) for v in fov)

    def key(mp: tuple[int, int]) -> tuple:
        m, p = mp
        return ((m / fy) ** 2 + (p / fz) ** 2, abs(p), p >= 0, abs(m), m >= 0)

    return sorted(pairs, key=key)


# ------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class CartesianGeometry:
    """Matrix and FOV of a 2D or 3D Cartesian scan (readout x, phase encoding y[, z]).

    Attributes
    ----------
    nx, ny, nz : int
        Readout samples, lines, partitions (``nz = 1`` in 2D).
    fov : (x, y, z)
        Field of view [m]; ``z`` is 1 m in 2D (not encoded).
    three_d : bool
        Whether z is phase encoded.
    """

    nx: int
    ny: int
    nz: int
    fov: tuple[float, float, float]
    three_d: bool

    @staticmethod
    def create(matrix, fov) -> CartesianGeometry:
        """Check ``matrix`` ((nx, ny) or (nx, ny, nz)) and ``fov`` (same length) [m]."""
        try:
            dims = len(matrix)
        except TypeError:
            raise ValueError(f"matrix must be 2 or 3 positive integers (nx, ny[, nz]), got {matrix!r}") from None
        if dims not in (2, 3):
            raise ValueError(f"matrix must be 2 or 3 positive integers (nx, ny[, nz]), got {matrix!r}")
        n = check_matrix(matrix, ndim=dims)
        try:
            f = check_fov(fov, ndim=dims)
        except TypeError:
            raise ValueError(f"fov must be {dims} values in (0, 1] m, got {fov!r}") from None
        if dims == 2:
            return CartesianGeometry(n[0], n[1], 1, (f[0], f[1], 1.0), False)
        return CartesianGeometry(n[0], n[1], n[2], (f[0], f[1], f[2]), True)

    @property
    def dk(self) -> tuple[float, float, float]:
        """k-space steps (x, y, z) [1/m]; 0 along z in 2D."""
        return (1.0 / self.fov[0], 1.0 / self.fov[1], 1.0 / self.fov[2] if self.three_d else 0.0)

    @property
    def lines(self) -> int:
        """Phase encodes per image (``ny·nz``)."""
        return self.ny * self.nz

    def encodes(self, order: str) -> list[tuple[int, int]]:
        """Phase-encode index pairs ``(line, partition)`` in acquisition order."""
        if not self.three_d:
            return [(m, 0) for m in phase_encode_order(self.ny, order)]
        return phase_encode_order_3d(self.ny, self.nz, order, fov=(self.fov[1], self.fov[2]))

    def max_encode(self) -> tuple[float, float]:
        """Largest |k_y| and |k_z| of the phase encoding [1/m]."""
        return (self.ny // 2) * self.dk[1], (self.nz // 2) * self.dk[2]


# ------------------------------------------------------------------------------------------- timing
def _on_raster(t: float, system: SystemLimits) -> float:
    r = system.grad_raster_time
    return math.ceil(t / r - 1e-9) * r


def _ramp(g: float, system: SystemLimits) -> tuple[float, float]:
    """Time [s] to ramp between 0 and ``g`` [Hz/m] at full slew (on the raster), and the ramp's moment [1/m]."""
    if g == 0:
        return 0.0, 0.0
    t = _on_raster(abs(g) / system.max_slew_hz, system)
    return t, g * t / 2


def event_time_needed(moment, *, start=(0.0, 0.0, 0.0), end=(0.0, 0.0, 0.0), system: SystemLimits = DEFAULT_SYSTEM):
    """Shortest duration [s] of an event with gradient moment ``moment`` (x, y, z) [1/m] between gradient amplitudes
    ``start`` and ``end`` (x, y, z) [Hz/m] (the readout amplitude next to an ADC run, else 0).

    Per axis: ramp down from ``start``, a lobe of the remaining moment (:func:`min_moment_time`), ramp up to ``end``;
    and never shorter than :func:`min_moment_time` of the whole moment. The longest axis sets the time.
    """
    worst = 0.0
    for m, g0, g1 in zip(moment, start, end, strict=True):
        t0, m0 = _ramp(float(g0), system)
        t1, m1 = _ramp(float(g1), system)
        m = float(m)
        t = t0 + t1 + min_moment_time(m - m0 - m1, system)
        worst = max(worst, t, min_moment_time(m, system))
    return worst


@dataclass(frozen=True)
class EchoTrainTiming:
    """Minimum event times of a Cartesian gradient-echo train, and where its echoes fall.

    Built by :func:`echo_train_timing`. ``direction[e]`` is +1 (readout along +x) or −1 (reversed, bipolar).
    Times [s]; moments [1/m].
    """

    direction: tuple[int, ...]
    readout_grad: float
    pre_min: float
    gap_min: tuple[float, ...]
    post_min: float
    to_center: tuple[float, ...]
    after_center: tuple[float, ...]
    readout_time: float

    @property
    def min_te(self) -> float:
        """Shortest time from the pulse to the first echo's k = 0 sample [s]."""
        return self.pre_min + self.to_center[0]

    def min_spacing(self, e: int) -> float:
        """Shortest time from echo ``e``'s k = 0 sample to echo ``e + 1``'s [s]."""
        return self.after_center[e] + self.gap_min[e] + self.to_center[e + 1]


def _readout_bounds(nx: int, direction: int) -> tuple[int, int]:
    """k_x position (in steps) before the first sample and after the last sample of a readout."""
    if direction > 0:
        return -(nx // 2) - 1, nx - nx // 2 - 1
    return nx - nx // 2, -(nx // 2)


def echo_train_timing(
    geometry: CartesianGeometry,
    *,
    dwell: float,
    n_echoes: int = 1,
    bipolar: bool = False,
    spoiler_moment: float = 0.0,
    system: SystemLimits = DEFAULT_SYSTEM,
) -> EchoTrainTiming:
    """Minimum event times of a train of ``n_echoes`` Cartesian readouts after one pulse (see the module notes)."""
    nx = geometry.nx
    dkx = geometry.dk[0]
    ky, kz = geometry.max_encode()
    g = dkx / dwell
    # A readout above max_grad cannot be played out at all (flash allows it for simulation-only geometries); its
    # ramps, which would need more than max_grad, are then left out of the timing.
    g_ramp = g if g <= system.max_grad_hz * (1 + 1e-9) else 0.0
    direction = tuple(-1 if (bipolar and e % 2) else 1 for e in range(n_echoes))
    first, _ = _readout_bounds(nx, direction[0])
    pre = system.rf_gap + event_time_needed((first * dkx, ky, kz), end=(g_ramp, 0.0, 0.0), system=system)
    gaps = []
    for e in range(n_echoes - 1):
        _, end_prev = _readout_bounds(nx, direction[e])
        start_next, _ = _readout_bounds(nx, direction[e + 1])
        gaps.append(
            event_time_needed(
                ((start_next - end_prev) * dkx, 0.0, 0.0),
                start=(direction[e] * g_ramp, 0.0, 0.0),
                end=(direction[e + 1] * g_ramp, 0.0, 0.0),
                system=system,
            )
        )
    _, last = _readout_bounds(nx, direction[-1])
    post = system.rf_gap + event_time_needed(
        (-last * dkx + spoiler_moment, ky, kz), start=(direction[-1] * g_ramp, 0.0, 0.0), system=system
    )
    to_center = tuple((nx // 2 + 1 if d > 0 else nx - nx // 2) * dwell for d in direction)
    after_center = tuple(nx * dwell - t for t in to_center)
    return EchoTrainTiming(direction, g, pre, tuple(gaps), post, to_center, after_center, nx * dwell)


def check_readout_gradient(geometry: CartesianGeometry, dwell: float, system: SystemLimits) -> None:
    """Raise if the flat readout gradient ``(1/fov_x)/dwell`` exceeds ``system.max_grad``."""
    g = geometry.dk[0] / dwell
    if g > system.max_grad_hz * (1 + 1e-9):
        shortest = geometry.dk[0] / system.max_grad_hz
        mt_per_m = g / system.max_grad_hz * system.max_grad * 1e3
        raise ValueError(
            f"dwell = {dwell * 1e6:.4g} µs needs a readout gradient of {mt_per_m:.4g} mT/m for fov_x = "
            f"{geometry.fov[0] * 1e3:.4g} mm, above max_grad = {system.max_grad * 1e3:.4g} mT/m "
            f"(minimum dwell {shortest * 1e6:.4g} µs)"
        )


def _fits(name: str, value: float, minimum: float, why: str) -> None:
    """:func:`check_fits` with a little slack for float sums."""
    if value + _TIME_SLACK < minimum:
        check_fits(name, value, minimum, why)


# ------------------------------------------------------------------------------------------- repetitions
def _gre_repetition(
    geometry: CartesianGeometry,
    *,
    angle: float,
    phase: float,
    line: tuple[int, int] | None,
    acquire: bool,
    pre: float,
    gaps: _AbcSequence[float],
    post: float,
    dwell: float,
    direction: _AbcSequence[int],
    spoiler_moment: float,
    wait: float = 0.0,
    adc_phase: float | None = None,
    dtype: torch.dtype = torch.float64,
) -> Repetition:
    """One gradient-echo repetition: pulse, prewinder, ``len(direction)`` readouts with gaps, rewinder/spoiler.

    ``line`` is the phase-encode index pair (``None``: no phase encoding); ``acquire`` sets the ADC; ``wait`` > 0
    appends an event without gradients (a recovery delay). Moments: the prewinder moves to the start of the first
    readout and to ``(k_y, k_z)``; a gap moves from the end of one readout to the start of the next; the last event
    rewinds ``k_y``, ``k_z`` and ``k_x`` and adds ``spoiler_moment`` along x. The ADC phase is ``adc_phase``
    (default: the pulse phase). Without ADC (a dummy repetition) each readout is one event of ``nx·dwell`` with the
    readout's whole moment: the same gradient, but one lobe an exporter can write (a ``dwell`` alone is too short
    for a lobe that starts and ends at zero).
    """
    nx = geometry.nx
    dkx, dky, dkz = geometry.dk
    n_echo = len(direction)
    per_readout = nx if acquire else 1
    events = 1 + n_echo * per_readout + (n_echo - 1) + 1 + (1 if wait > 0 else 0)
    event_time = torch.zeros(events, dtype=dtype)
    gradm = torch.zeros(events, 3, dtype=dtype)
    adc = torch.zeros(events, dtype=torch.bool)
    ky, kz = (0.0, 0.0) if line is None else (line[0] * dky, line[1] * dkz)
    first, _ = _readout_bounds(nx, direction[0])
    event_time[0] = pre
    gradm[0] = torch.tensor([first * dkx, ky, kz], dtype=dtype)
    i = 1
    for e, d in enumerate(direction):
        event_time[i : i + per_readout] = dwell * nx / per_readout
        gradm[i : i + per_readout, 0] = d * dkx * nx / per_readout
        adc[i : i + per_readout] = acquire
        i += per_readout
        if e < n_echo - 1:
            _, end_prev = _readout_bounds(nx, d)
            start_next, _ = _readout_bounds(nx, direction[e + 1])
            event_time[i] = gaps[e]
            gradm[i, 0] = (start_next - end_prev) * dkx
            i += 1
    _, last = _readout_bounds(nx, direction[-1])
    event_time[i] = post
    gradm[i] = torch.tensor([-last * dkx + spoiler_moment, -ky, -kz], dtype=dtype)
    if wait > 0:
        event_time[i + 1] = wait
    phase_adc = phase if adc_phase is None else adc_phase
    rep = Repetition.create(events, pulse_angle=angle, pulse_phase=phase, dtype=dtype)
    return rep.replace(
        event_time=event_time, gradm=gradm, adc_usage=adc, adc_phase=torch.full((events,), phase_adc, dtype=dtype) * adc
    )


def rf_spoil_phase(n: int, increment: float) -> float:
    """Phase [rad] of the ``n``-th pulse (from 0) under quadratic RF spoiling: ``increment·n(n+1)/2``."""
    return increment * n * (n + 1) / 2


# ------------------------------------------------------------------------------------------- builder
def flash(
    *,
    matrix: tuple[int, ...] = (64, 64),
    fov: tuple[float, ...] = (0.2, 0.2),
    flip_angle: float = math.radians(10.0),
    tr: float = 10e-3,
    te: float | None = None,
    dwell: float = 30e-6,
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    order: str = "linear",
    dummy_scans: int = 0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A spoiled FLASH, 2D or 3D Cartesian: readout along x, phase encoding along y (and z in 3D).

    Parameters
    ----------
    matrix : (nx, ny) or (nx, ny, nz)
        Samples per readout, phase-encode lines, and (3D) partitions.
    fov : (fov_x, fov_y) or (fov_x, fov_y, fov_z)
        Field of view [m]; k-space steps are 1/fov.
    flip_angle : float
        Excitation flip angle [rad], in (0, π].
    tr : float
        Repetition time [s].
    te : float, optional
        Echo time [s], pulse to the k = 0 sample; if omitted, the shortest the system allows (RF gap, prewinder
        with the readout ramp, half the readout).
    dwell : float
        ADC dwell time [s]. The readout gradient ``1/(fov_x·dwell)`` is not checked against ``system.max_grad``
        here, so that tiny simulation-only geometries still build (a readout above ``max_grad`` cannot be exported
        and its ramps are then left out of the timing); :func:`check_readout_gradient` checks it.
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad]: the n-th pulse has phase ``inc·n(n+1)/2``
        and its samples are demodulated with the same phase. 0 disables RF spoiling.
    spoiler_cycles : float
        Gradient spoiler after the readout in cycles across one voxel (moment
        ``spoiler_cycles · nx / fov_x`` in x); the phase encoding is rewound.
    order : {"linear", "centric"}
        Phase-encode order. 3D linear: partitions in the outer loop, lines inside; 3D centric: by |k| from the
        centre (:func:`phase_encode_order_3d`). Centric puts k = 0 first.
    dummy_scans : int
        Repetitions without ADC (and without phase encoding) before the imaging ones, to approach steady state.
    system : SystemLimits
        Scanner limits the event times are sized for.
    dtype : torch.dtype
        Dtype of the sequence tensors.

    Returns
    -------
    Sequence
        ``dummy_scans + ny·nz`` repetitions of ``nx + 2`` events: prewinder (``te − (nx//2 + 1)·dwell``), ``nx``
        ADC events of ``dwell``, spoiler/rewinder (the rest of the TR); a dummy repetition has its readout as one
        event (3 events). Samples in acquisition order, one readout per line; the duration is
        ``(dummy_scans + ny·nz)·tr``.

    Raises
    ------
    ValueError
        On a bad matrix, FOV, flip angle (also when given in degrees), order or count, or a TE/TR shorter than
        the minimum (the message names it).
    """
    geometry = CartesianGeometry.create(matrix, fov)
    check_flip("flip_angle", flip_angle)
    check_positive("dwell", dwell)
    check_positive("tr", tr)
    check_count("dummy_scans", dummy_scans, minimum=0)
    if order not in ORDERS:
        raise ValueError(f"order must be 'linear' or 'centric', got {order!r}")
    spoil = float(spoiler_cycles) * geometry.nx * geometry.dk[0]
    timing = echo_train_timing(geometry, dwell=dwell, spoiler_moment=spoil, system=system)
    if te is None:
        te = timing.min_te
    check_positive("te", te)
    _fits("te", te, timing.min_te, "the readout (with its prewinder and the RF gap)")
    pre = te - timing.to_center[0]
    min_tr = pre + timing.readout_time + timing.post_min
    _fits("tr", tr, min_tr, f"te = {ms(te)} plus the readout and the spoiler")
    post = tr - pre - timing.readout_time

    schedule = [None] * dummy_scans + geometry.encodes(order)
    reps = []
    for n, line in enumerate(schedule):
        reps.append(
            _gre_repetition(
                geometry,
                angle=flip_angle,
                phase=rf_spoil_phase(n, rf_spoil_increment),
                line=line,
                acquire=line is not None,
                pre=pre,
                gaps=(),
                post=post,
                dwell=dwell,
                direction=timing.direction,
                spoiler_moment=spoil,
                dtype=dtype,
            )
        )
    return Sequence(reps)
