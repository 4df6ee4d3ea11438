"""Reading and writing simplex meshes through meshio (Gmsh .msh, TetGen .node/.ele, VTK/VTU, Medit .mesh, …).

**Units.** Files carry bare numbers; neuron and cell meshes (and SpinDoctor's) are usually in micrometres, so
:func:`read_mesh` multiplies coordinates by ``length_unit = 1e-6`` by default to return metres, and
:func:`write_mesh` divides by it. Pass ``length_unit=1.0`` for files in metres.

**Compartments** come from integer cell data: by default the first present of ``gmsh:physical``, ``medit:ref``,
``tetgen:ref`` (TetGen region attribute), ``compartment``, ``CellEntityIds``, ``gmsh:geometrical``; otherwise the
only integer cell-data array, otherwise a single compartment. Labels are renumbered 0…K−1 in sorted order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..mesh import Mesh, from_conforming

__all__ = ["read_mesh", "write_mesh"]

_SIMPLEX = {3: "tetra", 2: "triangle", 1: "line"}
_DEFAULT_KEYS = ("gmsh:physical", "medit:ref", "tetgen:ref", "compartment", "CellEntityIds", "gmsh:geometrical")


def _meshio():
    try:
        import meshio
    except ImportError as exc:  # pragma: no cover - meshio is installed with the diffusion extra
        raise ImportError("reading and writing meshes needs meshio (pip install meshio)") from exc
    return meshio


def read_mesh(path: str | os.PathLike, compartment_key: str | None = None, length_unit: float = 1e-6) -> Mesh:
    """Read a simplex mesh into a :class:`Mesh` (metres, compartments from cell data).

    Args:
        path: a mesh file meshio can read (format from the extension; for TetGen give the .node or .ele file).
        compartment_key: the cell-data array holding compartment labels; default: see the module docstring.
        length_unit: size of the file's length unit in m (default 1e-6: the file is in µm).

    The highest-dimensional linear simplex cells present (tetrahedra, else triangles, else lines) are kept, all
    other cells (boundary triangles, lines, vertices) ignored, as are nodes that no kept cell uses. Triangles are
    read as a 2-D mesh, which needs all their nodes in one plane z = const.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    if not (np.isfinite(length_unit) and length_unit > 0):
        raise ValueError(f"length_unit must be finite and > 0 (m), got {length_unit}")
    meshio = _meshio()
    m = meshio.read(path)

    dim = next((d for d in (3, 2, 1) if any(b.type == _SIMPLEX[d] for b in m.cells)), None)
    if dim is None:
        found = sorted({b.type for b in m.cells})
        raise ValueError(f"{path} has no linear simplex cells (tetra, triangle or line); found {found}")
    blocks = [i for i, b in enumerate(m.cells) if b.type == _SIMPLEX[dim]]
    cells = np.concatenate([m.cells[i].data for i in blocks]).astype(np.int64)

    points = np.asarray(m.points, dtype=np.float64)
    if dim < 3 and points.shape[1] > dim:
        used = points[np.unique(cells)]
        extra = used[:, dim:]
        if np.ptp(extra, axis=0).max() > 1e-12 * max(1.0, np.abs(used).max()):
            kind = _SIMPLEX[dim]
            raise ValueError(f"{path}: the {kind} cells do not lie in a plane; surface meshes are not supported")
    points = points[:, :dim] * length_unit

    labels = None
    keys = list(m.cell_data)
    if compartment_key is not None:
        if compartment_key not in m.cell_data:
            raise ValueError(f"compartment_key {compartment_key!r} not in the file's cell data; available: {keys}")
        key = compartment_key
    else:
        key = next((k for k in _DEFAULT_KEYS if k in m.cell_data), None)
        if key is None:
            ints = [k for k in keys if all(np.issubdtype(np.asarray(a).dtype, np.integer) for a in m.cell_data[k])]
            key = ints[0] if len(ints) == 1 else None
    if key is not None:
        labels = np.concatenate([np.asarray(m.cell_data[key][i]).reshape(-1) for i in blocks])
        if not np.all(labels == np.round(labels)):
            raise ValueError(f"cell data {key!r} must hold integer compartment labels")
        labels = labels.astype(np.int64)
    return from_conforming(torch.as_tensor(points), cells, labels)


def write_mesh(path: str | os.PathLike, mesh: Mesh, length_unit: float = 1e-6) -> None:
    """Write ``mesh`` for inspection (ParaView, Gmsh, …) or exchange, through meshio.

    The conforming mesh is written (each duplicated interface node once), coordinates divided by ``length_unit``
    (default 1e-6: µm, matching :func:`read_mesh`), compartments as integer cell data: ``gmsh:physical`` /
    ``gmsh:geometrical`` (1-based) for .msh (Gmsh 2.2 format), ``tetgen:ref`` for .node/.ele (3-D only),
    ``medit:ref`` for .mesh, and ``compartment`` (0-based) for every other format. ``read_mesh`` of the file gives the
    same mesh back (node numbering aside).
    """
    if not (np.isfinite(length_unit) and length_unit > 0):
        raise ValueError(f"length_unit must be finite and > 0 (m), got {length_unit}")
    meshio = _meshio()
    path = Path(path)
    origin = mesh.node_origin.cpu().numpy()
    used, conf = np.unique(origin, return_inverse=True)
    points = np.zeros((len(used), mesh.dim))
    points[conf] = mesh.points.detach().cpu().numpy()
    points = points / length_unit
    if mesh.dim < 3:
        points = np.hstack([points, np.zeros((len(points), 3 - mesh.dim))])
    cells = conf[mesh.cells.cpu().numpy()]
    comp = mesh.cell_compartment.cpu().numpy().astype(np.int64)

    suffix = path.suffix.lower()
    kwargs = {}
    if suffix == ".msh":
        data = {"gmsh:physical": [comp + 1], "gmsh:geometrical": [comp + 1]}
        kwargs["file_format"] = "gmsh22"
    elif suffix in (".node", ".ele"):
        if mesh.dim != 3:
            raise ValueError(f"TetGen files hold 3-D meshes only; this mesh is {mesh.dim}-D")
        data = {"tetgen:ref": [comp]}
    elif suffix == ".mesh":
        data = {"medit:ref": [comp]}
    else:
        data = {"compartment": [comp]}
    out = meshio.Mesh(points, [(_SIMPLEX[mesh.dim], cells)], cell_data=data)
    meshio.write(path, out, **kwargs)
