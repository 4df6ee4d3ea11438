"""Merge the runs.json of the MRF table runs (see experiments/README.md) into results/mrf_tables.md and .json."""

import json
import pathlib

import numpy as np
from mrf_tables import MODELS, PAPER

root = pathlib.Path(__file__).parent / "results"
runs = {}
for d in ("mrf", "mrf2", "mrf-noisy", "mrf2-noisy", "mrf-bn", "mrf2-bn"):
    p = root / d / "runs.json"
    if p.exists():
        runs.update(json.loads(p.read_text()))


def fmt(v):
    return "–" if not v else f"{np.mean(v):.3g} ± {np.std(v):.2g} (n={len(v)})"


lines = [
    "# BlochNet tables, reproduced with gradmr (log-scale MSE; mean ± std over seeds, lower is better)",
    "",
    "Merged from `mrf/`, `mrf2/` (noise-free: 32,768 training fingerprints, half the default epochs) and "
    "`mrf-noisy/`, `mrf2-noisy/` (SNR 20: 8,192 fingerprints, a quarter of the epochs); "
    "noise-free BlochNet from `mrf-bn/`, `mrf2-bn/` "
    "(8,192 fingerprints, 2 epochs, as the noisy BlochNet). Test set: 87,588 MNI152 "
    "voxels, FISP 1000 TRs. Noise-free DM is deterministic (one run). Commands and setup: experiments/README.md.",
    "",
]
out = {}
for t in (1, 2):
    lines += [
        f"## Table {t}: " + ("synthetic FISP → phantom" if t == 1 else "Spline5 + Spline11Noisy → FISP phantom"),
        "",
        "| model | paper | ours, noise-free | ours, SNR 20 | noise-free T1 / T2 part |",
        "|---|---|---|---|---|",
    ]
    labels = (
        ["DM"]
        + (["DM (test-train dictionary)"] if t == 2 else [])
        + list(MODELS)
        + (["BlochNet + test-time adaptation"] if t == 2 else [])
    )
    out[t] = {}
    for lab in labels:
        row = {}
        for n in ("free", "noisy"):
            row[n] = [runs[k]["log_mse"] for s in range(3) if (k := f"t{t}/{n}/{lab}/s{s}") in runs]
        parts = [runs[k] for s in range(3) if (k := f"t{t}/free/{lab}/s{s}") in runs]
        split = f"{np.mean([p['t1'] for p in parts]):.3g} / {np.mean([p['t2'] for p in parts]):.3g}" if parts else "–"
        lines.append(f"| {lab} | {PAPER[t].get(lab, '–')} | {fmt(row['free'])} | {fmt(row['noisy'])} | {split} |")
        out[t][lab] = row
    lines.append("")
(root / "mrf_tables.md").write_text("\n".join(lines))
(root / "mrf_tables.json").write_text(json.dumps({"runs": runs, "tables": out}, indent=1))
print("\n".join(lines))
