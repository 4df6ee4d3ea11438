"""Spin-echo builders: 2D Cartesian spin echo and turbo spin echo (RARE / TSE), both CPMG.

Layout of one shot (a shot is one TR; times from the centre of the 90° pulse)::

    90°(φe) ─ prephaser x ─ … ─ crusher z ─ 180°(φr) ─ crusher z, phase encode y ─ … ─ ADC ─ rewind y, crusher z ─ …
            ├────────────── ESP/2 ─────────────┤├─────────── ESP/2 ──────────┤├──────── ESP/2 ────────┤ next 180° …

* **CPMG.** The excitation has phase ``excitation_phase = π/2``: it turns +z to +x (rotation right-handed about
  +y, ``docs/conventions.md``). The refocusing pulses have phase ``refocusing_phase = 0``: their axis (+x) is
  parallel to the magnetisation after the excitation (Carr–Purcell–Meiboom–Gill; Meiboom & Gill, Rev. Sci.
  Instrum. 1958). Then errors of the refocusing angle do not accumulate and every echo (spin echo and stimulated
  echoes alike) has the same phase: trains with refocusing angles below π keep a stable, slowly varying echo
  amplitude (Hennig, J. Magn. Reson. 1988).
* **Crushers.** Each refocusing pulse sits between two equal z moments ``crusher_cycles / slice_thickness``; with
  the readout prephaser (half the readout moment between pulses, the other half after the echo) every interval
  between refocusing pulses has the same moment and the first half-interval half of it, so all echo pathways
  refocus at the echo centres and the free induction decay of every refocusing pulse stays dephased.
* **Trajectory.** :meth:`Sequence.kspace` negates k at a refocusing pulse, so the prephaser before the first
  refocusing pulse is *positive* (``(nx//2 + 1)/fov_x``): after the pulse the readout starts at
  ``−(nx//2 + 1)/fov_x`` and the samples (taken at the end of their events) sit at ``k_x = n/fov_x``,
  ``n = −nx/2 … nx/2 − 1``; phase encoding is applied after each refocusing pulse and rewound after its
  readout, so a centred inverse FFT reconstructs (:func:`gradmr.recon.reconstruct_cartesian`).
* **Scanner limits.** Every event is sized with :func:`~gradmr.sequence.system.min_moment_time` for its largest
  per-axis moment; the event after a pulse and the one before the next pulse also hold
  :attr:`SystemLimits.rf_gap`. The readout gradient is flat (``1/(fov_x·dwell)`` ≤ ``max_grad``) during the ADC;
  the event right before the ADC run is its ramp (duration ``G/slew`` on the gradient raster, moment ``G·t/2``,
  included in the prephaser), and the event right after it has time to ramp down as well as for its own moment.
  Every builder of the family exports with :func:`gradmr.io.pulseq_export.to_pulseq` at its shortest timings.
* **ADC phase** demodulates the phase of the nominal echo (``φe − π/2`` for every echo under CPMG), so the
  image of a positive magnetisation is real and positive.
* **Spoiling.** After the last echo of a shot the phase encoding is rewound and x (``spoiler_cycles`` per voxel)
  and z moments dephase what is left before the next TR; the z moment changes from shot to shot
  (:data:`SPOILER_STEPS`) so that leftovers of one shot are not refocused into a later one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence as _AbcSequence
from dataclasses import dataclass

import torch

from ._checks import check_count, check_fits, check_flip, check_fov, check_matrix, check_positive
from .core import Repetition, Sequence
from .system import DEFAULT_SYSTEM, SystemLimits, min_moment_time

#: Crusher moment around each refocusing pulse, in cycles of phase across :data:`DEFAULT_SLICE_THICKNESS`.
DEFAULT_CRUSHER_CYCLES = 4.0

#: Slice thickness the crushers are sized for [m] (the built-in brain phantom's default).
DEFAULT_SLICE_THICKNESS = 5e-3

#: Spoiler after the last echo of a shot, in cycles across one voxel along x (as :func:`~gradmr.sequence.flash`).
DEFAULT_SPOILER_CYCLES = 2.0

#: z spoiler after the last echo of shot n, in crusher moments: ``SPOILER_STEPS[n % 4]``. Successive shots differ, so
#: magnetisation left over from one shot is not refocused by the next one's refocusing pulses: with a constant
#: spoiler the moment after a refocusing pulse of shot n + 1 undoes the one after the refocusing pulse of shot n
#: and the 90° of shot n + 1 (as a partial refocusing pulse) makes an echo at the centre of k-space two shots later.
#: With steps 1, 2, 4, 8 no signed sum of the spoilers of 2, 4 or 6 consecutive shots vanishes (8 can; such
#: pathways decay over 8 TRs). Steps 1, 2, 4 left 1.4 % of spurious signal at TR = 1 s for T2 = 1.65 s.
SPOILER_STEPS = (1.0, 2.0, 4.0, 8.0)

#: Slack [s] when comparing a requested time with the minimum it must reach (float round-off of sums of events).
TIME_SLACK = 1e-9

_COMMON_PARAMETERS: dict[str, tuple[str, str]] = {
    "matrix": ("1", "samples per readout (x) and phase-encode lines (y)"),
    "fov": ("m", "field of view in x and y"),
    "tr": ("s", "repetition time: one shot, from its first pulse to the next shot's"),
    "dwell": ("s", "ADC dwell time"),
    "excitation_phase": ("rad", "phase of the 90° excitation (π/2 turns +z to +x)"),
    "refocusing_phase": ("rad", "phase of the refocusing pulses (0: CPMG with the default excitation)"),
    "crusher_cycles": ("1", "crusher moment around each refocusing pulse, cycles across slice_thickness"),
    "slice_thickness": ("m", "slice thickness the crushers are sized for"),
    "spoiler_cycles": ("1", "x spoiler after the last echo of a shot, cycles across one voxel"),
    "dummy_scans": ("1", "shots without ADC before the imaging ones"),
}

#: Units and one-line help of every user-facing parameter of the builders in this module.
PARAMETERS: dict[str, dict[str, tuple[str, str]]] = {
    "spin_echo": {
        **_COMMON_PARAMETERS,
        "te": ("s", "echo time: excitation to the k = 0 sample"),
        "refocusing_angle": ("rad", "flip angle of the refocusing pulse"),
    },
    "turbo_spin_echo": {
        **_COMMON_PARAMETERS,
        "te_eff": ("s", "effective echo time: the echo at which k_y = 0 is acquired (a multiple of echo_spacing)"),
        "echo_spacing": ("s", "time between successive refocusing pulses (and echoes)"),
        "echo_train_length": ("1", "echoes per excitation; must divide the number of phase-encode lines"),
        "refocusing_angles": ("rad", "refocusing flip angle, one value or one per echo"),
    },
}


# ----------------------------------------------------------------------------------------------------------------
# timing helpers shared by the spin-echo family (inversion.py and diffusion.py use them too)


def lobe_time(moment, system: SystemLimits = DEFAULT_SYSTEM) -> float:
    """Event time [s] the builders give the moment ``(mx, my, mz)`` [1/m]: the slowest axis's :func:`min_moment_time`
    plus one gradient raster step.

    :func:`min_moment_time` rounds the continuous optimum to the raster once; a trapezoid whose corners must lie on the
    raster (as the Pulseq export writes it) can need one step more (800 1/m at 28 mT/m, 150 T/m/s: 860 µs continuous,
    870 µs on a 10 µs raster). One step is always enough (checked for 0.5 … 3·10⁴ 1/m).
    """
    need = max(min_moment_time(float(m), system) for m in moment)
    return need + system.grad_raster_time if need > 0 else 0.0


def ramp_time(gradient_hz: float, system: SystemLimits = DEFAULT_SYSTEM) -> float:
    """Time [s] to ramp a gradient of ``gradient_hz`` [Hz/m] up or down, rounded up to the gradient raster."""
    t = abs(gradient_hz) / system.max_slew_hz
    return math.ceil(t / system.grad_raster_time - 1e-9) * system.grad_raster_time


def crusher_moment(crusher_cycles: float, slice_thickness: float) -> float:
    """z moment [1/m] of one crusher: ``crusher_cycles`` cycles across ``slice_thickness``."""
    if not (float(crusher_cycles) >= 0 and math.isfinite(crusher_cycles)):
        raise ValueError(f"crusher_cycles must be ≥ 0, got {crusher_cycles!r}")
    check_positive("slice_thickness", slice_thickness, "m")
    return float(crusher_cycles) / float(slice_thickness)


@dataclass(frozen=True)
class CartesianReadout:
    """Geometry and timing of the flat Cartesian readout along x shared by the spin-echo builders.

    The k = 0 sample is the ``(nx//2 + 1)``-th of the run (a sample is taken at the end of its event).
    """

    nx: int
    ny: int
    fov_x: float
    fov_y: float
    dwell: float
    system: SystemLimits

    @staticmethod
    def create(matrix, fov, dwell: float, system: SystemLimits) -> CartesianReadout:
        nx, ny = check_matrix(matrix)
        fov_x, fov_y = check_fov(fov)
        check_positive("dwell", dwell)
        ro = CartesianReadout(nx, ny, fov_x, fov_y, float(dwell), system)
        if ro.gradient_hz > system.max_grad_hz * (1 + 1e-12):
            min_dwell = 1.0 / (fov_x * system.max_grad_hz)
            g_mt = ro.gradient_hz / system.max_grad_hz * system.max_grad * 1e3
            raise ValueError(
                f"dwell = {dwell * 1e6:.3g} µs needs a readout gradient of {g_mt:.3g} mT/m for fov_x = {fov_x:.3g} m, "
                f"above max_grad = {system.max_grad * 1e3:.3g} mT/m "
                f"(minimum dwell {min_dwell * 1e6:.3g} µs)"
            )
        return ro

    @property
    def dk_x(self) -> float:
        return 1.0 / self.fov_x

    @property
    def dk_y(self) -> float:
        return 1.0 / self.fov_y

    @property
    def gradient_hz(self) -> float:
        """Flat readout gradient [Hz/m]."""
        return self.dk_x / self.dwell

    @property
    def ramp(self) -> float:
        """Ramp time of the readout gradient [s]."""
        return ramp_time(self.gradient_hz, self.system)

    @property
    def ramp_area(self) -> float:
        """x moment [1/m] of the linear ramp from 0 to the readout gradient in :attr:`ramp`."""
        return self.gradient_hz * self.ramp / 2

    @property
    def to_first(self) -> float:
        """x moment [1/m] from the start of the ADC run to its k = 0 sample, ``(nx//2 + 1)/fov_x``."""
        return (self.nx // 2 + 1) * self.dk_x

    @property
    def prephase(self) -> float:
        """x moment [1/m] before a refocusing pulse; after the pulse the ramp event brings k to ``−to_first``.

        The ramp's own moment is in an event of its own right before the ADC run (:attr:`ramp`, :attr:`ramp_area`),
        so that an exported waveform ramps up exactly there; the prephaser includes it.
        """
        return self.to_first + self.ramp_area

    def next_to_readout(self, moment) -> float:
        """Shortest event [s] holding ``moment`` next to the ADC run, whose x gradient ramps from or to the plateau.

        Conservative: the ramp, then a lobe of the x moment plus the ramp's area (as if the ramp's area had to be
        undone), in parallel with the other axes' lobes.
        """
        x = self.ramp + min_moment_time(abs(float(moment[0])) + self.ramp_area, self.system)
        return max(x, lobe_time((0.0, moment[1], moment[2]), self.system))

    @property
    def to_centre(self) -> float:
        """ADC start → k = 0 sample [s]."""
        return (self.nx // 2 + 1) * self.dwell

    @property
    def from_centre(self) -> float:
        """k = 0 sample → ADC end [s]."""
        return (self.nx - self.nx // 2 - 1) * self.dwell

    @property
    def end_moment(self) -> float:
        """x moment at the end of the readout, from the echo [1/m]."""
        return (self.nx - self.nx // 2 - 1) * self.dk_x

    @property
    def max_phase_encode(self) -> float:
        """Largest phase-encode moment [1/m]."""
        return (self.ny // 2) * self.dk_y

    def lines(self) -> list[int]:
        """Phase-encode line indices ``−ny//2 … ny − ny//2 − 1``."""
        return list(range(-(self.ny // 2), self.ny - self.ny // 2))


def adc_phase_of_echo(echo: int, excitation_phase: float, refocusing_phase: float) -> float:
    """Phase [rad] of the nominal spin echo after ``echo`` (≥ 1) refocusing pulses.

    An excitation of phase φe gives M⁺ = −i·e^{iφe}; each refocusing pulse of phase φr maps M⁺ to
    e^{2iφr}·conj(M⁺). Odd echoes: 2φr − φe + π/2; even echoes: φe − π/2 (equal under CPMG, φr = φe − π/2).
    """
    if echo % 2:
        return 2 * refocusing_phase - excitation_phase + math.pi / 2
    return excitation_phase - math.pi / 2


def make_repetition(
    events: list[tuple[float, tuple[float, float, float], bool]],
    *,
    angle: float,
    phase: float,
    usage: str,
    adc_phase: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> Repetition:
    """A repetition from ``(duration [s], moment (x, y, z) [1/m], adc)`` tuples."""
    n = len(events)
    rep = Repetition.create(n, pulse_angle=angle, pulse_phase=phase, pulse_usage=usage, dtype=dtype)
    event_time = torch.tensor([max(e[0], 0.0) for e in events], dtype=dtype)
    gradm = torch.tensor([list(e[1]) for e in events], dtype=dtype).reshape(n, 3)
    adc = torch.tensor([bool(e[2]) for e in events], dtype=torch.bool)
    return rep.replace(event_time=event_time, gradm=gradm, adc_usage=adc, adc_phase=adc.to(dtype) * adc_phase)


def prep_repetition(
    *, angle: float, duration: float, spoiler, usage: str, system: SystemLimits, dtype: torch.dtype
) -> Repetition:
    """A preparation pulse (e.g. an inversion, phase 0) followed by a spoiler event and idle time up to ``duration``."""
    t_spoil = system.rf_gap + lobe_time(spoiler, system)
    events = [(t_spoil, tuple(spoiler), False), (duration - t_spoil, (0.0, 0.0, 0.0), False)]
    return make_repetition(events, angle=angle, phase=0.0, usage=usage, dtype=dtype)


def prep_minimum(spoiler, system: SystemLimits) -> float:
    """Shortest preparation repetition [s]: RF gap, spoiler, RF gap before the next pulse."""
    return 2 * system.rf_gap + lobe_time(spoiler, system)


# ----------------------------------------------------------------------------------------------------------------
# the echo train


@dataclass(frozen=True)
class EchoTrain:
    """Timing of a CPMG echo train with a Cartesian readout (ETL = 1 is the plain spin echo).

    All builders of the family go through :meth:`shot`, which returns the repetitions from the excitation to the
    end of the shot.
    """

    ro: CartesianReadout
    echo_spacing: float
    angles: tuple[float, ...]
    crusher: float
    spoiler_cycles: float
    excitation_phase: float
    refocusing_phase: float

    @property
    def system(self) -> SystemLimits:
        return self.ro.system

    @property
    def etl(self) -> int:
        return len(self.angles)

    # --- event contents -----------------------------------------------------------------------------------------
    def _prephaser(self) -> tuple[float, float, float]:
        return (self.ro.prephase, 0.0, 0.0)

    def _crush(self) -> tuple[float, float, float]:
        return (0.0, 0.0, self.crusher)

    def _inter_echo_x(self) -> float:
        # from the end of a readout back to the prephase moment: the interval between pulses is then 2·prephase
        return self.ro.prephase - self.ro.end_moment

    def final_spoiler(self, pe: float = 0.0, shot: int = 0) -> tuple[float, float, float]:
        """Moment after the last readout of shot ``shot``: spoil x, rewind y, z spoiler :data:`SPOILER_STEPS`."""
        ro = self.ro
        z = self.crusher * SPOILER_STEPS[shot % len(SPOILER_STEPS)]
        return (-ro.end_moment + self.spoiler_cycles * ro.nx * ro.dk_x, -pe, z)

    # --- minimum times --------------------------------------------------------------------------------------------
    @property
    def t_prephaser(self) -> float:
        return self.system.rf_gap + lobe_time(self._prephaser(), self.system)

    @property
    def t_crusher_before(self) -> float:
        return lobe_time(self._crush(), self.system) + self.system.rf_gap

    @property
    def t_after_pulse(self) -> float:
        """Event after each refocusing pulse: RF gap, crusher and the largest phase encoding."""
        return self.system.rf_gap + lobe_time((0.0, self.ro.max_phase_encode, self.crusher), self.system)

    @property
    def t_between(self) -> float:
        """Event after a readout that is followed by another refocusing pulse (ramp down + rewinder/crusher)."""
        return self.ro.next_to_readout((self._inter_echo_x(), self.ro.max_phase_encode, self.crusher))

    @property
    def t_final(self) -> float:
        """Event after the last readout of a shot (ramp down + spoiler)."""
        worst = (self.final_spoiler(self.ro.max_phase_encode, i) for i in range(len(SPOILER_STEPS)))
        return max(self.ro.next_to_readout(m) for m in worst)

    @property
    def min_first_half(self) -> float:
        """Excitation → first refocusing pulse, at least [s]."""
        return self.t_prephaser + self.t_crusher_before

    @property
    def min_to_echo(self) -> float:
        """Refocusing pulse → echo centre, at least [s]."""
        return self.t_after_pulse + self.ro.ramp + self.ro.to_centre

    @property
    def min_from_echo(self) -> float:
        """Echo centre → next refocusing pulse, at least [s]."""
        return self.ro.from_centre + self.t_between + self.system.rf_gap

    @property
    def min_tail(self) -> float:
        """Last echo centre → end of the shot, at least [s]."""
        return self.ro.from_centre + self.t_final + self.system.rf_gap

    def min_half_spacing(self) -> float:
        """Shortest half echo spacing [s] for this train."""
        parts = [self.min_first_half, self.min_to_echo]
        if self.etl > 1:
            parts.append(self.min_from_echo)
        return max(parts)

    def train_time(self) -> float:
        """Excitation → centre of the last echo [s]."""
        return self.etl * self.echo_spacing

    def min_shot_time(self) -> float:
        """Excitation → end of the shot, at least [s]."""
        return self.train_time() + self.min_tail

    # --- repetitions ----------------------------------------------------------------------------------------------
    def excitation(self, dtype: torch.dtype) -> Repetition:
        half = self.echo_spacing / 2
        events = [
            (self.t_prephaser, self._prephaser(), False),
            (half - self.t_prephaser - self.t_crusher_before, (0.0, 0.0, 0.0), False),
            (self.t_crusher_before, self._crush(), False),
        ]
        return make_repetition(events, angle=math.pi / 2, phase=self.excitation_phase, usage="excitation", dtype=dtype)

    def refocusing(
        self, echo: int, line: int | None, *, tail: float | None, shot: int = 0, dtype: torch.dtype
    ) -> Repetition:
        """Refocusing pulse ``echo`` (0-based) with its readout of ``line`` (None: no ADC, no phase encoding).

        ``tail`` is the time from the echo centre to the end of the shot for the last echo, else None.
        """
        ro, half = self.ro, self.echo_spacing / 2
        pe = 0.0 if line is None else line * ro.dk_y
        events = [
            (self.t_after_pulse, (0.0, pe, self.crusher), False),
            (half - ro.to_centre - ro.ramp - self.t_after_pulse, (0.0, 0.0, 0.0), False),
            (ro.ramp, (ro.ramp_area, 0.0, 0.0), False),
        ]
        events += [(ro.dwell, (ro.dk_x, 0.0, 0.0), line is not None)] * ro.nx
        if tail is None:
            events += [
                (self.t_between, (self._inter_echo_x(), -pe, self.crusher), False),
                (half - ro.from_centre - self.t_between, (0.0, 0.0, 0.0), False),
            ]
        else:
            events += [
                (self.t_final, self.final_spoiler(pe, shot), False),
                (tail - ro.from_centre - self.t_final, (0.0, 0.0, 0.0), False),
            ]
        return make_repetition(
            events,
            angle=self.angles[echo],
            phase=self.refocusing_phase,
            usage="refocusing",
            adc_phase=adc_phase_of_echo(echo + 1, self.excitation_phase, self.refocusing_phase),
            dtype=dtype,
        )

    def shot(
        self, lines: _AbcSequence[int | None], *, shot_time: float, index: int, dtype: torch.dtype
    ) -> list[Repetition]:
        """Excitation and echo train of shot ``index``; ``lines[e]`` is read at echo ``e``; lasts ``shot_time`` [s]."""
        if len(lines) != self.etl:
            raise ValueError(f"{len(lines)} lines for an echo train of {self.etl}")
        reps = [self.excitation(dtype)]
        for e, line in enumerate(lines):
            last = e == self.etl - 1
            tail = shot_time - self.train_time() if last else None
            reps.append(self.refocusing(e, line, tail=tail, shot=index, dtype=dtype))
        return reps


def check_refocusing_angles(refocusing_angles, etl: int) -> tuple[float, ...]:
    """One angle per echo from a scalar or a sequence of length ``etl``, each in (0, π] rad."""
    if isinstance(refocusing_angles, torch.Tensor):
        refocusing_angles = (
            refocusing_angles.detach().reshape(-1).tolist() if refocusing_angles.ndim else float(refocusing_angles)
        )
    if isinstance(refocusing_angles, (int, float)):
        values = [float(refocusing_angles)] * etl
    else:
        values = [float(a) for a in refocusing_angles]
        if len(values) != etl:
            raise ValueError(
                f"refocusing_angles must be one angle or echo_train_length = {etl} angles, got {len(values)}"
            )
    for i, a in enumerate(values):
        check_flip(f"refocusing_angles[{i}]", a)
    return tuple(values)


def tse_line_order(ny: int, echo_train_length: int, effective_echo: int) -> list[list[int]]:
    """Phase-encode lines per shot and echo, ``[shot][echo]``, with k_y = 0 at echo ``effective_echo`` (0-based).

    k-space (lines ``−ny//2 … ny − ny//2 − 1``) is cut into ``echo_train_length`` segments of ``shots = ny / ETL``
    adjacent lines; segment m holds lines ``m·shots + s − ny//2`` for shot s. Echoes are paired with segments
    outward from the centre: the effective echo gets the centre segment, then echoes ordered by their distance
    from it (earlier first on ties) get segments ordered by their distance from the centre (lower first on ties).
    With the effective echo in the middle of the train this is the usual linear order (echo e → segment e).
    """
    ny = check_count("ny", ny)
    etl = check_count("echo_train_length", echo_train_length)
    if ny % etl:
        raise ValueError(f"echo_train_length = {etl} must divide the number of phase-encode lines ny = {ny}")
    if not 0 <= effective_echo < etl:
        raise ValueError(f"effective_echo must be in [0, {etl - 1}], got {effective_echo}")
    shots = ny // etl
    centre = ny // 2
    m0 = centre // shots
    echoes = sorted(range(etl), key=lambda e: (abs(e - effective_echo), e > effective_echo))
    segments = sorted(range(etl), key=lambda m: (abs(m - m0), m > m0))
    segment_of_echo = dict(zip(echoes, segments, strict=True))
    return [[segment_of_echo[e] * shots + s - centre for e in range(etl)] for s in range(shots)]


def effective_echo_index(te_eff: float, echo_spacing: float, etl: int, *, name: str = "te_eff") -> int:
    """0-based index of the echo at ``te_eff`` [s]; raises unless ``te_eff`` is one of the echo times."""
    j = te_eff / echo_spacing
    n = round(j)
    if abs(j - n) > 1e-6 or not 1 <= n <= etl:
        times = ", ".join(f"{(i + 1) * echo_spacing * 1e3:.4g}" for i in range(min(etl, 8)))
        more = ", …" if etl > 8 else ""
        raise ValueError(
            f"{name} = {te_eff * 1e3:.4g} ms must be one of the echo times k·echo_spacing, k = 1 … {etl} "
            f"({times}{more} ms)"
        )
    return n - 1


# ----------------------------------------------------------------------------------------------------------------
# public builders


def _make_train(
    *,
    matrix,
    fov,
    dwell,
    echo_spacing,
    angles,
    crusher_cycles,
    slice_thickness,
    spoiler_cycles,
    excitation_phase,
    refocusing_phase,
    system,
) -> EchoTrain:
    ro = CartesianReadout.create(matrix, fov, dwell, system)
    if not (float(spoiler_cycles) >= 0 and math.isfinite(spoiler_cycles)):
        raise ValueError(f"spoiler_cycles must be ≥ 0, got {spoiler_cycles!r}")
    for name, value in (("excitation_phase", excitation_phase), ("refocusing_phase", refocusing_phase)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    return EchoTrain(
        ro=ro,
        echo_spacing=float(echo_spacing),
        angles=angles,
        crusher=crusher_moment(crusher_cycles, slice_thickness),
        spoiler_cycles=float(spoiler_cycles),
        excitation_phase=float(excitation_phase),
        refocusing_phase=float(refocusing_phase),
    )


def check_train_timing(train: EchoTrain, *, spacing_name: str, spacing: float) -> None:
    """Raise if ``spacing`` (TE for a spin echo, the echo spacing for a train) is too short for the events."""
    why = "the prephaser, crushers, RF gaps and readout"
    check_fits(spacing_name, spacing + TIME_SLACK, 2 * train.min_half_spacing(), why)


def spin_echo(
    *,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    te: float = 90e-3,
    tr: float = 3.0,
    dwell: float = 30e-6,
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
    """A 2D Cartesian spin echo, one phase-encode line per TR (readout x, phase encoding y).

    Per TR: 90° (phase ``excitation_phase``, ``pulse_usage="excitation"``) – readout prephaser – crusher –
    refocusing pulse at TE/2 (phase ``refocusing_phase``, ``pulse_usage="refocusing"``) – crusher and phase
    encoding – readout centred on TE – rewinder and spoiler – rest of TR. See the module docstring for the CPMG
    phases, crushers, trajectory and scanner limits. The defaults give a T2-weighted image (CSF bright).

    Parameters
    ----------
    matrix : (nx, ny)
        Samples per readout and number of phase-encode lines (= TRs).
    fov : (fov_x, fov_y)
        Field of view [m].
    te : float
        Echo time [s]: excitation centre to the k = 0 sample; the refocusing pulse is at TE/2.
    tr : float
        Repetition time [s].
    dwell : float
        ADC dwell time [s]; the readout gradient ``1/(fov_x·dwell)`` must not exceed ``system.max_grad``.
    refocusing_angle : float
        Refocusing flip angle [rad], in (0, π].
    excitation_phase, refocusing_phase : float
        RF phases [rad]; the defaults (π/2, 0) are CPMG.
    crusher_cycles : float
        Crusher z moment on each side of the refocusing pulse, in cycles across ``slice_thickness``.
    slice_thickness : float
        Slice thickness the crushers are sized for [m].
    spoiler_cycles : float
        x spoiler after the readout, cycles across one voxel.
    dummy_scans : int
        TRs without ADC before the imaging ones.
    system : SystemLimits
        Gradient and RF limits the events are sized for.
    dtype : torch.dtype
        Dtype of the sequence tensors.

    Returns
    -------
    Sequence
        ``2·(ny + dummy_scans)`` repetitions; ``nx·ny`` samples on the grid ``k = n/fov``.

    Raises
    ------
    ValueError
        If TE is shorter than the prephaser, crushers, RF gaps and the readout allow, or TR shorter than TE plus
        the rest of the readout and the spoiler, or any parameter is out of range.
    """
    check_positive("te", te)
    check_positive("tr", tr)
    check_count("dummy_scans", dummy_scans, minimum=0)
    angle = check_flip("refocusing_angle", refocusing_angle)
    train = _make_train(
        matrix=matrix,
        fov=fov,
        dwell=dwell,
        echo_spacing=te,
        angles=(angle,),
        crusher_cycles=crusher_cycles,
        slice_thickness=slice_thickness,
        spoiler_cycles=spoiler_cycles,
        excitation_phase=excitation_phase,
        refocusing_phase=refocusing_phase,
        system=system,
    )
    check_train_timing(train, spacing_name="te", spacing=te)
    check_fits("tr", tr + TIME_SLACK, train.min_shot_time(), "te plus the rest of the readout, spoiler and RF gap")
    schedule: list[int | None] = [None] * dummy_scans + train.ro.lines()
    reps: list[Repetition] = []
    for i, line in enumerate(schedule):
        reps += train.shot([line], shot_time=tr, index=i, dtype=dtype)
    return Sequence(reps)


def turbo_spin_echo(
    *,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    te_eff: float = 80e-3,
    echo_spacing: float = 10e-3,
    echo_train_length: int = 16,
    tr: float = 4.0,
    refocusing_angles: float | _AbcSequence[float] = math.pi,
    dwell: float = 30e-6,
    excitation_phase: float = math.pi / 2,
    refocusing_phase: float = 0.0,
    crusher_cycles: float = DEFAULT_CRUSHER_CYCLES,
    slice_thickness: float = DEFAULT_SLICE_THICKNESS,
    spoiler_cycles: float = DEFAULT_SPOILER_CYCLES,
    dummy_scans: int = 1,
    system: SystemLimits = DEFAULT_SYSTEM,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A 2D Cartesian turbo spin echo (RARE, FSE): ``echo_train_length`` phase-encode lines per excitation, CPMG.

    Per shot: 90° – ``echo_train_length`` refocusing pulses at ``echo_spacing/2 + k·echo_spacing``, each between
    two crushers, each followed by phase encoding, a readout centred between it and the next pulse, and a
    rewinder; after the last echo the spoiler. The line order (:func:`tse_line_order`) puts k_y = 0 at
    ``te_eff``. Variable refocusing angles (one per echo) give the echo amplitudes of the extended phase graph
    (spin and stimulated echoes add in phase under CPMG). The defaults give a T2-weighted image.

    Parameters
    ----------
    matrix : (nx, ny)
        ``ny`` must be a multiple of ``echo_train_length``; ``ny / echo_train_length`` shots.
    fov : (fov_x, fov_y)
        Field of view [m].
    te_eff : float
        Effective echo time [s]: the echo at which k_y = 0 is acquired; one of ``k·echo_spacing``,
        ``k = 1 … echo_train_length``.
    echo_spacing : float
        Time between refocusing pulses, and between echoes [s]; the first pulse is at ``echo_spacing/2``.
    echo_train_length : int
        Echoes per excitation.
    tr : float
        Repetition time [s], at least the echo train plus the last readout half, spoiler and RF gap.
    refocusing_angles : float or sequence of float
        Refocusing flip angle(s) [rad], each in (0, π]: one value for all echoes, or one per echo.
    dwell, excitation_phase, refocusing_phase, crusher_cycles, slice_thickness, spoiler_cycles, system, dtype
        As for :func:`spin_echo`.
    dummy_scans : int
        Shots without ADC (same pulses and timing) before the imaging ones, so that every imaging shot starts
        from the steady state.

    Returns
    -------
    Sequence
        ``(1 + echo_train_length)·(shots + dummy_scans)`` repetitions.
    """
    check_positive("te_eff", te_eff)
    check_positive("echo_spacing", echo_spacing)
    check_positive("tr", tr)
    etl = check_count("echo_train_length", echo_train_length)
    check_count("dummy_scans", dummy_scans, minimum=0)
    angles = check_refocusing_angles(refocusing_angles, etl)
    train = _make_train(
        matrix=matrix,
        fov=fov,
        dwell=dwell,
        echo_spacing=echo_spacing,
        angles=angles,
        crusher_cycles=crusher_cycles,
        slice_thickness=slice_thickness,
        spoiler_cycles=spoiler_cycles,
        excitation_phase=excitation_phase,
        refocusing_phase=refocusing_phase,
        system=system,
    )
    effective = effective_echo_index(te_eff, echo_spacing, etl)
    order = tse_line_order(train.ro.ny, etl, effective)
    check_train_timing(train, spacing_name="echo_spacing", spacing=echo_spacing)
    check_fits("tr", tr + TIME_SLACK, train.min_shot_time(), "the echo train plus the last readout, spoiler and RF gap")
    reps: list[Repetition] = []
    for i, lines in enumerate([[None] * etl] * dummy_scans + order):
        reps += train.shot(lines, shot_time=tr, index=i, dtype=dtype)
    return Sequence(reps)
