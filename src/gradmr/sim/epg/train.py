"""The fingerprinting train the fast EPG runs: one RF pulse, one sample and one dephasing per TR.

A :class:`FispTrain` is the description an MRF dictionary needs and nothing more: the flip angle and TR of every
repetition, the echo time, the (constant) RF phase and an optional inversion before the train. Every TR is

    RF(α_n · B1, φ) → relaxation for TE_n → sample F⁺₀ → relaxation for TR_n − TE_n → shift of every state by +1

which is the unbalanced-gradient (FISP) steady-state family of Jiang et al. 2015 and of the "Spline" trains of Liu
et al. 2021. Leading dimensions of ``flip`` are *several sequences* simulated at once; ``tr`` and ``te`` broadcast
against it.

Units: rad for angles, s for times. Flip angles above 4π rad are rejected as "probably degrees".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ...sequence.core import Sequence

#: Flip angles above this [rad] are almost certainly given in degrees.
MAX_FLIP_RAD = 4 * math.pi

__all__ = ["MAX_FLIP_RAD", "FispTrain", "fisp_train_from_sequence"]


def _as_tensor(name: str, value, dtype: torch.dtype | None) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype if dtype is not None else None)
    if not t.is_floating_point():
        t = t.to(torch.float64 if dtype is None else dtype)
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


@dataclass(frozen=True)
class FispTrain:
    """An inversion-prepared FISP fingerprinting train.

    Attributes
    ----------
    flip : Tensor, shape ``(..., N)``
        Nominal flip angle of every TR [rad], 0 ≤ α ≤ 4π. Leading dims: several sequences.
    tr : Tensor, shape broadcastable to ``(..., N)``
        Repetition time of every TR [s] (RF to RF), > 0.
    te : Tensor, shape broadcastable to ``(..., N)``
        Echo time (RF to the sample) [s], 0 ≤ TE ≤ TR.
    phase : Tensor, shape ``()``
        RF phase [rad], the same for every pulse (MRF-FISP does not RF-spoil). The rotation axis is (cos φ, sin φ, 0)
        (``docs/conventions.md``): a pulse of phase 0 tips +z towards −y, M⁺ = −i sin α.
    inversion_time : float or None
        Ideal inversion (π pulse followed by a crusher) this long before the first RF [s]; ``None``: no inversion.
    inversion_efficiency : float
        Mz after the inversion is ``−efficiency · Mz`` before it (1: perfect, 0: saturation).
    """

    flip: torch.Tensor
    tr: torch.Tensor
    te: torch.Tensor
    phase: torch.Tensor = dataclasses.field(default_factory=lambda: torch.tensor(0.0, dtype=torch.float64))
    inversion_time: float | None = None
    inversion_efficiency: float = 1.0

    @staticmethod
    def create(
        flip,
        tr,
        te,
        *,
        phase=0.0,
        inversion_time: float | None = None,
        inversion_efficiency: float = 1.0,
        dtype: torch.dtype | None = torch.float64,
    ) -> FispTrain:
        """Build and validate a train from tensors, arrays or numbers (SI units, angles in rad)."""
        flip_t = _as_tensor("flip", flip, dtype)
        if flip_t.ndim == 0:
            raise ValueError("flip must have shape (..., N): one flip angle per TR")
        tr_t = _as_tensor("tr", tr, flip_t.dtype)
        te_t = _as_tensor("te", te, flip_t.dtype)
        phase_t = _as_tensor("phase", phase, flip_t.dtype)
        train = FispTrain(
            flip=flip_t,
            tr=tr_t,
            te=te_t,
            phase=phase_t,
            inversion_time=None if inversion_time is None else float(inversion_time),
            inversion_efficiency=float(inversion_efficiency),
        )
        train.validate()
        return train

    @property
    def frames(self) -> int:
        """Number of TRs N (samples of the fingerprint)."""
        return int(self.flip.shape[-1])

    @property
    def batch_shape(self) -> torch.Size:
        """Shape of the sequence batch (the leading dims of the broadcast flip/tr/te)."""
        return torch.broadcast_shapes(self.flip.shape, self.tr.shape, self.te.shape)[:-1]

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed range for any bad value."""
        flip = self.flip.detach()
        if flip.ndim == 0 or flip.shape[-1] == 0:
            raise ValueError("flip must have shape (..., N) with N ≥ 1 TRs")
        if not bool(torch.isfinite(flip).all()):
            raise ValueError("flip contains NaN or infinite values")
        if float(flip.min()) < 0:
            raise ValueError(f"flip angles must be ≥ 0 rad, got {float(flip.min()):.4g}")
        if float(flip.max()) > MAX_FLIP_RAD:
            raise ValueError(
                f"flip angles must be in radians (0 … 4π), got up to {float(flip.max()):.4g}: degrees? "
                "convert with math.radians / torch.deg2rad"
            )
        try:
            shape = torch.broadcast_shapes(self.flip.shape, self.tr.shape, self.te.shape)
        except RuntimeError as err:
            raise ValueError(
                f"tr {tuple(self.tr.shape)} and te {tuple(self.te.shape)} must broadcast against flip "
                f"{tuple(self.flip.shape)}"
            ) from err
        if shape[-1] != self.flip.shape[-1]:
            raise ValueError(f"tr and te must have N = {self.flip.shape[-1]} values (or 1), got shape {tuple(shape)}")
        tr, te = self.tr.detach(), self.te.detach()
        for name, t in (("tr", tr), ("te", te)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or infinite values")
        if float(tr.min()) <= 0:
            raise ValueError(f"tr must be > 0 s, got {float(tr.min()):.4g}")
        if float(te.min()) < 0:
            raise ValueError(f"te must be ≥ 0 s, got {float(te.min()):.4g}")
        if bool((te > tr).any()):
            raise ValueError("te must not exceed tr (the sample is taken inside the TR)")
        if float(tr.max()) > 100.0:
            raise ValueError(f"tr must be in seconds, got up to {float(tr.max()):.4g} s: milliseconds?")
        if self.phase.ndim != 0:
            raise ValueError("phase must be a scalar: the fast EPG assumes the same RF phase in every TR")
        if self.inversion_time is not None and not (0 <= self.inversion_time < math.inf):
            raise ValueError(f"inversion_time must be ≥ 0 s or None, got {self.inversion_time}")
        if not 0 <= self.inversion_efficiency <= 1:
            raise ValueError(f"inversion_efficiency must be in [0, 1], got {self.inversion_efficiency}")

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> FispTrain:
        """A copy with every tensor moved/converted (``dtype`` a real floating dtype)."""
        return dataclasses.replace(
            self,
            flip=self.flip.to(device=device, dtype=dtype),
            tr=self.tr.to(device=device, dtype=dtype),
            te=self.te.to(device=device, dtype=dtype),
            phase=self.phase.to(device=device, dtype=dtype),
        )

    def duration(self) -> torch.Tensor:
        """Total duration [s] of the train (inversion delay included), per sequence of the batch."""
        total = torch.broadcast_to(self.tr, torch.broadcast_shapes(self.flip.shape, self.tr.shape)).sum(-1)
        return total + (self.inversion_time or 0.0)


def fisp_train_from_sequence(sequence: Sequence, *, atol: float = 1e-9) -> FispTrain:
    """Read a :class:`FispTrain` off a core :class:`~gradmr.sequence.Sequence` that has the FISP structure.

    Accepted: an optional first repetition with ``pulse_usage="inversion"`` and a π pulse (its duration is the
    inversion time), then repetitions with one ADC sample each, one constant RF phase, and the same non-zero net
    gradient moment per repetition (the FISP spoiler; imaging gradients must be rewound within the repetition).
    Anything else raises ``ValueError`` saying what does not fit the model — use the PDG or Bloch simulator then.

    The train's inversion is *ideal* (Mz → −Mz whatever B1 is), whereas :func:`~gradmr.sim.epg.simulate_epg` and the
    Bloch simulator play the sequence's π pulse scaled by B1: with B1 ≠ 1 the two differ in the inversion only.
    """
    reps = list(sequence)
    if not reps:
        raise ValueError("sequence is empty")
    inversion_time = None
    if reps[0].pulse_usage == "inversion":
        if abs(float(reps[0].pulse_angle) - math.pi) > 1e-6:
            raise ValueError("the inversion repetition must have a π pulse to fit the FISP EPG model")
        if bool(reps[0].adc_usage.any()):
            raise ValueError("the inversion repetition must not sample")
        inversion_time = float(reps[0].duration())
        reps = reps[1:]
    if not reps:
        raise ValueError("sequence has no repetition after the inversion")
    phase0 = float(reps[0].pulse_phase)
    net0 = reps[0].gradm.sum(0).detach()
    if float(net0.norm()) == 0:
        raise ValueError("repetitions need a net (unbalanced) gradient moment to fit the FISP EPG model")
    flips, trs, tes = [], [], []
    for i, rep in enumerate(reps):
        if rep.adc_count != 1:
            raise ValueError(f"repetition {i} has {rep.adc_count} ADC samples; the FISP EPG model needs exactly one")
        if abs(float(rep.pulse_phase) - phase0) > atol:
            raise ValueError(f"repetition {i} changes the RF phase; the fast EPG needs a constant phase")
        net = rep.gradm.sum(0).detach()
        if float((net - net0).abs().max()) > 1e-6 * float(net0.abs().max()):
            raise ValueError(f"repetition {i} has a different net gradient moment; FISP needs the same every TR")
        idx = int(torch.nonzero(rep.adc_usage)[0])
        cum = torch.cumsum(rep.gradm, 0)[idx].detach()
        if float(cum.norm()) > 1e-6 * float(net0.norm()):
            raise ValueError(f"repetition {i} samples off k = 0 (imaging gradients); the EPG gives F0 only")
        flips.append(rep.pulse_angle)
        trs.append(rep.duration())
        tes.append(torch.cumsum(rep.event_time, 0)[idx])
    return FispTrain.create(
        torch.stack(flips),
        torch.stack(trs),
        torch.stack(tes),
        phase=phase0,
        inversion_time=inversion_time,
        dtype=None,
    )
