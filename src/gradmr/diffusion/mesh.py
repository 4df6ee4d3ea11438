"""Simplex meshes with compartments, for the Bloch–Torrey solvers.

A :class:`Mesh` is a P1 simplex mesh in 1-D (intervals), 2-D (triangles) or 3-D (tetrahedra), in metres. Cells carry
a compartment label. Where two compartments meet, the interface nodes are *duplicated* (one copy per compartment,
as in SpinDoctor), so that the magnetisation may jump across a permeable membrane; the two copies of an interface
facet are listed side by side in :attr:`Mesh.interface_facets`, vertex by vertex.

``points`` may carry autograd history (a geometry map of a radius, a displacement field, …); every other field is
integer topology, fixed while a geometry is optimised. :func:`from_conforming` builds a :class:`Mesh` from a
conforming mesh whose nodes are shared between compartments; it is how every generator and the file reader make
their meshes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Mesh", "from_conforming", "signed_volumes", "facet_measures"]


@dataclass(frozen=True)
class Mesh:
    """A P1 simplex mesh in metres with compartments and duplicated interface nodes.

    Attributes:
        points: (n_nodes, dim) node coordinates in m, float64; may require grad.
        cells: (n_cells, dim+1) int64 node indices of each simplex, positively oriented.
        cell_compartment: (n_cells,) int64 compartment of each cell, in [0, n_compartments).
        node_compartment: (n_nodes,) int64 compartment of each node (every node belongs to exactly one).
        boundary_facets: (n_boundary, dim) int64 nodes of the outer (reflecting) boundary facets.
        boundary_cells: (n_boundary,) int64 the cell that owns each boundary facet (orients its normal outwards).
        interface_facets: (n_interface, 2, dim) int64: ``[:, 0]`` the facet's nodes in one compartment, ``[:, 1]``
            the matching copies in the other, vertex by vertex.
        interface_cells: (n_interface, 2) int64 the cells on either side.
        node_origin: (n_nodes,) int64 index of each node in the conforming (shared-node) mesh it came from.
        n_compartments: number of compartments.
    """

    points: torch.Tensor
    cells: torch.Tensor
    cell_compartment: torch.Tensor
    node_compartment: torch.Tensor
    boundary_facets: torch.Tensor
    boundary_cells: torch.Tensor
    interface_facets: torch.Tensor
    interface_cells: torch.Tensor
    node_origin: torch.Tensor
    n_compartments: int

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    @property
    def n_nodes(self) -> int:
        return int(self.points.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.cells.shape[0])

    @property
    def interface_compartments(self) -> torch.Tensor:
        """(n_interface, 2) compartments on either side of each interface facet."""
        return self.cell_compartment[self.interface_cells]

    def with_points(self, points: torch.Tensor) -> Mesh:
        """The same topology at new node positions (e.g. a deformed or rescaled geometry)."""
        if points.shape != self.points.shape:
            raise ValueError(f"points must have shape {tuple(self.points.shape)}, got {tuple(points.shape)}")
        return dataclasses.replace(self, points=points)

    def with_conforming_points(self, shared_points: torch.Tensor) -> Mesh:
        """New positions given on the conforming mesh's shared nodes (one row per :attr:`node_origin` target)."""
        return self.with_points(shared_points[self.node_origin])

    def volumes(self) -> torch.Tensor:
        """(n_compartments,) volume of each compartment in m^dim (differentiable in :attr:`points`)."""
        vol = signed_volumes(self.points, self.cells)
        out = torch.zeros(self.n_compartments, dtype=vol.dtype, device=vol.device)
        return out.index_add(0, self.cell_compartment, vol)

    def __repr__(self) -> str:
        return (
            f"Mesh(dim={self.dim}, nodes={self.n_nodes}, cells={self.n_cells}, compartments={self.n_compartments}, "
            f"boundary_facets={len(self.boundary_facets)}, interface_facets={len(self.interface_facets)})"
        )


def signed_volumes(points: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(n_cells,) signed simplex volumes det[x1−x0, …, xd−x0]/d! (positive for positively oriented cells)."""
    x = points[cells]  # (n_cells, d+1, d)
    edges = x[:, 1:, :] - x[:, :1, :]  # (n_cells, d, d)
    d = points.shape[1]
    return torch.linalg.det(edges) / float(np.prod(np.arange(1, d + 1)))


def facet_measures(points: torch.Tensor, facets: torch.Tensor) -> torch.Tensor:
    """(n_facets,) measure of (d−1)-simplices in d-D: length of edges (2-D), area of triangles (3-D), 1 in 1-D."""
    d = points.shape[1]
    if d == 1:
        return torch.ones(facets.shape[0], dtype=points.dtype, device=points.device)
    x = points[facets]  # (n, d, d)
    edges = x[:, 1:, :] - x[:, :1, :]  # (n, d-1, d)
    gram = edges @ edges.transpose(1, 2)
    return torch.sqrt(torch.linalg.det(gram)) / float(np.prod(np.arange(1, d)))


def from_conforming(
    points: torch.Tensor | np.ndarray,
    cells: torch.Tensor | np.ndarray,
    cell_compartment: torch.Tensor | np.ndarray | None = None,
) -> Mesh:
    """A :class:`Mesh` from a conforming simplex mesh whose nodes are shared between compartments.

    Args:
        points: (n, dim) node coordinates in m (dim 1, 2 or 3); a tensor keeps its autograd history.
        cells: (m, dim+1) node indices; negatively oriented cells are reordered.
        cell_compartment: (m,) compartment labels (any integers; renumbered 0…K−1 in sorted order), default all 0.

    Interface nodes (nodes of cells from more than one compartment) are duplicated, one copy per compartment. Facets
    shared by two cells of one compartment are interior; facets of one cell are the outer boundary; facets shared by
    cells of different compartments are interfaces.
    """
    pts = points if isinstance(points, torch.Tensor) else torch.as_tensor(np.asarray(points, dtype=np.float64))
    if pts.ndim != 2 or pts.shape[1] not in (1, 2, 3):
        raise ValueError(f"points must have shape (n_nodes, dim) with dim 1, 2 or 3, got {tuple(pts.shape)}")
    if not pts.is_floating_point():
        pts = pts.to(torch.float64)
    if not torch.isfinite(pts).all():
        raise ValueError("points contain NaN or inf")
    dim = pts.shape[1]
    cells_np = np.asarray(cells.detach().cpu() if isinstance(cells, torch.Tensor) else cells, dtype=np.int64)
    if cells_np.ndim != 2 or cells_np.shape[1] != dim + 1:
        raise ValueError(f"cells must have shape (n_cells, {dim + 1}) for {dim}-D points, got {cells_np.shape}")
    n = pts.shape[0]
    if cells_np.size == 0:
        raise ValueError("cells is empty")
    if cells_np.min() < 0 or cells_np.max() >= n:
        raise ValueError(f"cells refer to nodes outside [0, {n})")
    if cell_compartment is None:
        labels = np.zeros(len(cells_np), dtype=np.int64)
    else:
        raw = np.asarray(
            cell_compartment.detach().cpu() if isinstance(cell_compartment, torch.Tensor) else cell_compartment
        ).astype(np.int64)
        if raw.shape != (len(cells_np),):
            raise ValueError(f"cell_compartment must have shape ({len(cells_np)},), got {raw.shape}")
        _, labels = np.unique(raw, return_inverse=True)
        labels = labels.astype(np.int64)
    n_comp = int(labels.max()) + 1

    # orientation: swap the last two nodes of negatively oriented cells
    vol = signed_volumes(pts.detach(), torch.as_tensor(cells_np)).numpy()
    if np.any(vol == 0):
        raise ValueError(f"{int(np.sum(vol == 0))} cells have zero volume")
    cells_np = cells_np.copy()
    neg = vol < 0
    cells_np[neg, -2:] = cells_np[neg, -1:-3:-1]

    # one node per (shared node, compartment)
    pair = cells_np * n_comp + labels[:, None]
    keys, inverse = np.unique(pair.ravel(), return_inverse=True)
    new_cells = inverse.reshape(cells_np.shape).astype(np.int64)
    node_origin = keys // n_comp
    node_comp = keys % n_comp

    def new_id(shared_ids: np.ndarray, comps: np.ndarray) -> np.ndarray:
        return np.searchsorted(keys, shared_ids * n_comp + comps).astype(np.int64)

    # facets: the cell's nodes without node j, for j = 0..d
    m = len(cells_np)
    local = [[i for i in range(dim + 1) if i != j] for j in range(dim + 1)]
    facets = np.concatenate([cells_np[:, idx] for idx in local])  # ((d+1)m, d) shared ids
    owner = np.tile(np.arange(m), dim + 1)
    sorted_facets = np.sort(facets, axis=1)
    if float(n) ** dim < 2.0**62:  # one int64 key per facet: a 1-D unique is much faster than unique(axis=0)
        keys_f = sorted_facets @ (np.int64(n) ** np.arange(dim - 1, -1, -1, dtype=np.int64))
        _, fid, counts = np.unique(keys_f, return_inverse=True, return_counts=True)
    else:
        _, fid, counts = np.unique(sorted_facets, axis=0, return_inverse=True, return_counts=True)
    fid = fid.ravel()
    if counts.max() > 2:
        raise ValueError("the mesh is not a manifold: a facet belongs to more than two cells")
    boundary = counts[fid] == 1
    b_facets = facets[boundary]
    b_cells = owner[boundary]
    b_new = new_id(b_facets, labels[b_cells][:, None])

    # interfaces: pairs of occurrences of a facet whose cells differ in compartment
    shared = ~boundary
    order = np.argsort(fid[shared], kind="stable")
    occ = np.flatnonzero(shared)[order].reshape(-1, 2)  # the two occurrences of each interior facet
    c0, c1 = owner[occ[:, 0]], owner[occ[:, 1]]
    iface = labels[c0] != labels[c1]
    occ, c0, c1 = occ[iface], c0[iface], c1[iface]
    if len(occ):
        nodes = facets[occ[:, 0]]  # shared ids in the order of the first occurrence
        side0 = new_id(nodes, labels[c0][:, None])
        side1 = new_id(nodes, labels[c1][:, None])
        i_facets = np.stack([side0, side1], axis=1)
        i_cells = np.stack([c0, c1], axis=1)
    else:
        i_facets = np.zeros((0, 2, dim), dtype=np.int64)
        i_cells = np.zeros((0, 2), dtype=np.int64)

    origin_t = torch.as_tensor(node_origin, dtype=torch.int64, device=pts.device)
    return Mesh(
        points=pts[origin_t],
        cells=torch.as_tensor(new_cells, device=pts.device),
        cell_compartment=torch.as_tensor(labels, device=pts.device),
        node_compartment=torch.as_tensor(node_comp, device=pts.device),
        boundary_facets=torch.as_tensor(b_new, device=pts.device),
        boundary_cells=torch.as_tensor(b_cells, device=pts.device),
        interface_facets=torch.as_tensor(i_facets, device=pts.device),
        interface_cells=torch.as_tensor(i_cells, device=pts.device),
        node_origin=origin_t,
        n_compartments=n_comp,
    )
