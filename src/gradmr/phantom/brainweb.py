"""BrainWeb tissue fractions prepared the way BMapEst prepared them (no file I/O).

BMapEst (Gundogdu et al., arXiv:2404.14739; github.com/BioMedAI-UCSC/BMapEst, ``utils/generate_maps.py``) builds
its 64 × 64 GM/WM/CSF maps from the BrainWeb fuzzy models of the 20 normal brains. :func:`bmapest_preprocess`
repeats its steps on arrays, so that the maps of the paper can be rebuilt from the BrainWeb files read with
:mod:`gradmr.io.brainweb` (ideally the ``subjectNN_{alias}.i8.gz`` files BMapEst itself caches; see
:func:`gradmr.io.brainweb.load_brainweb_raw_tissue`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .fractions import TissueFractions

#: Edge of BrainWeb's isotropic voxels [m] (the 20-normal-brain models are at 0.5 mm).
BRAINWEB_VOXEL_SIZE = 0.5e-3

#: BMapEst's cube edge (voxels of the 0.5 mm grid) the cropped head is centred in, and its output matrix.
BMAPEST_CUBE = 432
BMAPEST_MATRIX = 64

#: The byte scale of BrainWeb's ``raw_byte`` downloads, on which BMapEst works: fraction = count / 255.
_BYTE_LEVELS = 255


def _to_counts(values, name: str) -> np.ndarray:
    """Fractions in [0, 1], shape ``(z, y, x)`` → the uint8 counts ``round(255·f)`` BMapEst reads from the files."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    a = np.asarray(values)
    if a.ndim != 3:
        raise ValueError(f"{name} must be a 3D array of fractions (z, y, x), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must hold fractions in [0, 1] as floats, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.rint(np.clip(a, 0.0, 1.0) * _BYTE_LEVELS).astype(np.uint8)


def bmapest_preprocess(
    gm,
    wm,
    csf,
    vessels,
    *,
    cube: int = BMAPEST_CUBE,
    matrix: int = BMAPEST_MATRIX,
    fix_vessels: bool = True,
    voxel_size: float = BRAINWEB_VOXEL_SIZE,
    dtype: torch.dtype = torch.float32,
) -> TissueFractions:
    """The middle-slice CSF/GM/WM fractions of BMapEst, from BrainWeb fuzzy fractions.

    The steps of BMapEst's ``utils/generate_maps.py`` (without fat, its default), in order:

    1. Fractions → the 8-bit counts of the ``raw_byte`` files (``round(255·f)``, ``uint8``).
    2. ``fix_vessels``: subtract 1 from every positive vessel count. In the ``.i8`` downloads nearly all background
       of the vessels file reads 1 instead of 0 (after the +128 shift of
       :func:`gradmr.io.brainweb.load_brainweb_raw_tissue`); BMapEst removes it this way, which also lowers every
       true vessel count by 1.
    3. CSF := CSF + vessels, in ``uint8`` arithmetic as BMapEst does it (a sum above 255 wraps around; BrainWeb's
       fractions practically never get there).
    4. Index order ``[x, y, z]``; every axis cropped to a multiple of 3 by dropping its last voxels
       (362 × 434 × 362 → 360 × 432 × 360).
    5. ``total = GM + WM + CSF``; the bounding box of ``total > 0.1`` (a count, so: any brain tissue), at most
       ``cube`` long per axis (centred on the box when longer), is centred in a ``cube³`` volume of zeros: it starts
       at ``int((min + max)/2 − length/2)`` and is placed after ``(cube − length)//2`` zeros.
    6. ``mask = total > 0.01`` (in the padded cube); inside it GM, WM and CSF are divided by ``total`` (so they sum
       to 1 — all tissue other than these three, vessels aside, is dropped), outside they are 0.
    7. x and y are averaged down to ``matrix`` with ``torch.nn.functional.interpolate(mode="area")`` (adaptive
       average pooling: windows ``[floor(i·n/m), ceil((i+1)·n/m))``, which overlap when ``n/m`` is not an integer,
       e.g. 432/64 = 6.75 — not exact area weights); z is kept at ``cube``.
    8. The middle slice ``z = cube//2`` (216) is kept.

    Only the middle slice is computed after step 5 (pooling with the size of z unchanged is the identity along z),
    so the whole volume is never held in float.

    Parameters
    ----------
    gm, wm, csf, vessels : array or Tensor, shape ``(z, y, x)``
        Fuzzy fractions in [0, 1] in BrainWeb's raw orientation (index order ``[z, y, x]``, as
        :func:`gradmr.io.brainweb.load_brainweb_raw_tissue` returns them), 362 × 434 × 362 for the real models.
        The fractions are rounded to 1/255: exact for the ``.i8``/``.rawb`` byte files BMapEst used, an 8-bit
        requantisation of 12-bit (``.raws``, brainweb-dl) data.
    cube : int
        Edge of the centring cube [voxels] (BMapEst: 432).
    matrix : int
        In-plane output size (BMapEst: 64).
    fix_vessels : bool
        Apply step 2 (BMapEst does).
    voxel_size : float
        Edge of the input voxels [m] (BrainWeb: 0.5 mm).
    dtype : torch.dtype
        Of the returned fractions (the computation is in float32, as in BMapEst).

    Returns
    -------
    TissueFractions
        ``("csf", "gm", "wm")``, shape ``(3, 1, matrix, matrix)`` in ``(z, y, x)``: BMapEst's ``[x, y]`` maps
        transposed, so y (rows) points to the nose and x to the right ear (BrainWeb's axes). Voxel size
        ``cube·voxel_size/matrix`` in x and y (3.375 mm for BMapEst) and ``voxel_size`` through the slice.
    """
    cube, matrix = int(cube), int(matrix)
    if cube < 1 or matrix < 1:
        raise ValueError(f"cube and matrix must be ≥ 1, got cube={cube}, matrix={matrix}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0 m, got {voxel_size}")
    counts = {n: _to_counts(a, n) for n, a in (("gm", gm), ("wm", wm), ("csf", csf), ("vessels", vessels))}
    shapes = {a.shape for a in counts.values()}
    if len(shapes) != 1:
        raise ValueError(
            "gm, wm, csf and vessels must have one shape, got "
            + ", ".join(f"{n}: {a.shape}" for n, a in counts.items())
        )
    shape = shapes.pop()
    if min(shape) < 3:
        raise ValueError(f"the volumes must be at least 3 voxels along every axis, got {shape}")

    ves = counts["vessels"]
    if fix_vessels:
        ves = np.where(ves > 0, ves - np.uint8(1), ves)
    # uint8 + uint8 stays uint8 in NumPy and wraps modulo 256, exactly like BMapEst's sum
    tissues = {"gm": counts["gm"], "wm": counts["wm"], "csf": counts["csf"] + ves}
    # [z, y, x] → [x, y, z], cropped to multiples of 3
    nx, ny, nz = (n // 3 * 3 for n in shape[::-1])
    tissues = {n: a.transpose(2, 1, 0)[:nx, :ny, :nz] for n, a in tissues.items()}
    # the sum of three integer counts ≤ 765 is exact in uint16 (and in BMapEst's float32)
    total = tissues["gm"].astype(np.uint16) + tissues["wm"] + tissues["csf"]
    brain = total > 0.1
    if not brain.any():
        raise ValueError("gm, wm and csf hold no tissue: there is no brain to centre")

    starts, lengths, pads = [], [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        where = np.flatnonzero(brain.any(axis=others))
        lo, hi = int(where[0]), int(where[-1]) + 1
        length = min(cube, hi - lo)
        starts.append(int((lo + hi) / 2 - length / 2))
        lengths.append(length)
        pads.append((cube - length) // 2)

    # the padded cube's middle slice z = cube//2 comes from the cropped volume's slice src_z, or is all zeros
    mid = cube // 2
    src_z = starts[2] + mid - pads[2]
    planes = {n: np.zeros((cube, cube), dtype=np.float32) for n in ("csf", "gm", "wm")}
    if pads[2] <= mid < pads[2] + lengths[2]:
        window = (slice(starts[0], starts[0] + lengths[0]), slice(starts[1], starts[1] + lengths[1]), src_z)
        place = (slice(pads[0], pads[0] + lengths[0]), slice(pads[1], pads[1] + lengths[1]))
        t = total[window].astype(np.float32)
        inside = t > 0.01
        safe = np.where(inside, t, np.float32(1.0))
        for n in planes:
            planes[n][place] = np.where(inside, tissues[n][window].astype(np.float32) / safe, np.float32(0.0))

    stacked = torch.from_numpy(np.stack([planes[n] for n in ("csf", "gm", "wm")]))  # (3, x, y)
    pooled = F.interpolate(stacked[None], size=(matrix, matrix), mode="area")[0]
    fractions = pooled.transpose(-1, -2)[:, None]  # (3, 1, y, x)
    in_plane = cube * float(voxel_size) / matrix
    return TissueFractions.create(
        fractions.to(dtype), ("csf", "gm", "wm"), voxel_size=(in_plane, in_plane, float(voxel_size)), dtype=dtype
    )


__all__ = ["BMAPEST_CUBE", "BMAPEST_MATRIX", "BRAINWEB_VOXEL_SIZE", "bmapest_preprocess"]
