"""The BMapEst acquisition protocol as named presets: prepared, centric, RF- and gradient-spoiled FLASH contrasts.

BMapEst (Gundogdu et al., "Estimation of brain tissue probability maps using a differentiable MRI simulator",
arXiv:2404.14739; code github.com/BioMedAI-UCSC/BMapEst, ``src/sequences/mc_flash.py``, class ``McFlash``) simulates
six families of contrasts, four variants each (24 contrasts). Every contrast is a preparation followed by a
centric-reordered FLASH readout (FOV 200 mm, 8 mm slice, flip 5°, dwell 30 µs, RF-spoiling increment 50°,
28 mT/m, 150 T/m/s) and 10 s of recovery. The variants, as in ``McFlash.build_sequence`` (its arrays ``TI``,
``TEprep``, ``TEd``):

========  ==========================================================================  ============================
family    preparation                                                                 variants
========  ==========================================================================  ============================
T1        inversion, TI to the first excitation                                       TI = 0.1, 0.5, 1, 2.7 s
T2        T2-preparation 90°ₓ – TE/2 – 180°ᵧ – TE/2 – −90°ₓ                           TE = 10, 50, 100, 300 ms
T2star    none; the readout's TE (and TR) lengthened by an echo delay                 delay = 5, 10, 30, 60 ms
DIR       inversion – gap – inversion – 0.5 s – readout                               gap = 0.1, 0.5, 1, 2.7 s
FLAIR     inversion – 2.7 s – T2-preparation                                          TE = 10, 50, 100, 300 ms
DWI       spin-echo diffusion preparation 90°ₓ – G – 180°ᵧ – G – −90°ₓ                b = 0, 500, 1000, 2000 s/mm²
========  ==========================================================================  ============================

So the four FLAIR variants are the four T2-preparation times after one inversion at 2.7 s (``FLAIRprep``), and
the four DIR variants the four times between the inversions (the paper's ``TI`` array) with the second inversion
fixed at 0.5 s before the readout (its ``TI2`` array is defined but unused). With the BMapEst tissue table
(:func:`gradmr.phantom.tissue_table` ``(preset="bmapest")``) the DIR variants null neither CSF nor WM: the last one
(first inversion 3.2 s before the readout) brings WM to ≈ −5 %, GM to ≈ −20 % and CSF to ≈ +15 % of M0; the
inversions at 2.7 s of T1 and FLAIR leave CSF at ≈ −4.5 % of M0 (its null is at T1·ln 2 = 2.88 s).

Events view
-----------
Each contrast is one :class:`~gradmr.sequence.Sequence`:

1. a recovery wait: a repetition with a zero-angle pulse (``pulse_usage="undefined"``, not written by the Pulseq
   export) and one event of ``recovery`` seconds. A simulation from equilibrium is not changed by it; it makes the
   contrasts concatenable as the paper played them (one sequence per family, 10 s after each variant): before a
   contrast ``Mz → M0 − (M0 − Mz)·e^{−recovery/T1}``.
2. the preparation (below), ending with a spoiler event;
3. the readout: :func:`gradmr.sequence.flash` with ``order="centric"`` (k_y = 0 first, then −1, +1, −2, … /FOV),
   RF spoiling (pulse and receiver phase ``inc·n(n+1)/2``, as the paper's ``rf_inc`` recursion), a spoiler of
   2 cycles per voxel along x per TR (the paper's net x moment per TR: −½ + 1 + 1.5 readout areas), phase
   encoding rewound. Samples lie on the grid ``k = n/FOV`` (:func:`gradmr.recon.reconstruct_cartesian`).

Pulses are instantaneous and non-selective; times run between pulse centres (the paper's pypulseq blocks add the
1 ms pulses and the 1.5 ms spoiler to its delays, so its TIs and preparation times are ≈ 1–3 ms longer than
nominal; ours are exact). Preparation pulses: inversion π at phase 0 (``"inversion"``); T2- and diffusion
preparation 90° at phase 0 (``"excitation"``), 180° at phase 90° (``"refocusing"``, CPMG: the refocusing axis is
the magnetisation's), 90° at phase 180° (``"storage"``, the paper's ``rf90_``), which stores the echo as
``+Mz·e^{−TE/T2}`` (sign kept), while the longitudinal magnetisation regrown during the preparation is tipped into
the transverse plane and spoiled. No crushers around the 180° (the paper has none; with ideal pulses nothing is
left to crush; a single, simple spoiler follows the storage pulse rather than an MLEV composite scheme).

Spoilers of the preparation are along z (the paper's ``gz_spoil``), of :data:`PREP_SPOILER_CYCLES` cycles across
the slice (500 1/m at 8 mm; the paper's 1.5 × readout area is ≈ 488 1/m), one after each inversion and one after
each storage pulse; within a contrast the k-th spoiler has k times that moment, so that no pulse, which conjugates
or keeps transverse states, brings two spoilers' dephasing back to k = 0 (no signed sum of S and 2S is 0). The
readout has no z gradient, so magnetisation left transverse by a preparation never emits (in the simulator: its
k_z lies outside the voxel's band when the phantom's voxel is as thick as the slice).

Timing choices (deviations from the paper's code, with reasons)
----------------------------------------------------------------
* Readout TE and TR are the shortest ``system`` allows for the matrix (1.70 ms and 3.61 ms at 64 × 64, 30 µs dwell
  and the default limits); the paper's pypulseq blocks (1 ms sinc pulse with dead times, 1 ms
  prephaser, 1.5 ms spoiler) give ≈ 2.5 ms and 5.6 ms. The T2star delays lengthen both TE and TR, as in the paper.
* Diffusion: the paper's lobe areas ``[10, 50, 100, 300]*1000000`` are a Python list repetition (areas 10 … 300
  1/m, b ≈ 0), so its DWI family is T2-prepared only. Ours are defined by b-value along x (the paper's axis): two
  constant-gradient lobes of duration δ, separated by Δ = δ + 2·rf_gap, each of moment q with
  ``b = (2πq)²(Δ − δ/3)`` (Stejskal & Tanner, J. Chem. Phys. 1965). δ is the shortest (on the gradient raster)
  that fits the largest b-value (2000 s/mm²) under the system limits, and is kept for every b-value (b = 0 has the
  same timing without lobes), so that the variants differ by diffusion alone: at the default limits δ ≈ 37 ms and
  the preparation lasts ≈ 76 ms (the paper's ≈ 22 ms). The b-values are those of the constant-gradient events the
  simulators see; trapezoids of the same moments, as the Pulseq export writes them, give a slightly lower b.
* After a T2- or diffusion preparation, Mz recovers over the storage spoiler event (≈ 1.4 ms) before the readout's
  excitation: ``Z = 1 − (1 − Z_stored)·e^{−t/T1}``, a few 1e-4 of M0 that dominate heavily attenuated signals
  (CSF at b = 2000 s/mm²: e^{−bD} ≈ 1.7e-3).
* Every event is at least as long as its gradient moment needs (:func:`~gradmr.sequence.min_moment_time`, plus one
  raster step as the builders do) and leaves :attr:`~gradmr.sequence.SystemLimits.rf_gap` next to each pulse, so the
  protocol can be exported with :mod:`gradmr.io.pulseq_export`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..sequence.core import Repetition, Sequence
from ..sequence.flash import CartesianGeometry, check_readout_gradient, echo_train_timing, flash
from ..sequence.spin_echo import lobe_time
from ..sequence.system import DEFAULT_SYSTEM, SystemLimits

#: The contrast families of the protocol, in the paper's order (``McFlash.seq_types``).
FAMILIES = ("T1", "T2", "T2star", "DIR", "FLAIR", "DWI")

#: Variants per family in the paper.
MAX_ECHOES = 4

#: T1 family: inversion to the first excitation [s].
T1_INVERSION_TIMES = (0.1, 0.5, 1.0, 2.7)
#: T2 and FLAIR families: T2-preparation time, tip-down to storage pulse [s].
T2_PREP_TIMES = (0.01, 0.05, 0.1, 0.3)
#: T2star family: delay added to the readout's TE (and TR) [s].
T2STAR_DELAYS = (0.005, 0.01, 0.03, 0.06)
#: DIR family: first to second inversion [s] (the paper's ``TI`` array).
DIR_INVERSION_GAPS = (0.1, 0.5, 1.0, 2.7)
#: DIR family: second inversion to the first excitation [s].
DIR_SECOND_INVERSION_TIME = 0.5
#: FLAIR family: inversion to the T2-preparation's tip-down pulse [s].
FLAIR_INVERSION_TIME = 2.7
#: DWI family: b-values along x [s/m²] (0, 500, 1000, 2000 s/mm²).
DWI_B_VALUES = (0.0, 0.5e9, 1.0e9, 2.0e9)
#: Direction of the diffusion lobes (the paper's ``gx_diff``).
DWI_DIRECTION = (1.0, 0.0, 0.0)

#: Spoiler after a preparation: cycles across the slice, along z (≈ the paper's ``gz_spoil``, 1.5 readout areas).
PREP_SPOILER_CYCLES = 4.0
#: Readout spoiler, cycles per voxel along x per TR (the paper's net moment per TR, 2 readout areas).
READOUT_SPOILER_CYCLES = 2.0

_ALIASES = {"t1": "T1", "t2": "T2", "t2star": "T2star", "t2*": "T2star", "dir": "DIR", "flair": "FLAIR", "dwi": "DWI"}
_TWO_PI = 2 * math.pi
_SLACK = 1e-12


@dataclass(frozen=True)
class Contrast:
    """One contrast of the protocol.

    Attributes
    ----------
    name : str
        Unique name, e.g. ``"T1_TI100ms"``, ``"DWI_b1000"``.
    family : str
        One of :data:`FAMILIES`.
    sequence : Sequence
        Recovery wait, preparation and centric FLASH readout; its samples cover the Cartesian grid once.
    description : str
        One line: preparation and readout parameters.
    """

    name: str
    family: str
    sequence: Sequence
    description: str


# ---------------------------------------------------------------------------------------------------- names
def _canonical(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"family names must be strings, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown contrast family {name!r}; choose from {', '.join(FAMILIES)} (T2* = T2star)")
    return _ALIASES[key]


def _families(names: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        canonical = _canonical(name)
        if canonical in out:
            raise ValueError(f"contrast family {canonical} is given twice")
        out.append(canonical)
    if not out:
        raise ValueError(f"give at least one contrast family of {', '.join(FAMILIES)}")
    return tuple(out)


def parse_families(text: str) -> tuple[str, ...]:
    """Family names from a comma-separated string, e.g. ``"T1,T2,T2star"``, in the order given.

    Case-insensitive; ``"T2*"`` means ``"T2star"``; blanks around names are ignored. Raises ``ValueError`` for an
    unknown or repeated name or an empty list.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_families takes a comma-separated string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"give at least one contrast family of {', '.join(FAMILIES)}")
    return _families(text.split(","))


# ---------------------------------------------------------------------------------------------------- events
def _rep(events, *, angle: float, phase: float, usage: str, dtype: torch.dtype) -> Repetition:
    """A repetition from ``(duration [s], moment (x, y, z) [1/m])`` events, without ADC."""
    n = len(events)
    rep = Repetition.create(n, pulse_angle=angle, pulse_phase=phase, pulse_usage=usage, dtype=dtype)
    return rep.replace(
        event_time=torch.tensor([float(t) for t, _ in events], dtype=dtype),
        gradm=torch.tensor([[float(v) for v in m] for _, m in events], dtype=dtype).reshape(n, 3),
    )


_ZERO = (0.0, 0.0, 0.0)


class _Builder:
    """Preparation repetitions for one geometry and system."""

    def __init__(self, *, slice_thickness: float, system: SystemLimits, dtype: torch.dtype) -> None:
        self.spoiler = PREP_SPOILER_CYCLES / slice_thickness
        self.system = system
        self.gap = system.rf_gap
        self.dtype = dtype

    def _spoil(self, order: int) -> tuple[float, float, float]:
        return (0.0, 0.0, order * self.spoiler)

    def inversion(self, duration: float, order: int, what: str) -> list[Repetition]:
        """π pulse, spoiler, wait: ``duration`` [s] from the pulse to the next pulse."""
        spoil = self._spoil(order)
        t_spoil = self.gap + lobe_time(spoil, self.system)
        shortest = t_spoil + self.gap
        if duration + _SLACK < shortest:
            raise ValueError(f"{what} = {duration * 1e3:.4g} ms is shorter than the inversion spoiler allows")
        events = [(t_spoil, spoil), (duration - t_spoil, _ZERO)]
        return [_rep(events, angle=math.pi, phase=0.0, usage="inversion", dtype=self.dtype)]

    def _storage(self, order: int) -> Repetition:
        spoil = self._spoil(order)
        events = [(2 * self.gap + lobe_time(spoil, self.system), spoil)]
        return _rep(events, angle=math.pi / 2, phase=math.pi, usage="storage", dtype=self.dtype)

    def t2_prep(self, te: float, order: int) -> list[Repetition]:
        """90°ₓ – TE/2 – 180°ᵧ – TE/2 – −90°ₓ, then a spoiler."""
        if te / 2 + _SLACK < 2 * self.gap:
            raise ValueError(f"T2-preparation time {te * 1e3:.4g} ms is shorter than the RF gaps allow")
        half = [(te / 2, _ZERO)]
        return [
            _rep(half, angle=math.pi / 2, phase=0.0, usage="excitation", dtype=self.dtype),
            _rep(half, angle=math.pi, phase=math.pi / 2, usage="refocusing", dtype=self.dtype),
            self._storage(order),
        ]

    def diffusion_timing(self, b_max: float) -> tuple[float, float]:
        """(δ, Δ) [s]: the shortest lobe duration on the gradient raster that reaches ``b_max`` [s/m²]."""
        raster = self.system.grad_raster_time

        def fits(n: int) -> bool:
            delta = n * raster
            return lobe_time(self._lobe(b_max, delta, delta + 2 * self.gap), self.system) <= delta + _SLACK

        hi = 1
        while not fits(hi):
            hi *= 2
            if hi * raster > 10.0:
                raise ValueError(f"b = {b_max / 1e6:.4g} s/mm² does not fit in a diffusion preparation of 20 s")
        lo = hi // 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if fits(mid):
                hi = mid
            else:
                lo = mid
        delta = hi * raster
        return delta, delta + 2 * self.gap

    @staticmethod
    def _lobe(b: float, delta: float, big_delta: float) -> tuple[float, float, float]:
        q = math.sqrt(b / (big_delta - delta / 3)) / _TWO_PI if b > 0 else 0.0
        return tuple(q * float(v) for v in DWI_DIRECTION)  # type: ignore[return-value]

    def diffusion_prep(self, b: float, delta: float, big_delta: float, order: int) -> list[Repetition]:
        """90°ₓ – lobe – 180°ᵧ – lobe – −90°ₓ (lobes of δ, starts Δ apart), then a spoiler."""
        lobe = self._lobe(b, delta, big_delta)
        half = [(self.gap, _ZERO), (delta, lobe), (self.gap, _ZERO)]
        return [
            _rep(half, angle=math.pi / 2, phase=0.0, usage="excitation", dtype=self.dtype),
            _rep(half, angle=math.pi, phase=math.pi / 2, usage="refocusing", dtype=self.dtype),
            self._storage(order),
        ]


# ---------------------------------------------------------------------------------------------------- protocol
def _check_float(name: str, value, *, lo: float, hi: float = math.inf, closed_lo: bool = False, unit: str) -> float:
    v = float(value)
    ok = (v >= lo if closed_lo else v > lo) and v <= hi and math.isfinite(v)
    if not ok:
        bracket = "[" if closed_lo else "("
        raise ValueError(f"{name} must be in {bracket}{lo:g}, {hi:g}] {unit}, got {v!r}")
    return v


def _ms(t: float) -> str:
    return f"{t * 1e3:.4g}"


def paper_protocol(
    *,
    families: Iterable[str] | str = FAMILIES,
    echoes: int = MAX_ECHOES,
    matrix: tuple[int, int] = (64, 64),
    fov: float | tuple[float, float] = 0.2,
    slice_thickness: float = 8e-3,
    flip_angle: float = math.radians(5.0),
    dwell: float = 30e-6,
    rf_spoil_increment: float = math.radians(50.0),
    recovery: float = 10.0,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> list[Contrast]:
    """The BMapEst protocol: ``len(families) × echoes`` prepared centric FLASH contrasts (see the module docstring).

    Parameters
    ----------
    families : iterable of str, or a comma-separated str
        Families of :data:`FAMILIES` (case-insensitive, ``"T2*"`` = ``"T2star"``), in the order wanted.
    echoes : int
        Variants per family, 1 … 4: the first ``echoes`` of the paper's four (same sequences as in the full set).
    matrix : (nx, ny)
        Readout samples and phase-encode lines.
    fov : float or (x, y)
        Field of view [m].
    slice_thickness : float
        Slice thickness [m]; sizes the preparation spoilers (:data:`PREP_SPOILER_CYCLES` cycles across it).
    flip_angle : float
        Readout flip angle [rad].
    dwell : float
        ADC dwell time [s]; the readout gradient ``1/(fov_x·dwell)`` must not exceed ``system.max_grad``.
    rf_spoil_increment : float
        Quadratic RF-spoiling increment of the readout [rad].
    recovery : float
        Relaxation before each contrast [s] (an initial wait; ≥ 0, 0 leaves it out).
    system : SystemLimits
        Gradient limits and RF gaps every event is sized for.
    dtype : torch.dtype
        Dtype of the sequence tensors.

    Returns
    -------
    list of Contrast
        Family by family in the order of ``families``, variants in the paper's order.
    """
    fams = parse_families(families) if isinstance(families, str) else _families(families)
    if isinstance(echoes, bool) or not isinstance(echoes, int) or not 1 <= echoes <= MAX_ECHOES:
        raise ValueError(f"echoes must be an integer in 1 … {MAX_ECHOES}, got {echoes!r}")
    fov_xy = (fov, fov) if isinstance(fov, (int, float)) else tuple(fov)
    geometry = CartesianGeometry.create(matrix, fov_xy)
    slice_thickness = _check_float("slice_thickness", slice_thickness, lo=0.0, hi=1.0, unit="m")
    recovery = _check_float("recovery", recovery, lo=0.0, closed_lo=True, unit="s")
    dwell = _check_float("dwell", dwell, lo=0.0, unit="s")
    check_readout_gradient(geometry, dwell, system)

    spoil_x = READOUT_SPOILER_CYCLES * geometry.nx * geometry.dk[0]
    timing = echo_train_timing(geometry, dwell=dwell, spoiler_moment=spoil_x, system=system)
    te0 = timing.min_te
    tr0 = timing.pre_min + timing.readout_time + timing.post_min

    def readout(delay: float = 0.0) -> Sequence:
        return flash(
            matrix=(geometry.nx, geometry.ny),
            fov=fov_xy,
            flip_angle=flip_angle,
            tr=tr0 + delay,
            te=te0 + delay,
            dwell=dwell,
            rf_spoil_increment=rf_spoil_increment,
            spoiler_cycles=READOUT_SPOILER_CYCLES,
            order="centric",
            system=system,
            dtype=dtype,
        )

    def readout_text(delay: float = 0.0) -> str:
        return (
            f"centric FLASH {geometry.nx}×{geometry.ny}, α = {math.degrees(flip_angle):.3g}°, "
            f"TE = {_ms(te0 + delay)} ms, TR = {_ms(tr0 + delay)} ms"
        )

    base, base_text = readout(), readout_text()
    wait = []
    if recovery > 0:
        wait = [Repetition.create(1, event_time=recovery, pulse_usage="undefined", dtype=dtype)]
    prep = _Builder(slice_thickness=slice_thickness, system=system, dtype=dtype)
    delta = big_delta = 0.0
    if "DWI" in fams:
        delta, big_delta = prep.diffusion_timing(max(DWI_B_VALUES))

    out: list[Contrast] = []
    for fam in fams:
        for i in range(echoes):
            ro, ro_desc = base, base_text
            if fam == "T1":
                ti = T1_INVERSION_TIMES[i]
                name = f"T1_TI{_ms(ti)}ms"
                reps = prep.inversion(ti, 1, "TI")
                desc = f"inversion recovery, TI = {_ms(ti)} ms"
            elif fam == "T2":
                te = T2_PREP_TIMES[i]
                name = f"T2_TE{_ms(te)}ms"
                reps = prep.t2_prep(te, 1)
                desc = f"T2-preparation, TE = {_ms(te)} ms"
            elif fam == "T2star":
                d = T2STAR_DELAYS[i]
                name = f"T2star_dTE{_ms(d)}ms"
                reps = []
                ro, ro_desc = readout(d), readout_text(d)
                desc = f"no preparation, echo delay {_ms(d)} ms"
            elif fam == "DIR":
                gap = DIR_INVERSION_GAPS[i]
                ti2 = DIR_SECOND_INVERSION_TIME
                name = f"DIR_TI1_{_ms(gap + ti2)}ms"
                reps = prep.inversion(gap, 1, "DIR inversion gap") + prep.inversion(ti2, 2, "DIR TI2")
                desc = f"double inversion, TI1 = {_ms(gap + ti2)} ms, TI2 = {_ms(ti2)} ms"
            elif fam == "FLAIR":
                te = T2_PREP_TIMES[i]
                ti = FLAIR_INVERSION_TIME
                name = f"FLAIR_TE{_ms(te)}ms"
                reps = prep.inversion(ti, 1, "FLAIR TI") + prep.t2_prep(te, 2)
                desc = f"inversion, TI = {_ms(ti)} ms to a T2-preparation of TE = {_ms(te)} ms"
            else:  # DWI
                b = DWI_B_VALUES[i]
                name = f"DWI_b{b / 1e6:.0f}"
                reps = prep.diffusion_prep(b, delta, big_delta, 1)
                desc = (
                    f"diffusion preparation, b = {b / 1e6:.0f} s/mm² along x, δ = {_ms(delta)} ms, "
                    f"Δ = {_ms(big_delta)} ms, TE = {_ms(2 * big_delta)} ms"
                )
            seq = Sequence(wait + reps) + ro
            out.append(Contrast(name=name, family=fam, sequence=seq, description=f"{desc}; {ro_desc}"))
    return out
