"""The tissue library: PD, T1, T2, T2′ and D of the BrainWeb tissue classes at 1.5 T and 3 T, with sources.

The numbers live in the package data file ``phantom/data/tissues.csv`` (one row per value, with the key of its
source and a note), the citations in ``phantom/data/tissue_sources.csv``. Rows whose source is ``estimate`` are
not measurements; their note says how they were made. PD and D are taken as field-independent (rows with
``field_T = any``). The BMapEst paper's own GM/WM/CSF table is the preset ``"bmapest"``.

Units are SI: times in s, diffusivity in m²/s, proton density relative to water.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

#: The tissues of the library (the BrainWeb classes), in a fixed order.
TISSUE_NAMES = ("csf", "gm", "wm", "fat", "muscle", "skin", "skull", "vessels", "dura", "marrow")

#: The tissues of the built-in brains, in pool order.
BRAIN_TISSUES = ("csf", "gm", "wm")

#: Field strengths [T] with a table.
FIELD_STRENGTHS = (1.5, 3.0)

#: Named presets: tables reproduced from a paper rather than chosen from the literature per value.
PRESETS = ("bmapest",)

#: The properties of a tissue, in :class:`Tissue` field order, with their units.
QUANTITIES = {"pd": "relative", "t1": "s", "t2": "s", "t2dash": "s", "d": "m^2/s"}


@dataclass(frozen=True)
class Tissue:
    """Properties of one tissue at one field strength.

    Attributes
    ----------
    name : str
    pd : float
        Proton density relative to water.
    t1, t2, t2dash : float
        Relaxation times [s]; ``t2dash`` is the reversible (Lorentzian) part, ``1/T2* = 1/T2 + 1/T2'``.
    d : float
        Apparent isotropic diffusivity [m²/s].
    sources : mapping quantity → str
        The citation of each value (``"pd"``, ``"t1"``, ``"t2"``, ``"t2dash"``, ``"d"``), with the row's note.
    """

    name: str
    pd: float
    t1: float
    t2: float
    t2dash: float
    d: float
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@functools.lru_cache(maxsize=1)
def _read_tables() -> dict[str, dict[str, Tissue]]:
    data = resources.files("gradmr.phantom") / "data"
    with (data / "tissue_sources.csv").open(encoding="utf-8") as f:
        citations = {row["key"]: row["citation"] for row in csv.DictReader(f)}
    values: dict[tuple[str, str], dict[str, tuple[float, str]]] = {}
    with (data / "tissues.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            source = citations[row["source"]]
            if row["note"]:
                source = f"{source} — {row['note']}"
            values.setdefault((row["field_T"], row["tissue"]), {})[row["quantity"]] = (float(row["value"]), source)
    tables: dict[str, dict[str, Tissue]] = {}
    for table_key in [str(b) for b in FIELD_STRENGTHS] + list(PRESETS):
        table = {}
        for name in TISSUE_NAMES:
            own = values.get((table_key, name), {})
            if not own:
                continue
            merged = {**values.get(("any", name), {}), **own} if table_key not in PRESETS else own
            table[name] = Tissue(
                name,
                **{q: merged[q][0] for q in QUANTITIES},
                sources={q: merged[q][1] for q in QUANTITIES},
            )
        tables[table_key] = table
    return tables


def tissue_table(field_strength: float | None = 3.0, *, preset: str | None = None) -> dict[str, Tissue]:
    """The tissue library at ``field_strength`` [T] (1.5 or 3.0), or a named ``preset``, keyed by name.

    ``tissue_table(preset="bmapest")`` is the BMapEst paper's GM/WM/CSF table (no field strength).
    """
    tables = _read_tables()
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
        return dict(tables[preset])
    if field_strength is None:
        raise ValueError("give a field_strength (1.5 or 3.0 T) or a preset")
    for b0 in FIELD_STRENGTHS:
        if abs(float(field_strength) - b0) < 1e-6:
            return dict(tables[str(b0)])
    raise ValueError(f"field_strength must be one of {FIELD_STRENGTHS} T, got {field_strength}")


def tissue(name: str, field_strength: float | None = 3.0, *, preset: str | None = None) -> Tissue:
    """The :class:`Tissue` called ``name`` (one of :data:`TISSUE_NAMES`) at ``field_strength`` [T] or in ``preset``."""
    table = tissue_table(field_strength, preset=preset)
    key = name.lower()
    if key not in table:
        raise ValueError(f"tissue must be one of {tuple(table)}, got {name!r}")
    return table[key]
