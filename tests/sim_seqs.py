"""Small hand-built sequences for the simulator tests (events view, SI units)."""

from __future__ import annotations

import math

import torch

from gradmr.sequence import Repetition, Sequence

F64 = torch.float64


def rep(angle, phase, times, *, adc=None, gradm=None, usage="excitation") -> Repetition:
    times = torch.as_tensor(times, dtype=F64)
    n = times.shape[0]
    adc_mask = torch.zeros(n, dtype=torch.bool)
    if adc is not None:
        adc_mask[list(adc)] = True
    g = torch.zeros(n, 3, dtype=F64) if gradm is None else torch.as_tensor(gradm, dtype=F64)
    return Repetition(
        pulse_angle=torch.tensor(float(angle), dtype=F64),
        pulse_phase=torch.tensor(float(phase), dtype=F64),
        event_time=times,
        gradm=g,
        adc_usage=adc_mask,
        adc_phase=torch.zeros(n, dtype=F64),
        pulse_usage=usage,
    )


def spin_echo(te: float, tr: float, n_tr: int) -> Sequence:
    """90°(phase 90°) – TE/2 – 180°(phase 0) – sample at TE – rest of TR; ``n_tr`` times."""
    reps = []
    for _ in range(n_tr):
        reps.append(rep(math.pi / 2, math.pi / 2, [te / 2]))
        reps.append(rep(math.pi, 0.0, [te / 2, tr - te], adc=[0], usage="refocusing"))
    return Sequence(reps)


def inversion_recovery(ti: float, read_delay: float = 1e-6) -> Sequence:
    """180° – TI – 90° – one sample right after: a single shot from equilibrium."""
    return Sequence([rep(math.pi, 0.0, [ti], usage="inversion"), rep(math.pi / 2, 0.0, [read_delay], adc=[0])])


def bssfp(alpha: float, tr: float, n: int) -> Sequence:
    """Balanced SSFP on resonance: ±α alternating (phase 0, π), one sample at TE = TR/2."""
    return Sequence(rep(alpha, math.pi * (i % 2), [tr / 2, tr / 2], adc=[0]) for i in range(n))


def fid(n_samples: int, dwell: float) -> Sequence:
    """90° then ``n_samples`` samples without gradients."""
    return Sequence([rep(math.pi / 2, 0.0, [dwell] * n_samples, adc=range(n_samples))])


def se_imaging(n: int, fov: float, te: float, tr: float, dwell: float = 50e-6) -> Sequence:
    """2D Cartesian spin-echo imaging: per line 90°(90°) – prewinder – 180°(0°) – readout at TE – spoil.

    Samples sit at k = m/fov, m = −n/2 … n/2 − 1, with the echo (k = 0) at TE.
    """
    dk = 1.0 / fov
    reps = []
    for line in range(-(n // 2), n - n // 2):
        # the 180° negates k: prewind to +(n/2 + 1) steps in x and −line in y before it
        pre = [[(n // 2 + 1) * dk, -line * dk, 0.0]]
        reps.append(rep(math.pi / 2, math.pi / 2, [te / 2], gradm=pre))
        wait = te / 2 - (n // 2 + 1) * dwell
        times = [wait] + [dwell] * n + [tr - te - (n - n // 2 - 1) * dwell]
        g = [[0.0, 0.0, 0.0]] + [[dk, 0.0, 0.0]] * n + [[4 * n * dk, -line * dk, 0.0]]
        reps.append(rep(math.pi, 0.0, times, gradm=g, adc=range(1, n + 1), usage="refocusing"))
    return Sequence(reps)
