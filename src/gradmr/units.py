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


#: Unit suffixes :func:`parse_quantity` accepts, per SI unit: suffix → factor to the SI unit.
QUANTITY_SUFFIXES = {
    "s": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6},
    "m": {"m": 1.0, "cm": 1e-2, "mm": 1e-3},
    "rad": {"rad": 1.0, "deg": math.pi / 180.0, "°": math.pi / 180.0},
    "s/m^2": {"s/m^2": 1.0, "s/m2": 1.0, "s/mm^2": 1e6, "s/mm2": 1e6},
}


def parse_quantity(text: str, unit: str) -> float:
    """A number with an optional unit suffix, converted to the SI ``unit`` (``"s"``, ``"m"``, ``"rad"``, ``"s/m^2"``).

    ``parse_quantity("90ms", "s") == 0.09``, ``parse_quantity("15deg", "rad")``, ``parse_quantity("1000s/mm2",
    "s/m^2") == 1e9``; a bare number is taken in ``unit`` itself. Raises ``ValueError`` naming the accepted suffixes.
    """
    s = str(text).strip().replace(" ", "")
    suffixes = QUANTITY_SUFFIXES.get(unit, {})
    for suffix in sorted(suffixes, key=len, reverse=True):
        if s.endswith(suffix) and s[: -len(suffix)]:
            try:
                return float(s[: -len(suffix)]) * suffixes[suffix]
            except ValueError:
                break
    try:
        return float(s)
    except ValueError:
        allowed = ", ".join(suffixes) if suffixes else "none"
        raise ValueError(f"{text!r} is not a number in {unit or 'plain units'} (unit suffixes: {allowed})") from None
