"""Structured simplex grids: intervals, quads split into 2 triangles, hexahedra split into 6 tetrahedra.

A grid of ``shape = (n_1, …, n_d)`` cells has ``prod(n_k + 1)`` nodes, numbered in C order of their integer lattice
index (:func:`lattice`). Every cell (a unit square / cube of the lattice) is split along one of its main diagonals
into ``d!`` simplices (the Kuhn/Freudenthal split: one simplex per path from one diagonal end to the other, stepping
one axis at a time). The diagonal of a cell is chosen per axis: along axis ``k`` it runs from low to high index, or
from high to low where ``flip[k][i_k]`` is true. Because the split of a shared face only depends on the directions of
the axes *in* that face, **any** choice of flips that depends on each axis's own cell index alone gives a conforming
mesh. :func:`flip_toward_centre` points every diagonal at the grid's centre (or at the centre of its tile), which is
what mapped meshes of disks and balls need: the cells at the square's corners, which the map flattens, are then
split through the corner, so no simplex has all its nodes on the curved boundary.

Everything here is integer topology in numpy; geometry (the node coordinates) is the caller's business.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

__all__ = ["lattice", "cell_lattice", "lattice_boxes", "kuhn_split", "simplices", "flip_toward_centre", "node_count"]


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2, 3):
        raise ValueError(f"shape must have 1, 2 or 3 entries, got {shape}")
    if min(shape) < 1:
        raise ValueError(f"shape entries (cells per axis) must be >= 1, got {shape}")
    return shape


def node_count(shape: Sequence[int]) -> int:
    """Number of lattice nodes ``prod(n_k + 1)`` of a grid of ``shape`` cells."""
    return int(np.prod([n + 1 for n in _check_shape(shape)]))


def lattice(shape: Sequence[int]) -> np.ndarray:
    """(prod(n_k+1), d) int64 lattice index of every node, in C order (node id = ``np.ravel_multi_index``)."""
    shape = _check_shape(shape)
    axes = [np.arange(n + 1) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape)).astype(np.int64)


def flip_toward_centre(n: int, period: int | None = None) -> np.ndarray:
    """(n,) bool flips that point the diagonals of the cells along one axis at the centre of their tile.

    Args:
        n: number of cells along the axis.
        period: tile size in cells (the axis is cut into tiles of ``period`` cells, each with its own centre);
            default ``n`` (a single tile).

    A cell whose midpoint lies below the tile centre gets its diagonal from its high end (True), so every diagonal
    runs from the node nearest the centre to the node farthest from it. With an odd ``period`` the middle cell of a
    tile is not flipped.
    """
    period = n if period is None else int(period)
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    local = np.arange(n) % period
    return (local + 0.5) < period / 2


def _permutation_parity(perm: tuple[int, ...]) -> int:
    """+1 for an even permutation, −1 for an odd one."""
    perm = list(perm)
    sign = 1
    for i in range(len(perm)):
        while perm[i] != i:
            j = perm[i]
            perm[i], perm[j] = perm[j], perm[i]
            sign = -sign
    return sign


def lattice_boxes(shape: Sequence[int]) -> np.ndarray:
    """(prod(n_k), 2, …, 2) node ids of the corners of every lattice cell, ``[c, o_1, …, o_d]`` = node at the cell's
    low corner + o (cells in C order, as :func:`cell_lattice`)."""
    shape = _check_shape(shape)
    d = len(shape)
    node_shape = tuple(n + 1 for n in shape)
    strides = np.array([int(np.prod(node_shape[k + 1 :])) for k in range(d)], dtype=np.int64)
    base = cell_lattice(shape) @ strides
    offsets = lattice((1,) * d) @ strides  # (2^d,) in C order of o
    return (base[:, None] + offsets[None, :]).reshape((-1,) + (2,) * d)


def kuhn_split(corners: np.ndarray, flip: np.ndarray | None = None, handed: np.ndarray | int = 1) -> np.ndarray:
    """(n_boxes·d!, d+1) Kuhn split of boxes (squares, cubes, or their images) given by their corner nodes.

    Args:
        corners: (n_boxes, 2, …, 2) int node ids, ``corners[b, o_1, …, o_d]`` = corner at local offset o.
        flip: (n_boxes, d) bool: the diagonal runs from o_k = 1 to o_k = 0 along local axis k where true; default
            none. Two boxes sharing a face get the same split of it iff they agree on the flips of the face's axes
            (and on which end of each of its edges is "low").
        handed: (n_boxes,) or scalar ±1: the orientation of the box's local frame (+1 when local axis order is
            right-handed in the target space).

    Returns:
        Simplices, the d! of box b in rows b·d! … b·d!+d!−1, each positively oriented if ``handed`` is right.
    """
    corners = np.asarray(corners, dtype=np.int64)
    d = corners.ndim - 1
    if d not in (1, 2, 3) or corners.shape[1:] != (2,) * d:
        raise ValueError(f"corners must have shape (n_boxes, 2, …, 2) with 1 to 3 twos, got {corners.shape}")
    nb = corners.shape[0]
    flip = np.zeros((nb, d), dtype=bool) if flip is None else np.asarray(flip, dtype=bool)
    if flip.shape != (nb, d):
        raise ValueError(f"flip must have shape ({nb}, {d}), got {flip.shape}")
    handed = np.broadcast_to(np.asarray(handed, dtype=np.int64), (nb,))
    flat = corners.reshape(nb, -1)
    weight = 2 ** np.arange(d - 1, -1, -1)  # local flat index of offset o = o @ weight
    o = flip.astype(np.int64)  # start corner
    step = np.where(flip, -1, 1)
    base_sign = np.prod(step, axis=1) * handed

    perms = list(itertools.permutations(range(d)))
    out = np.empty((nb, len(perms), d + 1), dtype=np.int64)
    rows = np.arange(nb)
    for p, perm in enumerate(perms):
        idx = o @ weight
        out[:, p, 0] = flat[rows, idx]
        for m, k in enumerate(perm):
            idx = idx + step[:, k] * weight[k]
            out[:, p, m + 1] = flat[rows, idx]
        # the Kuhn simplex of perm has orientation parity(perm); reflections and the frame multiply the sign
        neg = (_permutation_parity(perm) * base_sign) < 0
        out[neg, p, -2:] = out[neg, p, -1:-3:-1]
    return out.reshape(-1, d + 1)


def simplices(shape: Sequence[int], flip: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """(d!·prod(n_k), d+1) int64 simplices of a conforming Kuhn split of the grid, positively oriented in lattice space.

    Args:
        shape: cells per axis ``(n_1, …, n_d)``, d = 1, 2 or 3.
        flip: per axis a bool array of length ``n_k`` (see the module docstring); default no flips (every diagonal
            from the low corner to the high one).

    Returns:
        Node ids (as in :func:`lattice`); the ``d!`` simplices of lattice cell ``c`` (C order) are rows
        ``c·d! … c·d! + d! − 1``. Every simplex has positive volume in lattice coordinates (an orientation-preserving
        map keeps it positive).
    """
    shape = _check_shape(shape)
    d = len(shape)
    if flip is None:
        flip = [np.zeros(n, dtype=bool) for n in shape]
    if len(flip) != d:
        raise ValueError(f"flip must have {d} entries (one per axis), got {len(flip)}")
    cl = cell_lattice(shape)
    cols = []
    for k, (f, n) in enumerate(zip(flip, shape, strict=True)):
        f = np.asarray(f, dtype=bool)
        if f.shape != (n,):
            raise ValueError(f"flip[{k}] must have shape ({n},), got {f.shape}")
        cols.append(f[cl[:, k]])
    return kuhn_split(lattice_boxes(shape), np.stack(cols, axis=1))


def cell_lattice(shape: Sequence[int]) -> np.ndarray:
    """(prod(n_k), d) lattice index of every cell (its low corner), in C order."""
    shape = _check_shape(shape)
    axes = [np.arange(n) for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape)).astype(np.int64)
