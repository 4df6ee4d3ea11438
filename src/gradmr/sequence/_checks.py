"""Argument checks shared by the sequence builders: one wording for every error (parameter, value, allowed range)."""

from __future__ import annotations

import math


def check_flip(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A flip angle in (0, π] rad ([0, π] with ``allow_zero``); a value above π is taken to be degrees."""
    v = float(value)
    lo_ok = v >= 0 if allow_zero else v > 0
    if not (lo_ok and v <= math.pi) or not math.isfinite(v):
        interval = "[0, π]" if allow_zero else "(0, π]"
        hint = "; use gradmr.units.deg_to_rad for degrees" if v > math.pi else ""
        raise ValueError(f"{name} must be in {interval} rad, got {v:.4g}{hint}")
    return v


def check_positive(name: str, value: float, unit: str = "s") -> float:
    """A finite value > 0 (a time [s] by default)."""
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be > 0 {unit}, got {v:.4g} {unit}")
    return v


def check_count(name: str, value: int, *, minimum: int = 1) -> int:
    """An integer ≥ ``minimum``."""
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def check_matrix(matrix, ndim: int = 2) -> tuple[int, ...]:
    """``ndim`` positive integers."""
    values = tuple(matrix)
    if len(values) != ndim or any(isinstance(v, bool) or int(v) != v or int(v) < 1 for v in values):
        raise ValueError(f"matrix must be {ndim} positive integers, got {matrix!r}")
    return tuple(int(v) for v in values)


def check_fov(fov, ndim: int = 2) -> tuple[float, ...]:
    """``ndim`` lengths in (0, 1] m."""
    values = tuple(float(v) for v in fov)
    if len(values) != ndim or not all(0 < v <= 1 for v in values):
        raise ValueError(f"fov must be {ndim} values in (0, 1] m, got {fov!r}")
    return values


def ms(seconds: float) -> str:
    """``seconds`` as a short ms string for messages."""
    return f"{seconds * 1e3:.4g} ms"


def check_fits(name: str, value: float, minimum: float, why: str) -> None:
    """Raise if a time ``value`` [s] is shorter than ``minimum`` [s], saying why the minimum is what it is."""
    if value < minimum:
        raise ValueError(f"{name} = {ms(value)} is shorter than {why} allows (minimum {ms(minimum)})")
