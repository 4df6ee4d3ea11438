"""Benchmark: gradmr's PDG against MR-zero on one pypulseq-written 2D FLASH (the same .seq file for both).

Every case (simulator × pools × gradient mode × N) runs in a fresh child process so that its peak resident memory
(``ru_maxrss``) is its own; within a case the simulation is repeated and the median time is quoted.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pdg_flash.py --sizes 64 128 256 --repeats 3

Modes: ``fwd`` (no grad), ``pd`` (forward + backward of sum |signal|² w.r.t. PD), ``pd_t1`` (w.r.t. PD and T1: T1
requiring grad makes the graph per voxel instead of per tissue). gradmr's brain phantom is multi-pool (CSF/GM/WM) by
default; MR-zero takes one pool per phantom, so MR-zero runs on ``pools="mixed"`` and gradmr on both.
MR-zero (optional, AGPL) is only called as a peer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _child import run_child  # noqa: E402

MRZERO_MAX_FWD = 128  # MR-zero forward beyond this takes minutes and ≥ 24 GB
MRZERO_MAX_BWD = 64  # its backward at 128 needs ≈ 33 GB (see shared notes); not attempted


# ------------------------------------------------------------------------------------------------ child
def _child(spec: dict) -> dict:
    import resource

    import torch

    sys.path.insert(0, str(HERE))
    torch.set_num_threads(spec["threads"])
    from gradmr.io.pulseq import load_pulseq
    from gradmr.phantom.brain import brain_phantom
    from gradmr.sim.pdg.simulate import simulate_pdg

    n, mode, sim = spec["n"], spec["mode"], spec["sim"]
    base = brain_phantom((n, n), pools=spec["pools"])
    if sim == "mrzero":
        import MRzeroCore as mr0
        from _common import run_mrzero, to_mrzero

        mseq = mr0.Sequence.import_file(spec["seq"])
    else:
        seq = load_pulseq(spec["seq"])

    def once():
        ph = base
        if mode != "fwd":
            ph = ph.replace(pd=ph.pd.clone().requires_grad_())
            if mode == "pd_t1":
                ph = ph.replace(t1=ph.t1.clone().requires_grad_())
        t0 = time.perf_counter()
        with torch.set_grad_enabled(mode != "fwd"):
            if sim == "mrzero":
                data = to_mrzero(ph).build()
                sig = -1j * run_mrzero(mseq, data)  # MR-zero's signal is i × ours for the same file
            else:
                sig = simulate_pdg(seq, ph)
            t_fwd = time.perf_counter() - t0
            if mode != "fwd":
                (sig.abs() ** 2).sum().backward()
        return time.perf_counter() - t0, t_fwd, sig.detach()

    times, fwd_times = [], []
    start = time.perf_counter()
    sig = None
    for _ in range(spec["repeats"]):
        t, tf, sig = once()
        times.append(t)
        fwd_times.append(tf)
        if time.perf_counter() - start > spec["budget"]:
            break
    if spec.get("save"):
        torch.save(sig, spec["save"])
    return {
        "times": times,
        "fwd_times": fwd_times,
        "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "threads": torch.get_num_threads(),
    }


def run_case(spec: dict, timeout: float) -> dict:
    return run_child(__file__, spec, timeout)


# ------------------------------------------------------------------------------------------------ report
def _machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"nproc {os.cpu_count()}, {model}, torch {torch.__version__}, Python {platform.python_version()}"


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[:3].__str__()
    except OSError:
        return "?"


def _fmt(r: dict | None, key: str = "times") -> str:
    if r is None:
        return "–"
    if "error" in r:
        return r["error"]
    t = statistics.median(r[key])
    return f"{t:.3g} s" + (f" (n={len(r[key])})" if len(r[key]) < r.get("_want", 0) else "")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-mrzero", action="store_true")
    p.add_argument("--pools", nargs="+", default=["multi", "mixed"], choices=["multi", "mixed"])
    p.add_argument("--modes", nargs="+", default=["fwd", "pd", "pd_t1"], choices=["fwd", "pd", "pd_t1"])
    p.add_argument("--case-budget", type=float, default=60.0, help="stop repeating a case after this many seconds")
    p.add_argument("--case-timeout", type=float, default=300.0, help="kill a case after this many seconds")
    p.add_argument(
        "--max-grad-n", type=int, default=128, help="skip the backward modes above this N (they exceed the timeout)"
    )
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    import torch

    sys.path.insert(0, str(HERE))
    from _common import nrmse, write_flash_seq

    have_mrzero = False
    if not args.no_mrzero:
        try:
            import MRzeroCore  # noqa: F401

            have_mrzero = True
        except ImportError:
            print("MRzeroCore not installed: gradmr only")
    load_before = _load()
    started = datetime.datetime.now().isoformat(timespec="seconds")
    rows = []
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            seq_path = str(Path(tmp) / f"flash{n}.seq")
            write_flash_seq(seq_path, n)
            sims = [("gradmr", pools) for pools in args.pools]
            if have_mrzero:
                sims.append(("mrzero", "mixed"))
            results: dict = {}
            for sim, pools in sims:
                for mode in args.modes:
                    if sim == "mrzero" and (n > MRZERO_MAX_FWD or (mode != "fwd" and n > MRZERO_MAX_BWD)):
                        continue
                    if mode != "fwd" and n > args.max_grad_n:
                        continue
                    save = str(Path(tmp) / f"{sim}_{pools}_{n}.pt") if mode == "fwd" else None
                    spec = dict(
                        sim=sim,
                        pools=pools,
                        mode=mode,
                        n=n,
                        seq=seq_path,
                        repeats=args.repeats,
                        threads=args.threads,
                        budget=args.case_budget,
                        save=save,
                    )
                    t0 = time.perf_counter()
                    r = run_case(spec, args.case_timeout)  # exit -9: killed, usually out of memory
                    r["_want"] = args.repeats
                    results[(sim, pools, mode)] = r
                    print(
                        f"N={n} {sim:6s} {pools:5s} {mode:5s}: {_fmt(r)} [{time.perf_counter() - t0:.0f} s]", flush=True
                    )
            err = "–"
            ours_path, ref_path = Path(tmp) / f"gradmr_mixed_{n}.pt", Path(tmp) / f"mrzero_mixed_{n}.pt"
            if ours_path.exists() and ref_path.exists():
                err = f"{float(nrmse(torch.load(ours_path), torch.load(ref_path))):.3%}"
            for (sim, pools, mode), r in results.items():
                ratio = "–"
                peer = results.get(("mrzero", "mixed", mode))
                if sim == "gradmr" and pools == "mixed" and peer and "error" not in peer and "error" not in r:
                    ratio = f"{statistics.median(peer['times']) / statistics.median(r['times']):.2f}×"
                fwd = _fmt(r, "fwd_times") if mode != "fwd" else ""
                mem = f"{r['maxrss_gb']:.2f}" if "maxrss_gb" in r else "–"
                rows.append(
                    f"| {n} | {sim} | {pools} | {mode} | {_fmt(r)} | {fwd} | {mem} | {ratio} | "
                    f"{err if sim == 'mrzero' and mode == 'fwd' else ''} |"
                )
            if have_mrzero and MRZERO_MAX_BWD < n <= MRZERO_MAX_FWD and any(m != "fwd" for m in args.modes):
                notes.append(f"N={n}: MR-zero backward skipped (needs ≈ 33 GB at 128).")
            if n > args.max_grad_n and any(m != "fwd" for m in args.modes):
                notes.append(f"N={n}: backward modes skipped (--max-grad-n {args.max_grad_n}).")
            if have_mrzero and n > MRZERO_MAX_FWD:
                notes.append(f"N={n}: MR-zero not run (cost ≈ N⁴; 128 already takes ≈ 12 s forward).")
    load_after = _load()
    header = (
        "| N | simulator | pools | mode | time (median) | of which forward | peak RSS (GB) | MR-zero / gradmr | "
        "signal NRMSE vs gradmr (mixed) |\n|---|---|---|---|---|---|---|---|---|"
    )
    cmd = (
        "OMP_WAIT_POLICY="
        + os.environ.get("OMP_WAIT_POLICY", "(unset)")
        + " python "
        + " ".join([os.path.relpath(__file__, ROOT), *(argv if argv is not None else sys.argv[1:])])
    )
    text = "\n".join(
        [
            f"\n## PDG 2D FLASH, {started}\n",
            f"- machine: {_machine()}; threads per case: {args.threads}",
            f"- command: `{cmd}`",
            f"- load average (1/5/15 min) before: {load_before}, after: {load_after}",
            f"- repeats: {args.repeats} (fewer, marked n=…, when a case ran past {args.case_budget:.0f} s); "
            "every case in a fresh process; peak RSS = ru_maxrss of that process (includes imports, ≈ 0.4 GB)",
            "- time of `pd`/`pd_t1` = forward + backward of sum |signal|²; MR-zero time includes its pre-pass "
            "(compute_graph) and phantom build, gradmr's includes its plan",
            "",
            header,
            *rows,
            "",
            *[f"- {s}" for s in notes],
            "",
        ]
    )
    print(text)
    with open(args.output, "a", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
