"""Explicit unit converters, used only at the API edges (CLI options, file formats).

Inside the package everything is SI: s, m, Hz, T, rad, m²/s.
"""

import math

from .constants import GAMMA_BAR_HZ_PER_T


def deg_to_rad(deg: float) -> float:
    """Degrees → radians."""
    return deg * math.pi / 180.0


def rad_to_deg(rad: float) -> float:
    """Radians → degrees."""
    return rad * 180.0 / math.pi


def ms_to_s(ms: float) -> float:
    """Milliseconds → seconds."""
    return ms * 1e-3


def mm_to_m(mm: float) -> float:
    """Millimetres → metres."""
    return mm * 1e-3


def mt_per_m_to_hz_per_m(mt_per_m: float) -> float:
    """Gradient amplitude in mT/m → Hz/m (γ̄·G), the unit Pulseq uses."""
    return mt_per_m * 1e-3 * GAMMA_BAR_HZ_PER_T


def mm2_per_s_to_m2_per_s(value: float) -> float:
    """Diffusivity in mm²/s → m²/s."""
    return value * 1e-6


def s_per_mm2_to_s_per_m2(value: float) -> float:
    """b-value in s/mm² → s/m²."""
    return value * 1e6
