"""Phantom building: how long each built-in and loader takes, and its peak memory; appends a table to BENCHMARKS.md.

Each case runs in a fresh process (so its peak RSS, ``ru_maxrss``, is its own, imports included) with one torch
thread; the time is the median of ``--repeats`` calls after one warm-up call (the MNI152 data file is decoded
once per process, so its cold load is reported separately). The MR Shepp–Logan is timed against phantominator
(``mr_shepp_logan``, NumPy) on the same grid, as a ratio.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_phantoms.py [--repeats 5] [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: name → (description, python statement run per repeat; ``setup`` runs once before the warm-up).
CASES = {
    "mni152_cold": ("MNI152 data file: first decode in a process", None),
    "mni152_slice64": (
        "MNI152 axial slice, area-resampled to 64², FOV 200 mm",
        "mni152_slice(orientation='axial', matrix=(64, 64), fov=(0.2, 0.2))",
    ),
    "mni152_volume": ("MNI152 3D volume, 2 mm (3 × 80 × 94 × 76)", "mni152_volume()"),
    "mni152_phantom256": (
        "MNI152 slice at 256² → multi-compartment phantom",
        "phantom_from_fractions(mni152_slice(matrix=(256, 256), fov=(0.2, 0.2)))",
    ),
    "brain256": ("procedural brain, 256², multi-pool", "brain_phantom((256, 256))"),
    "fractions_grad256": (
        "fractions → phantom (mixed) → sum, forward + backward, 256²",
        "f = fr.fractions.clone().requires_grad_(); "
        "p = phantom_from_fractions(fr.replace(fractions=f), model='mixed'); "
        "(p.pd.sum() + p.t1.sum()).backward()",
    ),
    "shepp_logan256": (
        "MR Shepp–Logan 2D, 256², supersampling 1",
        "shepp_logan_phantom((256, 256), supersampling=1)",
    ),
    "phantominator256": (
        "phantominator.mr_shepp_logan 2D, 256 (peer)",
        "mr_shepp_logan((256, 256, 1), zlims=(-0.25, -0.25))",
    ),
    "shepp_logan3d64": ("MR Shepp–Logan 3D, 64³", "shepp_logan_phantom((64, 64, 64), supersampling=1)"),
    "phantominator3d64": ("phantominator.mr_shepp_logan 3D, 64³ (peer)", "mr_shepp_logan((64, 64, 64))"),
    "coils8_128": (
        "8 Biot–Savart coils on 128² (48 segments)",
        "coil_sensitivities((1, 128, 128), voxel_size=(1.5e-3, 1.5e-3, 5e-3), n_coils=8)",
    ),
    "random_blocks128": ("random block phantom, 128²", "random_block_phantom((128, 128), seed=1)"),
}

SETUP = (
    "import torch; torch.set_num_threads(1)\n"
    "from gradmr.phantom import (brain_phantom, coil_sensitivities, mni152_slice, mni152_volume, "
    "phantom_from_fractions, random_block_phantom, shepp_logan_phantom)\n"
    "from phantominator import mr_shepp_logan\n"
    "fr = mni152_slice(matrix=(256, 256), fov=(0.2, 0.2), dtype=torch.float64)\n"
)


def _child(name: str, repeats: int) -> dict:
    import resource

    if name == "mni152_cold":
        import torch

        torch.set_num_threads(1)
        from gradmr.phantom import mni152_fractions

        t0 = time.perf_counter()
        mni152_fractions()
        times = [time.perf_counter() - t0]
    else:
        scope: dict = {}
        exec(SETUP, scope)  # noqa: S102 - the benchmark's own statements
        stmt = CASES[name][1]
        exec(stmt, scope)  # warm-up  # noqa: S102
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            exec(stmt, scope)  # noqa: S102
            times.append(time.perf_counter() - t0)
    return {"times": times, "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.repeats)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = {}
    for name in args.cases:
        cmd = [sys.executable, __file__, "--child", name, "--repeats", str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:20s} {_fmt(statistics.median(r['times'])):>10s}  {r['maxrss_gb']:.2f} GB", flush=True)
    peers = {"shepp_logan256": "phantominator256", "shepp_logan3d64": "phantominator3d64"}
    rows = []
    for name, r in results.items():
        ratio = "–"
        peer = results.get(peers.get(name, ""))
        if peer:
            ratio = f"{statistics.median(peer['times']) / statistics.median(r['times']):.2f}×"
        rows.append(
            f"| {CASES[name][0]} | {_fmt(statistics.median(r['times']))} | {len(r['times'])} | "
            f"{r['maxrss_gb']:.2f} | {ratio} |"
        )
    sys.path.insert(0, str(HERE))
    from _report import append_report

    append_report(
        args.output,
        title="Phantom building",
        script="bench_phantoms.py",
        argv=argv,
        notes=[
            "one torch thread; every case in a fresh process",
            "peak RSS = ru_maxrss of the case's process, imports (torch, phantominator) included",
        ],
        header="| case | time (median) | repeats | peak RSS (GB) | phantominator / gradmr |",
        rows=rows,
    )


if __name__ == "__main__":
    main()
