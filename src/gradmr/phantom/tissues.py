"""A small table of brain tissue properties at 1.5 T and 3 T, with where each number comes from.

Units are SI: times in s, diffusivity in m²/s, proton density relative to water (CSF ≈ 1).
PD and D do not depend on the field strength; the same values are used at both fields. Where no
measured source is given, the ``source`` string says so and the value is an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The tissues of the built-in brain phantom, in pool order.
BRAIN_TISSUES = ("csf", "gm", "wm")

#: Field strengths [T] with a table.
FIELD_STRENGTHS = (1.5, 3.0)


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
    source : str
        Where the numbers come from, and which are approximate.
    """

    name: str
    pd: float
    t1: float
    t2: float
    t2dash: float
    d: float
    source: str


_BMAPEST = (
    "values hard-coded in the BMapEst code (Estimation of brain tissue probability maps using a "
    "differentiable MRI simulator, arXiv:2404.14739; github.com/BioMedAI-UCSC/BMapEst, "
    "src/brain_probability_maps.py), which uses MR-zero on BrainWeb phantoms; that code cites no source "
    "for them and states no field strength — taken here as approximate 1.5 T values"
)
_STANISZ = (
    "T1, T2: Stanisz GJ et al., T1, T2 relaxation and magnetization transfer in tissue at 3T, "
    "Magn Reson Med 2005;54:507-512 (WM T1 1084 ms, T2 69 ms; GM T1 1820 ms, T2 99 ms); "
    "for comparison Wansapura JP et al., NMR relaxation times in the human brain at 3.0 tesla, "
    "J Magn Reson Imaging 1999;9:531-538 report shorter T1 (WM ≈ 0.83 s, GM ≈ 1.33 s)"
)
_FIELD_FREE = "PD and D: field-independent, as the 1.5 T entry (BMapEst values, approximate)"
_T2DASH_3T = (
    "T2': approximate, the 1.5 T (BMapEst) value reused unchanged — no measured 3 T source here; "
    "static-dephasing theory would shorten T2' roughly in proportion to 1/B0"
)

_TABLE: dict[float, dict[str, Tissue]] = {
    1.5: {
        "csf": Tissue("csf", 1.0, 4.16, 1.65, 0.0591, 3.19e-9, _BMAPEST),
        "gm": Tissue("gm", 0.8, 1.55, 0.09, 0.322, 0.83e-9, _BMAPEST),
        "wm": Tissue("wm", 0.7, 0.83, 0.07, 0.183, 0.65e-9, _BMAPEST),
    },
    3.0: {
        "csf": Tissue(
            "csf",
            1.0,
            4.16,
            1.65,
            0.0591,
            3.19e-9,
            "approximate: the 1.5 T (BMapEst) values reused; CSF is close to free water, whose T1 and T2 "
            "depend only weakly on field strength; no measured 3 T source here",
        ),
        "gm": Tissue("gm", 0.8, 1.820, 0.099, 0.322, 0.83e-9, f"{_STANISZ}. {_FIELD_FREE}. {_T2DASH_3T}"),
        "wm": Tissue("wm", 0.7, 1.084, 0.069, 0.183, 0.65e-9, f"{_STANISZ}. {_FIELD_FREE}. {_T2DASH_3T}"),
    },
}


def tissue(name: str, field_strength: float = 3.0) -> Tissue:
    """The :class:`Tissue` called ``name`` (``"csf"``, ``"gm"`` or ``"wm"``) at ``field_strength`` [T]."""
    table = tissue_table(field_strength)
    key = name.lower()
    if key not in table:
        raise ValueError(f"tissue must be one of {tuple(table)}, got {name!r}")
    return table[key]


def tissue_table(field_strength: float = 3.0) -> dict[str, Tissue]:
    """All tissues at ``field_strength`` [T] (1.5 or 3.0), keyed by name in :data:`BRAIN_TISSUES` order."""
    for b0 in FIELD_STRENGTHS:
        if abs(float(field_strength) - b0) < 1e-6:
            return dict(_TABLE[b0])
    raise ValueError(f"field_strength must be one of {FIELD_STRENGTHS} T, got {field_strength}")
