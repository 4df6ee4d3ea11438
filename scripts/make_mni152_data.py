"""Regenerate ``src/gradmr/phantom/data/mni152_2mm.npz``: MNI ICBM152 2009a tissue fractions at 2 mm.

A development tool: it needs nilearn (a dev-only dependency, never imported by the package), whose wheel ships
the ICBM152 2009a (symmetric, non-linear) 1 mm templates, so no network is used. Run from the repository root::

    python scripts/make_mni152_data.py              # writes src/gradmr/phantom/data/mni152_2mm.npz + notice
    python scripts/make_mni152_data.py --out X.npz  # anywhere else (the notice goes beside it)

Steps
-----
1. GM and WM: nilearn's ``load_mni152_gm_template()`` and ``load_mni152_wm_template()`` — probabilistic maps
   in [0, 1] on 197 × 233 × 189 voxels of 1 mm, RAS (array x: left → right, y: posterior → anterior,
   z: inferior → superior), affine ``diag(1, 1, 1)`` with origin (−98, −134, −72) mm.
2. CSF (derived; ICBM152 has a CSF map but nilearn does not ship it): ``clip(mask − GM − WM, 0, 1)`` with
   ``mask = load_mni152_brain_mask()``. That mask *is* a threshold of the T1 template: nilearn's
   ``load_mni152_template() > 0.2``. We take it rather than a threshold of our own because (a) the T1 template
   is already skull-stripped, so its support is the intracranial brain *with* the CSF spaces around and inside
   it — in this template CSF has intensity ≈ 0.25–0.35, above 0.2, so the ventricles and sulci are kept — and
   0.2 only drops the faint rim left by skull stripping (≈ 3.5 × 10³ voxels, 0.2 % of the mask); (b) it is a
   documented, versioned definition that anyone can reproduce with one call. GM and WM are kept as they are
   even where they stick out of the mask (≈ 1.2 % of the GM), so their volumes are the templates'.
   ``GM + WM ≤ 1`` in the templates, hence ``CSF + GM + WM = max(mask, GM + WM) ≤ 1``.
3. 2 mm: 2 × 2 × 2 block means. Every axis is odd, so one zero plane is appended at its high end (197 → 198,
   …); this keeps the tissue volumes exactly and keeps the origin: 2 mm voxel ``i`` covers 1 mm voxels
   ``2i, 2i + 1`` and is centred at ``origin + 2i + 0.5`` mm.
4. Crop to the bounding box of the head (every voxel with any stored tissue, i.e. non-zero after step 5) plus a
   1-voxel margin, clipped to the grid. ``crop_offset`` (x, y, z, in 2 mm voxels) and the affine are stored.
5. Quantise to uint8: ``floor(f · 255 + 0.5)``. Rounding can push a voxel's sum above 255 (by at most 1);
   there the largest fraction is reduced by the excess, so the stored fractions still sum to ≤ 1.

Contents of the ``.npz`` (``numpy.load(..., allow_pickle=False)`` reads it)
--------------------------------------------------------------------------
``csf``, ``gm``, ``wm``
    uint8, shape ``(z, y, x)``: fraction · 255.
``tissue_names``
    ``["csf", "gm", "wm"]``, the order of ``source_sums``.
``voxel_size_m``
    float64 ``(3,)``: (x, y, z) voxel size [m] = 2 mm.
``affine_mm``
    float64 ``(4, 4)``: NIfTI-style affine of the stored grid in (x, y, z) index order — element
    ``[k, j, i]`` of a map lies at MNI ``affine_mm @ (i, j, k, 1)`` [mm].
``crop_offset``
    int64 ``(3,)``: (x, y, z) index, in the padded 2 mm grid, of the stored grid's first voxel.
``source_sums``
    float64 ``(3,)``: sums of the 1 mm CSF (derived), GM and WM maps [voxels = mm³].
``description``
    str: what the file is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "gradmr" / "phantom" / "data" / "mni152_2mm.npz"
NOTICE_NAME = "ICBM152-2009a-NOTICE.txt"
#: The notice is also kept in the shared reference data; the package copy is used when that is absent.
NOTICE_SOURCES = (Path("/work/shared/data") / NOTICE_NAME, REPO.parent / "shared" / "data" / NOTICE_NAME)
PACKAGE_NOTICE = DEFAULT_OUT.parent / NOTICE_NAME

TISSUES = ("csf", "gm", "wm")
FACTOR = 2
MARGIN = 1
LEVELS = 255

DESCRIPTION = (
    "MNI ICBM152 2009a (symmetric, non-linear) tissue fractions at 2 mm for gradmr: GM and WM are the ICBM152 "
    "probabilistic templates as shipped by nilearn; CSF is derived as clip(brain_mask - GM - WM, 0, 1) with "
    "nilearn's brain mask (T1 template > 0.2). 2x2x2 block means of the 1 mm maps (one zero plane appended to "
    "each odd axis), cropped to the head's bounding box plus 1 voxel, stored as uint8 = round(fraction * 255) "
    "with the per-voxel sum kept <= 255. Arrays are (z, y, x); RAS: +x subject's right, +y anterior, "
    "+z superior; affine_mm maps (x, y, z) indices to MNI mm. Made by scripts/make_mni152_data.py. "
    "Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, "
    "McGill University; see ICBM152-2009a-NOTICE.txt beside this file."
)


def load_templates() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 1 mm GM, WM and brain-mask maps from nilearn, float64 ``(x, y, z)``, and their affine [mm]."""
    from nilearn import datasets  # dev-only dependency

    imgs = {
        "gm": datasets.load_mni152_gm_template(),
        "wm": datasets.load_mni152_wm_template(),
        "mask": datasets.load_mni152_brain_mask(),
    }
    affine = np.asarray(imgs["gm"].affine, dtype=np.float64)
    for name, img in imgs.items():
        if not np.allclose(img.affine, affine):
            raise ValueError(f"the {name} template has affine {img.affine.tolist()}, not the GM's {affine.tolist()}")
    maps = {name: np.asarray(img.get_fdata(dtype=np.float64)) for name, img in imgs.items()}
    return maps, affine


def derive_csf(gm: np.ndarray, wm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """CSF fraction ``clip(mask − GM − WM, 0, 1)`` (all arrays of one shape)."""
    return np.clip(mask - gm - wm, 0.0, 1.0)


def block_mean(array: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """Means of ``factor``-sized blocks along every axis; axes are zero-padded at their high end to a multiple.

    Sums (volumes) are kept: ``block_mean(a).sum() * factor**ndim == a.sum()`` up to rounding.
    """
    pad = [(0, (-n) % factor) for n in array.shape]
    a = np.pad(array, pad)
    shape = []
    for n in a.shape:
        shape += [n // factor, factor]
    return a.reshape(shape).mean(axis=tuple(range(1, 2 * a.ndim, 2)))


def quantise(fractions: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """uint8 ``floor(f · levels + 0.5)`` of ``fractions`` ``(tissues, …)``, with each voxel's sum ≤ ``levels``.

    Where rounding pushes the sum above ``levels`` the largest fraction of that voxel is reduced by the excess.
    """
    q = np.floor(np.clip(fractions, 0.0, 1.0) * levels + 0.5).astype(np.int64)
    excess = q.sum(axis=0) - levels
    over = excess > 0
    if over.any():
        largest = np.argmax(q, axis=0)
        idx = np.nonzero(over)
        q[(largest[idx], *idx)] -= excess[idx]
    if (q < 0).any() or (q.sum(axis=0) > levels).any():  # cannot happen; guards the arithmetic above
        raise AssertionError("quantisation produced a negative value or a sum above the maximum")
    return q.astype(np.uint8)


def bounding_box(occupied: np.ndarray, margin: int = MARGIN) -> tuple[slice, ...]:
    """Slices of the bounding box of ``occupied`` (bool) grown by ``margin`` voxels, clipped to the array."""
    if not occupied.any():
        raise ValueError("no occupied voxel to crop to")
    box = []
    for axis in range(occupied.ndim):
        other = tuple(a for a in range(occupied.ndim) if a != axis)
        hit = np.nonzero(occupied.any(axis=other))[0]
        box.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, occupied.shape[axis])))
    return tuple(box)


def build(maps: dict[str, np.ndarray], affine: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of the data file from the 1 mm ``(x, y, z)`` maps ``gm``, ``wm``, ``mask`` and their affine."""
    gm, wm, mask = (np.asarray(maps[k], dtype=np.float64) for k in ("gm", "wm", "mask"))
    fine = {"csf": derive_csf(gm, wm, mask), "gm": gm, "wm": wm}
    source_sums = np.array([fine[t].sum() for t in TISSUES], dtype=np.float64)
    coarse = np.stack([block_mean(fine[t]) for t in TISSUES])  # (tissues, x, y, z), 2 mm
    q = quantise(coarse)
    box = bounding_box(q.any(axis=0))
    q = q[(slice(None), *box)]
    offset = np.array([s.start for s in box], dtype=np.int64)  # (x, y, z) in the padded 2 mm grid
    # 2 mm voxel i covers 1 mm voxels 2i, 2i + 1: its centre is at 1 mm index 2i + 0.5
    step = np.eye(4)
    step[:3, :3] *= FACTOR
    step[:3, 3] = FACTOR * offset + (FACTOR - 1) / 2
    affine_out = affine @ step
    voxel_mm = np.linalg.norm(affine_out[:3, :3], axis=0)
    out = {t: np.ascontiguousarray(q[i].transpose(2, 1, 0)) for i, t in enumerate(TISSUES)}  # (z, y, x)
    out.update(
        tissue_names=np.array(TISSUES),
        voxel_size_m=voxel_mm * 1e-3,
        affine_mm=affine_out,
        crop_offset=offset,
        source_sums=source_sums,
        description=np.array(DESCRIPTION),
    )
    return out


def find_notice() -> Path:
    """The ICBM152 copyright notice to copy beside the data file."""
    for path in (*NOTICE_SOURCES, PACKAGE_NOTICE):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{NOTICE_NAME} not found in {[str(p) for p in (*NOTICE_SOURCES, PACKAGE_NOTICE)]}")


def write(out: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Save ``arrays`` as a compressed ``.npz`` at ``out`` and copy the notice beside it (verbatim)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    notice = find_notice()
    target = out.parent / NOTICE_NAME
    if notice.resolve() != target.resolve():
        shutil.copyfile(notice, target)
    return out


def make(out: Path = DEFAULT_OUT) -> dict[str, np.ndarray]:
    """Load the templates, build the arrays, write them to ``out`` (+ notice); return the arrays."""
    maps, affine = load_templates()
    arrays = build(maps, affine)
    write(out, arrays)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output .npz (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    arrays = make(args.out)
    size = args.out.stat().st_size
    dv = float(np.prod(arrays["voxel_size_m"] * 1e3))
    print(f"wrote {args.out} ({size / 1024:.1f} KiB), grid (z, y, x) = {arrays['gm'].shape}")
    for i, t in enumerate(TISSUES):
        stored = arrays[t].sum(dtype=np.float64) / LEVELS * dv
        src = arrays["source_sums"][i]
        print(f"  {t}: {stored:.0f} mm³ stored vs {src:.0f} mm³ at 1 mm ({100 * (stored / src - 1):+.3f} %)")
    if size >= 1 << 20:
        print("warning: the file is not under 1 MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
