"""``gradmr mrf``: MR fingerprinting — build a dictionary, match, train a network, evaluate it on a phantom.

* ``gradmr mrf dictionary --train fisp --out DIR`` — the atoms of a (T1, T2) log grid (``DIR/dictionary.npz``,
  ``DIR/atoms.png``, ``DIR/dictionary.json``).
* ``gradmr mrf match --dictionary DIR/dictionary.npz --out DIR2 [--fingerprints F.npy | --phantom mni152]`` — maps
  by maximum normalised inner product: NIfTI (``t1``, ``t2``, ``pd`` in s), PNGs and, on a phantom, metrics.
* ``gradmr mrf train --model NAME --out DIR`` — a network on synthetic fingerprints; a checkpoint after every epoch
  (``DIR/checkpoint.pt``), resumed when the command is run again.
* ``gradmr mrf evaluate --checkpoint DIR/checkpoint.pt --out DIR2`` — the network on the phantom's fingerprints:
  maps (NIfTI), scatter plots and error maps (PNG), ``metrics.json``.

Units at the command line: seconds (T1/T2 ranges, as everywhere in gradmr), SNR as σ = rms/SNR per fingerprint
(:mod:`gradmr.mrf.fingerprints`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

mrf_app = typer.Typer(help="MR fingerprinting: dictionary, match, train, evaluate.", no_args_is_help=True)

TRAIN_NAMES = ("fisp", "spline5", "spline11noisy")
MODEL_NAMES = ("fc", "rnn", "hydra", "fc-fc", "rnn-rnn", "blochnet")


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError as err:
        raise typer.BadParameter(f"give two numbers in seconds, e.g. 0.01,5 (got {text!r})", param_hint=name) from err
    return lo, hi


def _trains(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in TRAIN_NAMES]
    if bad or not names:
        raise typer.BadParameter(f"trains must be among {TRAIN_NAMES}, got {text!r}", param_hint="--train")
    return names


def _snr(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter("must be > 0 (leave it out for noise-free data)", param_hint="--snr")
    return value


def _phantom_fingerprints(phantom: str, train_name: str, snr: float | None, seed: int, small: bool, frames=None):
    """Test maps of a built-in phantom and their fingerprints ``PD · a`` (+ noise)."""
    import torch

    from ..mrf import add_noise, mrf_test_maps, mrf_train, simulate_fingerprints
    from ..mrf.models import fit_length

    maps = mrf_test_maps(phantom, small=small)
    t1, t2, pd = maps.voxels()
    train = mrf_train(train_name)
    if frames is not None:
        train = fit_length(train, frames)
    x = pd[:, None] * simulate_fingerprints(train, t1, t2)
    if snr is not None:
        x = add_noise(x, snr, generator=torch.Generator().manual_seed(seed))
    return maps, x


def _figure_atoms(dictionary, path: Path) -> None:
    import matplotlib.pyplot as plt
    import torch

    fig, ax = plt.subplots(figsize=(7, 3.2))
    picks = torch.linspace(0, dictionary.size - 1, 5).round().long()
    for i in picks.tolist():
        ax.plot(dictionary.atoms[i].numpy(), lw=0.8, label=f"T1 {dictionary.t1[i]:.3g} s, T2 {dictionary.t2[i]:.3g} s")
    ax.set_xlabel("TR index")
    ax.set_ylabel("normalised amplitude")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figures(maps, est_t1, est_t2, out: Path, name: str, title: str) -> None:
    """``maps.png`` (true, estimated and ln-error maps of the middle slice) and ``scatter.png`` (predicted vs true)."""
    from ..mrf.plot import plot_error_maps, plot_predictions
    from ..sequence.plot import save_figure

    t1, t2, _ = maps.voxels()
    preds = {name: (est_t1, est_t2)}
    save_figure(plot_error_maps(preds, maps, estimates=True, title=title), out / "maps.png")
    save_figure(plot_predictions(preds, t1, t2, title=title), out / "scatter.png")


def _metrics(est_t1, est_t2, t1, t2) -> dict:
    from ..mrf import log_mse

    per = log_mse((est_t1, est_t2), (t1, t2), per_parameter=True)
    return {"log_mse": float(per.mean()), "log_mse_t1": float(per[0]), "log_mse_t2": float(per[1])}


@mrf_app.command("dictionary")
def dictionary_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    train: Annotated[str, typer.Option(help="Train: fisp, spline5 or spline11noisy.")] = "fisp",
    t1_range: Annotated[str, typer.Option(help="T1 range [s], 'min,max'.")] = "0.01,5",
    t2_range: Annotated[str, typer.Option(help="T2 range [s], 'min,max' (T2 < T1 is kept).")] = "0.005,2.5",
    step: Annotated[float, typer.Option(min=1e-4, max=1.0, help="Relative grid step (0.02: 2 % log steps).")] = 0.02,
    states: Annotated[int, typer.Option(min=1, help="EPG states kept.")] = 64,
    energy: Annotated[float, typer.Option(min=0.5, max=1.0, help="SVD energy kept (1: no compression).")] = 0.9999,
    frames: Annotated[int | None, typer.Option(min=1, help="Keep the first FRAMES TRs (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train's random parts.")] = 0,
) -> None:
    """Build a dictionary of normalised fingerprints over a log-spaced (T1, T2) grid with T2 < T1."""
    from ..mrf import build_dictionary, compress, mrf_train, save_dictionary, t1_t2_grid
    from ..mrf.models import fit_length

    (name,) = _trains(train)
    t1, t2 = t1_t2_grid(_pair(t1_range, "--t1-range"), _pair(t2_range, "--t2-range"), t1_step=step, t2_step=step)
    tr = mrf_train(name, seed=seed)
    if frames is not None:
        tr = fit_length(tr, frames)
    d = build_dictionary(tr, t1, t2, n_states=states, progress=True)
    if energy < 1.0:
        d = compress(d, energy=energy)
    out.mkdir(parents=True, exist_ok=True)
    path = save_dictionary(d, out / "dictionary.npz")
    _figure_atoms(d, out / "atoms.png")
    info = {
        "train": name,
        "atoms": d.size,
        "frames": d.frames,
        "rank": d.rank,
        "states": states,
        "step": step,
        "t1_range_s": list(_pair(t1_range, "")),
        "t2_range_s": list(_pair(t2_range, "")),
    }
    (out / "dictionary.json").write_text(json.dumps(info, indent=1))
    typer.echo(f"{d.size} atoms × {d.frames} TRs (rank {d.rank}) → {path}")


@mrf_app.command("match")
def match_cmd(
    dictionary: Annotated[Path, typer.Option(help="A dictionary.npz of `gradmr mrf dictionary`.", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    fingerprints: Annotated[
        Path | None, typer.Option(help="Fingerprints .npy (..., N), real or complex; default: a phantom.", exists=True)
    ] = None,
    phantom: Annotated[str, typer.Option(help="Built-in test phantom: mni152 or brain.")] = "mni152",
    snr: Annotated[float | None, typer.Option(help="Add noise to the phantom's fingerprints (σ = rms/SNR).")] = None,
    small: Annotated[bool, typer.Option(help="One small slice of the phantom (fast).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
) -> None:
    """Match fingerprints to a dictionary; write T1/T2/PD maps (NIfTI, s) and figures."""
    import numpy as np
    import torch

    from ..mrf import load_dictionary, match, save_maps_nifti

    d = load_dictionary(dictionary)
    out.mkdir(parents=True, exist_ok=True)
    if fingerprints is not None:
        x = torch.from_numpy(np.load(fingerprints))
        if x.shape[-1] != d.frames:
            raise typer.BadParameter(f"fingerprints have {x.shape[-1]} samples, the dictionary {d.frames}")
        result = match(d, x)
        for name in ("t1", "t2", "pd", "score"):
            np.save(out / f"{name}.npy", getattr(result, name).numpy())
        if result.t1.ndim in (2, 3):
            save_maps_nifti(result, out, (1e-3, 1e-3, 1e-3))
        typer.echo(f"matched {result.t1.numel()} fingerprints → {out}")
        return
    maps, x = _phantom_fingerprints(phantom, d.name or "fisp", _snr(snr), seed, small, frames=d.frames)
    result = match(d, x)
    save_maps_nifti(result, out, tuple(maps.voxel_size.tolist()), mask=maps.mask)
    t1, t2, _ = maps.voxels()
    metrics = _metrics(result.t1, result.t2, t1, t2) | {"voxels": int(t1.numel()), "snr": snr, "phantom": phantom}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    _figures(maps, result.t1, result.t2, out, "DM", f"dictionary matching, {phantom}")
    typer.echo(f"log-MSE {metrics['log_mse']:.3g} over {metrics['voxels']} voxels → {out}")


@mrf_app.command("train")
def train_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created); holds checkpoint.pt.")],
    model: Annotated[str, typer.Option(help="Model: " + ", ".join(MODEL_NAMES) + ".")] = "blochnet",
    train: Annotated[
        str, typer.Option(help="Training train(s), comma-separated, e.g. spline5,spline11noisy.")
    ] = "fisp",
    samples: Annotated[int, typer.Option(min=16, help="Synthetic training fingerprints.")] = 65536,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: the model's).")] = None,
    snr: Annotated[float | None, typer.Option(help="Train with noise (σ = rms/SNR, fresh per batch).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, samples and noise.")] = 0,
    frames: Annotated[int, typer.Option(min=8, help="Fingerprint samples the model takes.")] = 1000,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt if it exists.")] = True,
) -> None:
    """Train a network on synthetic fingerprints (T1 ≤ 5 s, T2 ≤ 2.5 s, T2 < T1), with checkpoints that resume."""
    from ..mrf.models import build_model
    from ..mrf.training import synthetic_training_set, train_model

    if model not in MODEL_NAMES:
        raise typer.BadParameter(f"choose one of {MODEL_NAMES}", param_hint="--model")
    names = _trains(train)
    out.mkdir(parents=True, exist_ok=True)
    data = synthetic_training_set(names, samples, seed=seed, snr=_snr(snr), frames=frames, progress=True)
    val = synthetic_training_set(names, min(4096, samples), seed=seed + 1_000_003, snr=_snr(snr), frames=frames)
    net = build_model(model, frames, seed=seed, trains=names)
    history = train_model(
        net, data, epochs=epochs, seed=seed, checkpoint=out / "checkpoint.pt", resume=resume, progress=True, val=val
    )
    (out / "history.json").write_text(json.dumps(history, indent=1))
    _figure_history(history, out / "loss.png")
    last = history[-1] if history else {}
    typer.echo(
        f"{model}: {len(history)} epochs, loss {last.get('loss', float('nan')):.4g}, validation log-MSE "
        f"{last.get('val_log_mse', float('nan')):.4g} → {out / 'checkpoint.pt'}"
    )


def _figure_history(history, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if history:
        epochs = [h["epoch"] for h in history]
        ax.semilogy(epochs, [h["loss"] for h in history], label="training loss")
        if "val_log_mse" in history[0]:
            ax.semilogy(epochs, [h["val_log_mse"] for h in history], label="validation log-MSE")
        ax.legend()
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@mrf_app.command("evaluate")
def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint.pt of `gradmr mrf train`.", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="Output directory (created).", file_okay=False)],
    phantom: Annotated[str, typer.Option(help="Built-in test phantom: mni152 or brain.")] = "mni152",
    train: Annotated[str, typer.Option(help="Train of the test fingerprints.")] = "fisp",
    snr: Annotated[float | None, typer.Option(help="Noise on the test fingerprints (σ = rms/SNR).")] = None,
    small: Annotated[bool, typer.Option(help="One small slice of the phantom (fast).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
) -> None:
    """Evaluate a trained network on a phantom: maps (NIfTI, s), figures and log-scale MSE."""
    from ..io.images import save_nifti
    from ..mrf.models import build_model
    from ..mrf.training import load_checkpoint, predict

    state = load_checkpoint(checkpoint)
    config = dict(state["model_config"])
    name = config.pop("name")
    frames = config.pop("frames")
    net = build_model(name, frames, **config)
    net.load_state_dict(state["model"])
    (test_train,) = _trains(train)
    maps, x = _phantom_fingerprints(phantom, test_train, _snr(snr), seed, small)
    est_t1, est_t2 = predict(net, x)
    t1, t2, _ = maps.voxels()
    out.mkdir(parents=True, exist_ok=True)
    vs = tuple(maps.voxel_size.tolist())
    for label, est in (("t1", est_t1), ("t2", est_t2)):
        full = maps.t1.new_zeros(maps.mask.shape)
        full[maps.mask] = est.to(full.dtype)
        save_nifti(full, vs, out / f"{label}.nii.gz")
    metrics = _metrics(est_t1, est_t2, t1, t2) | {
        "model": name,
        "voxels": int(t1.numel()),
        "snr": snr,
        "phantom": phantom,
        "test_train": test_train,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    _figures(maps, est_t1, est_t2, out, name, f"{name} on {phantom} ({test_train})")
    typer.echo(f"{name}: log-MSE {metrics['log_mse']:.3g} over {metrics['voxels']} voxels → {out}")
