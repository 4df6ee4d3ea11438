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


def load_phantom_npz(path, *, voxel_size=None, dtype: torch.dtype = torch.float32) -> VoxelPhantom:
    """Load a phantom from an ``.npz`` archive.

    Parameters
    ----------
    path : str or Path
        Archive with arrays under the keys of :data:`NPZ_KEYS` (``PD``, ``T1``, ``T2`` required; ``T2dash``,
        ``D``, ``B0``, ``B1`` optional), all of one shape: ``(y, x)``, ``(z, y, x)`` or ``(pools, z, y, x)``,
        in SI units. Optional ``voxel_size`` (three values x, y, z in m) and ``coil_sens``
        (``(coils, z, y, x)`` or ``(coils, y, x)`` for 2D, complex).
    voxel_size : sequence of 3 floats, optional
        Used when the archive has no ``voxel_size``; 1 mm isotropic when neither is given.

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
    for key in ("PD", "T1", "T2"):
        if key not in data:
            raise KeyError(f"phantom file {where} has no {key!r} array; it needs PD, T1 and T2 (found {sorted(data)})")
    maps = {name: np.asarray(data[key], dtype=np.float64) for key, name in NPZ_KEYS.items() if key in data}
    shape = maps["pd"].shape
    for name, arr in maps.items():
        if arr.shape != shape:
            raise ValueError(f"map {name} in {where} has shape {arr.shape}, but PD has shape {shape}")
    _check_times(maps, where)
    if "voxel_size" in data:
        vs = _voxel_size(data["voxel_size"], where)
    elif voxel_size is not None:
        vs = _voxel_size(voxel_size, "the voxel_size argument")
    else:
        vs = _DEFAULT_VOXEL_SIZE
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
    NIfTI stores arrays as ``(x, y, z)``; they are transposed to this package's ``(z, y, x)``, so NIfTI voxel
    ``(i, j, k)`` becomes map index ``[k, j, i]``. The affine is *not* applied (no reorientation): the voxel
    order of the file is kept. The voxel size comes from the header's zooms of the PD file, read as mm and
    converted to m (a 2D file gets 1 mm along z). 4D files are not accepted.

    Raises
    ------
    FileNotFoundError
        Naming a required map that has no file.
    """
    import nibabel as nib

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
        img = nib.load(str(p))
        arr = np.asarray(img.get_fdata(dtype=np.float64))
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"map {name} in {p} must be 2D or 3D, got {arr.ndim}D with shape {arr.shape}")
        maps[name] = np.ascontiguousarray(arr.transpose(2, 1, 0))
        if name == "pd":
            z = tuple(float(v) for v in img.header.get_zooms()[:3])
            zooms = z + (1.0,) * (3 - len(z))
    shape = maps["pd"].shape
    for name, arr in maps.items():
        if arr.shape != shape:
            raise ValueError(f"map {name} has shape (z, y, x) = {arr.shape}, but pd has {shape}")
    _check_times(maps, where)
    assert zooms is not None
    voxel_size = tuple(v * 1e-3 for v in zooms)
    tensors = {name: torch.from_numpy(arr) for name, arr in maps.items()}
    return VoxelPhantom.create(**tensors, voxel_size=voxel_size, dtype=dtype)
