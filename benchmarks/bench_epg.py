"""EPG fingerprint throughput: gradmr's compiled kernel against blochsim and a plain per-tissue loop, in one run;
dictionary matching time; appends a table to BENCHMARKS.md.

Tasks (float32 throughout; tissues seeded, log-uniform T1 in [0.1, 5] s and T2 in [5 ms, 2.5 s] with T2 < T1):

(a) blochsim's own benchmark: 10k tissues, inversion + 500 TRs, 32 states (the issue quotes 0.19 s on 4 threads).
    The train is the first 500 TRs of our MRF-FISP train (:func:`gradmr.mrf.trains.mrf_train`) with TE = 0, since
    blochsim samples right after each pulse; gradmr returns the complex signal here, as blochsim does.
(b) dictionary throughput (atoms × TRs per second): the 1000-TR MRF-FISP train, 10k and 100k atoms, 64 and 32 states.
    gradmr returns the real amplitude (``real=True``, what dictionaries store; the complex signal is that times a
    constant phase); blochsim its complex signal (no TE). The plain loop — numpy, one tissue at a time, vectorised
    over the states only, complex128, written in this file — is timed on ``--loop-atoms`` tissues and *extrapolated*
    linearly to the row's atom count (it checks itself against the kernel on those tissues).
(c) matching time: 100k voxels (noisy fingerprints of random tissues) against a ≈ 100k-atom dictionary of
    :mod:`gradmr.mrf.dictionary`, SVD-compressed (all voxels, median of repeats) and full length (10^13
    multiply-adds: timed once on 10k voxels and extrapolated linearly); skipped, saying why, if that module is
    missing.

Every case runs in a fresh process with ``--threads`` threads for torch, numba and blochsim (peak RSS = that
process's ``VmHWM``, imports included); times are medians of ``--repeats`` runs after one warm-up run on a few
tissues (numba loads its cached machine code, blochsim builds its kernels). Agreement: max |Δ| / max |signal| between
gradmr and blochsim on the same tissues (blochsim is float32; gradmr's TE is undone for the comparison).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_epg.py [--threads 2] [--repeats 3] [--output BENCHMARKS.md]
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_epg.py --quick --output /tmp/bench.md   # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _child import run_child  # noqa: E402
from _child import status_gb as _status_gb  # noqa: E402

T1_RANGE = (0.1, 5.0)
T2_RANGE = (0.005, 2.5)
#: Relative step of the matching dictionary's log grid: 1.55 % gives ≈ 100k pairs with T2 < T1 over the default
#: ranges of :func:`gradmr.mrf.dictionary.t1_t2_grid`.
MATCH_STEP = 0.0155
#: SNR of the fingerprints matched in (c) (noise model of :func:`gradmr.mrf.add_noise`).
MATCH_SNR = 50.0
#: Full-length matching is timed on at most this many voxels and extrapolated (linear in the voxels).
FULL_MATCH_VOXELS = 10_000


# ------------------------------------------------------------------------------------------------ shared pieces
def tissues(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded (T1, T2) pairs [s], log-uniform, T2 < T1 (redrawn until it holds)."""
    rng = np.random.default_rng(seed)
    t1 = np.exp(rng.uniform(*np.log(T1_RANGE), n))
    t2 = np.exp(rng.uniform(*np.log(T2_RANGE), n))
    bad = t2 >= t1
    while bad.any():
        t2[bad] = np.exp(rng.uniform(*np.log(T2_RANGE), int(bad.sum())))
        bad = t2 >= t1
    return t1, t2


def train_arrays(frames: int, te_zero: bool) -> dict:
    """Flip angles [rad], TRs, TE [s] and TI of the first ``frames`` TRs of the MRF-FISP train (float64 numpy)."""
    import torch

    from gradmr.mrf.trains import mrf_train

    train = mrf_train("fisp", frames=frames, dtype=torch.float64)
    te = np.zeros(frames) if te_zero else np.broadcast_to(train.te.numpy(), (frames,)).copy()
    return {"flip": train.flip.numpy(), "tr": train.tr.numpy(), "te": te, "ti": train.inversion_time}


def loop_epg(flip, tr, te, ti, t1: float, t2: float, n_states: int) -> np.ndarray:
    """Plain EPG of one tissue (Weigel 2015), numpy complex128, vectorised over the states only: the reference.

    Ideal inversion, then per TR: rotation (phase 0: +z → −y), relaxation to TE, sample F⁺₀, relaxation to the end
    of the TR, shift of every state by one order. Returns F⁺₀ per TR.
    """
    fp = np.zeros(n_states, complex)
    fm = np.zeros(n_states, complex)
    z = np.zeros(n_states, complex)
    z[0] = 1 - 2 * math.exp(-ti / t1)
    out = np.empty(len(flip), complex)
    for n, a in enumerate(flip):
        c2, s2, sa, ca = math.cos(a / 2) ** 2, math.sin(a / 2) ** 2, math.sin(a), math.cos(a)
        fp, fm, z = (
            c2 * fp + s2 * fm - 1j * sa * z,
            s2 * fp + c2 * fm + 1j * sa * z,
            -0.5j * sa * fp + 0.5j * sa * fm + ca * z,
        )
        out[n] = fp[0] * math.exp(-te[n] / t2)
        e1, e2 = math.exp(-tr[n] / t1), math.exp(-tr[n] / t2)
        fp *= e2
        fm *= e2
        z *= e1
        z[0] += 1 - e1
        fp[1:] = fp[:-1].copy()
        fm[:-1] = fm[1:].copy()
        fm[-1] = 0
        fp[0] = np.conj(fm[0])
    return out


def _rss_now_gb() -> float:
    return _status_gb("VmRSS")


def _peak_gb() -> float:
    peak = _status_gb("VmHWM")
    if peak == peak:  # not NaN
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------------------------------------ child
def _child(spec: dict) -> dict:
    import warnings

    import torch

    torch.set_num_threads(spec["threads"])
    kind, atoms, frames, states = spec["sim"], spec["atoms"], spec["frames"], spec["states"]
    arrays = train_arrays(frames, spec["te_zero"])
    t1, t2 = tissues(atoms, spec["seed"])
    base_rss = _rss_now_gb()
    result: dict = {}

    if kind == "gradmr":
        from gradmr.sim.epg import FispTrain, fisp_signal

        train = FispTrain.create(
            arrays["flip"], arrays["tr"], arrays["te"], inversion_time=arrays["ti"], dtype=torch.float32
        )
        t1t, t2t = torch.from_numpy(t1).float(), torch.from_numpy(t2).float()
        real = not spec["complex"]

        def run(a, b):
            return fisp_signal(train, a, b, n_states=states, method="kernel", real=real)

        t0 = time.perf_counter()
        run(t1t[:64], t2t[:64])
        result["warmup_s"] = time.perf_counter() - t0
        base_rss = _rss_now_gb()
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            out = run(t1t, t2t)
            times.append(time.perf_counter() - t0)
        result["times"] = times
        if spec.get("save"):
            np.save(spec["save"], out.numpy())
    elif kind == "blochsim":
        os.environ["BLOCHSIM_NUM_THREADS"] = str(spec["threads"])
        import blochsim

        flip_deg, tr_ms = np.degrees(arrays["flip"]), arrays["tr"] * 1e3

        def run(a, b):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # blochsim's own float() of a grad tensor
                return blochsim.mrf_sim(flip_deg, tr_ms, a * 1e3, b * 1e3, TI=arrays["ti"] * 1e3, states=states)

        t0 = time.perf_counter()
        run(t1[:64], t2[:64])
        result["warmup_s"] = time.perf_counter() - t0
        base_rss = _rss_now_gb()
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            out = run(t1, t2)
            times.append(time.perf_counter() - t0)
        result["times"] = times
        result["version"] = getattr(blochsim, "__version__", None) or _dist_version("blochsim")
        if spec.get("save"):
            np.save(spec["save"], np.asarray(out))
    elif kind == "loop":
        from gradmr.sim.epg import FispTrain, fisp_signal

        sub = spec["loop_atoms"]
        t0 = time.perf_counter()
        ref = np.empty((sub, frames), complex)
        for i in range(sub):
            ref[i] = loop_epg(arrays["flip"], arrays["tr"], arrays["te"], arrays["ti"], t1[i], t2[i], states)
        per_atom = (time.perf_counter() - t0) / sub
        result["times"] = [per_atom * atoms]
        result["measured_atoms"] = sub
        train = FispTrain.create(arrays["flip"], arrays["tr"], arrays["te"], inversion_time=arrays["ti"])
        ours = fisp_signal(train, torch.from_numpy(t1[:sub]), torch.from_numpy(t2[:sub]), n_states=states)
        result["check"] = float(np.abs(ours.numpy() - ref).max() / np.abs(ref).max())
    elif kind == "match":
        result.update(_match_child(spec, arrays, torch))
    result["base_rss_gb"] = base_rss
    result["maxrss_gb"] = _peak_gb()
    return result


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - informative only
        return None


def _match_child(spec: dict, arrays: dict, torch) -> dict:
    """Build a ≈ 100k-atom dictionary, compress it, and time matching ``spec['atoms']`` noisy voxels against it."""
    try:
        from gradmr.mrf import add_noise
        from gradmr.mrf.dictionary import build_dictionary, compress, match, t1_t2_grid
        from gradmr.sim.epg import FispTrain, fisp_signal
    except ImportError as err:
        return {"skipped": f"gradmr.mrf.dictionary not available ({err})"}
    train = FispTrain.create(
        arrays["flip"], arrays["tr"], arrays["te"], inversion_time=arrays["ti"], dtype=torch.float32
    )
    step = spec["grid_step"]
    g1, g2 = t1_t2_grid(t1_step=step, t2_step=step)
    t0 = time.perf_counter()
    dictionary = build_dictionary(train, g1, g2, n_states=spec["states"], progress=False)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    compressed = compress(dictionary)
    t_compress = time.perf_counter() - t0
    t1, t2 = tissues(spec["atoms"], spec["seed"] + 1)
    x = fisp_signal(
        train, torch.from_numpy(t1).float(), torch.from_numpy(t2).float(), n_states=spec["states"], real=True
    )
    x = add_noise(x, MATCH_SNR, generator=torch.Generator().manual_seed(spec["seed"]))
    base = _rss_now_gb()
    out: dict = {"dict_atoms": int(dictionary.size), "build_s": t_build, "compress_s": t_compress}
    out["rank"] = int(compressed.rank) if compressed.rank is not None else None
    # full length: V × A × N multiply-adds (1e13 at 100k × 100k × 1000, minutes on 2 cores): timed once on at most
    # FULL_MATCH_VOXELS voxels and extrapolated linearly in the voxels; compressed: all voxels, repeated
    full_voxels = min(spec["atoms"], FULL_MATCH_VOXELS)
    for label, dic, use, voxels, repeats in (
        ("full", dictionary, False, full_voxels, 1),
        ("compressed", compressed, True, spec["atoms"], spec["repeats"]),
    ):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = match(dic, x[:voxels], use_compressed=use)
            times.append((time.perf_counter() - t0) * spec["atoms"] / voxels)
        out[f"{label}_times"] = times
        out[f"{label}_voxels"] = voxels
        err = np.log(res.t1.double().numpy() / t1[:voxels]) ** 2 + np.log(res.t2.double().numpy() / t2[:voxels]) ** 2
        out[f"{label}_logmse"] = float(err.mean() / 2)
    out["base_rss_gb"] = base
    return out


def run_case(spec: dict, timeout: float) -> dict:
    return run_child(
        __file__, spec, timeout, thread_vars=("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "BLOCHSIM_NUM_THREADS")
    )


# ------------------------------------------------------------------------------------------------ parent
def _median(r: dict, key: str = "times") -> float | None:
    return statistics.median(r[key]) if key in r else None


def _agreement(ours_path: Path, theirs_path: Path, t2: np.ndarray, te: float, ours_complex: bool) -> float | None:
    """max |Δ| / max |signal| of gradmr and blochsim on the same tissues (blochsim = i·ours at TE = 0, phase 0)."""
    if not (ours_path.exists() and theirs_path.exists()):
        return None
    ours = np.load(ours_path).astype(np.complex128)
    theirs = np.load(theirs_path).astype(np.complex128)
    if not ours_complex:
        ours = 1j * ours  # the complex signal of the real amplitude a (phase 0): i·a
    ours = ours * np.exp(te / t2)[:, None]  # undo gradmr's TE; blochsim samples at TE = 0
    return float(np.abs(theirs - 1j * ours).max() / np.abs(ours).max())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat")
    p.add_argument("--loop-atoms", type=int, default=40, help="tissues the plain loop is timed on (extrapolated)")
    p.add_argument("--no-blochsim", action="store_true")
    p.add_argument("--no-match", action="store_true")
    p.add_argument("--case-timeout", type=float, default=900.0)
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    if args.quick:
        own = (2000, 200, 32)
        dict_cases = [(2000, 1000, 32), (5000, 1000, 64)]
        match_atoms, match_step, repeats, loop_atoms = 2000, 0.08, 1, 5
    else:
        own = (10_000, 500, 32)
        dict_cases = [(10_000, 1000, 64), (100_000, 1000, 64), (10_000, 1000, 32), (100_000, 1000, 32)]
        match_atoms, match_step, repeats, loop_atoms = 100_000, MATCH_STEP, args.repeats, args.loop_atoms
    have_blochsim = False
    if not args.no_blochsim:
        try:
            import blochsim  # noqa: F401

            have_blochsim = True
        except ImportError:
            print("blochsim not installed (pip install blochsim): gradmr and the loop only")

    rows, notes = [], []
    common = {"threads": args.threads, "repeats": repeats, "seed": 0}
    with tempfile.TemporaryDirectory() as tmp:
        tasks = [("(a) blochsim's task", *own, True, True)] + [("(b) dictionary", *c, False, False) for c in dict_cases]
        for label, atoms, frames, states, te_zero, cplx in tasks:
            results = {}
            sims = ["gradmr"] + (["blochsim"] if have_blochsim else []) + ["loop"]
            for sim in sims:
                spec = dict(common, sim=sim, atoms=atoms, frames=frames, states=states, te_zero=te_zero, complex=cplx)
                if sim == "loop":
                    spec["loop_atoms"] = min(loop_atoms, atoms)
                if sim in ("gradmr", "blochsim") and atoms <= 10_000:
                    spec["save"] = str(Path(tmp) / f"{sim}_{atoms}_{frames}_{states}.npy")
                t0 = time.perf_counter()
                r = run_case(spec, args.case_timeout)
                results[sim] = r
                t = _median(r)
                print(
                    f"{label:22s} {sim:8s} {atoms:>7d} × {frames:4d} TRs, {states:3d} states: "
                    + (f"{t:.3g} s" if t is not None else r.get("error", "?"))
                    + f"  [{time.perf_counter() - t0:.0f} s]",
                    flush=True,
                )
            agree = None
            if have_blochsim and atoms <= 10_000:
                _, t2 = tissues(atoms, 0)
                te = 0.0 if te_zero else float(train_arrays(1, False)["te"][0])
                agree = _agreement(
                    Path(tmp) / f"gradmr_{atoms}_{frames}_{states}.npy",
                    Path(tmp) / f"blochsim_{atoms}_{frames}_{states}.npy",
                    t2,
                    te,
                    cplx,
                )
            ours = _median(results["gradmr"])
            for sim, r in results.items():
                t = _median(r)
                if t is None:
                    rows.append(f"| {label} | {sim} | {atoms} | {frames} | {states} | {r.get('error')} | | | | |")
                    continue
                ratio = f"{t / ours:.1f}× gradmr" if ours and sim != "gradmr" else ""
                extra = ""
                if sim == "loop":
                    extra = (
                        f"extrapolated from {r['measured_atoms']} tissues; max rel. diff. to kernel {r['check']:.1e}"
                    )
                elif sim == "blochsim" and agree is not None:
                    extra = f"max abs. diff. / max signal {agree:.1e}"
                warm = f"{r['warmup_s']:.2f} s" if "warmup_s" in r else ""
                rows.append(
                    f"| {label} | {sim} | {atoms} | {frames} | {states} | {t:.3g} s | {atoms * frames / t:.3g} | "
                    f"{r['maxrss_gb']:.2f} ({r['base_rss_gb']:.2f}) | {ratio} | {warm} | {extra} |"
                )
        if args.no_match:
            notes.append("(c) matching: not run (--no-match)")
        else:
            spec = dict(common, sim="match", atoms=match_atoms, frames=1000, states=64, te_zero=False, complex=False)
            spec["grid_step"] = match_step
            r = run_case(spec, args.case_timeout)
            if "error" in r or "skipped" in r:
                reason = r.get("error") or r.get("skipped")
                print(f"(c) matching skipped: {reason}")
                notes.append(f"(c) matching: skipped — {reason}")
            else:
                for label in ("full", "compressed"):
                    t = statistics.median(r[f"{label}_times"])
                    size = "1000 TRs" if label == "full" else f"rank {r['rank']}"
                    print(f"(c) matching {label:10s} {match_atoms} voxels × {r['dict_atoms']} atoms: {t:.3g} s")
                    measured = r[f"{label}_voxels"]
                    how = f"timed on {measured} voxels, extrapolated" if measured < match_atoms else "measured"
                    rows.append(
                        f"| (c) matching, {label} ({size}) | gradmr | {r['dict_atoms']} atoms | 1000 | 64 | "
                        f"{t:.3g} s | "
                        f"{match_atoms / t:.3g} voxels/s | {r['maxrss_gb']:.2f} ({r['base_rss_gb']:.2f}) | | | "
                        f"{match_atoms} voxels ({how}), SNR {MATCH_SNR:g}; log-MSE {r[f'{label}_logmse']:.2e} |"
                    )
                notes.append(
                    f"(c) dictionary of {r['dict_atoms']} atoms (log grid, {match_step:.2%} steps, T2 < T1): built in "
                    f"{r['build_s']:.1f} s (kernel + normalisation), compressed in {r['compress_s']:.1f} s "
                    f"(rank {r['rank']})"
                )

    import torch

    sys.path.insert(0, str(HERE))
    from _report import append_report

    append_report(
        args.output,
        title="EPG fingerprints: gradmr kernel vs blochsim vs a plain loop" + (" (--quick)" if args.quick else ""),
        script="bench_epg.py",
        argv=argv,
        notes=[
            f"machine: nproc {os.cpu_count()}, torch {torch.__version__}; {args.threads} threads for torch, numba and "
            f"blochsim; every case in a fresh process; median of {repeats} after a warm-up on 64 tissues",
            "float32; tissues log-uniform, T1 0.1–5 s, T2 5 ms–2.5 s, T2 < T1; train: MRF-FISP (Jiang flip angles, "
            "our TR curve, inversion TI 18 ms); (a) TE = 0 and complex output like blochsim; (b) TE 1.908 ms, gradmr "
            "real amplitude (`real=True`)",
            "peak RSS = VmHWM of the case's process (in brackets: RSS after imports and warm-up)",
            "loop: numpy complex128, one tissue at a time, vectorised over states; timed on a subset, extrapolated",
            *notes,
        ],
        header="| task | simulator | atoms | TRs | states | time (median) | atoms×TRs/s | peak RSS GB (base) | "
        "time ratio | first call | notes |",
        rows=rows,
    )


if __name__ == "__main__":
    main()
