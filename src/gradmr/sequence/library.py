"""The sequence library by name: every builder, its parameters with units, and parsing of ``KEY=VALUE`` settings.

``build("tse", te_eff=0.09)`` calls the builder; :func:`parameters` lists what a builder takes (unit, help and
default, from the builder module's ``PARAMETERS`` table and the function's signature); :func:`parse_settings`
turns command-line ``KEY=VALUE`` strings (values with unit suffixes such as ``90ms``, ``15deg``, ``200mm``,
``1000s/mm2``) into SI keyword arguments.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..units import parse_quantity
from .core import Sequence

#: name → (module, function, one-line description).
_BUILDERS: dict[str, tuple[str, str, str]] = {
    "flash": ("flash", "flash", "spoiled FLASH/GRE, 2D or 3D Cartesian, RF (quadratic) and gradient spoiling"),
    "multi-echo-gre": ("gre", "multi_echo_gre", "multi-echo spoiled GRE: several TEs per TR (T2* mapping)"),
    "bssfp": ("gre", "bssfp", "balanced SSFP, alternating phase, TE = TR/2 (T2/T1 contrast)"),
    "ir-flash": ("gre", "ir_flash", "inversion-prepared FLASH (MP-RAGE-like), T1-weighted"),
    "spin-echo": ("spin_echo", "spin_echo", "2D spin echo, one line per TR"),
    "tse": ("spin_echo", "turbo_spin_echo", "turbo spin echo / RARE, echo train, variable refocusing angles"),
    "ir-se": ("inversion", "ir_spin_echo", "inversion-recovery spin echo, T1-weighted"),
    "flair": ("inversion", "flair", "FLAIR: T2-weighted with CSF nulled"),
    "dir": ("inversion", "double_inversion_recovery", "double inversion recovery (two tissues nulled)"),
    "dwi": ("diffusion", "dwi_pgse", "diffusion-weighted spin echo (Stejskal-Tanner PGSE), b-value and direction"),
    "radial": ("noncartesian", "radial_gre", "radial spoiled GRE, golden-angle spokes"),
    "epi": ("noncartesian", "epi", "gradient-echo EPI, blipped"),
    "spiral": ("noncartesian", "spiral_gre", "spiral GRE, Archimedean interleaves"),
    "mrf-fisp": ("mrf", "fisp_mrf", "MR fingerprinting FISP train (Jiang et al. 2015 flip angles and TRs)"),
    "mrf-spline": ("mrf", "spline_mrf", "MRF FISP train with spline flip angles (stand-ins for Liu et al. 2021)"),
}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a builder: its SI ``unit`` ("s", "m", "rad", "s/m^2", "1" or "" for text), ``help`` and
    ``default``."""

    name: str
    unit: str
    help: str
    default: Any


def _function(name: str) -> Callable[..., Sequence]:
    module, func, _ = _BUILDERS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), func)


def sequence_names() -> tuple[str, ...]:
    """Names of the builders that this installation has, in library order."""
    names = []
    for name, (module, func, _) in _BUILDERS.items():
        try:
            mod = importlib.import_module(f"{__package__}.{module}")
        except ImportError:
            continue
        if hasattr(mod, func):
            names.append(name)
    return tuple(names)


def _check_name(name: str) -> str:
    available = sequence_names()
    if name not in available:
        raise ValueError(f"unknown sequence {name!r}; available: {', '.join(available)}")
    return name


def describe(name: str) -> str:
    """One-line description of a builder."""
    return _BUILDERS[_check_name(name)][2]


def builder(name: str) -> Callable[..., Sequence]:
    """The builder function called ``name``."""
    return _function(_check_name(name))


def parameters(name: str) -> dict[str, Parameter]:
    """The user-facing parameters of a builder, in signature order (``dtype`` and ``system`` left out)."""
    func = builder(name)
    module = importlib.import_module(func.__module__)
    table = getattr(module, "PARAMETERS", {}).get(func.__name__, {})
    out = {}
    for pname, p in inspect.signature(func).parameters.items():
        if pname in ("dtype", "system") or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        unit, text = table.get(pname, ("", ""))
        default = None if p.default is inspect.Parameter.empty else p.default
        out[pname] = Parameter(pname, unit, text, default)
    return out


def build(name: str, **settings) -> Sequence:
    """Call the builder ``name`` with SI keyword arguments (unknown ones are an error naming the allowed ones)."""
    params = parameters(name)
    unknown = sorted(set(settings) - set(params))
    if unknown:
        raise ValueError(f"{name} has no parameter(s) {unknown}; its parameters: {', '.join(params)}")
    return builder(name)(**settings)


def _parse_value(text: str, param: Parameter):
    default = param.default
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{param.name} must be true or false, got {text!r}")
    if text.strip().lower() == "none" and default is None:
        return None
    if isinstance(default, str) or (param.unit == "" and default is None):
        return text
    if isinstance(default, tuple | list) or "," in text:
        parts = [p for p in text.replace("x", ",").split(",") if p] if isinstance(default, tuple) else text.split(",")
        values = [_scalar(p, param) for p in parts]
        if isinstance(default, tuple | list) and len(values) == 1 and len(default) > 1:
            values = values * len(default)
        return tuple(values)
    return _scalar(text, param)


def _scalar(text: str, param: Parameter):
    default = param.default[0] if isinstance(param.default, tuple | list) and param.default else param.default
    if param.unit in ("", "1") and isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{param.name} must be an integer, got {text!r}") from None
    if param.unit in ("", "1"):
        value = float(text)
        return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    return parse_quantity(text, param.unit)


def parse_settings(name: str, items: Iterable[str]) -> dict[str, Any]:
    """``["te=90ms", "matrix=64", "refocusing_angles=120deg"]`` → SI keyword arguments of builder ``name``.

    A value is a number with an optional unit suffix (the builder's unit for that parameter: ``ms``/``us`` for s,
    ``mm``/``cm`` for m, ``deg`` for rad, ``s/mm2`` for s/m²), a comma- or ``x``-separated list of them (a single
    value fills a tuple parameter: ``matrix=64`` → (64, 64)), ``true``/``false``, or text for choices.
    """
    params = parameters(name)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"builder settings are KEY=VALUE, got {item!r}")
        if key not in params:
            raise ValueError(f"{name} has no parameter {key!r}; its parameters: {', '.join(params)}")
        out[key] = _parse_value(value, params[key])
    return out


__all__ = ["Parameter", "build", "builder", "describe", "parameters", "parse_settings", "sequence_names"]
