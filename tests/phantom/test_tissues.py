"""The tissue library: every value has a source, the presets are the papers' numbers, the physics is sane."""

import csv
from importlib import resources

import pytest

from gradmr.phantom.tissues import (
    BRAIN_TISSUES,
    FIELD_STRENGTHS,
    QUANTITIES,
    TISSUE_NAMES,
    tissue,
    tissue_table,
)

DATA = resources.files("gradmr.phantom") / "data"


def _rows():
    with (DATA / "tissues.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _citations():
    with (DATA / "tissue_sources.csv").open(encoding="utf-8") as f:
        return {r["key"]: r["citation"] for r in csv.DictReader(f)}


def test_every_value_in_the_data_file_has_a_source():
    citations = _citations()
    assert all(c.strip() for c in citations.values())
    for row in _rows():
        where = f"{row['tissue']} {row['quantity']} at {row['field_T']}"
        assert row["source"] in citations, f"{where}: unknown source key {row['source']!r}"
        assert row["value"].strip(), f"{where}: no value"
        if row["source"] == "estimate":
            assert row["note"].strip(), f"{where}: an estimate must say how it was made"


@pytest.mark.parametrize("field", FIELD_STRENGTHS)
def test_library_covers_the_brainweb_classes_with_sources(field):
    table = tissue_table(field)
    assert tuple(table) == TISSUE_NAMES
    for name, t in table.items():
        assert set(t.sources) == set(QUANTITIES)
        for q in QUANTITIES:
            assert t.sources[q].strip(), f"{name}.{q} at {field} T has no source"
        assert t.pd >= 0 and t.t1 > 0 and t.t2 > 0 and t.t2dash > 0 and 0 <= t.d < 4e-9
        assert t.t2 <= t.t1, f"{name}: T2 > T1"


def test_bmapest_preset_is_the_papers_table():
    # Gundogdu et al., arXiv:2404.14739: GM/WM/CSF
    paper = {
        "gm": (0.8, 1.55, 0.09, 0.322, 0.83e-9),
        "wm": (0.7, 0.83, 0.07, 0.183, 0.65e-9),
        "csf": (1.0, 4.16, 1.65, 0.0591, 3.19e-9),
    }
    table = tissue_table(preset="bmapest")
    assert set(table) == set(BRAIN_TISSUES)
    for name, values in paper.items():
        t = table[name]
        assert (t.pd, t.t1, t.t2, t.t2dash, t.d) == pytest.approx(values, rel=1e-12)
        assert all("arXiv:2404.14739" in s for s in t.sources.values())


def test_t2dash_rows_follow_from_the_t2_star_in_their_note():
    rows = _rows()
    t2 = {(r["tissue"], r["field_T"]): float(r["value"]) for r in rows if r["quantity"] == "t2"}
    checked = 0
    for r in rows:
        if r["quantity"] == "t2dash" and r["note"].startswith("T2* "):
            t2star = float(r["note"].split()[1]) * 1e-3
            expected = 1 / (1 / t2star - 1 / t2[(r["tissue"], r["field_T"])])
            assert float(r["value"]) == pytest.approx(expected, rel=2e-3), r  # rows are rounded to 4 digits
            checked += 1
    assert checked >= 13


def test_field_dependence_and_lookup():
    for name in BRAIN_TISSUES:  # measured T1 of brain tissue grows with B0
        assert tissue(name, 3.0).t1 > tissue(name, 1.5).t1
    assert tissue("GM", 3.0).t1 == pytest.approx(1.558)  # Bojorquez et al. 2017 via MR-zero
    assert tissue("muscle", 3.0).t1 == pytest.approx(1.412)  # Stanisz et al. 2005
    assert tissue("wm", 1.5).pd == tissue("wm", 3.0).pd  # PD does not depend on the field
    with pytest.raises(ValueError, match="field_strength"):
        tissue_table(7.0)
    with pytest.raises(ValueError, match="preset"):
        tissue_table(preset="koma")
    with pytest.raises(ValueError, match="tissue"):
        tissue("bone")
