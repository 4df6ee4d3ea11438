"""The gradient-echo family beyond FLASH: multi-echo spoiled GRE, balanced SSFP and inversion-prepared FLASH.

All three are Cartesian (2D, or 3D with ``matrix=(nx, ny, nz)``), share the event layout and the scanner-limit
timing of :mod:`gradmr.sequence.flash` (RF gaps around every pulse, prewinder/gap/spoiler events long enough for
their moments and the readout ramps, a flat readout ≤ ``max_grad``), and put every sample on the grid
``k = n/fov``, so a centred inverse FFT (:func:`gradmr.recon.reconstruct_cartesian`) reconstructs each image.

* :func:`multi_echo_gre` — several echoes per TR (T2* mapping); :func:`echo_index` tells which echo a sample is.
* :func:`bssfp` — balanced SSFP: zero net moment per TR on every axis, α with phase alternating 0/π, TE = TR/2,
  α/2 catalyst.
* :func:`ir_flash` — inversion (π, spoiled) then a FLASH train with the k-space centre at TI (MP-RAGE-like).
"""

from __future__ import annotations

import math
from collections.abc import Sequence as _AbcSequence

import torch

from ._checks import check_count, check_flip, check_positive, ms
from .core import Repetition, Sequence
from .flash import (
    ORDERS,
    RF_SPOIL_117,
    CartesianGeometry,
    _fits,
    _gre_repetition,
    check_readout_gradient,
    echo_train_timing,
    event_time_needed,
    rf_spoil_phase,
)
from .system import DEFAULT_SYSTEM, SystemLimits

#: Readout polarities of :func:`multi_echo_gre`.
READOUTS = ("monopolar", "bipolar")

#: Preparations of :func:`bssfp`.
CATALYSTS = ("alpha/2", None)

#: Echoes of :func:`multi_echo_gre` when neither ``n_echoes`` nor ``tes`` is given.
DEFAULT_ECHOES = 6

#: Time between inversions of :func:`ir_flash` when ``shot_tr`` is not given [s] (as MP-RAGE protocols; a longer
#: minimum wins).
DEFAULT_SHOT_TR = 2.5

_COMMON = {
    "matrix": ("1", "(nx, ny) or (nx, ny, nz): readout samples, phase-encode lines[, partitions]"),
    "fov": ("m", "(x, y) or (x, y, z) field of view; k-space steps are 1/fov"),
    "flip_angle": ("rad", "excitation flip angle, in (0, π]"),
    "dwell": ("s", "ADC dwell time (readout gradient 1/(fov_x·dwell) ≤ max_grad)"),
    "order": ("", "phase-encode order: linear or centric (3D: centric by |k|)"),
}

PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "multi_echo_gre": {
        **_COMMON,
        "tr": ("s", "repetition time"),
        "te": ("s", "first echo time, pulse to its k = 0 sample; default: the shortest"),
        "echo_spacing": ("s", "time between successive echoes' k = 0 samples; default: the shortest"),
        "tes": ("s", "all echo times (instead of te, echo_spacing, n_echoes)"),
        "n_echoes": ("1", f"echoes per TR (default {DEFAULT_ECHOES})"),
        "readout": ("", "monopolar (flyback between echoes) or bipolar (alternating readout polarity)"),
        "rf_spoil_increment": ("rad", "quadratic RF-spoiling increment (0: no RF spoiling)"),
        "spoiler_cycles": ("1", "gradient spoiler after the last echo, cycles per voxel along x"),
        "dummy_scans": ("1", "repetitions without ADC before the imaging ones"),
    },
    "bssfp": {
        **_COMMON,
        "tr": ("s", "repetition time (TE = TR/2); default: the shortest"),
        "dummy_scans": ("1", "repetitions without ADC (after the catalyst) before the imaging ones"),
        "catalyst": ("", "preparation: alpha/2 (an α/2 pulse TR/2 before the first α) or none"),
    },
    "ir_flash": {
        **_COMMON,
        "ti": ("s", "inversion time: inversion pulse to the excitation of the k = 0 line"),
        "tr": ("s", "repetition time of the FLASH readout train"),
        "te": ("s", "echo time of the FLASH readout; default: the shortest"),
        "shot_tr": ("s", f"time between inversions; default {DEFAULT_SHOT_TR} s or the shortest shot if longer"),
        "segments": ("1", "inversions per image (shots); lines per shot = lines / segments"),
        "dummy_shots": ("1", "shots without ADC before the imaging ones (steady state between inversions)"),
        "rf_spoil_increment": ("rad", "quadratic RF-spoiling increment (0: no RF spoiling)"),
        "spoiler_cycles": ("1", "gradient spoilers (FLASH and inversion), cycles per voxel"),
    },
}


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be 'linear' or 'centric', got {order!r}")


def echo_index(seq: Sequence) -> torch.Tensor:
    """Echo number (0, 1, …) of every ADC sample, shape ``(samples,)``, long.

    Within each repetition, consecutive ADC events form one readout; readouts are numbered in time order. For
    :func:`multi_echo_gre` the samples of one TR are echo 0's ``nx`` samples, then echo 1's, …, so
    ``signal[echo_index(seq) == e]`` with ``seq.kspace()[echo_index(seq) == e]`` is echo ``e``'s image data.
    """
    out = []
    for rep in seq:
        adc = rep.adc_usage
        if not bool(adc.any()):
            continue
        previous = torch.cat([torch.zeros(1, dtype=torch.bool), adc[:-1]])
        run = torch.cumsum((adc & ~previous).to(torch.long), dim=0) - 1
        out.append(run[adc])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


# ------------------------------------------------------------------------------------------- multi-echo GRE
def multi_echo_gre(
    *,
    matrix: tuple[int, ...] = (64, 64),
    fov: tuple[float, ...] = (0.2, 0.2),
    flip_angle: float = math.radians(15.0),
    tr: float = 30e-3,
    te: float | None = None,
    echo_spacing: float | None = None,
    tes: _AbcSequence[float] | None = None,
    n_echoes: int | None = None,
    dwell: float = 30e-6,
    readout: str = "monopolar",
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    order: str = "linear",
    dummy_scans: int = 0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """Multi-echo spoiled gradient echo: one excitation, ``n_echoes`` Cartesian readouts per TR (T2* mapping).

    Parameters
    ----------
    matrix : (nx, ny) or (nx, ny, nz)
        Samples per readout, phase-encode lines, and (3D) partitions.
    fov : (fov_x, fov_y) or (fov_x, fov_y, fov_z)
        Field of view [m].
    flip_angle : float
        Excitation flip angle [rad], in (0, π].
    tr : float
        Repetition time [s].
    te : float, optional
        First echo time [s], pulse to the first echo's k = 0 sample; default: the shortest.
    echo_spacing : float, optional
        Time between successive echoes' k = 0 samples [s]; default: the shortest (one readout plus the flyback, or
        the polarity reversal when bipolar).
    tes : sequence of float, optional
        All echo times [s], increasing, instead of ``te`` and ``echo_spacing`` (spacings may differ).
    n_echoes : int, optional
        Echoes per TR, ≥ 1; default :data:`DEFAULT_ECHOES`, or ``len(tes)``.
    dwell : float
        ADC dwell time [s]; the readout gradient ``1/(fov_x·dwell)`` must not exceed ``system.max_grad``.
    readout : {"monopolar", "bipolar"}
        ``"monopolar"``: every echo read along +x, with a flyback (no ADC) between echoes. ``"bipolar"``: the
        polarity alternates (odd echoes read along −x, their samples in reverse k_x order); faster, but in practice
        odd and even echoes differ in their off-resonance shift.
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad] (pulse ``n`` has phase ``inc·n(n+1)/2``; the ADC the same).
    spoiler_cycles : float
        Gradient spoiler after the last echo, cycles per voxel along x; the phase encoding is rewound.
    order : {"linear", "centric"}
        Phase-encode order (as :func:`~gradmr.sequence.flash.flash`).
    dummy_scans : int
        Repetitions without ADC (and without phase encoding) first.
    system : SystemLimits
        Scanner limits the event times are sized for.
    dtype : torch.dtype

    Returns
    -------
    Sequence
        ``dummy_scans + ny·nz`` repetitions; events: prewinder, ``nx`` ADC events (echo 0), a gap (flyback), ``nx``
        ADC events (echo 1), …, spoiler. Samples per TR: echo 0's ``nx``, then echo 1's, … (see
        :func:`echo_index`); every echo covers the same Cartesian grid, so each reconstructs alone. Duration
        ``(dummy_scans + ny·nz)·tr``.

    Raises
    ------
    ValueError
        Bad matrix, FOV, flip angle, counts or choices; a readout gradient above ``max_grad``; TE, echo spacing or
        TR shorter than their minimum (named in the message); ``tes`` not increasing or given together with
        ``te``/``echo_spacing`` or a different ``n_echoes``.
    """
    geometry = CartesianGeometry.create(matrix, fov)
    check_flip("flip_angle", flip_angle)
    check_positive("dwell", dwell)
    check_positive("tr", tr)
    check_count("dummy_scans", dummy_scans, minimum=0)
    _check_order(order)
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    check_readout_gradient(geometry, dwell, system)
    if tes is not None:
        if te is not None or echo_spacing is not None:
            raise ValueError("give either tes or te/echo_spacing, not both")
        tes = [float(tes)] if isinstance(tes, int | float) else [float(t) for t in tes]
        if n_echoes is not None and check_count("n_echoes", n_echoes) != len(tes):
            raise ValueError(f"n_echoes = {n_echoes} does not match the {len(tes)} echo times in tes")
        n_echoes = len(tes)
    n_echoes = check_count("n_echoes", DEFAULT_ECHOES if n_echoes is None else n_echoes)
    spoil = float(spoiler_cycles) * geometry.nx * geometry.dk[0]
    timing = echo_train_timing(
        geometry, dwell=dwell, n_echoes=n_echoes, bipolar=readout == "bipolar", spoiler_moment=spoil, system=system
    )
    if tes is None:
        if te is None:
            te = timing.min_te
        min_spacing = max((timing.min_spacing(e) for e in range(n_echoes - 1)), default=0.0)
        if echo_spacing is None:
            echo_spacing = min_spacing
        elif n_echoes > 1:
            check_positive("echo_spacing", echo_spacing)
            _fits("echo_spacing", echo_spacing, min_spacing, f"one readout plus the {_gap_name(readout)}")
        tes = [te + e * echo_spacing for e in range(n_echoes)]
    for i, t in enumerate(tes):
        check_positive(f"tes[{i}]" if i else "te", t)
    _fits("te", tes[0], timing.min_te, "the readout (with its prewinder and the RF gap)")
    gaps = []
    for e in range(n_echoes - 1):
        spacing = tes[e + 1] - tes[e]
        _fits(f"tes[{e + 1}] − tes[{e}]", spacing, timing.min_spacing(e), f"one readout plus the {_gap_name(readout)}")
        gaps.append(spacing - timing.after_center[e] - timing.to_center[e + 1])
    pre = tes[0] - timing.to_center[0]
    train = pre + n_echoes * timing.readout_time + sum(gaps)
    _fits("tr", tr, train + timing.post_min, f"the echo train (last TE {ms(tes[-1])}) and the spoiler")
    post = tr - train

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
                gaps=gaps,
                post=post,
                dwell=dwell,
                direction=timing.direction,
                spoiler_moment=spoil,
                dtype=dtype,
            )
        )
    return Sequence(reps)


def _gap_name(readout: str) -> str:
    return "flyback" if readout == "monopolar" else "polarity reversal"


# ------------------------------------------------------------------------------------------- bSSFP
def bssfp(
    *,
    matrix: tuple[int, ...] = (64, 64),
    fov: tuple[float, ...] = (0.2, 0.2),
    flip_angle: float = math.radians(60.0),
    tr: float | None = None,
    dwell: float = 30e-6,
    dummy_scans: int = 10,
    catalyst: str | None = "alpha/2",
    order: str = "linear",
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """Balanced SSFP (TrueFISP): fully rewound gradients, alternating RF phase, TE = TR/2.

    Every TR has zero net gradient moment on every axis (prewinder, readout and rewinder balance), the pulses
    alternate between phase 0 and π (+α, −α, …) and each sample is demodulated with its pulse's phase, so on
    resonance the steady state reads with one sign. The echo (k = 0 sample) sits exactly at TR/2.

    Parameters
    ----------
    matrix : (nx, ny) or (nx, ny, nz)
    fov : (fov_x, fov_y) or (fov_x, fov_y, fov_z)
        Field of view [m].
    flip_angle : float
        Flip angle α [rad], in (0, π].
    tr : float, optional
        Repetition time [s]; default: the shortest the system allows (short TRs keep the off-resonance bands apart).
    dwell : float
        ADC dwell time [s]; the readout gradient ``1/(fov_x·dwell)`` must not exceed ``system.max_grad``.
    dummy_scans : int
        Balanced repetitions without ADC (no phase encoding) after the catalyst, before the imaging ones.
    catalyst : {"alpha/2", None}
        ``"alpha/2"``: an α/2 pulse of phase π (i.e. −α/2) TR/2 before the first α (Deimling & Heid 1994), which
        puts the magnetisation near its steady-state direction and damps the on-resonance transient; ``None``
        (or ``"none"``): start with α from equilibrium.
    order : {"linear", "centric"}
        Phase-encode order.
    system : SystemLimits
    dtype : torch.dtype

    Returns
    -------
    Sequence
        [catalyst repetition (α/2, one event of TR/2)] + ``dummy_scans + ny·nz`` repetitions of ``nx + 2``
        events (prewinder, ``nx`` ADC events, rewinder). Pulse ``n`` (from 0, catalyst excluded) has phase
        ``π·(n mod 2)``. Duration ``(dummy_scans + ny·nz)·tr`` plus ``tr/2`` with the catalyst.

    Raises
    ------
    ValueError
        Bad matrix, FOV, flip angle, counts or choices; a readout gradient above ``max_grad``; a TR shorter than
        the readout with its prewinder and rewinder allow at TE = TR/2.
    """
    geometry = CartesianGeometry.create(matrix, fov)
    check_flip("flip_angle", flip_angle)
    check_positive("dwell", dwell)
    check_count("dummy_scans", dummy_scans, minimum=0)
    _check_order(order)
    if isinstance(catalyst, str) and catalyst.lower() == "none":
        catalyst = None
    if catalyst not in CATALYSTS:
        raise ValueError(f"catalyst must be one of {CATALYSTS}, got {catalyst!r}")
    check_readout_gradient(geometry, dwell, system)
    timing = echo_train_timing(geometry, dwell=dwell, system=system)
    # TE = TR/2: the prewinder half and the rewinder half must each fit
    min_tr = 2 * max(timing.pre_min + timing.to_center[0], timing.post_min + timing.after_center[0])
    if catalyst is not None:
        min_tr = max(min_tr, 4 * system.rf_gap)  # the catalyst's TR/2 event sits between two pulses
    if tr is None:
        tr = min_tr
    check_positive("tr", tr)
    _fits("tr", tr, min_tr, "the readout with its prewinder and rewinder at TE = TR/2")
    pre = tr / 2 - timing.to_center[0]
    post = tr - pre - timing.readout_time

    reps: list[Repetition] = []
    if catalyst is not None:
        prep = Repetition.create(1, pulse_angle=flip_angle / 2, pulse_phase=math.pi, event_time=tr / 2, dtype=dtype)
        reps.append(prep)
    schedule = [None] * dummy_scans + geometry.encodes(order)
    for n, line in enumerate(schedule):
        phase = math.pi * (n % 2)
        reps.append(
            _gre_repetition(
                geometry,
                angle=flip_angle,
                phase=phase,
                line=line,
                acquire=line is not None,
                pre=pre,
                gaps=(),
                post=post,
                dwell=dwell,
                direction=timing.direction,
                spoiler_moment=0.0,
                dtype=dtype,
            )
        )
    return Sequence(reps)


# ------------------------------------------------------------------------------------------- IR-FLASH
def ir_flash(
    *,
    matrix: tuple[int, ...] = (64, 64),
    fov: tuple[float, ...] = (0.2, 0.2),
    ti: float = 1.0,
    flip_angle: float = math.radians(8.0),
    tr: float = 10e-3,
    te: float | None = None,
    shot_tr: float | None = None,
    segments: int = 1,
    dummy_shots: int = 3,
    dwell: float = 30e-6,
    order: str = "centric",
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """Inversion-prepared spoiled FLASH (MP-RAGE-like, 2D or 3D): per shot an inversion, then a FLASH train.

    Each shot: a π pulse (``pulse_usage="inversion"``) followed by a spoiler (``spoiler_cycles`` per voxel on every
    encoded axis) and a delay, then ``lines / segments`` FLASH repetitions of length ``tr``, then a recovery delay
    up to ``shot_tr``. Lines are dealt to shots by their rank in ``order``: the line of rank ``r`` goes to shot
    ``r mod segments`` at train position ``r // segments`` (interleaved segmentation), so with the default centric
    order every shot starts with one of its ``segments`` most central lines and the k = 0 line is the first
    excitation of shot 0.

    **Effective TI** (``ti``): from the inversion pulse to the excitation of the k = 0 line; the same delay from
    inversion to train is used in every shot. With ``order="linear"`` the k = 0 line is mid-train and the train
    starts ``(position of k = 0)·tr`` earlier.

    Parameters
    ----------
    matrix : (nx, ny) or (nx, ny, nz)
    fov : (fov_x, fov_y) or (fov_x, fov_y, fov_z)
        Field of view [m].
    ti : float
        Effective inversion time [s] (above). The default 1.0 s with ``shot_tr`` 2.5 s puts CSF near its null in
        the steady state between inversions and gives WM > GM > CSF at 1.5 T and 3 T, as MP-RAGE (a longitudinal
        recursion of the shots gives PD·Mz at TI of |CSF| ≤ 0.02, GM 0.12–0.28, WM 0.34–0.42 for 32–64 lines).
    flip_angle : float
        FLASH flip angle [rad], in (0, π]; small (≈ 8°) so that the train disturbs the prepared contrast little.
    tr : float
        FLASH repetition time [s] (pulse to pulse within the train).
    te : float, optional
        FLASH echo time [s]; default: the shortest.
    shot_tr : float, optional
        Time between inversions [s]; default :data:`DEFAULT_SHOT_TR`, or the shortest shot when that is longer.
    segments : int
        Shots per image; must divide the number of lines ``ny·nz``.
    dummy_shots : int
        Shots without ADC first, so that the imaging shots start from the steady state between inversions. The
        default 3 leaves CSF (the slowest, its deviation shrinking by ≈ e^{−shot_tr/T1} ≈ 0.55 per shot at 3 T)
        within ≈ 0.03·M0 of its steady state; 2D single-shot scans then take 4·shot_tr.
    dwell : float
        ADC dwell time [s]; the readout gradient ``1/(fov_x·dwell)`` must not exceed ``system.max_grad``.
    order : {"centric", "linear"}
        Ranking of the phase encodes (3D centric: by |k|).
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad], counted over all FLASH pulses; the inversions have phase 0.
    spoiler_cycles : float
        FLASH spoiler (x) and inversion spoiler (every encoded axis), cycles per voxel.
    system : SystemLimits
    dtype : torch.dtype

    Returns
    -------
    Sequence
        ``(dummy_shots + segments)·(1 + lines/segments)`` repetitions: per shot the inversion (events: RF gap +
        spoiler, delay) and the FLASH repetitions (as :func:`~gradmr.sequence.flash.flash`; the last one of a shot
        ends with an extra event, the recovery delay, when there is one). Duration ``(dummy_shots +
        segments)·shot_tr``.

    Raises
    ------
    ValueError
        Bad matrix, FOV, flip angle, counts or choices; ``segments`` not dividing the lines; a readout gradient above
        ``max_grad``; TE or TR too short for the readout; TI shorter than the inversion spoiler (plus the train up to
        the k = 0 line) allows; ``shot_tr`` shorter than one shot.
    """
    geometry = CartesianGeometry.create(matrix, fov)
    check_flip("flip_angle", flip_angle)
    check_positive("dwell", dwell)
    check_positive("tr", tr)
    check_positive("ti", ti)
    segments = check_count("segments", segments)
    check_count("dummy_shots", dummy_shots, minimum=0)
    _check_order(order)
    check_readout_gradient(geometry, dwell, system)
    if geometry.lines % segments:
        raise ValueError(f"segments = {segments} must divide the {geometry.lines} phase-encode lines")
    per_shot = geometry.lines // segments

    # FLASH train timing (as flash)
    spoil = float(spoiler_cycles) * geometry.nx * geometry.dk[0]
    timing = echo_train_timing(geometry, dwell=dwell, spoiler_moment=spoil, system=system)
    if te is None:
        te = timing.min_te
    check_positive("te", te)
    _fits("te", te, timing.min_te, "the readout (with its prewinder and the RF gap)")
    pre = te - timing.to_center[0]
    _fits("tr", tr, pre + timing.readout_time + timing.post_min, f"te = {ms(te)} plus the readout and the spoiler")
    post = tr - pre - timing.readout_time

    # shots: rank r → shot r % segments, position r // segments
    ranked = geometry.encodes(order)
    shots = [ranked[s::segments] for s in range(segments)]
    center_position = ranked.index((0, 0)) // segments

    # inversion: RF gap + spoiler lobe, then the delay to the train (which ends with the RF gap of the first pulse)
    n = (geometry.nx, geometry.ny, geometry.nz)
    inv_moment = tuple(float(spoiler_cycles) * n[a] * geometry.dk[a] for a in range(3))
    spoil_time = system.rf_gap + event_time_needed(inv_moment, system=system)
    min_ti = spoil_time + system.rf_gap + center_position * tr
    _fits("ti", ti, min_ti, "the inversion spoiler (and the train up to the k = 0 line)")
    delay = ti - center_position * tr - spoil_time

    shortest_shot = ti - center_position * tr + per_shot * tr
    if shot_tr is None:
        shot_tr = max(DEFAULT_SHOT_TR, shortest_shot)
    check_positive("shot_tr", shot_tr)
    _fits("shot_tr", shot_tr, shortest_shot, "the inversion delay plus the readout train")
    recovery = shot_tr - shortest_shot

    reps: list[Repetition] = []
    pulse = 0
    for shot in range(dummy_shots + segments):
        acquire = shot >= dummy_shots
        lines = shots[(shot - dummy_shots) % segments]
        inversion = Repetition.create(2, pulse_angle=math.pi, pulse_usage="inversion", dtype=dtype)
        gradm = torch.zeros(2, 3, dtype=dtype)
        gradm[0] = torch.tensor(inv_moment, dtype=dtype)
        reps.append(inversion.replace(event_time=torch.tensor([spoil_time, delay], dtype=dtype), gradm=gradm))
        for i, line in enumerate(lines):
            reps.append(
                _gre_repetition(
                    geometry,
                    angle=flip_angle,
                    phase=rf_spoil_phase(pulse, rf_spoil_increment),
                    line=line,
                    acquire=acquire,
                    pre=pre,
                    gaps=(),
                    post=post,
                    dwell=dwell,
                    direction=timing.direction,
                    spoiler_moment=spoil,
                    wait=recovery if i == len(lines) - 1 and recovery > 1e-12 else 0.0,
                    dtype=dtype,
                )
            )
            pulse += 1
    return Sequence(reps)
