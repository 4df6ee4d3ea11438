"""A real brain, offline: MNI ICBM152 2009a tissue fractions (CSF, GM, WM) at 2 mm, shipped with the package.

The data file ``gradmr/phantom/data/mni152_2mm.npz`` holds the ICBM152 2009a (symmetric, non-linear) grey- and
white-matter probability templates, and a CSF map derived from them (``clip(brain_mask − GM − WM, 0, 1)``),
area-averaged from 1 mm to 2 mm, cropped to the head and stored as uint8. It is read with
:mod:`importlib.resources`; nothing is downloaded and nilearn (which the file was made from, by
``scripts/make_mni152_data.py``) is not needed. The tissue volumes agree with the 1 mm templates to ≈ 0.2 %
(see :func:`mni152_source_sums`).

Axes
----
The volume is RAS, like the template: a map ``(z, y, x)`` has +x towards the subject's **right**, +y
**anterior**, +z **superior**; :func:`mni152_affine` maps the (x, y, z) index of a voxel to MNI mm.
:func:`mni152_slice` cuts 2D slices ``(y, x)`` with

============  ======================  ======================  ==============
orientation   image +x                image +y                through-plane
============  ======================  ======================  ==============
``axial``     subject's right (+x)    anterior (+y)           z
``coronal``   subject's right (+x)    superior (+z)           y
``sagittal``  anterior (+y)           superior (+z)           x
============  ======================  ======================  ==============

Shown with ``imshow(..., origin="lower")`` (row 0 at the bottom) axial and coronal slices are in the
*neurological* convention — the subject's right on the viewer's right, seen from above (axial) or from behind
(coronal) — and a sagittal slice is seen from the subject's left, anterior to the right. For the *radiological*
convention flip the image x axis (``fractions.flip(-1)``). The template is left–right symmetric, so the
convention only matters for what is added to it.

Licence: the ICBM152 templates are Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University; the notice (:data:`MNI152_NOTICE`) must be kept with any
copy of the data.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch

from .fractions import PLANES, TissueFractions

#: The tissues of the atlas, in the order of :attr:`TissueFractions.names`.
MNI152_TISSUES = ("csf", "gm", "wm")

#: Slice orientations of :func:`mni152_slice`.
ORIENTATIONS = ("axial", "coronal", "sagittal")

_DATA_FILE = "mni152_2mm.npz"
_NOTICE_FILE = "ICBM152-2009a-NOTICE.txt"
_LEVELS = 255


def _resource(name: str):
    return resources.files("gradmr.phantom").joinpath("data", name)


#: The ICBM152 2009a copyright notice, which must accompany the data (read from the package data).
MNI152_NOTICE: str = _resource(_NOTICE_FILE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    """The decoded arrays of the data file (read-only; shared by all calls)."""
    with _resource(_DATA_FILE).open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        out = {k: np.array(npz[k]) for k in npz.files}
    for a in out.values():
        a.setflags(write=False)
    return out


def _uint8_stack() -> np.ndarray:
    arrays = _arrays()
    return np.stack([arrays[t] for t in MNI152_TISSUES])  # a fresh (tissues, z, y, x) uint8 array


def _voxel_size_m() -> tuple[float, float, float]:
    return tuple(float(v) for v in _arrays()["voxel_size_m"])  # type: ignore[return-value]


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")


def _decode(q: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(q)).to(dtype) / _LEVELS


def mni152_fractions(*, dtype: torch.dtype = torch.float32) -> TissueFractions:
    """The whole MNI152 volume: CSF, GM and WM fractions at 2 mm.

    Parameters
    ----------
    dtype : torch.float32 or torch.float64

    Returns
    -------
    TissueFractions
        ``fractions`` of shape ``(3, z, y, x)`` = ``(3, 80, 94, 76)`` (RAS, see the module docstring), names
        ``("csf", "gm", "wm")``, ``voxel_size`` (2, 2, 2) mm. Fresh tensors on each call (the file is read
        once per process).
    """
    _check_dtype(dtype)
    return TissueFractions.create(
        _decode(_uint8_stack(), dtype), MNI152_TISSUES, voxel_size=_voxel_size_m(), dtype=dtype, validate=False
    )


def mni152_affine() -> np.ndarray:
    """The 4 × 4 affine of the stored grid [mm]: voxel ``[k, j, i]`` of a ``(z, y, x)`` map lies at MNI
    ``affine @ (i, j, k, 1)``. A copy."""
    return np.array(_arrays()["affine_mm"], dtype=np.float64)


def mni152_source_sums() -> dict[str, float]:
    """Sums of the 1 mm source maps (GM and WM templates, derived CSF) in voxels of 1 mm³, i.e. volumes in mm³.

    The stored 2 mm fractions keep these volumes up to the uint8 rounding (≈ 0.2 % for CSF, less for GM, WM).
    """
    arrays = _arrays()
    names = tuple(str(n) for n in arrays["tissue_names"])
    return {n: float(s) for n, s in zip(names, arrays["source_sums"], strict=True)}


def mni152_description() -> str:
    """The description stored in the data file: source, processing, axes, licence."""
    return str(_arrays()["description"])


def _resample(fr: TissueFractions, shape, fov, *, name: str, axes: str) -> TissueFractions:
    """Area-resample ``fr`` to ``shape`` (array-axis order) and/or ``fov`` (x, y[, z] order, m)."""
    d = len(axes)
    if fov is not None:
        fov = tuple(float(v) for v in np.asarray(fov, dtype=np.float64).reshape(-1))
        if len(fov) != d or not all(np.isfinite(v) and v > 0 for v in fov):
            raise ValueError(f"fov must be {d} finite values > 0 ({', '.join(axes)}) in m, got {fov}")
    if shape is None:
        if fov is None:
            return fr
        vs = [float(v) for v in fr.voxel_size[:d]]
        shape = tuple(max(1, round(f / v)) for f, v in zip(fov, vs, strict=True))[::-1]  # keep ≈ the voxel size
    else:
        values = np.asarray(shape).reshape(-1)
        order = ", ".join(f"n{a}" for a in reversed(axes))
        if len(values) != d or not all(float(v) == int(v) and int(v) >= 1 for v in values):
            raise ValueError(f"{name} must be {d} positive integers ({order}), got {shape}")
        shape = tuple(int(v) for v in values)
    return fr.resample(shape, fov=fov)


def mni152_volume(*, shape=None, fov=None, dtype: torch.dtype = torch.float32) -> TissueFractions:
    """The MNI152 volume, optionally area-resampled.

    Parameters
    ----------
    shape : (nz, ny, nx) ints ≥ 1, optional
        Output grid. Default: the stored one, or the one that keeps ≈ 2 mm voxels over ``fov``.
    fov : (x, y, z) floats > 0 [m], optional
        Output extent, padded with background or cropped symmetrically about the centre of the stored grid
        (the head's bounding box). Default: the stored extent (152 × 188 × 160 mm).
    dtype : torch.float32 or torch.float64

    Returns
    -------
    TissueFractions, ``(3, nz, ny, nx)``; area averaging keeps each tissue's volume where the FOV covers the head.
    """
    return _resample(mni152_fractions(dtype=dtype), shape, fov, name="shape", axes="xyz")


def _through_plane_index(orientation: str, index, position_mm, n: int) -> int:
    axis = PLANES[orientation][2]
    name = "xyz"[axis]
    affine = mni152_affine()
    step, origin = float(affine[axis, axis]), float(affine[axis, 3])
    if index is not None and position_mm is not None:
        raise ValueError("give index or position_mm, not both")
    if position_mm is not None:
        pos = float(position_mm)
        lo, hi = sorted((origin - step / 2, origin + (n - 0.5) * step))
        if not lo <= pos <= hi:
            raise ValueError(
                f"position_mm of a {orientation} slice (MNI {name}) must lie in [{lo:g}, {hi:g}] mm, got {pos:g}"
            )
        return min(max(int(np.floor((pos - origin) / step + 0.5)), 0), n - 1)
    if index is None:
        # middle of the head along the through-plane axis
        occupied = _uint8_stack().any(axis=0)  # (z, y, x)
        other = tuple(a for a in range(3) if a != 2 - axis)
        hit = np.nonzero(occupied.any(axis=other))[0]
        return int(hit[0] + hit[-1]) // 2
    if isinstance(index, bool) or not float(index).is_integer():
        raise ValueError(f"index must be an integer in [0, {n - 1}] ({orientation}: along {name}), got {index!r}")
    i = int(index)
    if not 0 <= i < n:
        raise ValueError(f"index of a {orientation} slice must lie in [0, {n - 1}] (along {name}), got {i}")
    return i


def mni152_slice(
    *,
    orientation: str = "axial",
    index: int | None = None,
    position_mm: float | None = None,
    matrix=None,
    fov=None,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """One 2D slice of the MNI152 volume, optionally area-resampled.

    Parameters
    ----------
    orientation : ``"axial"``, ``"coronal"`` or ``"sagittal"``
        Slice plane; the image axes are in the module docstring (axial ``(y, x)`` = (anterior, right),
        coronal = (superior, right), sagittal = (superior, anterior)).
    index : int, optional
        Slice index along the through-plane axis of the stored grid, in ``[0, n − 1]`` (axial: z, 80 slices;
        coronal: y, 94; sagittal: x, 76). Default: the middle of the head's extent along that axis.
    position_mm : float, optional
        Instead of ``index``: the slice's MNI coordinate [mm] along the through-plane axis (z, y or x); the
        nearest stored slice is taken.
    matrix : (ny, nx) ints ≥ 1, optional
        Area-resample the slice to this matrix (tissue areas are kept where the FOV covers the slice).
    fov : (x, y) floats > 0 [m], optional
        Image extent: padded with background or cropped, centred on the stored grid's centre. Without
        ``matrix`` the matrix is chosen to keep ≈ 2 mm pixels.
    dtype : torch.float32 or torch.float64

    Returns
    -------
    TissueFractions, ``(3, 1, ny, nx)``; ``voxel_size`` (x, y, z) is the in-plane pixel size and the slice
    thickness (2 mm).
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    _check_dtype(dtype)
    n = _arrays()["gm"].shape[2 - PLANES[orientation][2]]
    i = _through_plane_index(orientation, index, position_mm, n)
    fr = mni152_fractions(dtype=dtype).plane(orientation, i)
    return _resample(fr, matrix, fov, name="matrix", axes="xy")
