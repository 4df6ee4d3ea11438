"""Sequences as differentiable tensors, and their builders."""

from .core import PULSE_USAGES, Repetition, Sequence
from .flash import flash, phase_encode_order

__all__ = ["PULSE_USAGES", "Repetition", "Sequence", "flash", "phase_encode_order"]
