"""A built-in, offline, procedural brain-like phantom: one axial 2D slice.

The anatomy is drawn from ellipses in metres (not in voxels), so the same head appears at any matrix size:
a head of semi-axes 70 mm (x) × 88 mm (y) with

* an outer CSF rim,
* a cortical grey-matter band whose inner and outer borders are modulated with angle (gyri and sulci),
* white matter inside,
* an anterior and a posterior interhemispheric fissure (CSF lined with GM),
* two deep grey-matter nuclei,
* two lateral ventricles (CSF) of *different* sizes, and
* a small CSF cyst on the +x side only,

so that the slice is not left–right symmetric: mirroring errors show. Axes: +y is anterior (the frontal horns
of the ventricles and the wider part of the fissure point to +y); +x is the side with the cyst.

Partial-volume fractions come from supersampling each voxel (``supersampling²`` points, vectorised).
"""

from __future__ import annotations

import math

import torch

from .core import VoxelPhantom
from .fractions import MODELS, TissueFractions, phantom_from_fractions
from .tissues import BRAIN_TISSUES

#: Head semi-axes (x, y) [m].
HEAD_SEMI_AXES = (0.070, 0.088)

_BG, _CSF, _GM, _WM = 0, 1, 2, 3


def _ellipse(u: torch.Tensor, v: torch.Tensor, cu: float, cv: float, au: float, av: float, angle: float = 0.0):
    """Inside an ellipse in normalised head coordinates (centre, semi-axes, rotation in rad)."""
    c, s = math.cos(angle), math.sin(angle)
    du, dv = u - cu, v - cv
    p = (c * du + s * dv) / au
    q = (-s * du + c * dv) / av
    return p * p + q * q < 1.0


def _labels(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Tissue label (0 background, 1 CSF, 2 GM, 3 WM) at points ``x, y`` [m] (same shape)."""
    u = x / HEAD_SEMI_AXES[0]
    v = y / HEAD_SEMI_AXES[1]
    rho = torch.sqrt(u * u + v * v)
    theta = torch.atan2(v, u)
    bg = torch.zeros((), dtype=torch.int8)
    csf, gm, wm = (torch.tensor(v, dtype=torch.int8) for v in (_CSF, _GM, _WM))
    # cortex: gyri via angular modulation of the pial and the GM/WM borders (same phase, deeper for WM)
    gyri = torch.sin(17 * theta + 0.4) + 0.35 * torch.sin(5 * theta + 1.1)
    pial = 0.925 + 0.022 * gyri
    white = 0.80 + 0.055 * gyri
    inside = rho < pial
    label = torch.where(rho < white, wm, torch.where(inside, gm, torch.where(rho < 1.0, csf, bg)))
    # deep grey nuclei (thalamus-like)
    nuclei = _ellipse(u, v, -0.21, -0.14, 0.11, 0.16, 0.25) | _ellipse(u, v, 0.21, -0.14, 0.11, 0.16, -0.25)
    # interhemispheric fissure, anterior and posterior, lined with GM
    fissure_gm = inside & (u.abs() < 0.07) & ((v > 0.50) | (v < -0.62))
    label = torch.where(nuclei | fissure_gm, gm, label)
    fissure = inside & (u.abs() < 0.022) & ((v > 0.56) | (v < -0.68))
    # lateral ventricles: the one at −x is larger
    ventricles = _ellipse(u, v, -0.13, 0.14, 0.075, 0.30, -0.22) | _ellipse(u, v, 0.12, 0.16, 0.055, 0.24, 0.22)
    # a small cyst on the +x side only
    cyst = _ellipse(u, v, 0.50, 0.30, 0.07, 0.06)
    label = torch.where(fissure | ventricles | cyst, csf, label)
    return label


def _check_2d(name: str, value, kind) -> tuple:
    t = tuple(kind(v) for v in value)
    if len(t) != 2 or any(not (v > 0) for v in t):
        raise ValueError(f"{name} must be two positive values, got {tuple(value)}")
    return t


def tissue_fractions(
    matrix=(64, 64), fov=(0.2, 0.2), *, supersampling: int = 4, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Fractions of CSF, GM and WM per voxel of the built-in brain slice.

    Parameters
    ----------
    matrix : (ny, nx)
    fov : (x, y) [m]
        Voxel centres lie at ``(i − N//2)·fov/N``.
    supersampling : int
        Sub-samples per voxel along each axis.

    Returns
    -------
    Tensor, shape ``(3, ny, nx)``
        Fractions in :data:`~gradmr.phantom.tissues.BRAIN_TISSUES` order (CSF, GM, WM); each in [0, 1], their
        sum ≤ 1 (the rest is background).
    """
    ny, nx = _check_2d("matrix", matrix, int)
    fx, fy = _check_2d("fov", fov, float)
    if int(supersampling) < 1:
        raise ValueError(f"supersampling must be ≥ 1, got {supersampling}")
    s = int(supersampling)

    def axis(n: int, length: float) -> torch.Tensor:
        step = length / n
        centres = (torch.arange(n, dtype=torch.float64) - n // 2) * step
        offsets = ((torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5) * step
        return (centres[:, None] + offsets[None, :]).flatten()

    yy, xx = torch.meshgrid(axis(ny, fy), axis(nx, fx), indexing="ij")
    label = _labels(xx, yy).reshape(ny, s, nx, s)
    fractions = torch.stack([(label == k).to(torch.float64).mean(dim=(1, 3)) for k in (_CSF, _GM, _WM)])
    return fractions.to(dtype)


def brain_phantom(
    matrix=(64, 64),
    *,
    field_strength: float = 3.0,
    fov=(0.2, 0.2),
    slice_thickness: float = 5e-3,
    pools: str = "multi",
    supersampling: int = 4,
    dtype: torch.dtype = torch.float32,
) -> VoxelPhantom:
    """The built-in procedural brain slice as a :class:`~gradmr.phantom.VoxelPhantom` (z = 1).

    Parameters
    ----------
    matrix : (ny, nx)
    field_strength : float
        1.5 or 3.0 [T]; selects the tissue table (:mod:`gradmr.phantom.tissues`).
    fov : (x, y) [m]
        The head spans 140 mm × 176 mm; a smaller FOV crops it.
    slice_thickness : float
        Voxel size along z [m].
    pools : ``"multi"`` or ``"mixed"``
        ``"multi"``: three pools (CSF, GM, WM), the multi-compartment model; ``"mixed"``: one pool with linearly
        mixed properties (BMapEst's model). See :func:`~gradmr.phantom.fractions.phantom_from_fractions`.
    supersampling : int
        Sub-samples per voxel along each axis for the fractions.
    dtype : torch.float32 or torch.float64

    B0 is 0 Hz and B1 is 1 everywhere; one uniform receive coil.
    """
    if pools not in MODELS:
        raise ValueError(f"pools must be one of {MODELS}, got {pools!r}")
    if not slice_thickness > 0:
        raise ValueError(f"slice_thickness must be > 0 m, got {slice_thickness}")
    ny, nx = _check_2d("matrix", matrix, int)
    fx, fy = _check_2d("fov", fov, float)
    fractions = tissue_fractions((ny, nx), (fx, fy), supersampling=supersampling, dtype=torch.float64)
    tf = TissueFractions.create(
        fractions, BRAIN_TISSUES, voxel_size=(fx / nx, fy / ny, float(slice_thickness)), dtype=torch.float64
    )
    return phantom_from_fractions(tf, field_strength=field_strength, model=pools, dtype=dtype)
