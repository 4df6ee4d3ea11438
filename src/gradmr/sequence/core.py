"""The differentiable sequence: repetitions of events, in the spirit of MR-zero.

A :class:`Sequence` is a list of :class:`Repetition`. Each repetition starts with one
instantaneous RF pulse (flip angle and phase, rad) followed by a run of events. Each
event has a duration (s), a gradient moment accumulated over the event (1/m, i.e.
cycles per metre as in Pulseq: ``∫ γ̄ G dt``), and may be an ADC sample. A sample is
taken at the *end* of its event.

Conventions (see ``docs/conventions.md``):

* RF with flip angle α and phase φ rotates the magnetisation by α right-handed about the axis
  (cos φ, sin φ, 0) (as in Weigel's EPG papers): a pulse with φ = 0 takes +z towards −y,
  i.e. M⁺ = Mx + i·My becomes −i·sin α.
* A spin at position r in a moment k (1/m) has phase −2π k·r; off-resonance Δf (Hz)
  adds phase −2π Δf t. So the signal is s(k) = Σ_r m(r)·exp(−2πi k·r) and the image
  is reconstructed with an inverse DFT.
* The ADC phase φ_adc demodulates the sample: s ← s·exp(−i φ_adc).

Every tensor field may require grad. Shapes use the vocabulary of the project:
``events`` per repetition, ``samples`` over the whole sequence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from collections.abc import Sequence as _AbcSequence
from dataclasses import dataclass

import torch

from .._tensors import TensorDataclass

#: What an RF pulse is for; used for the k-space trajectory (reset at excitation,
#: negation at refocusing) and for plots. Simulators ignore it.
PULSE_USAGES = ("excitation", "refocusing", "inversion", "storage", "undefined")

#: Flip angles above this (rad) are almost certainly given in degrees.
_MAX_FLIP_RAD = 4 * math.pi


@dataclass(frozen=True)
class Repetition(TensorDataclass):
    """One RF pulse followed by a run of events.

    Attributes
    ----------
    pulse_angle : Tensor, shape ``()``
        Flip angle of the pulse at the start of the repetition [rad].
    pulse_phase : Tensor, shape ``()``
        Phase of the pulse: its rotation axis is (cos φ, sin φ, 0) [rad].
    event_time : Tensor, shape ``(events,)``
        Duration of each event [s], ≥ 0.
    gradm : Tensor, shape ``(events, 3)``
        Gradient moment of each event in x, y, z [1/m] (cycles per metre).
    adc_usage : Tensor, shape ``(events,)``, bool
        Whether the event ends with an ADC sample.
    adc_phase : Tensor, shape ``(events,)``
        Receiver phase of each sample [rad]; ignored where ``adc_usage`` is False.
    pulse_usage : str
        One of :data:`PULSE_USAGES`.
    """

    pulse_angle: torch.Tensor
    pulse_phase: torch.Tensor
    event_time: torch.Tensor
    gradm: torch.Tensor
    adc_usage: torch.Tensor
    adc_phase: torch.Tensor
    pulse_usage: str = "excitation"

    def __post_init__(self) -> None:
        n = self.event_time.shape
        if self.event_time.ndim != 1:
            raise ValueError(f"event_time must have shape (events,), got {tuple(n)}")
        events = n[0]
        if self.gradm.shape != (events, 3):
            raise ValueError(f"gradm must have shape ({events}, 3) to match event_time, got {tuple(self.gradm.shape)}")
        if self.adc_usage.shape != (events,) or self.adc_phase.shape != (events,):
            raise ValueError(
                f"adc_usage and adc_phase must have shape ({events},), got "
                f"{tuple(self.adc_usage.shape)} and {tuple(self.adc_phase.shape)}"
            )
        if self.adc_usage.dtype != torch.bool:
            raise TypeError(f"adc_usage must be a bool tensor, got {self.adc_usage.dtype}")
        if self.pulse_angle.ndim != 0 or self.pulse_phase.ndim != 0:
            raise ValueError("pulse_angle and pulse_phase must be scalar tensors")
        if self.pulse_usage not in PULSE_USAGES:
            raise ValueError(f"pulse_usage must be one of {PULSE_USAGES}, got {self.pulse_usage!r}")

    @staticmethod
    def create(
        events: int,
        *,
        pulse_angle: float | torch.Tensor = 0.0,
        pulse_phase: float | torch.Tensor = 0.0,
        event_time: float | torch.Tensor = 0.0,
        pulse_usage: str = "excitation",
        dtype: torch.dtype = torch.float64,
    ) -> Repetition:
        """An empty repetition of ``events`` events (no gradients, no ADC)."""
        et = torch.as_tensor(event_time, dtype=dtype)
        et = et.expand(events).clone() if et.ndim == 0 else et.clone()
        return Repetition(
            pulse_angle=torch.as_tensor(pulse_angle, dtype=dtype).clone(),
            pulse_phase=torch.as_tensor(pulse_phase, dtype=dtype).clone(),
            event_time=et,
            gradm=torch.zeros(events, 3, dtype=dtype),
            adc_usage=torch.zeros(events, dtype=torch.bool),
            adc_phase=torch.zeros(events, dtype=dtype),
            pulse_usage=pulse_usage,
        )

    @property
    def event_count(self) -> int:
        return int(self.event_time.shape[0])

    @property
    def adc_count(self) -> int:
        return int(self.adc_usage.sum())

    def duration(self) -> torch.Tensor:
        """Total duration of the repetition [s]."""
        return self.event_time.sum()

    def replace(self, **changes) -> Repetition:
        """A copy with the given fields replaced."""
        return dataclasses.replace(self, **changes)


class Sequence(_AbcSequence):
    """An ordered, immutable list of :class:`Repetition`.

    Build one from a list (``Sequence(reps)``); index, iterate and ``len`` work as for a
    tuple. Parameters that require grad stay attached to the graph.
    """

    def __init__(self, repetitions: Iterable[Repetition] = ()) -> None:
        self._reps: tuple[Repetition, ...] = tuple(repetitions)
        for i, rep in enumerate(self._reps):
            if not isinstance(rep, Repetition):
                raise TypeError(f"repetition {i} is a {type(rep).__name__}, not a Repetition")

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Sequence(self._reps[index])
        return self._reps[index]

    def __len__(self) -> int:
        return len(self._reps)

    def __iter__(self) -> Iterator[Repetition]:
        return iter(self._reps)

    def __repr__(self) -> str:
        return f"Sequence({len(self)} repetitions, {self.sample_count} samples, {float(self.duration()):.4g} s)"

    def __add__(self, other: Sequence) -> Sequence:
        return Sequence(self._reps + tuple(other))

    def to(self, device=None, dtype=None) -> Sequence:
        return Sequence(rep.to(device, dtype) for rep in self._reps)

    @property
    def sample_count(self) -> int:
        """Number of ADC samples in the whole sequence."""
        return sum(rep.adc_count for rep in self._reps)

    def duration(self) -> torch.Tensor:
        """Total duration [s] (differentiable in the event times)."""
        if not self._reps:
            return torch.zeros(())
        return torch.stack([rep.duration() for rep in self._reps]).sum()

    def validate(self) -> None:
        """Raise ``ValueError`` on physically meaningless values, naming the repetition."""
        if not self._reps:
            return
        for name in ("pulse_angle", "pulse_phase", "event_time", "gradm", "adc_phase"):
            values = [getattr(rep, name).detach().reshape(-1) for rep in self._reps]
            flat = torch.cat(values)
            if not torch.isfinite(flat).all():
                i = next(i for i, v in enumerate(values) if not torch.isfinite(v).all())
                raise ValueError(f"repetition {i}: {name} contains NaN or infinite values")
        times = [rep.event_time.detach() for rep in self._reps]
        if (torch.cat(times) < 0).any():
            i = next(i for i, v in enumerate(times) if (v < 0).any())
            raise ValueError(f"repetition {i}: event_time must be ≥ 0 s, got min {float(times[i].min()):.3g} s")
        angles = torch.stack([rep.pulse_angle.detach() for rep in self._reps]).abs()
        if (angles > _MAX_FLIP_RAD).any():
            i = int(torch.nonzero(angles > _MAX_FLIP_RAD)[0])
            raise ValueError(
                f"repetition {i}: pulse_angle = {float(angles[i]):.4g} rad is outside [0, 4π]; flip angles are in "
                "radians (use gradmr.units.deg_to_rad for degrees)"
            )

    def kspace(self) -> torch.Tensor:
        """k-space position of every ADC sample [1/m], shape ``(samples, 3)``.

        The moment is summed from the last excitation pulse; a refocusing pulse negates it
        and an inversion or storage pulse leaves it as is. This is the nominal trajectory
        of the echo pathway that forms the image; the simulators do not use it.
        """
        return self._trajectory(samples_only=True)

    def full_kspace(self) -> torch.Tensor:
        """k-space position at the end of every event [1/m], shape ``(all events, 3)``."""
        return self._trajectory(samples_only=False)

    def _trajectory(self, *, samples_only: bool) -> torch.Tensor:
        out = []
        k = None
        for rep in self._reps:
            if k is None:
                k = torch.zeros(3, dtype=rep.gradm.dtype, device=rep.gradm.device)
            if rep.pulse_usage == "excitation":
                k = torch.zeros_like(k)
            elif rep.pulse_usage == "refocusing":
                k = -k
            cum = k + torch.cumsum(rep.gradm, dim=0)
            out.append(cum[rep.adc_usage] if samples_only else cum)
            if rep.event_count:
                k = cum[-1]
        if not out:
            return torch.zeros(0, 3)
        return torch.cat(out, dim=0)

    def sample_times(self) -> torch.Tensor:
        """Time of every ADC sample from the start of the sequence [s], shape ``(samples,)``."""
        out = []
        t0 = torch.zeros(())
        for rep in self._reps:
            t = t0 + torch.cumsum(rep.event_time, dim=0)
            out.append(t[rep.adc_usage])
            t0 = t0 + rep.duration()
        return torch.cat(out) if out else torch.zeros(0)

    def sar_proxy(self) -> torch.Tensor:
        """Σ α² over all pulses divided by the duration [rad²/s]: a relative SAR measure."""
        angles = torch.stack([rep.pulse_angle for rep in self._reps])
        return (angles**2).sum() / self.duration()
