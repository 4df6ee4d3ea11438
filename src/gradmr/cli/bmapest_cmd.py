"""``gradmr bmapest``: estimate CSF/GM/WM probability maps of a phantom from its simulated weighted images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _truth(spec: str, matrix: int, fov: float):
    """Ground-truth fractions (csf, gm, wm) ``(3, n, n)`` float64 of a phantom specification, and its info."""
    import torch

    from .phantom_cmd import resolve_phantom

    _, fr, info = resolve_phantom(spec, matrix=(matrix, matrix), fov=(fov, fov))
    if fr is None:
        raise typer.BadParameter(
            f"{spec!r} has no tissue fractions; give a tissue phantom (brain, mni152, brainweb:NN, a fractions .npz)",
            param_hint="--phantom",
        )
    missing = [t for t in ("csf", "gm", "wm") if t not in fr.names]
    if missing:
        raise typer.BadParameter(f"{spec!r} lacks the tissue(s) {missing}", param_hint="--phantom")
    maps = torch.stack([fr[t][0] for t in ("csf", "gm", "wm")]).double()
    if "vessels" in fr.names:  # BMapEst: vessels count as CSF
        maps[0] = maps[0] + fr["vessels"][0].double()
        info["note"] = "vessels added to CSF, as BMapEst does"
    return maps.clamp(0, 1), info


def _figure_maps(truth, estimate, names, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(8, 8), squeeze=False)
    for i, name in enumerate(names):
        rows = (("truth", truth[i], "magma", 0, 1), ("estimate", estimate[i], "magma", 0, 1))
        for j, (label, img, cmap, lo, hi) in enumerate(rows):
            im = axes[i, j].imshow(img.numpy(), origin="lower", cmap=cmap, vmin=lo, vmax=hi)
            axes[i, j].set_title(f"{name} {label}", fontsize=9)
            fig.colorbar(im, ax=axes[i, j], fraction=0.046)
        err = (estimate[i] - truth[i]).numpy()
        bound = max(float(abs(err).max()), 1e-6)
        im = axes[i, 2].imshow(err, origin="lower", cmap="coolwarm", vmin=-bound, vmax=bound)
        axes[i, 2].set_title(f"{name} error", fontsize=9)
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_loss(history, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if history:
        ax.semilogy(range(1, len(history) + 1), history)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bmapest(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    phantom: Annotated[
        str, typer.Option(help="Tissue phantom: brain, mni152, brainweb:NN, or a fractions .npz / NIfTI directory.")
    ] = "brain",
    contrasts: Annotated[
        str, typer.Option(help="Sequence families, comma-separated: T1, T2, T2star, DIR, FLAIR, DWI.")
    ] = "T1,T2,T2star,DIR,FLAIR,DWI",
    echoes: Annotated[int, typer.Option(min=1, max=4, help="Contrasts per family (1-4).")] = 4,
    matrix: Annotated[int, typer.Option(min=4, help="Matrix N×N of maps and images.")] = 64,
    fov_mm: Annotated[float, typer.Option("--fov-mm", min=0, help="Field of view [mm].")] = 200.0,
    model: Annotated[str, typer.Option(help="Forward model: multi (compartments) or mixed (the paper's).")] = "multi",
    optimizer: Annotated[str, typer.Option(help="direct (multi only), adam or lbfgs.")] = "direct",
    epochs: Annotated[int | None, typer.Option(min=0, help="Iterations [default: 200 direct, 501 adam].")] = None,
    lr: Annotated[float, typer.Option(help="Learning rate of adam / lbfgs.")] = 0.01,
    snr_db: Annotated[float | None, typer.Option("--snr-db", help="Add noise at this SNR [dB].")] = None,
    noise: Annotated[str, typer.Option(help="Noise kind with --snr-db: gaussian or rician.")] = "gaussian",
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    tv: Annotated[
        float, typer.Option(min=0, help="Total-variation weight (direct optimizer; 0: plain fit; ≈1e-3 with noise).")
    ] = 0.0,
) -> None:
    """Estimate CSF, GM and WM maps from simulated weighted images (BMapEst), and score them against the truth.

    Writes maps (NIfTI), maps.png (truth, estimate, error per tissue), loss.png, metrics.json and metrics.md to OUT.
    """
    import time

    from ..bmapest.estimate import estimate_maps
    from ..bmapest.forward import Acquisition, images_multi, tissue_kernels
    from ..bmapest.metrics import evaluate, table_markdown
    from ..bmapest.protocol import paper_protocol, parse_families
    from ..io import save_fractions_nifti
    from ..phantom.fractions import TissueFractions

    t_start = time.perf_counter()
    for name, value, allowed in (
        ("--model", model, ("multi", "mixed")),
        ("--optimizer", optimizer, ("direct", "adam", "lbfgs")),
        ("--noise", noise, ("gaussian", "rician")),
    ):
        if value not in allowed:
            raise typer.BadParameter(f"must be one of {', '.join(allowed)}", param_hint=name)
    try:
        families = parse_families(contrasts)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--contrasts") from e
    fov = fov_mm * 1e-3
    truth, info = _truth(phantom, matrix, fov)
    protocol = paper_protocol(families=families, echoes=echoes, matrix=(matrix, matrix), fov=fov)
    acq = Acquisition([c.sequence for c in protocol], (matrix, matrix), (fov, fov), 8e-3)
    summary = f"{len(protocol)} contrasts ({', '.join(families)} × {echoes}) on {phantom} {matrix}²"
    typer.echo(f"bmapest: {summary}", err=True)
    kernels = tissue_kernels(acq)
    observed = images_multi(truth, kernels)  # the physical (multi-compartment) images
    if snr_db is not None:
        from ..bmapest.noise import add_noise

        observed = add_noise(observed, snr_db=snr_db, kind=noise, seed=seed, mask=truth.sum(0) > 0)
    # the estimation mask comes from the data: pixels whose mean magnitude over contrasts exceeds 5 % of the maximum
    level = observed.abs().mean(0)
    mask = level > 0.05 * level.max()
    epochs = epochs if epochs is not None else (501 if optimizer == "adam" else 200)
    if optimizer == "direct" and (model != "multi" or noise == "rician" and snr_db is not None):
        optimizer = "adam"
        typer.echo("optimizer: adam (direct needs the multi-compartment model and complex data)", err=True)
    result = estimate_maps(
        observed,
        acq,
        model=model,
        optimizer=optimizer,
        epochs=epochs,
        lr=lr,
        mask=mask,
        kernels=kernels if model == "multi" else None,
        tv=tv if optimizer == "direct" else 0.0,
        progress=True,
    )
    seconds = time.perf_counter() - t_start
    brain = truth.sum(0) > 0.01
    scores = evaluate(result.maps, truth, mask=brain)
    metrics = {**scores, "seconds": seconds}
    out.mkdir(parents=True, exist_ok=True)
    names = ("csf", "gm", "wm")
    vs = acq.voxel_size
    save_fractions_nifti(TissueFractions.create(result.maps, names, voxel_size=vs), out / "estimate")
    save_fractions_nifti(TissueFractions.create(truth, names, voxel_size=vs), out / "truth")
    _figure_maps(truth, result.maps, [n.upper() for n in names], out / "maps.png")
    _figure_loss(result.loss_history, out / "loss.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    label = f"{phantom}, {len(protocol)} contrasts, {model}" + ("" if snr_db is None else f", SNR {snr_db:g} dB")
    (out / "metrics.md").write_text(table_markdown({label: scores}) + "\n")
    run = {
        "phantom": {**info, "spec": phantom, "matrix": matrix, "fov_m": fov},
        "contrasts": [c.name for c in protocol],
        "estimator": result.config,
        "noise": None if snr_db is None else {"snr_db": snr_db, "kind": noise, "seed": seed},
        "seconds": seconds,
        "loss_final": result.loss_history[-1] if result.loss_history else None,
    }
    (out / "run.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    for tissue in ("CSF", "GM", "WM"):
        m = metrics[tissue]
        typer.echo(f"{tissue:3s} dice {m['dice']:.3f}  psnr {m['psnr']:.2f} dB  ssim {m['ssim']:.3f}")
    typer.echo(f"{seconds:.1f} s; wrote estimate/, truth/, maps.png, loss.png, metrics.json, metrics.md to {out}")
