"""Every builder of the sequence library at its defaults: build, Pulseq export and PDG simulation on the built-in
brain; appends a table to BENCHMARKS.md.

Each builder runs in a fresh process with one torch thread (peak RSS = that process's ``ru_maxrss``, imports
included). Times are medians of ``--repeats`` runs after a warm-up (the simulation: one run).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_sequences.py [--repeats 3] [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _child(name: str, repeats: int) -> dict:
    import resource

    import torch

    torch.set_num_threads(1)
    from gradmr.io import write_pulseq
    from gradmr.phantom import brain_phantom
    from gradmr.sequence.library import build, parameters
    from gradmr.sim.pdg import simulate_pdg

    build(name)  # warm-up
    t_build = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        seq = build(name)
        t_build.append(time.perf_counter() - t0)
    t_export = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t0 = time.perf_counter()
            write_pulseq(seq, Path(tmp) / "s.seq", round_times=True)
            t_export.append(time.perf_counter() - t0)
    params = parameters(name)
    m = params["matrix"].default if "matrix" in params else 64
    n = m if isinstance(m, int) else m[1]
    ph = brain_phantom((n, n))
    tau = math.inf if name == "mrf-fisp" else None
    t0 = time.perf_counter()
    simulate_pdg(seq, ph, tau_resolution=tau)
    t_sim = time.perf_counter() - t0
    return {
        "reps": len(seq),
        "samples": seq.sample_count,
        "duration": float(seq.duration()),
        "sar": float(seq.sar_proxy()),
        "build": statistics.median(t_build),
        "export": statistics.median(t_export),
        "sim": t_sim,
        "phantom": n,
        "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv=None) -> None:
    from gradmr.sequence.library import sequence_names

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--names", nargs="+", default=list(sequence_names()))
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.repeats)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for name in args.names:
        cmd = [sys.executable, __file__, "--child", name, "--repeats", str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:15s} build {_fmt(r['build']):>9s} export {_fmt(r['export']):>9s} sim {_fmt(r['sim']):>9s}")
        rows.append(
            f"| {name} | {r['reps']} | {r['samples']} | {r['duration']:.3g} s | {r['sar']:.3g} | {_fmt(r['build'])} | "
            f"{_fmt(r['export'])} | {_fmt(r['sim'])} ({r['phantom']}²) | {r['maxrss_gb']:.2f} |"
        )
    sys.path.insert(0, str(HERE))
    from _report import append_report

    append_report(
        args.output,
        title="Sequence library at its defaults",
        script="bench_sequences.py",
        argv=argv,
        notes=[
            "one torch thread; every builder in a fresh process",
            "export: `write_pulseq(..., round_times=True)` including pypulseq's `check_timing()`; simulation: PDG on "
            "the built-in brain at the builder's matrix, 3 pools (MRF: states merged by k, `tau_resolution=inf`)",
        ],
        header="| sequence | reps | samples | duration | SAR proxy (rad²/s) | build | export | PDG simulation | "
        "peak RSS (GB) |",
        rows=rows,
    )


if __name__ == "__main__":
    main()
