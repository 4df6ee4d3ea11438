"""Inversion-recovery builders: T1-weighted IR spin echo, FLAIR and double inversion recovery (DIR).

Each TR is one or two inversion pulses (π, phase 0, ``pulse_usage="inversion"``), each followed by a spoiler
event sized with :func:`~gradmr.sequence.system.min_moment_time` (residual transverse magnetisation is dephased
along y), then a spin-echo or turbo-spin-echo readout of :mod:`gradmr.sequence.spin_echo` (CPMG, crushers). TI
runs from the centre of an inversion pulse to the centre of the excitation; TR from one first inversion to the
next.

Null inversion times
--------------------
Under the crushers of the readout, the longitudinal magnetisation at k = 0, Z (relative to M0), is only changed
by T1 recovery, ``Z → 1 − (1 − Z)·e^{−t/T1}``, and by the pulses, ``Z → cos α · Z`` (the transverse states are
never at k = 0 at a pulse, so none is turned back into Z at k = 0). The 90° excitation sets Z = 0, so the value
just before the (first) inversion of the steady state, ``Z_a``, follows from the echo train alone
(:func:`longitudinal_before_inversion`); for a single spin echo at TE it is
``Z_a = 1 − (2 − e^{−TE/(2T1)})·e^{−(TR − TI − TE/2)/T1}``. Then just before the excitation

* one inversion: ``Z(TI) = 1 − (1 + Z_a)·e^{−TI/T1}``, nulled at ``TI = T1·ln(1 + Z_a)``;
* two inversions at TI1 > TI2 before the excitation:
  ``Z = 1 − 2·e^{−TI2/T1} + (1 + Z_a)·e^{−TI1/T1}``, nulled for two tissues by solving both equations
  (Redpath & Smith, Br. J. Radiol. 1994, for the long-TR case ``Z_a = 1``).

``Z_a`` depends on TI (the recovery after the train ends at the next inversion), so the equations are solved
numerically (Brent's method) for the actual TR, echo train and refocusing angles, and the roots are rounded to the
block raster; the defaults take the T1 of
the nulled tissues from the tissue library at ``field_strength`` (:func:`gradmr.phantom.tissue_table`). The first
shot starts from Z = 1 instead of ``Z_a``; ``dummy_scans = 1`` (the default) reaches the steady state exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as _AbcSequence

import torch
from scipy.optimize import brentq

from ._checks import check_count, check_fits, check_positive, ms
from .core import Repetition, Sequence
from .spin_echo import (
    _COMMON_PARAMETERS,
    DEFAULT_CRUSHER_CYCLES,
    DEFAULT_SLICE_THICKNESS,
    DEFAULT_SPOILER_CYCLES,
    TIME_SLACK,
    EchoTrain,
    _make_train,
    check_refocusing_angles,
    check_train_timing,
    effective_echo_index,
    prep_minimum,
    prep_repetition,
    tse_line_order,
)
from .system import DEFAULT_SYSTEM, SystemLimits

#: Readouts the inversion builders accept.
READOUTS = ("se", "tse")

#: Echo spacing and train length used with ``readout="tse"`` when not given.
DEFAULT_ECHO_SPACING = 10e-3
DEFAULT_ECHO_TRAIN_LENGTH = 16

_READOUT_PARAMETERS: dict[str, tuple[str, str]] = {
    "readout": ("", "'se' (one line per TR) or 'tse' (echo train)"),
    "echo_spacing": ("s", "echo spacing of the 'tse' readout"),
    "echo_train_length": ("1", "echoes per excitation of the 'tse' readout"),
    "refocusing_angles": ("rad", "refocusing flip angle, one value or one per echo"),
    "field_strength": ("1", "main field in T (1.5 or 3), picks the tissue T1s of the default inversion times"),
}

#: Units and one-line help of every user-facing parameter of the builders in this module.
PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "ir_spin_echo": {
        **_COMMON_PARAMETERS,
        **_READOUT_PARAMETERS,
        "ti": ("s", "inversion time, inversion to excitation (default: null CSF)"),
        "te": ("s", "echo time (effective echo time for 'tse')"),
        "null_tissue": ("", "tissue whose T1 sets the default ti"),
    },
    "flair": {
        **_COMMON_PARAMETERS,
        **_READOUT_PARAMETERS,
        "ti": ("s", "inversion time, inversion to excitation (default: null CSF)"),
        "te": ("s", "echo time (effective echo time for 'tse')"),
        "null_tissue": ("", "tissue whose T1 sets the default ti"),
    },
    "double_inversion_recovery": {
        **_COMMON_PARAMETERS,
        **_READOUT_PARAMETERS,
        "ti1": ("s", "first inversion to excitation (default: solved with ti2 to null both null_tissues)"),
        "ti2": ("s", "second inversion to excitation, shorter than ti1"),
        "te": ("s", "echo time (effective echo time for 'tse')"),
        "null_tissues": ("", "two tissues nulled by the default ti1, ti2 (comma separated on the command line)"),
    },
}


# ----------------------------------------------------------------------------------------------------------------
# longitudinal magnetisation and null times


def _train_pulses(train: EchoTrain) -> list[tuple[float, float]]:
    """(time after the excitation [s], flip angle [rad]) of the refocusing pulses."""
    return [(train.echo_spacing / 2 + k * train.echo_spacing, a) for k, a in enumerate(train.angles)]


def longitudinal_before_inversion(t1: float, pulses: _AbcSequence[tuple[float, float]], recovery: float) -> float:
    """Z (relative to M0, at k = 0) just before the first inversion in the steady state.

    Parameters
    ----------
    t1 : float
        T1 [s].
    pulses : sequence of (time [s], angle [rad])
        Refocusing pulses after the excitation (which leaves Z = 0), in time order.
    recovery : float
        Time from the excitation to the first inversion of the next TR [s] (``TR − TI1``).
    """
    z, t = 0.0, 0.0
    for tp, angle in pulses:
        z = 1 - (1 - z) * math.exp(-(tp - t) / t1)
        z *= math.cos(angle)
        t = tp
    return 1 - (1 - z) * math.exp(-(recovery - t) / t1)


def longitudinal_at_excitation(
    t1: float, inversion_times: _AbcSequence[float], *, tr: float, pulses: _AbcSequence[tuple[float, float]]
) -> float:
    """Z just before the excitation for inversions ``inversion_times`` [s] before it (one or two), steady state."""
    times = sorted((float(t) for t in inversion_times), reverse=True)
    z = longitudinal_before_inversion(t1, pulses, tr - times[0])
    for i, ti in enumerate(times):
        z = -z
        nxt = times[i + 1] if i + 1 < len(times) else 0.0
        z = 1 - (1 - z) * math.exp(-(ti - nxt) / t1)
    return z


def _on_raster(t: float, raster: float | None, lo: float, hi: float) -> float:
    """``t`` rounded to the nearest multiple of ``raster`` inside ``[lo, hi]`` (unchanged without a raster)."""
    if not raster:
        return t
    r = round(t / raster) * raster
    if r < lo - TIME_SLACK:
        r += raster
    elif r > hi + TIME_SLACK:
        r -= raster
    return r


def null_inversion_time(
    t1: float,
    *,
    tr: float,
    pulses: _AbcSequence[tuple[float, float]],
    ti_min: float,
    ti_max: float,
    raster: float | None = None,
) -> float:
    """TI [s] in ``[ti_min, ti_max]`` that nulls Z of a tissue with ``t1`` at the excitation (single inversion).

    With ``raster`` [s] the root is rounded to a multiple of it (the builders use the block raster, so that the
    sequence's times stay on the scanner's rasters; 5 µs of TI change Z by ≈ 1e-5).
    """

    def f(ti: float) -> float:
        return longitudinal_at_excitation(t1, [ti], tr=tr, pulses=pulses)

    if not ti_min < ti_max or f(ti_max) <= 0:
        raise ValueError(
            f"tr = {ms(tr)} is too short to null T1 = {ms(t1)} with one inversion after this readout "
            f"(TI would have to exceed the longest possible {ms(ti_max)}); lengthen tr or give ti"
        )
    if f(ti_min) >= 0:
        raise ValueError(f"T1 = {ms(t1)} recovers to 0 before the shortest possible TI ({ms(ti_min)}); give ti")
    return _on_raster(float(brentq(f, ti_min, ti_max, xtol=1e-9)), raster, ti_min, ti_max)


def double_null_inversion_times(
    t1_long: float,
    t1_short: float,
    *,
    tr: float,
    pulses: _AbcSequence[tuple[float, float]],
    gap: float,
    ti_min: float,
    ti_max: float,
    raster: float | None = None,
) -> tuple[float, float]:
    """(TI1, TI2) [s] nulling two tissues (T1 ``t1_long`` > ``t1_short``) with two inversions.

    For each TI2 the TI1 that nulls the long-T1 tissue is found (Z decreases with TI1); TI2 is then chosen so that
    the short-T1 tissue is nulled too. ``gap`` is the shortest time between the inversions, ``ti_min`` the shortest
    TI2 and ``ti_max`` the longest TI1. With ``raster`` both are rounded to multiples of it.
    """

    def z(t1: float, ti1: float, ti2: float) -> float:
        return longitudinal_at_excitation(t1, [ti1, ti2], tr=tr, pulses=pulses)

    def ti1_of(ti2: float) -> float | None:
        lo, hi = ti2 + gap, ti_max
        if lo >= hi or z(t1_long, lo, ti2) <= 0 or z(t1_long, hi, ti2) >= 0:
            return None
        return float(brentq(lambda t: z(t1_long, t, ti2), lo, hi, xtol=1e-9))

    def g(ti2: float) -> float | None:
        ti1 = ti1_of(ti2)
        return None if ti1 is None else z(t1_short, ti1, ti2)

    grid = [ti_min + (ti_max - gap - ti_min) * i / 400 for i in range(401)]
    previous = None
    for ti2 in grid:
        value = g(ti2)
        if value is None:
            previous = None
            continue
        if previous is not None and previous[1] < 0 <= value:
            ti2 = float(brentq(lambda t: g(t) if g(t) is not None else math.nan, previous[0], ti2, xtol=1e-9))
            ti1 = ti1_of(ti2)
            ti2 = _on_raster(ti2, raster, ti_min, ti_max - gap)
            return _on_raster(ti1, raster, ti2 + gap, ti_max), ti2  # type: ignore[arg-type]
        previous = (ti2, value)
    raise ValueError(
        f"no pair of inversion times nulls both T1 = {ms(t1_long)} and T1 = {ms(t1_short)} at tr = {ms(tr)} after "
        "this readout; lengthen tr or give ti1 and ti2"
    )


# ----------------------------------------------------------------------------------------------------------------
# shared construction


def _tissue_t1(name: str, field_strength: float) -> float:
    from ..phantom.tissues import tissue

    return float(tissue(name, field_strength).t1)


def _readout(
    readout: str,
    *,
    matrix,
    fov,
    te,
    echo_spacing,
    echo_train_length,
    refocusing_angles,
    dwell,
    excitation_phase,
    refocusing_phase,
    crusher_cycles,
    slice_thickness,
    spoiler_cycles,
    system,
) -> tuple[EchoTrain, list[list[int]]]:
    """The echo train of the readout and its line order ``[shot][echo]``."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    check_positive("te", te)
    if readout == "se":
        for name, value in (("echo_spacing", echo_spacing), ("echo_train_length", echo_train_length)):
            if value is not None:
                raise ValueError(f"{name} applies to readout='tse' only (the 'se' readout has one echo at te)")
        angles = check_refocusing_angles(refocusing_angles, 1)
        spacing, spacing_name = te, "te"
    else:
        spacing = DEFAULT_ECHO_SPACING if echo_spacing is None else echo_spacing
        check_positive("echo_spacing", spacing)
        etl = check_count(
            "echo_train_length", DEFAULT_ECHO_TRAIN_LENGTH if echo_train_length is None else echo_train_length
        )
        angles = check_refocusing_angles(refocusing_angles, etl)
        spacing_name = "echo_spacing"
    train = _make_train(
        matrix=matrix,
        fov=fov,
        dwell=dwell,
        echo_spacing=spacing,
        angles=angles,
        crusher_cycles=crusher_cycles,
        slice_thickness=slice_thickness,
        spoiler_cycles=spoiler_cycles,
        excitation_phase=excitation_phase,
        refocusing_phase=refocusing_phase,
        system=system,
    )
    check_train_timing(train, spacing_name=spacing_name, spacing=spacing)
    if readout == "se":
        order = [[line] for line in train.ro.lines()]
    else:
        order = tse_line_order(train.ro.ny, train.etl, effective_echo_index(te, spacing, train.etl, name="te"))
    return train, order


def _inversion_spoilers(train: EchoTrain, spoiler_cycles: float) -> tuple[tuple[float, float, float], ...]:
    """Spoiler moments after the first and the second inversion: ± ``spoiler_cycles`` per voxel along y.

    Along y (the readout's spoilers are along x and z) and of opposite signs, so that neither a readout spoiler
    nor the other inversion's spoiler is undone by an inversion pulse (which conjugates transverse states).
    """
    s = float(spoiler_cycles) * train.ro.ny * train.ro.dk_y
    return (0.0, s, 0.0), (0.0, -s, 0.0)


def _build(
    train: EchoTrain,
    order: list[list[int]],
    *,
    inversion_times: list[float],
    tr: float,
    spoilers,
    dummy_scans: int,
    dtype: torch.dtype,
) -> Sequence:
    """Shots of ``inversions + echo train``; ``inversion_times`` are inversion → excitation, longest first."""
    reps: list[Repetition] = []
    ti_first = inversion_times[0]
    for i, lines in enumerate([[None] * train.etl] * dummy_scans + order):
        for j, ti in enumerate(inversion_times):
            nxt = inversion_times[j + 1] if j + 1 < len(inversion_times) else 0.0
            reps.append(
                prep_repetition(
                    angle=math.pi,
                    duration=ti - nxt,
                    spoiler=spoilers[j],
                    usage="inversion",
                    system=train.system,
                    dtype=dtype,
                )
            )
        reps += train.shot(lines, shot_time=tr - ti_first, index=i, dtype=dtype)
    return Sequence(reps)


def _check_ti(name: str, ti: float, *, tr: float, ti_min: float, ti_max: float) -> float:
    ti = check_positive(name, ti)
    if ti >= tr:
        raise ValueError(f"{name} = {ms(ti)} must be shorter than tr = {ms(tr)}")
    check_fits(name, ti + TIME_SLACK, ti_min, "the inversion spoiler and RF gaps")
    if ti > ti_max + TIME_SLACK:
        raise ValueError(f"{name} = {ms(ti)} leaves too little of tr = {ms(tr)} for the readout (at most {ms(ti_max)})")
    return ti


def _single_inversion(
    *,
    ti,
    null_tissue: str,
    field_strength: float,
    tr: float,
    dummy_scans: int,
    dtype: torch.dtype,
    spoiler_cycles: float,
    **readout_args,
) -> Sequence:
    check_positive("tr", tr)
    check_count("dummy_scans", dummy_scans, minimum=0)
    train, order = _readout(spoiler_cycles=spoiler_cycles, **readout_args)
    spoilers = _inversion_spoilers(train, spoiler_cycles)
    ti_min = prep_minimum(spoilers[0], train.system)
    ti_max = tr - train.min_shot_time()
    if ti is None:
        t1 = _tissue_t1(null_tissue, field_strength)
        ti = null_inversion_time(
            t1,
            tr=tr,
            pulses=_train_pulses(train),
            ti_min=ti_min,
            ti_max=ti_max,
            raster=train.system.block_duration_raster,
        )
    else:
        _check_ti("ti", ti, tr=tr, ti_min=ti_min, ti_max=ti_max)
    return _build(train, order, inversion_times=[ti], tr=tr, spoilers=spoilers, dummy_scans=dummy_scans, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# public builders


def ir_spin_echo(
    *,
    ti: float | None = None,
    te: float = 12e-3,
    tr: float = 2.5,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    readout: str = "se",
    echo_spacing: float | None = None,
    echo_train_length: int | None = None,
    refocusing_angles: float | _AbcSequence[float] = math.pi,
    dwell: float = 30e-6,
    field_strength: float = 3.0,
    null_tissue: str = "csf",
    excitation_phase: float = math.pi / 2,
    refocusing_phase: float = 0.0,
    crusher_cycles: float = DEFAULT_CRUSHER_CYCLES,
    slice_thickness: float = DEFAULT_SLICE_THICKNESS,
    spoiler_cycles: float = DEFAULT_SPOILER_CYCLES,
    dummy_scans: int = 1,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """T1-weighted inversion-recovery spin echo (magnitude images): short TE, TR of a few T1 of tissue.

    Per TR: inversion (π) – spoiler – TI – 90° – readout (:func:`~gradmr.sequence.spin_echo.spin_echo` with one line
    per TR, or a TSE train). With the default TI (the CSF null for this TR and readout, as in T1-FLAIR) CSF is dark
    and white matter, whose shorter T1 has recovered further, is brighter than grey matter.

    Parameters
    ----------
    ti : float, optional
        Inversion time [s], inversion centre to excitation centre; ``None``: null ``null_tissue`` (see the module
        docstring for the formula).
    te : float
        Echo time [s] (``readout="se"``) or effective echo time (``readout="tse"``).
    tr : float
        Repetition time [s], inversion to inversion.
    matrix, fov, dwell, excitation_phase, refocusing_phase, crusher_cycles, slice_thickness, spoiler_cycles, \
system, dtype
        As for :func:`~gradmr.sequence.spin_echo.spin_echo`; ``spoiler_cycles`` also sizes the inversion spoiler
        (cycles per voxel along y).
    readout : {"se", "tse"}
        One spin echo per TR, or a turbo-spin-echo train.
    echo_spacing, echo_train_length : optional
        Of the ``"tse"`` readout [s], [1] (defaults 10 ms and 16); not allowed with ``"se"``.
    refocusing_angles : float or sequence of float
        Refocusing flip angle(s) [rad].
    field_strength : float
        1.5 or 3.0 [T]: tissue library for the default TI.
    null_tissue : str
        Tissue of the library whose T1 the default TI nulls.
    dummy_scans : int
        Shots without ADC before the imaging ones (one reaches the steady state of Z).
    """
    return _single_inversion(
        ti=ti,
        null_tissue=null_tissue,
        field_strength=field_strength,
        tr=tr,
        dummy_scans=dummy_scans,
        dtype=dtype,
        spoiler_cycles=spoiler_cycles,
        readout=readout,
        matrix=matrix,
        fov=fov,
        te=te,
        echo_spacing=echo_spacing,
        echo_train_length=echo_train_length,
        refocusing_angles=refocusing_angles,
        dwell=dwell,
        excitation_phase=excitation_phase,
        refocusing_phase=refocusing_phase,
        crusher_cycles=crusher_cycles,
        slice_thickness=slice_thickness,
        system=system,
    )


def flair(
    *,
    ti: float | None = None,
    te: float = 100e-3,
    tr: float = 9.0,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    readout: str = "tse",
    echo_spacing: float | None = None,
    echo_train_length: int | None = None,
    refocusing_angles: float | _AbcSequence[float] = math.pi,
    dwell: float = 30e-6,
    field_strength: float = 3.0,
    null_tissue: str = "csf",
    excitation_phase: float = math.pi / 2,
    refocusing_phase: float = 0.0,
    crusher_cycles: float = DEFAULT_CRUSHER_CYCLES,
    slice_thickness: float = DEFAULT_SLICE_THICKNESS,
    spoiler_cycles: float = DEFAULT_SPOILER_CYCLES,
    dummy_scans: int = 1,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """FLAIR: T2-weighted (long TE and TR) with CSF nulled by an inversion (Hajnal et al., JCAT 1992).

    Same layout as :func:`ir_spin_echo`; the default TI is the CSF null for the given TR and readout (module
    docstring): ≈ 2.42 s at 3 T and 1.93 s at 1.5 T for the defaults. Parameters as for :func:`ir_spin_echo`
    (``te`` is the effective echo time of the default ``readout="tse"``).
    """
    return _single_inversion(
        ti=ti,
        null_tissue=null_tissue,
        field_strength=field_strength,
        tr=tr,
        dummy_scans=dummy_scans,
        dtype=dtype,
        spoiler_cycles=spoiler_cycles,
        readout=readout,
        matrix=matrix,
        fov=fov,
        te=te,
        echo_spacing=echo_spacing,
        echo_train_length=echo_train_length,
        refocusing_angles=refocusing_angles,
        dwell=dwell,
        excitation_phase=excitation_phase,
        refocusing_phase=refocusing_phase,
        crusher_cycles=crusher_cycles,
        slice_thickness=slice_thickness,
        system=system,
    )


def double_inversion_recovery(
    *,
    ti1: float | None = None,
    ti2: float | None = None,
    te: float = 30e-3,
    tr: float = 12.0,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    readout: str = "tse",
    echo_spacing: float | None = None,
    echo_train_length: int | None = None,
    refocusing_angles: float | _AbcSequence[float] = math.pi,
    dwell: float = 30e-6,
    field_strength: float = 3.0,
    null_tissues: tuple[str, str] = ("csf", "wm"),
    excitation_phase: float = math.pi / 2,
    refocusing_phase: float = 0.0,
    crusher_cycles: float = DEFAULT_CRUSHER_CYCLES,
    slice_thickness: float = DEFAULT_SLICE_THICKNESS,
    spoiler_cycles: float = DEFAULT_SPOILER_CYCLES,
    dummy_scans: int = 1,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """Double inversion recovery: two inversions null two tissues (by default CSF and WM: a grey-matter image).

    Per TR: inversion 1 – TI1 − TI2 – inversion 2 – TI2 – 90° – readout. With ``ti1 = ti2 = None`` both are solved
    from ``Z = 1 − 2·e^{−TI2/T1} + (1 + Z_a)·e^{−TI1/T1} = 0`` for the T1 of both ``null_tissues`` at
    ``field_strength`` (module docstring); the longer-T1 tissue is nulled mostly by TI1, the shorter by TI2 (for the
    defaults TI1 ≈ 3.78 s, TI2 ≈ 0.56 s at 3 T; 3.02 s and 0.47 s at 1.5 T).

    Parameters
    ----------
    ti1, ti2 : float, optional
        First and second inversion to excitation [s], ``ti1 > ti2``; give both or neither.
    null_tissues : (str, str)
        Tissues of the library nulled by the default inversion times.
    te, tr, matrix, fov, readout, echo_spacing, echo_train_length, refocusing_angles, dwell, field_strength, ...
        As for :func:`ir_spin_echo` (the second inversion's spoiler has the opposite sign of the first's).
    """
    check_positive("tr", tr)
    check_count("dummy_scans", dummy_scans, minimum=0)
    train, order = _readout(
        readout,
        matrix=matrix,
        fov=fov,
        te=te,
        echo_spacing=echo_spacing,
        echo_train_length=echo_train_length,
        refocusing_angles=refocusing_angles,
        dwell=dwell,
        excitation_phase=excitation_phase,
        refocusing_phase=refocusing_phase,
        crusher_cycles=crusher_cycles,
        slice_thickness=slice_thickness,
        spoiler_cycles=spoiler_cycles,
        system=system,
    )
    spoilers = _inversion_spoilers(train, spoiler_cycles)
    gap = prep_minimum(spoilers[0], train.system)
    ti_min = prep_minimum(spoilers[1], train.system)
    ti_max = tr - train.min_shot_time()
    if (ti1 is None) != (ti2 is None):
        raise ValueError("give both ti1 and ti2, or neither (then both are solved to null null_tissues)")
    if ti1 is None:
        names = tuple(null_tissues)
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"null_tissues must be two different tissue names, got {null_tissues!r}")
        t1s = sorted((_tissue_t1(n, field_strength) for n in names), reverse=True)
        if t1s[0] == t1s[1]:
            raise ValueError(f"null_tissues {names} have the same T1 at {field_strength} T; one inversion nulls both")
        ti1, ti2 = double_null_inversion_times(
            t1s[0],
            t1s[1],
            tr=tr,
            pulses=_train_pulses(train),
            gap=gap,
            ti_min=ti_min,
            ti_max=ti_max,
            raster=train.system.block_duration_raster,
        )
    else:
        _check_ti("ti1", ti1, tr=tr, ti_min=ti_min + gap, ti_max=ti_max)
        _check_ti("ti2", ti2, tr=tr, ti_min=ti_min, ti_max=ti_max)
        if ti1 - ti2 + TIME_SLACK < gap:
            raise ValueError(
                f"ti1 = {ms(ti1)} must exceed ti2 = {ms(ti2)} by at least {ms(gap)} (inversion spoiler and RF gaps)"
            )
    return _build(
        train, order, inversion_times=[ti1, ti2], tr=tr, spoilers=spoilers, dummy_scans=dummy_scans, dtype=dtype
    )
