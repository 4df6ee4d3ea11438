"""BMapEst wall time and peak memory for 1, 4 and 24 contrasts at 64×64 and at full slice resolution (0.5 mm);
appends a table to BENCHMARKS.md.

Each case runs the whole job — protocol, kernels (single-voxel PDG runs), simulated observations, estimation
(``optimizer="direct"``, 200 refinement steps), metrics — on the built-in brain, in a fresh process with
``--threads`` torch threads; peak RSS is that process's ``ru_maxrss`` (imports included). The paper: 5–6 min for one
contrast and under 3 h for 24 at 64×64 (64 GB RAM not enough for more).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_bmapest.py [--threads 2] [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (label, families, echoes, matrix)
CASES = [
    ("1 contrast, 64²", "T1", 1, 64),
    ("4 contrasts, 64²", "T1", 4, 64),
    ("24 contrasts, 64²", "T1,T2,T2star,DIR,FLAIR,DWI", 4, 64),
    ("1 contrast, 400² (0.5 mm)", "T1", 1, 400),
    ("24 contrasts, 400² (0.5 mm)", "T1,T2,T2star,DIR,FLAIR,DWI", 4, 400),
]


def _child(families: str, echoes: int, n: int, threads: int) -> dict:
    import resource

    import torch

    torch.set_num_threads(threads)
    from gradmr.bmapest import Acquisition, estimate_maps, evaluate, images_multi, paper_protocol, tissue_kernels
    from gradmr.phantom import tissue_fractions

    t0 = time.perf_counter()
    protocol = paper_protocol(families=families, echoes=echoes, matrix=(n, n), fov=0.2)
    acq = Acquisition([c.sequence for c in protocol], (n, n), (0.2, 0.2), 8e-3)
    kernels = tissue_kernels(acq)
    t_kernels = time.perf_counter() - t0
    truth = tissue_fractions((n, n), (0.2, 0.2), dtype=torch.float64)
    images = images_multi(truth, kernels)
    level = images.abs().mean(0)
    t1 = time.perf_counter()
    result = estimate_maps(images, acq, kernels=kernels, mask=level > 0.05 * level.max())
    t_fit = time.perf_counter() - t1
    scores = evaluate(result.maps, truth, mask=truth.sum(0) > 0.01)
    return {
        "contrasts": len(protocol),
        "kernels_s": t_kernels,
        "fit_s": t_fit,
        "total_s": time.perf_counter() - t0,
        "psnr_min": min(scores[t]["psnr"] for t in ("CSF", "GM", "WM")),
        "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        families, echoes, n = args.child.split("|")
        print(json.dumps(_child(families, int(echoes), int(n), args.threads)))
        return
    rows = []
    for label, families, echoes, n in CASES:
        cmd = [sys.executable, __file__, "--child", f"{families}|{echoes}|{n}", "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{label:30s} total {r['total_s']:7.1f} s  kernels {r['kernels_s']:6.1f} s  fit {r['fit_s']:6.1f} s  "
              f"{r['maxrss_gb']:.2f} GB  PSNR ≥ {r['psnr_min']:.0f} dB", flush=True)  # fmt: skip
        rows.append(
            f"| {label} | {r['contrasts']} | {r['total_s']:.1f} s | {r['kernels_s']:.1f} s | {r['fit_s']:.1f} s | "
            f"{r['maxrss_gb']:.2f} | {r['psnr_min']:.0f} |"
        )
    sys.path.insert(0, str(HERE))
    from _report import append_report

    append_report(
        args.output,
        title="BMapEst, built-in brain",
        script="bench_bmapest.py",
        argv=argv,
        notes=[
            f"{args.threads} torch threads; every case in a fresh process",
            "total = protocol + kernels (3 single-voxel PDG runs per contrast) + simulated observations + fit "
            "(direct least squares + 200 projected-gradient steps) + metrics; noise-free data",
        ],
        header="| case | contrasts | total | of which kernels | fit | peak RSS (GB) | worst map PSNR (dB) |",
        rows=rows,
    )


if __name__ == "__main__":
    main()
