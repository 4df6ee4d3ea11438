"""Phantoms from and to files: ``.npz`` archives and directories of NIfTI maps.

All maps are in SI units (s, m²/s, Hz); see ``docs/conventions.md``. Missing optional maps take
:data:`gradmr.phantom.core.MAP_DEFAULTS` (T2' 1 s, D 0, B0 0 Hz, B1 1); PD, T1 and T2 are required.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..phantom.core import MAP_UNITS, VoxelPhantom
from ..phantom.fractions import TissueFractions, phantom_from_fractions
from ..phantom.tissues import TISSUE_NAMES

#: Keys of a phantom ``.npz`` archive, and the map each one holds.
NPZ_KEYS = {"PD": "pd", "T1": "t1", "T2": "t2", "T2dash": "t2dash", "D": "d", "B0": "b0", "B1": "b1"}

#: The maps a phantom file must hold.
REQUIRED_MAPS = ("pd", "t1", "t2")

#: Relaxation times above this [s] were almost surely written in ms.
_MAX_TIME_S = 100.0

_DEFAULT_VOXEL_SIZE = (1e-3, 1e-3, 1e-3)


def _check_times(maps: Mapping[str, np.ndarray], where: str) -> None:
    for name in ("t1", "t2", "t2dash"):
        if name in maps and np.nanmax(maps[name]) > _MAX_TIME_S:
            raise ValueError(
                f"{name} in {where} has values up to {np.nanmax(maps[name]):.4g}, above {_MAX_TIME_S} s; "
                "relaxation times are in s (convert ms with gradmr.units)"
            )


def _voxel_size(value, where: str) -> tuple[float, float, float]:
    vs = np.asarray(value, dtype=np.float64).ravel()
    if vs.size != 3:
        raise ValueError(f"voxel_size in {where} must have three values (x, y, z) in m, got {vs.size}")
    return tuple(float(v) for v in vs)  # type: ignore[return-value]


def _fraction_keys(keys) -> dict[str, str]:
    """Archive keys that name library tissues (any case), mapped to the tissue name."""
    return {k: k.lower() for k in keys if k.lower() in TISSUE_NAMES}


def load_fractions_npz(path, *, voxel_size=None, dtype: torch.dtype = torch.float32) -> TissueFractions:
    """Load tissue fractions from an ``.npz`` archive.

    Parameters
    ----------
    path : str or Path
        Archive with one array per tissue under its library name in any case (``GM``, ``WM``, ``CSF``, ``fat``,
        ``muscle``, …; see :data:`~gradmr.phantom.tissues.TISSUE_NAMES`), all of one shape ``(y, x)`` or
        ``(z, y, x)``, values in [0, 1] summing to at most 1 per voxel. Optional ``voxel_size`` (x, y, z in m).
        Other keys are an error (so that a typo does not silently drop a tissue).
    voxel_size : sequence of 3 floats, optional
        Used when the archive has no ``voxel_size``; 1 mm isotropic when neither is given.
    """
    where = str(path)
    with np.load(path, allow_pickle=False) as archive:
        data = {key: archive[key] for key in archive.files}
    tissues = _fraction_keys(data)
    if not tissues:
        raise KeyError(f"{where} holds no tissue fractions: expected keys among {TISSUE_NAMES} (any case)")
    unknown = sorted(set(data) - set(tissues) - {"voxel_size"})
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; tissue keys are {TISSUE_NAMES}, plus voxel_size")
    return TissueFractions.create(
        {tissues[k]: torch.from_numpy(np.asarray(data[k], dtype=np.float64)) for k in tissues},
        voxel_size=_voxel_size_of(data, voxel_size, where),
        dtype=dtype,
    )


def save_fractions_npz(fractions: TissueFractions, path) -> None:
    """Write tissue fractions to an ``.npz`` archive (upper-case keys ``GM``, ``WM``, …, and ``voxel_size``)."""
    arrays = {n.upper(): fractions[n].detach().cpu().numpy() for n in fractions.names}
    np.savez_compressed(path, **arrays, voxel_size=fractions.voxel_size.detach().cpu().numpy())


def _voxel_size_of(data, voxel_size, where: str):
    if "voxel_size" in data:
        return _voxel_size(data["voxel_size"], where)
    if voxel_size is not None:
        return _voxel_size(voxel_size, "the voxel_size argument")
    return _DEFAULT_VOXEL_SIZE


def load_phantom_npz(
    path,
    *,
    voxel_size=None,
    field_strength: float = 3.0,
    model: str = "multi",
    dtype: torch.dtype = torch.float32,
) -> VoxelPhantom:
    """Load a phantom from an ``.npz`` archive of property maps or of tissue fractions.

    Parameters
    ----------
    path : str or Path
        Either maps under the keys of :data:`NPZ_KEYS` (``PD``, ``T1``, ``T2`` required; ``T2dash``, ``D``,
        ``B0``, ``B1`` optional), all of one shape: ``(y, x)``, ``(z, y, x)`` or ``(pools, z, y, x)``, in SI
        units, with optional ``voxel_size`` (three values x, y, z in m) and ``coil_sens`` (``(coils, z, y, x)``
        or ``(coils, y, x)`` for 2D, complex); or tissue fractions (see :func:`load_fractions_npz`), whose
        properties then come from the tissue library.
    voxel_size : sequence of 3 floats, optional
        Used when the archive has no ``voxel_size``; 1 mm isotropic when neither is given.
    field_strength, model
        For an archive of fractions: the tissue table [T] and ``"multi"`` or ``"mixed"`` (see
        :func:`~gradmr.phantom.fractions.phantom_from_fractions`).

    Raises
    ------
    KeyError
        Naming a required key that is missing.
    ValueError
        For maps of different shapes, times that look like ms, or invalid values.
    """
    where = str(path)
    with np.load(path, allow_pickle=False) as archive:
        data = {key: archive[key] for key in archive.files}
    if "PD" not in data and _fraction_keys(data):
        fractions = load_fractions_npz(path, voxel_size=voxel_size, dtype=torch.float64)
        return phantom_from_fractions(fractions, field_strength=field_strength, model=model, dtype=dtype)
    for key in ("PD", "T1", "T2"):
        if key not in data:
            raise KeyError(
                f"phantom file {where} has no {key!r} array; it needs PD, T1 and T2, or tissue fractions under "
                f"{', '.join(n.upper() for n in TISSUE_NAMES[:3])}, … (found {sorted(data)})"
            )
    maps = {name: np.asarray(data[key], dtype=np.float64) for key, name in NPZ_KEYS.items() if key in data}
    shape = maps["pd"].shape
    for name, arr in maps.items():
        if arr.shape != shape:
            raise ValueError(f"map {name} in {where} has shape {arr.shape}, but PD has shape {shape}")
    _check_times(maps, where)
    vs = _voxel_size_of(data, voxel_size, where)
    coil_sens = torch.from_numpy(np.asarray(data["coil_sens"])) if "coil_sens" in data else None
    tensors = {name: torch.from_numpy(arr) for name, arr in maps.items()}
    return VoxelPhantom.create(**tensors, coil_sens=coil_sens, voxel_size=vs, dtype=dtype)


def save_phantom_npz(phantom: VoxelPhantom, path) -> None:
    """Write ``phantom`` to an ``.npz`` archive that :func:`load_phantom_npz` reads back.

    Maps are written ``(z, y, x)`` for one pool and ``(pools, z, y, x)`` otherwise, with ``voxel_size`` and
    ``coil_sens``.
    """
    arrays = {}
    for key, name in NPZ_KEYS.items():
        value = getattr(phantom, name).detach().cpu().numpy()
        arrays[key] = value[0] if value.shape[0] == 1 else value
    arrays["voxel_size"] = phantom.voxel_size.detach().cpu().numpy()
    arrays["coil_sens"] = phantom.coil_sens.detach().cpu().numpy()
    np.savez(path, **arrays)


def _find_nifti(directory: Path, name: str) -> Path | None:
    wanted = {f"{name}.nii", f"{name}.nii.gz"}
    matches = [p for p in directory.iterdir() if p.name.lower() in wanted]
    if len(matches) > 1:
        raise ValueError(f"{directory} holds several files for map {name}: {sorted(p.name for p in matches)}")
    return matches[0] if matches else None


def load_phantom_nifti(
    directory_or_mapping: str | os.PathLike | Mapping[str, str | os.PathLike], *, dtype: torch.dtype = torch.float32
) -> VoxelPhantom:
    """Load a phantom from NIfTI maps.

    Parameters
    ----------
    directory_or_mapping : directory, or mapping from map name to file
        A directory holding files named ``pd``, ``t1``, ``t2`` (required) and ``t2dash``, ``d``, ``b0``, ``b1``
        (optional) with suffix ``.nii`` or ``.nii.gz`` (case-insensitive), or a mapping such as
        ``{"pd": "PD.nii.gz", ...}`` with the same names as keys. Values in SI units.

    Notes
    -----
    Each file is first reoriented to the closest canonical (RAS+) voxel order with its affine
    (``nibabel.as_closest_canonical``: axes permuted and flipped, no interpolation), so that +x points to the
    subject's right, +y anterior and +z superior whatever the storage order was; files written by
    :func:`save_phantom_nifti` or :func:`gradmr.io.save_nifti` (diagonal positive affines) keep their order.
    The ``(x, y, z)`` array is then transposed to this package's ``(z, y, x)``, so NIfTI voxel ``(i, j, k)``
    becomes map index ``[k, j, i]``. The voxel size comes from the header's zooms of the PD file, read as mm
    and converted to m (a 2D file gets 1 mm along z). A 4D file ``(x, y, z, pools)`` is a multi-pool map.

    Raises
    ------
    FileNotFoundError
        Naming a required map that has no file.
    """

    names = tuple(MAP_UNITS)
    if isinstance(directory_or_mapping, Mapping):
        unknown = set(directory_or_mapping) - set(names)
        if unknown:
            raise ValueError(f"unknown map names {sorted(unknown)}; allowed: {names}")
        files = {n: Path(p) for n, p in directory_or_mapping.items()}
        for name in REQUIRED_MAPS:
            if name not in files:
                raise FileNotFoundError(f"no file given for required map {name!r}")
        for name, p in files.items():
            if not p.is_file():
                raise FileNotFoundError(f"file for map {name!r} not found: {p}")
        where = "the given files"
    else:
        directory = Path(directory_or_mapping)
        if not directory.is_dir():
            raise FileNotFoundError(f"phantom directory not found: {directory}")
        files = {}
        for name in names:
            found = _find_nifti(directory, name)
            if found is None:
                if name in REQUIRED_MAPS:
                    raise FileNotFoundError(
                        f"required map {name!r} not found: expected {directory / name}.nii or .nii.gz"
                    )
                continue
            files[name] = found
        where = str(directory)

    maps: dict[str, np.ndarray] = {}
    zooms = None
    for name, p in files.items():
        arr, z = _read_canonical(p)
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4:
            raise ValueError(f"map {name} in {p} must be 2D, 3D or 4D (x, y, z, pools), got shape {arr.shape}")
        maps[name] = np.ascontiguousarray(arr.transpose(3, 2, 1, 0))
        if name == "pd":
            zooms = z
    shape = maps["pd"].shape
    for name, arr in maps.items():
        if arr.shape != shape:
            raise ValueError(f"map {name} has shape (pools, z, y, x) = {arr.shape}, but pd has {shape}")
    _check_times(maps, where)
    assert zooms is not None
    voxel_size = tuple(v * 1e-3 for v in zooms)
    tensors = {name: torch.from_numpy(arr) for name, arr in maps.items()}
    return VoxelPhantom.create(**tensors, voxel_size=voxel_size, dtype=dtype)


def _read_canonical(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A NIfTI file's data in closest-canonical (RAS+) voxel order, ``(x, y, z[, …])``, and its zooms [mm]."""
    import nibabel as nib

    img = nib.load(str(path))
    if len(img.shape) == 2:
        img = nib.Nifti1Image(np.asarray(img.dataobj)[:, :, None], img.affine, img.header)
    img = nib.as_closest_canonical(img)
    arr = np.asarray(img.get_fdata(dtype=np.float64))
    z = tuple(float(v) for v in img.header.get_zooms()[:3])
    return arr, z + (1.0,) * (3 - len(z))  # type: ignore[return-value]


def _nifti_affine(shape_xyz, voxel_size) -> np.ndarray:
    """The affine [mm] that puts voxel ``i`` at ``(i − N//2)·voxel_size`` along each axis (docs/conventions.md)."""
    vs_mm = np.asarray(voxel_size, dtype=np.float64).ravel() * 1e3
    affine = np.diag([*vs_mm, 1.0])
    affine[:3, 3] = -(np.asarray(shape_xyz[:3]) // 2) * vs_mm
    return affine


def _save_xyz(arr_zyx: np.ndarray, voxel_size, path: Path) -> None:
    """Write ``(…, z, y, x)`` as NIfTI ``(x, y, z, …)`` with the grid's affine."""
    import nibabel as nib

    lead = arr_zyx.ndim - 3
    xyz = np.ascontiguousarray(arr_zyx.transpose(*range(arr_zyx.ndim - 1, lead - 1, -1), *range(lead)))
    img = nib.Nifti1Image(xyz.astype(np.float32), _nifti_affine(xyz.shape, voxel_size))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))


def save_phantom_nifti(phantom: VoxelPhantom, directory) -> Path:
    """Write every map of ``phantom`` as ``<map>.nii.gz`` into ``directory`` (created if needed).

    One-pool maps are 3D ``(x, y, z)``, multi-pool maps 4D ``(x, y, z, pools)``; float32, zooms in mm and the
    affine of ``docs/conventions.md`` (voxel ``N//2`` at the origin). Coil sensitivities are not written (NIfTI
    holds no complex maps here); use :func:`save_phantom_npz` to keep them. :func:`load_phantom_nifti` reads the
    directory back.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vs = phantom.voxel_size.detach().cpu().numpy()
    for name in MAP_UNITS:
        value = getattr(phantom, name).detach().cpu().numpy()
        _save_xyz(value[0] if value.shape[0] == 1 else value, vs, directory / f"{name}.nii.gz")
    return directory


def save_fractions_nifti(fractions: TissueFractions, directory) -> Path:
    """Write each tissue's fractions as ``<tissue>.nii.gz`` (e.g. ``gm.nii.gz``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vs = fractions.voxel_size.detach().cpu().numpy()
    for name in fractions.names:
        _save_xyz(fractions[name].detach().cpu().numpy(), vs, directory / f"{name}.nii.gz")
    return directory


def load_fractions_nifti(directory, *, dtype: torch.dtype = torch.float32) -> TissueFractions:
    """Read tissue fractions from ``<tissue>.nii`` / ``.nii.gz`` files in ``directory`` (any library tissues).

    Files are reoriented to canonical RAS+ order as in :func:`load_phantom_nifti`; the voxel size comes from
    the first file's zooms (mm → m); all files must have one shape.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"fractions directory not found: {directory}")
    found = {name: _find_nifti(directory, name) for name in TISSUE_NAMES}
    found = {n: p for n, p in found.items() if p is not None}
    if not found:
        raise FileNotFoundError(
            f"no tissue fraction files in {directory}: expected e.g. gm.nii.gz, wm.nii.gz, csf.nii.gz "
            f"(names: {', '.join(TISSUE_NAMES)})"
        )
    arrays = {}
    zooms = None
    for name, p in found.items():
        arr, z = _read_canonical(p)
        if arr.ndim != 3:
            raise ValueError(f"fractions of {name} in {p} must be 2D or 3D, got shape {arr.shape}")
        arrays[name] = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 1, 0)))
        zooms = zooms or z
    assert zooms is not None
    return TissueFractions.create(arrays, voxel_size=tuple(v * 1e-3 for v in zooms), dtype=dtype)
