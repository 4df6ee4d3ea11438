"""Figures of MRF estimates: predicted against true T1/T2, and maps of the log error on a phantom slice.

Both take ``preds``: a dict ``{name: (t1, t2)}`` of estimates [s] for the masked voxels of a
:class:`~gradmr.mrf.phantoms.TestMaps` (one entry for one method, several to compare), and return a matplotlib
figure (save it with :func:`gradmr.sequence.plot.save_figure`).
"""

from __future__ import annotations

import torch

__all__ = ["plot_error_maps", "plot_predictions"]

#: Colour range of the log-error maps: ±0.5 in ln T (a factor e^0.5 ≈ 1.65).
LOG_ERROR_RANGE = 0.5


def plot_predictions(preds: dict, t1: torch.Tensor, t2: torch.Tensor, *, title: str = ""):
    """Hexbin density of predicted against true T1 (top row) and T2 (bottom row), log axes, one column per entry."""
    import matplotlib.pyplot as plt

    names = list(preds)
    fig, axes = plt.subplots(2, len(names), figsize=(3.0 * len(names) + 0.6, 5.6), squeeze=False)
    for j, name in enumerate(names):
        for i, (label, true, est) in enumerate((("T1", t1, preds[name][0]), ("T2", t2, preds[name][1]))):
            ax = axes[i, j]
            lo, hi = float(true.min()) * 0.7, float(true.max()) * 1.4
            est = torch.as_tensor(est).float().clamp(lo / 3, hi * 3)
            ax.hexbin(true.float().numpy(), est.numpy(), xscale="log", yscale="log", gridsize=40, bins="log", mincnt=1)
            ax.plot([lo, hi], [lo, hi], "r-", lw=0.8)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo / 3, hi * 3)
            ax.set_title(f"{name} {label}", fontsize=9)
            ax.set_xlabel(f"true {label} [s]", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"predicted {label} [s]", fontsize=8)
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_error_maps(preds: dict, maps, *, slice_index: int | None = None, estimates: bool = False, title: str = ""):
    """The true T1/T2 of one slice (default: the middle), then per entry its ln-error map (and, with ``estimates``,
    the estimated map before it)."""
    import matplotlib.pyplot as plt

    z = maps.mask.shape[0] // 2 if slice_index is None else slice_index
    mask = maps.mask[z]
    index = torch.zeros(maps.mask.shape, dtype=torch.long)
    index[maps.mask] = torch.arange(int(maps.mask.sum()))
    rows = index[z][mask]
    per_entry = 2 if estimates else 1
    cols = 1 + per_entry * len(preds)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols + 0.4, 5.0), squeeze=False)
    for i, (label, true) in enumerate((("T1", maps.t1[z].float()), ("T2", maps.t2[z].float()))):
        hi = float(true.max())
        im = axes[i, 0].imshow(true.numpy(), origin="lower", cmap="magma", vmin=0, vmax=hi)
        axes[i, 0].set_title(f"true {label} [s]", fontsize=9)
        fig.colorbar(im, ax=axes[i, 0], fraction=0.046)
        for j, (name, est_pair) in enumerate(preds.items()):
            est = torch.zeros_like(true)
            est[mask] = torch.as_tensor(est_pair[i]).float()[rows]
            col = 1 + per_entry * j
            if estimates:
                im = axes[i, col].imshow(est.numpy(), origin="lower", cmap="magma", vmin=0, vmax=hi)
                axes[i, col].set_title(f"{name}: {label} [s]", fontsize=8)
                fig.colorbar(im, ax=axes[i, col], fraction=0.046)
                col += 1
            err = torch.zeros_like(true)
            err[mask] = torch.log(est[mask].clamp_min(1e-6)) - torch.log(true[mask])
            im = axes[i, col].imshow(
                err.numpy(), origin="lower", cmap="coolwarm", vmin=-LOG_ERROR_RANGE, vmax=LOG_ERROR_RANGE
            )
            axes[i, col].set_title(f"{name}: ln {label} error", fontsize=8)
            fig.colorbar(im, ax=axes[i, col], fraction=0.046)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
