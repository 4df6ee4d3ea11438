"""Pictures of a phantom: tissue fractions and PD/T1/T2 maps with colour bars, one z slice."""

from __future__ import annotations

import numpy as np
import torch

from .core import VoxelPhantom
from .fractions import TissueFractions

#: Maps drawn by :func:`plot_phantom`: name → (title, unit, scale to the unit shown).
_MAPS = {
    "pd": ("PD", "relative", 1.0),
    "t1": ("T1", "s", 1.0),
    "t2": ("T2", "ms", 1e3),
    "t2dash": ("T2'", "ms", 1e3),
    "b0": ("B0", "Hz", 1.0),
}


def display_maps(phantom: VoxelPhantom, z: int = 0) -> dict[str, np.ndarray]:
    """2D ``(y, x)`` maps of one slice for display: PD summed over pools, other maps PD-weighted over pools.

    For a multi-pool phantom the T1/T2/T2′ shown are the PD-weighted mean over the pools of each voxel (what a
    single-pool fit would roughly report); voxels without PD are NaN (drawn blank).
    """
    pd = phantom.pd[:, z].detach().double()
    total = pd.sum(0)
    out = {"pd": total.numpy()}
    for name in ("t1", "t2", "t2dash", "b0"):
        value = getattr(phantom, name)[:, z].detach().double()
        mean = (pd * value).sum(0) / torch.where(total > 0, total, torch.ones_like(total))
        out[name] = torch.where(total > 0, mean, torch.full_like(mean, float("nan"))).numpy()
    return out


def plot_phantom(phantom: VoxelPhantom, *, fractions: TissueFractions | None = None, z: int = 0, title=None):
    """A figure of the tissue fractions (when given) over a row of PD, T1, T2, T2′ and B0 maps, with colour bars.

    Images are drawn with ``origin="lower"``: +y up, +x to the right (docs/conventions.md).
    """
    import matplotlib.pyplot as plt

    maps = display_maps(phantom, z)
    pools = phantom.pool_count
    n_frac = 0 if fractions is None else len(fractions.names)
    cols = max(len(_MAPS), n_frac)
    rows = 1 + (n_frac > 0)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    nz, ny, nx = phantom.grid_shape
    vs = phantom.voxel_size.detach().double().numpy() * 1e3
    extent = (
        -(nx // 2 + 0.5) * vs[0],
        (nx - nx // 2 - 0.5) * vs[0],
        -(ny // 2 + 0.5) * vs[1],
        (ny - ny // 2 - 0.5) * vs[1],
    )

    def show(ax, img, label, cmap="gray", vmin=None, vmax=None):
        im = ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x [mm]", fontsize=7)
        ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=6)

    if fractions is not None:
        for i, name in enumerate(fractions.names):
            show(
                axes[0, i],
                fractions.fractions[i, z].detach().double().numpy(),
                f"{name.upper()} fraction",
                "magma",
                0,
                1,
            )
        for ax in axes[0, n_frac:]:
            ax.axis("off")
    for j, (key, (label, unit, scale)) in enumerate(_MAPS.items()):
        suffix = "" if key == "pd" or pools == 1 else " (PD-weighted)"
        cmap = "gray" if key == "pd" else ("coolwarm" if key == "b0" else "viridis")
        show(axes[-1, j], maps[key] * scale, f"{label} [{unit}]{suffix}", cmap)
    for ax in axes[-1, len(_MAPS) :]:
        ax.axis("off")
    axes[-1, 0].set_ylabel("y [mm]", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
