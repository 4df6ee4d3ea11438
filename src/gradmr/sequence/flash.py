"""Spoiled FLASH / GRE builder (2D Cartesian), the sequence every part of the core is tested on.

The full sequence library (multi-echo, TSE, IR, bSSFP, DWI, radial, MRF…) is its own
issue; this module gives a correct, fully parameterised spoiled gradient echo.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_count, check_flip, check_fov, check_matrix, check_positive
from .core import Repetition, Sequence

#: Time given to the prewinder / phase encoding when no TE is asked for [s].
DEFAULT_PREWINDER_TIME = 1e-3

#: Quadratic RF-spoiling phase increment that is the usual choice (Zur et al., MRM 1991) [rad].
RF_SPOIL_117 = math.radians(117.0)


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


def flash(
    *,
    matrix: tuple[int, int] = (64, 64),
    fov: tuple[float, float] = (0.2, 0.2),
    flip_angle: float = math.radians(10.0),
    tr: float = 10e-3,
    te: float | None = None,
    dwell: float = 30e-6,
    rf_spoil_increment: float = RF_SPOIL_117,
    spoiler_cycles: float = 2.0,
    order: str = "linear",
    dummy_scans: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Sequence:
    """A 2D spoiled FLASH with a Cartesian readout along x and phase encoding along y.

    Parameters
    ----------
    matrix : (nx, ny)
        Samples per readout and number of phase-encode lines.
    fov : (fov_x, fov_y)
        Field of view [m]; k-space steps are 1/fov.
    flip_angle : float
        Excitation flip angle [rad], in (0, π].
    tr : float
        Repetition time [s].
    te : float, optional
        Echo time [s], pulse to the k = 0 sample; if omitted, the readout's time to its centre
        plus :data:`DEFAULT_PREWINDER_TIME`. (System limits on gradient amplitude and slew are
        the sequence library's job; the events view only stores moments.)
    dwell : float
        ADC dwell time [s].
    rf_spoil_increment : float
        Quadratic RF-spoiling increment [rad]: the n-th pulse has phase ``inc·n(n+1)/2``
        and its samples are demodulated with the same phase. 0 disables RF spoiling.
    spoiler_cycles : float
        Gradient spoiler after the readout in cycles across one voxel (moment
        ``spoiler_cycles · nx / fov_x`` in x); the phase encoding is rewound.
    order : {"linear", "centric"}
        Phase-encode order.
    dummy_scans : int
        Repetitions without ADC before the imaging ones, to approach steady state.

    The samples of a readout sit at k_x = n/fov_x for n = −nx/2 … nx/2 − 1 (a sample is
    taken at the end of its event), so a centred inverse FFT reconstructs the image.
    """
    nx, ny = check_matrix(matrix)
    fov_x, fov_y = check_fov(fov)
    check_flip("flip_angle", flip_angle)
    check_positive("dwell", dwell)
    check_count("dummy_scans", dummy_scans, minimum=0)
    t_to_center = (nx // 2 + 1) * dwell
    min_te = t_to_center + 1e-6
    if te is None:
        # room for a prewinder of realistic amplitude (k_max in 1 ms needs ≈ 4 mT/m at 64/0.2 m)
        te = t_to_center + DEFAULT_PREWINDER_TIME
    pre = te - t_to_center
    if pre <= 0:
        raise ValueError(f"te = {te * 1e3:.3g} ms is shorter than the readout allows (minimum {min_te * 1e3:.3g} ms)")
    post = tr - pre - nx * dwell
    if post <= 0:
        raise ValueError(
            f"tr = {tr * 1e3:.3g} ms is shorter than te plus the readout "
            f"(minimum {(pre + nx * dwell) * 1e3:.3g} ms + spoiler)"
        )

    dk_x, dk_y = 1.0 / fov_x, 1.0 / fov_y
    lines = phase_encode_order(ny, order)
    reps = []
    schedule = [None] * dummy_scans + lines
    for n, line in enumerate(schedule):
        phase = rf_spoil_increment * n * (n + 1) / 2
        rep = Repetition.create(nx + 2, pulse_angle=flip_angle, pulse_phase=phase, dtype=dtype)
        event_time = torch.full((nx + 2,), dwell, dtype=dtype)
        event_time[0] = pre
        event_time[-1] = post
        gradm = torch.zeros(nx + 2, 3, dtype=dtype)
        ky = 0.0 if line is None else line * dk_y
        gradm[0, 0] = -(nx // 2 + 1) * dk_x
        gradm[0, 1] = ky
        gradm[1:-1, 0] = dk_x
        # rewind: undo the readout's end position, then spoil by spoiler_cycles per voxel
        gradm[-1, 0] = -(nx - nx // 2 - 1) * dk_x + spoiler_cycles * nx * dk_x
        gradm[-1, 1] = -ky
        adc = torch.zeros(nx + 2, dtype=torch.bool)
        if line is not None:
            adc[1:-1] = True
        adc_phase = torch.full((nx + 2,), phase, dtype=dtype) * adc
        reps.append(rep.replace(event_time=event_time, gradm=gradm, adc_usage=adc, adc_phase=adc_phase))
    return Sequence(reps)
