"""Sequences as differentiable tensors, and their builders (the library: :mod:`gradmr.sequence.library`)."""

from .core import PULSE_USAGES, Repetition, Sequence
from .diffusion import b_matrix, b_value_of, dwi_pgse
from .flash import flash, phase_encode_order
from .gre import bssfp, echo_index, ir_flash, multi_echo_gre
from .inversion import double_inversion_recovery, flair, ir_spin_echo
from .library import build, parameters, sequence_names
from .mrf import (
    fisp_mrf,
    jiang_flip_angles,
    jiang_trs,
    spline5_flip_angles,
    spline11noisy_flip_angles,
    spline_flip_angles,
    spline_mrf,
)
from .noncartesian import epi, radial_gre, spiral_gre, spoke_angles
from .spin_echo import spin_echo, turbo_spin_echo
from .system import DEFAULT_SYSTEM, SystemLimits, min_moment_time

__all__ = [
    "DEFAULT_SYSTEM",
    "PULSE_USAGES",
    "Repetition",
    "Sequence",
    "SystemLimits",
    "b_matrix",
    "b_value_of",
    "bssfp",
    "build",
    "double_inversion_recovery",
    "dwi_pgse",
    "echo_index",
    "epi",
    "fisp_mrf",
    "spline5_flip_angles",
    "spline11noisy_flip_angles",
    "spline_flip_angles",
    "spline_mrf",
    "flair",
    "flash",
    "ir_flash",
    "ir_spin_echo",
    "jiang_flip_angles",
    "jiang_trs",
    "min_moment_time",
    "multi_echo_gre",
    "parameters",
    "phase_encode_order",
    "radial_gre",
    "sequence_names",
    "spin_echo",
    "spiral_gre",
    "spoke_angles",
    "turbo_spin_echo",
]
