"""Mesh generators for the standard diffusion-MRI geometries, as mapped structured simplex grids.

Every generator builds structured blocks of squares/cubes (:mod:`.structured`), splits them into simplices, maps the
nodes with fixed, parameter-free templates and combines the templates *in torch* with the geometry parameters
(radius, half-width, length, widths, …), so a parameter given as a tensor with ``requires_grad=True`` yields
``mesh.points`` with autograd history. The topology (node and cell counts, compartments) is fixed when the mesh is
made — chosen from the parameters' values at that moment — and the parameters only move the vertices.

**Balls and disks** (the cube → ball map; 2-D: square → disk). A lattice of n cells across ``[-1, 1]^d``; a node
at ``u`` with ``r = ‖u‖_∞`` goes to

    x = R·((1 − r)·u + r²·s),    s = w/‖w‖₂,    w = tan(π/4 · u/r)  (componentwise),

a blend from the Cartesian grid at the centre to the equiangular "cubed sphere" on the boundary (r = 1), where
``x = R·s`` lies exactly on the sphere. All diagonals of the Kuhn split point at the centre, so no simplex has all
its nodes on the sphere.

**Ball in a box** (2-D: disk in a square). Around the ball, each of the 2d faces of the lattice cube is extruded
into ``n_outer`` layers of cells out to the box — a "cubed-sphere" shell, block-structured, conforming with the
ball's surface grid. Layer k of the node above the surface node ``R·s`` (``w`` its equiangular cube point, as
above) is

    x = (1 − t)·R·s + t·h·w,    t = t_k = ((h/R)^(k/n_outer) − 1) / (h/R − 1),

so each node moves on a straight segment from the sphere (t = 0) to the cube of half-width h (t = 1, an
equiangular n × n grid on each face, its spacing at the face edges twice that at the centre). Along the axes the
layers are geometrically graded (radius R·(h/R)^(k/n_outer)), so cells keep their shape in large boxes. The
shell's worst cells are near the box corners, where the shell is √3·h − R thick instead of h − R.

Conventions: lengths in m. Balls, disks, cylinders and boxes are centred at the origin, cylinder axes along z; slab
stacks and intervals start at x = 0 (a slab box spans ``[0, Σw] × [0, L_y] × [0, L_z]``). Compartment 0 is the
inner domain (ball, cylinder), the last compartment the outer one; slabs and intervals are numbered along x.

``n`` is the number of cells across the inner shape's diameter (across the thinnest extent for slab stacks); every
generator also accepts ``nodes=`` to pick the ``n`` whose mesh has the node count closest to a target (see
:func:`n_for_nodes`; node counts include the duplicated interface nodes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..mesh import Mesh, from_conforming
from .structured import (
    cell_lattice,
    flip_toward_centre,
    kuhn_split,
    lattice,
    lattice_boxes,
    simplices,
)

__all__ = [
    "interval",
    "slabs",
    "disk",
    "ball",
    "cylinder",
    "sphere_in_box",
    "cylinder_in_box",
    "cylinders",
    "n_for_nodes",
]

Param = float | torch.Tensor


# ---------------------------------------------------------------------------------------------------------------
# parameters


def _scalar(value: Param, name: str) -> torch.Tensor:
    """A positive finite 0-d float64 tensor (keeps autograd history and device)."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(float(value), dtype=torch.float64)
    if t.numel() != 1:
        raise ValueError(f"{name} must be a scalar, got shape {tuple(t.shape)}")
    t = t.reshape(()).to(torch.float64)
    v = float(t.detach())
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0 (m), got {v}")
    return t


def _vector(value: Param | Sequence[float], name: str) -> torch.Tensor:
    """A 1-D float64 tensor of positive finite entries (keeps autograd history)."""
    if isinstance(value, torch.Tensor):
        t = value.to(torch.float64).reshape(-1)
    else:
        t = torch.as_tensor(np.atleast_1d(np.asarray(value, dtype=np.float64)))
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty sequence, got shape {tuple(t.shape)}")
    v = t.detach().cpu().numpy()
    if not (np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ValueError(f"{name} must be finite and > 0 (m), got {v.tolist()}")
    return t


def _count(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _as_tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64, device=like.device)


def _resolve_n(n: int | None, nodes: int | None, default: int, count: Callable[[int], int], minimum: int = 1) -> int:
    """The resolution ``n``: given, or picked for a target node count, or the default."""
    if n is not None and nodes is not None:
        raise ValueError("give either n or nodes, not both")
    if nodes is None:
        return _count(default if n is None else n, "n", minimum)
    nodes = _count(nodes, "nodes", 2)
    best, best_err = minimum, math.inf
    k = minimum
    while k <= 4096:
        c = count(k)
        err = abs(c - nodes)
        if err < best_err:
            best, best_err = k, err
        if c >= nodes:
            break
        k += 1
    return best


def _finish(points: torch.Tensor, cells: np.ndarray, labels: np.ndarray | None) -> Mesh:
    """Build the Mesh, checking that the map kept every (lattice-positively oriented) cell positive.

    ``from_conforming`` reorders negatively oriented cells (and rejects flat ones); a reordered cell means the map
    inverted it, i.e. the parameters are outside the range this topology can represent.
    """
    mesh = from_conforming(points, cells, labels)
    flipped = (mesh.node_origin[mesh.cells].cpu().numpy() != cells).any(axis=1)
    if flipped.any():
        raise ValueError(f"the geometry parameters invert {int(flipped.sum())} cells; they are outside the valid range")
    return mesh


# ---------------------------------------------------------------------------------------------------------------
# ball (± box shell) templates


@dataclass(frozen=True)
class _Boxes:
    """Squares/cubes to Kuhn-split: corner node ids (nb, 2, …, 2), flips (nb, d), frame handedness (nb,), labels."""

    corners: np.ndarray
    flip: np.ndarray
    handed: np.ndarray
    label: np.ndarray

    def simplices(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.flip.shape[1]
        cells = kuhn_split(self.corners, self.flip, self.handed)
        return cells, np.repeat(self.label, math.factorial(d))


def _cat_boxes(parts: list[_Boxes]) -> _Boxes:
    return _Boxes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("corners", "flip", "handed", "label")))


def _cube_directions(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For points u (n, d) of [-1, 1]^d: r = ‖u‖_∞, the equiangular cube point w and the unit vector s = w/‖w‖."""
    r = np.abs(u).max(axis=1)
    safe = np.where(r > 0, r, 1.0)[:, None]
    w = np.tan(0.25 * np.pi * u / safe)
    norm = np.linalg.norm(w, axis=1, keepdims=True)
    s = w / np.where(norm > 0, norm, 1.0)
    return r, w, s


@dataclass(frozen=True)
class _BallBox:
    """A ball of ``n`` cells across in d = 2 or 3, with a shell of ``n_outer`` layers out to a box (0: bare ball).

    Nodes: the (n+1)^d lattice nodes of the ball, then layer k = 1 … n_outer of the shell, one node per lattice
    surface node (``surface`` lists their lattice ids; layer 0 is the ball's surface itself).
    """

    d: int
    n: int
    n_outer: int
    ball_unit: np.ndarray  # (n_lattice, d) unit-ball positions
    surface: np.ndarray  # (S,) lattice ids of the ball's surface nodes
    surf_w: np.ndarray  # (S, d) equiangular cube points
    surf_s: np.ndarray  # (S, d) unit sphere points
    boxes: _Boxes

    @property
    def n_nodes(self) -> int:
        return len(self.ball_unit) + self.n_outer * len(self.surface)

    def outer_nodes(self) -> np.ndarray:
        """Node ids of the outermost shell layer (on the box), in the order of :attr:`surface`."""
        return len(self.ball_unit) + (self.n_outer - 1) * len(self.surface) + np.arange(len(self.surface))

    def points(self, radius: torch.Tensor, half_width: torch.Tensor | None = None) -> torch.Tensor:
        """(n_nodes, d) positions in m for a ball of ``radius`` in a box of ``half_width`` (torch, differentiable)."""
        pts = [radius * _as_tensor(self.ball_unit, radius)]
        if self.n_outer:
            ratio = half_width / radius
            k = _as_tensor(np.arange(1, self.n_outer + 1) / self.n_outer, radius)
            t = ((ratio[None] ** k - 1.0) / (ratio - 1.0))[:, None, None]  # (n_outer, 1, 1)
            s, w = _as_tensor(self.surf_s, radius)[None], _as_tensor(self.surf_w, radius)[None]
            shell = (1.0 - t) * radius * s + t * half_width * w
            pts.append(shell.reshape(-1, self.d))
        return torch.cat(pts)


def _ball_box(d: int, n: int, n_outer: int) -> _BallBox:
    shape = (n,) * d
    lat = lattice(shape)
    u = (lat - n / 2.0) / (n / 2.0)
    r, w, s = _cube_directions(u)
    ball_unit = (1.0 - r)[:, None] * u + (r * r)[:, None] * s
    flips1 = flip_toward_centre(n)
    cl = cell_lattice(shape)
    parts = [_Boxes(lattice_boxes(shape), flips1[cl], np.ones(len(cl), dtype=np.int64), np.zeros(len(cl), np.int64))]

    on_surface = np.abs(u).max(axis=1) > 1.0 - 1e-12
    surface = np.flatnonzero(on_surface)
    if n_outer:
        n_lat = len(lat)
        surf_index = np.full(n_lat, -1, dtype=np.int64)
        surf_index[surface] = np.arange(len(surface))
        strides = np.array([(n + 1) ** (d - 1 - j) for j in range(d)], dtype=np.int64)
        local_shape = (n,) * (d - 1) + (n_outer,)
        local_nodes = lattice(local_shape)  # (face index…, layer)
        local_cells = cell_lattice(local_shape)
        for a in range(d):
            others = [j for j in range(d) if j != a]
            for sign in (-1, 1):
                ids = local_nodes[:, :-1] @ strides[others] + (n if sign > 0 else 0) * strides[a]
                layer = local_nodes[:, -1]
                node = np.where(layer == 0, ids, n_lat + (layer - 1) * len(surface) + surf_index[ids])
                corners = node[lattice_boxes(local_shape)]
                flip = np.concatenate([flips1[local_cells[:, :-1]], np.zeros((len(local_cells), 1), bool)], axis=1)
                frame = np.eye(d)[others + [a]] * np.array([1.0] * (d - 1) + [sign])[:, None]
                handed = np.full(len(local_cells), int(round(np.linalg.det(frame))), dtype=np.int64)
                parts.append(_Boxes(corners, flip, handed, np.ones(len(local_cells), np.int64)))
    return _BallBox(
        d=d,
        n=n,
        n_outer=n_outer,
        ball_unit=ball_unit,
        surface=surface,
        surf_w=w[surface],
        surf_s=s[surface],
        boxes=_cat_boxes(parts),
    )


def _extrude(points2: torch.Tensor, boxes2: _Boxes, length: torch.Tensor, nz: int) -> tuple[torch.Tensor, _Boxes]:
    """Extrude a 2-D box mesh along z over [−L/2, L/2] with ``nz`` layers (node id = id2·(nz+1) + iz)."""
    n2 = points2.shape[0]
    z = length * _as_tensor(np.arange(nz + 1) / nz - 0.5, length)
    points = torch.cat([points2.repeat_interleave(nz + 1, dim=0), z.repeat(n2)[:, None]], dim=1)
    nb = len(boxes2.label)
    iz = np.arange(nz)
    c2 = boxes2.corners[:, None, :, :, None] * (nz + 1) + iz[None, :, None, None, None]
    corners = np.concatenate([c2, c2 + 1], axis=-1).reshape(nb * nz, 2, 2, 2)
    zflip = np.broadcast_to(flip_toward_centre(nz)[None, :, None], (nb, nz, 1))
    flip = np.concatenate([np.broadcast_to(boxes2.flip[:, None, :], (nb, nz, 2)), zflip], axis=2).reshape(-1, 3)
    return points, _Boxes(corners, flip, np.repeat(boxes2.handed, nz), np.repeat(boxes2.label, nz))


def _tiles(radii: torch.Tensor, spacing: torch.Tensor, grid: tuple[int, int], n: int, n_outer: int):
    """A k × m lattice of disk-in-square tiles of side ``spacing``: (points (N, 2), boxes with labels = compartment)."""
    k, m = grid
    tpl = _ball_box(2, n, n_outer)
    n_loc = tpl.n_nodes
    pts, keys, parts = [], [], []
    outer = tpl.outer_nodes()
    outer_lat = lattice((n, n))[tpl.surface]  # lattice index (0…n) of each outer node within its tile
    n_bkey = (m * n + 1) * (k * n + 1)
    for ti in range(k):
        for tj in range(m):
            tile = ti * m + tj
            centre = torch.stack([(ti - (k - 1) / 2.0) * spacing, (tj - (m - 1) / 2.0) * spacing])
            pts.append(centre + tpl.points(radii[tile], 0.5 * spacing))
            key = n_bkey + tile * n_loc + np.arange(n_loc)  # tile-private nodes
            g = outer_lat + np.array([ti * n, tj * n])
            key[outer] = g[:, 0] * (m * n + 1) + g[:, 1]  # box nodes: shared with the neighbouring tiles
            keys.append(key)
            b = tpl.boxes
            label = np.where(b.label == 0, tile, k * m)
            parts.append(_Boxes(b.corners + tile * n_loc, b.flip, b.handed, label))
    _, first, inverse = np.unique(np.concatenate(keys), return_index=True, return_inverse=True)
    boxes = _cat_boxes(parts)
    boxes = _Boxes(inverse[boxes.corners], boxes.flip, boxes.handed, boxes.label)
    return torch.cat(pts)[torch.as_tensor(first, device=radii.device)], boxes


# ---------------------------------------------------------------------------------------------------------------
# resolution and node counts (for `nodes=`)


def _auto_axial(length: float, radius: float, n: int) -> int:
    """Cells along a length so that the spacing matches the ball lattice's 2R/n."""
    return max(1, round(length / (2.0 * radius / n)))


def _auto_outer(half_width: float, radius: float, n: int) -> int:
    """Shell layers so that the geometric layer ratio (h/R)^(1/n_outer) is about 1 + 2/n (the lattice spacing)."""
    return max(1, round(math.log(half_width / radius) / math.log1p(2.0 / n)))


def _nodes_ball_box(d: int, n: int, n_outer: int) -> int:
    """Nodes of a ball (n_outer = 0) or ball in a box, the duplicated interface nodes included."""
    surface = (n + 1) ** d - (n - 1) ** d
    return (n + 1) ** d + (n_outer + 1) * surface * (n_outer > 0)


def _nodes_tiles(n: int, n_outer: int, grid: tuple[int, int]) -> int:
    """Nodes of a k × m lattice of disk-in-square tiles (interface copies included)."""
    k, m = grid
    private = (n + 1) ** 2 + 4 * n * n_outer  # ball, its duplicated surface, shell layers 1 … n_outer − 1
    shared = (k * n + 1) * (m * n + 1) - k * m * (n - 1) ** 2  # lattice points on the tiles' edges
    return k * m * private + shared


def _stack_counts(widths: np.ndarray, size: np.ndarray, n: int, n_lateral) -> tuple[list[int], list[int]]:
    h = float(min(widths.min(), size.min() if size.size else np.inf)) / n
    nx = [max(1, round(float(w) / h)) for w in widths]
    if n_lateral is None:
        nl = [max(1, round(float(s) / h)) for s in size]
    else:
        nl = list(np.broadcast_to(np.asarray(n_lateral), (len(size),)).tolist())
        nl = [_count(k, "n_lateral") for k in nl]
    return nx, nl


def _nodes_stack(nx: list[int], nl: list[int]) -> int:
    return (sum(nx) + len(nx)) * int(np.prod([k + 1 for k in nl]))


# ---------------------------------------------------------------------------------------------------------------
# generators


def _stack(widths: torch.Tensor, size: torch.Tensor | None, nx: list[int], nl: list[int]) -> Mesh:
    """Boxes of ``widths`` side by side along x, lateral ``size`` (0, 1 or 2 entries), one compartment each."""
    k = len(nx)
    shape = (sum(nx), *nl)
    d = len(shape)
    lat = lattice(shape)
    ix = lat[:, 0]
    bounds = np.concatenate([[0], np.cumsum(nx)])
    slab = np.clip(np.searchsorted(bounds, ix, side="right") - 1, 0, k - 1)
    frac = (ix - bounds[slab]) / np.asarray(nx)[slab]
    offsets = torch.cat([widths.new_zeros(1), torch.cumsum(widths, 0)[:-1]])
    slab_t = torch.as_tensor(slab, device=widths.device)
    x = offsets[slab_t] + widths[slab_t] * _as_tensor(frac, widths)
    cols = [x[:, None]]
    for j in range(1, d):
        cols.append(size[j - 1] * _as_tensor(lat[:, j] / nl[j - 1], widths)[:, None])
    points = torch.cat(cols, dim=1)
    cells = simplices(shape, [flip_toward_centre(n) for n in shape])
    cell_x = np.unravel_index(np.arange(len(cells)) // math.factorial(d), shape)[0]
    labels = np.searchsorted(bounds, cell_x, side="right") - 1
    return _finish(points, cells, labels)


@dataclass(frozen=True)
class _Plan:
    n: int
    build: Callable[[], Mesh]


def interval(lengths: Param | Sequence[float], n_per_compartment: int | Sequence[int] = 100) -> Mesh:
    """1-D segments side by side along x from 0, one compartment each (a slab, or a stack of slabs).

    Args:
        lengths: (K,) segment lengths in m (float, sequence, or tensor; may require grad). E.g. ``(5e-6, 5e-6)``:
            two slabs with an interface at 5 µm.
        n_per_compartment: cells per segment (int, or one per segment).

    Returns:
        A 1-D :class:`Mesh` with ``Σ n_i + K`` nodes (each interface node duplicated).
    """
    w = _vector(lengths, "lengths")
    nx = np.broadcast_to(np.asarray(n_per_compartment), (len(w),)).tolist()
    nx = [_count(k, "n_per_compartment") for k in nx]
    return _stack(w, None, nx, [])


def _plan_slabs(widths=(5e-6, 5e-6), size=None, n=None, *, n_lateral=None, nodes=None) -> _Plan:
    w = _vector(widths, "widths")
    total = float(w.detach().sum())
    s = _vector((total, total) if size is None else size, "size")
    if len(s) not in (1, 2):
        raise ValueError(f"size must have 1 (2-D) or 2 (3-D) entries, got {len(s)}")
    wv, sv = w.detach().cpu().numpy(), s.detach().cpu().numpy()
    n = _resolve_n(n, nodes, 4, lambda k: _nodes_stack(*_stack_counts(wv, sv, k, n_lateral)))
    nx, nl = _stack_counts(wv, sv, n, n_lateral)
    return _Plan(n, lambda: _stack(w, s.to(w.device), nx, nl))


def slabs(
    widths: Param | Sequence[float] = (5e-6, 5e-6),
    size: Sequence[float] | torch.Tensor | None = None,
    n: int | None = None,
    *,
    n_lateral: int | Sequence[int] | None = None,
    nodes: int | None = None,
) -> Mesh:
    """Boxes stacked along x sharing faces (interface planes ⊥ x), one compartment each; 2-D or 3-D.

    Args:
        widths: (K,) box widths along x in m; box k spans ``[Σ_{j<k} w_j, Σ_{j≤k} w_j]`` (may require grad).
        size: lateral extent ``(L_y, L_z)`` (3-D) or ``(L_y,)`` (2-D) in m; default ``(Σw, Σw)`` (may require grad).
        n: cells across the thinnest extent (default 4); every extent L gets ``round(L/h)`` cells, h = thinnest/n.
        n_lateral: cells along y (and z), overriding the automatic choice (e.g. 1 for a 1-D-like test).
        nodes: pick ``n`` for about this many nodes instead.

    Reflecting walls at x = 0, Σw, y ∈ {0, L_y}, z ∈ {0, L_z}; ``(Σ n_x,k + K)·Π(n_lateral + 1)`` nodes.
    """
    return _plan_slabs(widths, size, n, n_lateral=n_lateral, nodes=nodes).build()


def _plan_disk(radius, n=None, *, nodes=None) -> _Plan:
    r = _scalar(radius, "radius")
    n = _resolve_n(n, nodes, 16, lambda k: _nodes_ball_box(2, k, 0), minimum=2)

    def build() -> Mesh:
        tpl = _ball_box(2, n, 0)
        return _finish(tpl.points(r), *tpl.boxes.simplices())

    return _Plan(n, build)


def disk(radius: Param, n: int | None = None, *, nodes: int | None = None) -> Mesh:
    """2-D disk of ``radius`` (m) centred at 0 (cross-section of an infinite cylinder); ``(n+1)²`` nodes.

    Boundary nodes lie exactly on the circle, equally spaced in angle (4n of them). Default n = 16; n = 88 gives
    7921 nodes.
    """
    return _plan_disk(radius, n, nodes=nodes).build()


def _plan_ball(radius, n=None, *, nodes=None) -> _Plan:
    r = _scalar(radius, "radius")
    n = _resolve_n(n, nodes, 12, lambda k: _nodes_ball_box(3, k, 0), minimum=2)

    def build() -> Mesh:
        tpl = _ball_box(3, n, 0)
        return _finish(tpl.points(r), *tpl.boxes.simplices())

    return _Plan(n, build)


def ball(radius: Param, n: int | None = None, *, nodes: int | None = None) -> Mesh:
    """3-D ball of ``radius`` (m) centred at 0; ``(n+1)³`` nodes.

    n = 10, 16, 26, 34 give 1331, 4913, 19683, 42875 nodes. Boundary nodes lie exactly on the sphere (6n² + 2 of
    them, equiangular on each cube face). Default n = 12.
    """
    return _plan_ball(radius, n, nodes=nodes).build()


def _plan_cylinder(radius, length, n=None, n_axial=None, *, nodes=None) -> _Plan:
    r, length_t = _scalar(radius, "radius"), _scalar(length, "length")
    rv, lv = float(r.detach()), float(length_t.detach())

    def axial(k: int) -> int:
        return _auto_axial(lv, rv, k) if n_axial is None else _count(n_axial, "n_axial")

    n = _resolve_n(n, nodes, 8, lambda k: (k + 1) ** 2 * (axial(k) + 1), minimum=2)

    def build() -> Mesh:
        tpl = _ball_box(2, n, 0)
        points, boxes = _extrude(tpl.points(r), tpl.boxes, length_t, axial(n))
        return _finish(points, *boxes.simplices())

    return _Plan(n, build)


def cylinder(
    radius: Param, length: Param, n: int | None = None, n_axial: int | None = None, *, nodes: int | None = None
) -> Mesh:
    """Finite capped cylinder of ``radius`` and ``length`` (m), axis along z, z ∈ [−L/2, L/2], centred at 0.

    ``n`` cells across the diameter (default 8), ``n_axial`` cells along z (default: axial spacing ≈ 2R/n);
    ``(n+1)²·(n_axial+1)`` nodes.
    """
    return _plan_cylinder(radius, length, n, n_axial, nodes=nodes).build()


def _radius_box(radius: Param, half_width: Param) -> tuple[torch.Tensor, torch.Tensor]:
    r, h = _scalar(radius, "radius"), _scalar(half_width, "half_width")
    if not float(h.detach()) > float(r.detach()):
        raise ValueError(f"half_width must be > radius = {float(r.detach())}, got {float(h.detach())}")
    return r, h


def _plan_sphere_in_box(radius, half_width, n=None, n_outer=None, *, nodes=None) -> _Plan:
    r, h = _radius_box(radius, half_width)
    rv, hv = float(r.detach()), float(h.detach())

    def outer(k: int) -> int:
        return _auto_outer(hv, rv, k) if n_outer is None else _count(n_outer, "n_outer")

    n = _resolve_n(n, nodes, 8, lambda k: _nodes_ball_box(3, k, outer(k)), minimum=2)

    def build() -> Mesh:
        tpl = _ball_box(3, n, outer(n))
        return _finish(tpl.points(r, h), *tpl.boxes.simplices())

    return _Plan(n, build)


def sphere_in_box(
    radius: Param, half_width: Param, n: int | None = None, n_outer: int | None = None, *, nodes: int | None = None
) -> Mesh:
    """A ball (compartment 0) in the cube ``[−h, h]³`` (compartment 1), conforming interface exactly on the sphere.

    Args:
        radius: ball radius R in m (may require grad).
        half_width: cube half-width h in m, h > R (may require grad).
        n: cells across the ball's diameter (default 8); each cube face gets an n × n grid.
        n_outer: cell layers between sphere and cube (default ≈ ln(h/R)/ln(1 + 2/n), graded geometrically).
        nodes: pick ``n`` for about this many nodes instead.

    ``(n+1)³ + (n_outer + 1)·(6n² + 2)`` nodes (one of the n_outer + 1 layers: the duplicated interface nodes).
    """
    return _plan_sphere_in_box(radius, half_width, n, n_outer, nodes=nodes).build()


def _plan_cylinders(radii, spacing, length=None, grid=None, n=None, n_outer=None, n_axial=None, *, nodes=None):
    r = _vector(radii, "radii")
    s = _scalar(spacing, "spacing")
    if grid is None:
        root = math.isqrt(len(r))
        grid = (root, root) if root * root == len(r) else (len(r), 1)
    if len(grid) != 2:
        raise ValueError(f"grid must be (k, m), got {grid!r}")
    k, m = (_count(g, "grid") for g in grid)
    if len(r) == 1 and k * m > 1:
        r = r.expand(k * m)
    if len(r) != k * m:
        raise ValueError(f"radii must have grid[0]·grid[1] = {k * m} entries (or 1), got {len(r)}")
    rv, sv = r.detach().cpu().numpy(), float(s.detach())
    if not np.all(rv < sv / 2):
        raise ValueError(f"radii must be < spacing/2 = {sv / 2}, got {rv.tolist()}")
    r_mean = float(rv.mean())
    length_t = None if length is None else _scalar(length, "length")

    def outer(q: int) -> int:
        return _auto_outer(sv / 2, r_mean, q) if n_outer is None else _count(n_outer, "n_outer")

    def axial(q: int) -> int:
        if length_t is None:
            return 0
        return _auto_axial(float(length_t.detach()), r_mean, q) if n_axial is None else _count(n_axial, "n_axial")

    n = _resolve_n(n, nodes, 8, lambda q: _nodes_tiles(q, outer(q), (k, m)) * (axial(q) + 1), minimum=2)

    def build() -> Mesh:
        points, boxes = _tiles(r, s, (k, m), n, outer(n))
        if length_t is not None:
            points, boxes = _extrude(points, boxes, length_t, axial(n))
        return _finish(points, *boxes.simplices())

    return _Plan(n, build)


def cylinders(
    radii: Param | Sequence[float],
    spacing: Param,
    length: Param | None = None,
    grid: tuple[int, int] | None = None,
    n: int | None = None,
    n_outer: int | None = None,
    n_axial: int | None = None,
    *,
    nodes: int | None = None,
) -> Mesh:
    """Parallel cylinders (axis z) on a square lattice in one extracellular space.

    Each cylinder sits at the centre of its own square tile of side ``spacing`` (the lattice constant); the tiles
    fill the box ``[−k·s/2, k·s/2] × [−m·s/2, m·s/2] × [−L/2, L/2]``. Compartments ``0 … N−1`` are the cylinders
    (cylinder ``i·m + j`` centred at ``((i − (k−1)/2)·s, (j − (m−1)/2)·s)``), compartment ``N = k·m`` the
    extracellular space.

    Args:
        radii: (N,) radii in m, each < spacing/2, or one radius for all; may require grad.
        spacing: lattice constant s in m (may require grad).
        length: cylinder length L in m; ``None`` gives the 2-D cross-section.
        grid: ``(k, m)`` cylinders along x and y; default ``√N × √N`` if N is a square, else ``(N, 1)``.
        n: cells across each cylinder's diameter (default 8); each tile edge gets n cells.
        n_outer: cell layers from a cylinder to its tile's edge (default from the mean radius, as in
            :func:`sphere_in_box`).
        n_axial: cells along z (default: spacing ≈ 2·mean(R)/n).
        nodes: pick ``n`` for about this many nodes instead.
    """
    return _plan_cylinders(radii, spacing, length, grid, n, n_outer, n_axial, nodes=nodes).build()


def _plan_cylinder_in_box(radius, half_width, length=None, n=None, n_outer=None, n_axial=None, *, nodes=None):
    r, h = _radius_box(radius, half_width)
    return _plan_cylinders(r.reshape(1), 2.0 * h, length, (1, 1), n, n_outer, n_axial, nodes=nodes)


def cylinder_in_box(
    radius: Param,
    half_width: Param,
    length: Param | None = None,
    n: int | None = None,
    n_outer: int | None = None,
    n_axial: int | None = None,
    *,
    nodes: int | None = None,
) -> Mesh:
    """A cylinder (compartment 0, axis z) in the square prism ``[−h, h]² × [−L/2, L/2]`` (compartment 1).

    With ``length=None`` the 2-D cross-section (a disk in a square). ``n``, ``n_outer`` as in
    :func:`sphere_in_box`, ``n_axial`` as in :func:`cylinder`.
    """
    return _plan_cylinder_in_box(radius, half_width, length, n, n_outer, n_axial, nodes=nodes).build()


_PLANNERS: dict[Callable[..., Mesh], Callable[..., _Plan]] = {
    slabs: _plan_slabs,
    disk: _plan_disk,
    ball: _plan_ball,
    cylinder: _plan_cylinder,
    sphere_in_box: _plan_sphere_in_box,
    cylinder_in_box: _plan_cylinder_in_box,
    cylinders: _plan_cylinders,
}


def n_for_nodes(generator: Callable[..., Mesh], nodes: int, *args, **kwargs) -> int:
    """The resolution ``n`` for which ``generator(*args, n=n, **kwargs)`` has the node count closest to ``nodes``.

    E.g. ``n_for_nodes(ball, 5000, 5e-6)`` → 16 (4913 nodes). The same as passing ``nodes=`` to the generator, but
    without building the mesh (only closed-form node counts are evaluated). Not for :func:`interval`.
    """
    if generator not in _PLANNERS:
        names = sorted(g.__name__ for g in _PLANNERS)
        raise ValueError(f"generator must be one of {names}, got {getattr(generator, '__name__', generator)!r}")
    kwargs.pop("n", None)
    return _PLANNERS[generator](*args, nodes=nodes, **kwargs).n
