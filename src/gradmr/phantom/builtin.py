"""The built-in phantoms by name: what ``--phantom NAME`` and ``gradmr phantom show NAME`` offer.

Every built-in works offline after a plain ``pip install``. Tissue-based ones (``brain``, ``mni152``) come as
:class:`~gradmr.phantom.fractions.TissueFractions` first and become a phantom through the tissue library;
``shepp-logan`` and ``random-blocks`` are defined by their property maps directly.
"""

from __future__ import annotations

import torch

from .core import VoxelPhantom
from .fractions import MODELS, TissueFractions, phantom_from_fractions

#: Built-in phantoms: name → one-line description.
BUILTIN_PHANTOMS = {
    "brain": "procedural axial brain slice (CSF/GM/WM partial volume, asymmetric), any matrix",
    "mni152": "MNI ICBM152 2009a GM/WM templates (CSF derived) at 2 mm, shipped; axial/coronal/sagittal slices",
    "shepp-logan": "MR Shepp-Logan (Gach et al. 2008): exact PD/T1/T2 per region, 2D slice",
    "random-blocks": "seeded random blocks of PD/T1/T2/B0 on empty background (MR-zero-style training data)",
}

#: Built-ins that are tissue fractions.
FRACTION_PHANTOMS = ("brain", "mni152")

ORIENTATIONS = ("axial", "coronal", "sagittal")


def _check_name(name: str) -> str:
    key = name.lower()
    if key not in BUILTIN_PHANTOMS:
        raise ValueError(f"phantom must be one of {tuple(BUILTIN_PHANTOMS)}, got {name!r}")
    return key


def builtin_fractions(
    name: str,
    *,
    matrix=(64, 64),
    fov=None,
    orientation: str = "axial",
    index: int | None = None,
    slice_thickness: float = 5e-3,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """Tissue fractions of a tissue-based built-in (``brain`` or ``mni152``), one 2D slice ``(ny, nx)``.

    Parameters
    ----------
    name : ``"brain"`` or ``"mni152"``
    matrix : (ny, nx)
    fov : (x, y) [m], optional
        ``brain``: default 0.2 m × 0.2 m. ``mni152``: default the template's extent in that orientation.
    orientation, index
        ``mni152`` only: slice orientation (``axial``, ``coronal``, ``sagittal``) and index along the
        through-plane axis of the 2 mm grid (default: the middle).
    slice_thickness : float
        ``brain`` only: voxel size along z [m] (``mni152`` slices are 2 mm thick).
    """
    key = _check_name(name)
    if key not in FRACTION_PHANTOMS:
        raise ValueError(f"{name!r} is not made of tissue fractions; tissue-based built-ins: {FRACTION_PHANTOMS}")
    if key == "brain":
        from .brain import tissue_fractions
        from .tissues import BRAIN_TISSUES

        fov = (0.2, 0.2) if fov is None else fov
        ny, nx = (int(v) for v in matrix)
        f = tissue_fractions((ny, nx), fov, dtype=dtype)
        vs = (float(fov[0]) / nx, float(fov[1]) / ny, float(slice_thickness))
        return TissueFractions.create(f, BRAIN_TISSUES, voxel_size=vs, dtype=dtype)
    from .mni152 import mni152_slice

    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return mni152_slice(orientation=orientation, index=index, matrix=tuple(matrix), fov=fov, dtype=dtype)


def builtin_phantom(
    name: str,
    *,
    matrix=(64, 64),
    fov=None,
    field_strength: float = 3.0,
    model: str = "multi",
    orientation: str = "axial",
    index: int | None = None,
    slice_thickness: float = 5e-3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> VoxelPhantom:
    """A built-in phantom as a :class:`~gradmr.phantom.VoxelPhantom` (one 2D slice, z = 1).

    ``field_strength`` [T] picks the tissue table (``brain``, ``mni152``) or the Shepp–Logan values; ``model``
    is the partial-volume model of tissue-based phantoms (``"multi"`` or ``"mixed"``); ``seed`` seeds
    ``random-blocks``. See :func:`builtin_fractions` for the other parameters.
    """
    key = _check_name(name)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if key in FRACTION_PHANTOMS:
        fr = builtin_fractions(
            key,
            matrix=matrix,
            fov=fov,
            orientation=orientation,
            index=index,
            slice_thickness=slice_thickness,
            dtype=torch.float64,
        )
        return phantom_from_fractions(fr, field_strength=field_strength, model=model, dtype=dtype)
    if key == "shepp-logan":
        from .shepp_logan import shepp_logan_phantom

        kwargs = {} if fov is None else {"fov": tuple(fov)}
        return shepp_logan_phantom(tuple(matrix), field_strength=field_strength, dtype=dtype, **kwargs)
    from .random_phantoms import random_block_phantom

    kwargs = {} if fov is None else {"fov": tuple(fov)}
    return random_block_phantom(tuple(matrix), seed=seed, dtype=dtype, **kwargs)
