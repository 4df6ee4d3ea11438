"""Diffusion MRI on P1 meshes: assembly, eigen-solve, matrix formalism, BTPDE and a radius gradient, per mesh size.

A ball of R = 5 µm (D = 2e-9 m²/s) at ≈ 1.5k, 5k, 20k and 45k nodes. Each size runs in a fresh process
(``--threads`` threads; peak RSS = that process's ``VmHWM``):

- assembly: all FE matrices (M, K, Q, R, J, boundary flux) in torch, with autograd on the vertices;
- eigen: the Laplace eigenbasis with ℓ = 1 µm by our block shift-invert Lanczos (``method="sparse"``), modes kept;
  and, in the same process, SciPy's ``eigsh`` shift-invert (ARPACK, ``method="arpack"``) as the peer, as a ratio;
- MF: 4 sequences (PGSE 5/10 ms, PGSE 10/100 ms, double PGSE 5/10 ms, PGSE 30/40 ms) × 20 b-values
  (0…10000 s/mm²) × 3 directions = 240 signals, eigenbasis reused;
- BTPDE: 2 signals (PGSE 5/10 ms, b = 1000 and 3000 s/mm², dt = 50 µs, 300 steps), solver ``auto``;
- gradient: d(Σ MF signals of PGSE 5/10, 20 b × 3 directions)/dR through assembly and the frozen basis (one
  forward + backward, basis given) — the cost of one radius-fit step after its eigen-solve;
- full set: eigen + MF, the "full signal set" of the issue's goal (< 20 s at 20k nodes).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_diffusion.py [--threads 2] [--sizes 1500,5000,20000,45000]
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_diffusion.py --quick --output /tmp/bench.md   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _child import run_child, status_gb  # noqa: E402

RADIUS = 5e-6
# prototype anchors from the issue: eigen-solve 0.4 / 1.7 / 14 / 33 s at 1.5k / 5k / 20k / 45k nodes
EIGEN_ANCHOR_S = {1500: 0.4, 5000: 1.7, 20000: 14.0, 45000: 33.0}


def child(spec: dict) -> dict:
    import numpy as np
    import torch

    from gradmr.diffusion import PGSE, DoublePGSE, assemble, compartments, geometry
    from gradmr.diffusion.simulate import encodings, simulate_rows
    from gradmr.diffusion.solvers import btpde_signal, eigenbasis

    torch.set_num_threads(spec["threads"])
    out: dict = {}
    tissue = compartments(1)
    t0 = time.perf_counter()
    template = geometry.ball(1.0, nodes=spec["nodes"])
    out["mesh_s"] = time.perf_counter() - t0
    radius = torch.tensor(RADIUS, dtype=torch.float64, requires_grad=True)
    mesh = template.with_points(radius * template.points.detach())
    out["nodes"] = mesh.n_nodes
    out["cells"] = mesh.n_cells
    t0 = time.perf_counter()
    assemble(mesh, tissue)
    out["assembly_s"] = time.perf_counter() - t0
    fe_d = assemble(mesh.with_points(mesh.points.detach()), tissue)
    t0 = time.perf_counter()
    basis = eigenbasis(fe_d, diffusivity=2e-9, length_scale=1e-6)
    out["eigen_s"] = time.perf_counter() - t0
    out["modes"] = basis.n_modes
    if spec.get("arpack", True):
        t0 = time.perf_counter()
        peer = eigenbasis(fe_d, diffusivity=2e-9, length_scale=1e-6, method="arpack")
        out["arpack_s"] = time.perf_counter() - t0
        out["arpack_modes"] = peer.n_modes
        if peer.n_modes == basis.n_modes:
            out["eigen_max_diff"] = float((peer.eigenvalues - basis.eigenvalues).abs().max() / basis.eigenvalue_max)
        del peer
    seqs = [PGSE(5e-3, 10e-3), PGSE(10e-3, 100e-3), DoublePGSE(5e-3, 10e-3), PGSE(30e-3, 40e-3)]
    b = np.linspace(0, 10000e6, 20)
    dirs = np.eye(3)
    idx, d, bb = encodings(seqs, b, dirs, 3)
    plain = mesh.with_points(mesh.points.detach())
    t0 = time.perf_counter()
    with torch.no_grad():
        res = simulate_rows(plain, tissue, seqs, idx, bb, d, basis=basis)
    out["mf_s"] = time.perf_counter() - t0
    out["mf_signals"] = int(res.signal.numel())
    sig = res.signal.numpy().reshape(4, 3, 20)
    with torch.no_grad():
        two = simulate_rows(plain, tissue, seqs[:1], [0, 0], [1000e6, 3000e6], [[1.0, 0, 0]] * 2, basis=basis)
    out["mf_pgse_b1000_b3000"] = two.signal.tolist()
    out["mf_range"] = [float(sig.min()), float(sig.max())]
    # BTPDE, 2 signals
    seq = seqs[0]
    q = seq.q_from_b(torch.tensor([1000e6, 3000e6], dtype=torch.float64))
    durations, values = seq.intervals()
    stats: dict = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        s = btpde_signal(fe_d, q, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), durations, values, stats=stats)
    out["btpde_s"] = time.perf_counter() - t0
    out["btpde_solver"] = stats.get("solver")
    out["btpde_signal"] = (s.real / fe_d.weights.sum()).tolist()
    # gradient w.r.t. the radius through assembly and the frozen basis
    pg_idx, pg_d, pg_b = encodings([seq], b, dirs, 3)
    t0 = time.perf_counter()
    res = simulate_rows(mesh, tissue, [seq], pg_idx, pg_b, pg_d, basis=basis)
    (grad,) = torch.autograd.grad(res.signal.sum(), radius)
    out["grad_s"] = time.perf_counter() - t0
    out["grad_value"] = float(grad)
    out["peak_gb"] = status_gb("VmHWM")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sizes", default="1500,5000,20000,45000")
    p.add_argument("--quick", action="store_true", help="one small mesh, for a smoke run")
    p.add_argument("--no-arpack", action="store_true", help="skip the eigsh (ARPACK) comparison")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sizes = [600] if args.quick else [int(x) for x in args.sizes.split(",")]
    rows = []
    for n in sizes:
        print(f"ball ≈ {n} nodes …", flush=True)
        r = run_child(__file__, {"nodes": n, "threads": args.threads, "arpack": not args.no_arpack}, args.timeout)
        print(r, flush=True)
        if "error" in r:
            rows.append(f"| ≈{n} | | | | | | | | | | | error: {r['error']} |")
            continue
        anchor = EIGEN_ANCHOR_S.get(n)
        ratio = f"{r['eigen_s'] / anchor:.2f}×" if anchor else ""
        full = r["eigen_s"] + r["mf_s"]
        pg = r["mf_pgse_b1000_b3000"]
        if "arpack_s" in r:
            diff = r.get("eigen_max_diff")
            peer = f"{r['arpack_s']:.2f} s ({r['arpack_s'] / r['eigen_s']:.1f}× ours" + (
                f"; max Δλ/λ_max {diff:.0e})" if diff is not None else f"; {r['arpack_modes']} modes)"
            )
        else:
            peer = ""
        rows.append(
            f"| {r['nodes']} | {r['cells']} | {r['assembly_s']:.3f} s | {r['eigen_s']:.2f} s ({ratio}) | {peer} | "
            f"{r['modes']} | {r['mf_s']:.2f} s | {full:.2f} s | {r['btpde_s']:.2f} s ({r['btpde_solver']}) | "
            f"{r['grad_s']:.2f} s | {r['peak_gb']:.2f} | S(1000, 3000 s/mm²) MF {pg[0]:.6f} / {pg[1]:.6f}, "
            f"BTPDE {r['btpde_signal'][0]:.6f} / {r['btpde_signal'][1]:.6f} (exact 0.708686 / 0.337500) |"
        )
    import torch
    from _report import append_report

    append_report(
        args.output,
        title="Diffusion MRI: ball R = 5 µm, assembly / eigen / MF / BTPDE / radius gradient"
        + (" (--quick)" if args.quick else ""),
        script="bench_diffusion.py",
        argv=argv,
        notes=[
            f"machine: nproc {os.cpu_count()}, torch {torch.__version__}; {args.threads} threads; every size in a "
            "fresh process; single run per size (times include first-touch memory costs)",
            "MF: 4 sequences × 20 b × 3 directions = 240 signals (PGSE 5/10, PGSE 10/100, double PGSE 5/10, "
            "PGSE 30/40); eigen: ℓ = 1 µm; BTPDE: 2 signals, PGSE 5/10, dt = 50 µs; "
            "gradient: Σ of 60 PGSE signals w.r.t. R, forward + backward with the basis given",
            "eigen ratio: ours / the issue's prototype anchor (0.4 / 1.7 / 14 / 33 s); full set = eigen + MF; "
            "eigsh: SciPy's ARPACK shift-invert on the same pencil and λ_max, same process, as a ratio to ours",
            "peak RSS = VmHWM of the size's process",
        ],
        header="| nodes | cells | assembly | eigen (vs anchor) | eigsh peer | modes | MF 240 signals | full set "
        "| BTPDE 2 signals | radius gradient | peak RSS GB | signals |",
        rows=rows,
    )


if __name__ == "__main__":
    main()
