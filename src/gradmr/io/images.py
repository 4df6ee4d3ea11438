"""Images to files: NIfTI volumes and PNG pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _to_numpy(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return np.asarray(image)


def save_nifti(image, voxel_size, path) -> Path:
    """Write a real image ``(z, y, x)`` or ``(y, x)`` to a NIfTI file (``.nii`` or ``.nii.gz``).

    The array is stored as NIfTI ``(x, y, z)`` (the transpose of ours) in float32, with zooms in mm and an
    affine that puts voxel ``i`` at ``(i − N//2)·voxel_size`` (the grid convention of ``docs/conventions.md``),
    so the origin is the centre of the grid. :func:`gradmr.io.load_phantom_nifti` reads such files back.

    Parameters
    ----------
    image : Tensor or array, real
        Take ``.abs()`` (or ``.real``) of a complex image first.
    voxel_size : sequence of 3 floats
        Voxel size in x, y, z [m].
    path : str or Path
    """
    from .phantom_files import _save_xyz

    arr = _to_numpy(image)
    if np.iscomplexobj(arr):
        raise TypeError("save_nifti writes real images; pass image.abs() or image.real")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"image must have shape (z, y, x) or (y, x), got {arr.shape}")
    vs = np.asarray(_to_numpy(voxel_size), dtype=np.float64).ravel()
    if vs.size != 3 or not (vs > 0).all():
        raise ValueError(f"voxel_size must be three positive values (x, y, z) in m, got {vs.tolist()}")
    path = Path(path)
    _save_xyz(arr, vs, path)
    return path


def save_png(image, path, title: str | None = None) -> Path:
    """Write the magnitude of a 2D image ``(y, x)`` (or ``(1, y, x)``) as a grayscale PNG.

    Displayed with ``origin='lower'``: row ``y = 0`` is at the bottom and +y points up, +x to the right, so
    a phantom with +y anterior appears nose up. Uses matplotlib's Agg canvas (no global pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arr = np.abs(_to_numpy(image))
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"image must have shape (y, x) or (1, y, x), got {arr.shape}; pick a slice first")
    fig = Figure(figsize=(4, 4 * arr.shape[0] / max(arr.shape[1], 1) + (0.4 if title else 0.0)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(arr, cmap="gray", origin="lower", interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    path = Path(path)
    fig.savefig(str(path), dpi=100, bbox_inches="tight")
    return path
