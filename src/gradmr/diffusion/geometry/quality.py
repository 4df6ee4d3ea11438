"""Simplex quality: the mean-ratio measure and a penalty on bad or inverted cells.

The mean ratio of a simplex is ``η = d·det(S)^(2/d) / ‖S‖_F²`` where ``S`` is the Jacobian of the affine map from
the regular simplex with unit edges onto the cell. It is 1 for a regular simplex, tends to 0 as the cell degenerates,
is invariant to translation, rotation and scaling, and here carries the sign of ``det S`` so that an inverted cell
has ``η ≤ 0``. For reference: the Kuhn tetrahedra of a cube have η = 0.756, the two right isosceles triangles of a
square η = 0.866; intervals always have η = ±1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..mesh import Mesh

__all__ = ["mean_ratio_quality", "quality_penalty"]


def _regular_simplex_inverse(d: int) -> np.ndarray:
    """(d, d) inverse of the edge matrix (rows x_i − x_0) of a regular simplex with unit edges."""
    w = np.zeros((d, d))
    vertices = [np.zeros(d)]
    for k in range(d):
        # next vertex: centroid of the previous ones, lifted along axis k to unit distance from them
        c = np.mean(vertices, axis=0)
        h = math.sqrt(1.0 - float(np.sum((vertices[0] - c) ** 2)))
        v = c.copy()
        v[k] = h
        vertices.append(v)
        w[k] = v
    return np.linalg.inv(w)


def mean_ratio_quality(points: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(n_cells,) signed mean-ratio quality of each simplex: 1 regular, → 0 degenerate, ≤ 0 inverted.

    Args:
        points: (n_nodes, d) node coordinates (any length unit; the measure is scale-free), d = 1, 2 or 3.
        cells: (n_cells, d+1) node indices.

    Differentiable in ``points`` (except at exactly degenerate cells in 3-D, where ``|det|^(2/3)`` has an infinite
    slope).
    """
    if points.ndim != 2 or points.shape[1] not in (1, 2, 3):
        raise ValueError(f"points must have shape (n_nodes, d) with d in 1..3, got {tuple(points.shape)}")
    d = points.shape[1]
    if cells.ndim != 2 or cells.shape[1] != d + 1:
        raise ValueError(f"cells must have shape (n_cells, {d + 1}), got {tuple(cells.shape)}")
    x = points[cells]
    edges = x[:, 1:, :] - x[:, :1, :]  # (n, d, d), rows e_i = S w_i
    winv = torch.as_tensor(_regular_simplex_inverse(d), dtype=points.dtype, device=points.device)
    st = winv @ edges  # S^T
    det = torch.linalg.det(st)
    frob = (st * st).sum(dim=(1, 2))
    return d * torch.sign(det) * det.abs() ** (2.0 / d) / frob


def quality_penalty(mesh: Mesh, points: torch.Tensor | None = None, min_quality: float = 0.2) -> torch.Tensor:
    """Scalar penalty on cells whose mean-ratio quality falls below ``min_quality``, for deformation fits.

    ``P = mean_cells( relu(min_quality − η)² ) / min_quality²`` — zero while every cell keeps η ≥ ``min_quality``
    (so zero for the generators' meshes, whose cells all have η > 0.5), one per cell at a degenerate cell (η = 0),
    and growing further (quadratically, with a finite slope) for inverted cells (η < 0), so that a gradient step can
    undo an inversion. Dimensionless.

    Args:
        mesh: the mesh (topology; and the positions unless ``points`` is given).
        points: (n_nodes, d) deformed positions in m; default ``mesh.points``.
        min_quality: threshold in (0, 1].
    """
    if not 0.0 < min_quality <= 1.0:
        raise ValueError(f"min_quality must be in (0, 1], got {min_quality}")
    pts = mesh.points if points is None else points
    if pts.shape != mesh.points.shape:
        raise ValueError(f"points must have shape {tuple(mesh.points.shape)}, got {tuple(pts.shape)}")
    eta = mean_ratio_quality(pts, mesh.cells)
    return (torch.relu(min_quality - eta) ** 2).mean() / min_quality**2
