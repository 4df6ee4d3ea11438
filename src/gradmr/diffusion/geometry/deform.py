"""Differentiable geometry maps and deformation regularisers (topology fixed, only the vertices move).

The maps act pointwise on a ``(n_nodes, d)`` tensor of positions in m, so the two copies of an interface node stay
together; apply them as ``mesh.with_points(bend(mesh.points, 1e4))``. Their parameters may be tensors with
``requires_grad=True``. :func:`displace` adds a displacement field given on the conforming (shared) nodes, and
:func:`smoothness` and :func:`~.quality.quality_penalty` regularise such fields in mesh-deformation inverse problems.
"""

from __future__ import annotations

import math

import torch

from ..mesh import Mesh

__all__ = ["scale", "bend", "bead", "displace", "conforming_points", "smoothness"]

Param = float | torch.Tensor


def _check_points(points: torch.Tensor, min_dim: int = 1) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or not min_dim <= points.shape[1] <= 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a (n_nodes, d) tensor with d in {min_dim}..3, got {shape}")


def _check_axes(d: int, **axes: int) -> None:
    for name, a in axes.items():
        if not 0 <= a < d:
            raise ValueError(f"{name} must be in [0, {d}), got {a}")
    if len(set(axes.values())) != len(axes):
        raise ValueError(f"axes must differ, got {axes}")


def scale(points: torch.Tensor, factor: Param, centre: torch.Tensor | None = None) -> torch.Tensor:
    """``c + factor·(x − c)``: isotropic (scalar factor) or per-axis ((d,) factor) scaling about ``centre`` (default 0).

    Factors must be > 0 (a negative factor would invert the cells).
    """
    _check_points(points)
    f = torch.as_tensor(factor, dtype=points.dtype, device=points.device)
    if f.ndim > 1 or (f.ndim == 1 and f.shape[0] != points.shape[1]):
        raise ValueError(f"factor must be a scalar or have shape ({points.shape[1]},), got {tuple(f.shape)}")
    if not bool((f.detach() > 0).all()):
        raise ValueError(f"factor must be > 0, got {f.detach().tolist()}")
    c = torch.zeros(points.shape[1], dtype=points.dtype, device=points.device) if centre is None else centre
    return c + f * (points - c)


def bend(points: torch.Tensor, curvature: Param, axis: int = 2, toward: int = 0, origin: Param = 0.0) -> torch.Tensor:
    """Bend a straight object along ``axis`` into a circular arc of ``curvature`` κ (1/m) in the (toward, axis) plane.

    The line ``x_toward = 0`` becomes an arc of radius 1/κ, with arc length preserved, curving towards +``toward``
    for κ > 0; the plane ``x_axis = origin`` stays fixed. With θ = κ·(z − z₀), b = x_toward:
    ``b' = b·cos θ + (1 − cos θ)/κ``, ``z' = z₀ + sin θ/κ − b·sin θ`` (written with sinc, smooth through κ = 0).
    Local volume changes by ``1 − κ·b``: cells keep their orientation while ``|κ|·max|b| < 1``. 2-D or 3-D.
    """
    _check_points(points, 2)
    d = points.shape[1]
    _check_axes(d, axis=axis, toward=toward)
    k = torch.as_tensor(curvature, dtype=points.dtype, device=points.device)
    if k.ndim != 0:
        raise ValueError(f"curvature must be a scalar (1/m), got shape {tuple(k.shape)}")
    z = points[:, axis] - origin
    b = points[:, toward]
    theta = k * z
    b_new = b * torch.cos(theta) + z * torch.sin(0.5 * theta) * torch.sinc(theta / (2 * math.pi))
    z_new = z * torch.sinc(theta / math.pi) - b * torch.sin(theta) + origin
    cols = list(points.unbind(1))
    cols[toward], cols[axis] = b_new, z_new
    return torch.stack(cols, dim=1)


def bead(
    points: torch.Tensor,
    amplitude: Param,
    wavelength: Param,
    axis: int = 2,
    phase: Param = 0.0,
    radius: Param | None = None,
    outer_radius: Param | None = None,
) -> torch.Tensor:
    """Beading of an axon along ``axis``: radius modulation ``r(z) = r·(1 + a·cos(2π z/λ + φ))``.

    Without ``radius`` the whole cross-section (coordinates other than ``axis``, about the axis through 0) is scaled
    by ``1 + a·cos(…)``: a cylinder of radius R becomes a beaded one. With ``radius`` R and ``outer_radius`` R_o
    (an axon in an extracellular box), points within distance R of the axis are scaled as above and the radial
    displacement ``a·cos(…)·R`` then falls linearly to 0 at R_o (beyond, points stay put; R_o ≤ the box half-width
    keeps the box walls fixed). Orientation is kept for ``|a| < 1`` (and ``|a|·R < R_o − R``).

    Args:
        points: (n_nodes, d) positions in m, d = 2 or 3.
        amplitude: relative amplitude a, |a| < 1.
        wavelength: λ in m (> 0).
        axis: the axon's axis.
        phase: φ in rad.
        radius, outer_radius: see above, in m.
    """
    _check_points(points, 2)
    _check_axes(points.shape[1], axis=axis)
    opts = {"dtype": points.dtype, "device": points.device}
    a = torch.as_tensor(amplitude, **opts)
    lam = torch.as_tensor(wavelength, **opts)
    if not abs(float(a.detach())) < 1:
        raise ValueError(f"amplitude must be in (-1, 1), got {float(a.detach())}")
    if not float(lam.detach()) > 0:
        raise ValueError(f"wavelength must be > 0 (m), got {float(lam.detach())}")
    z = points[:, axis]
    mod = a * torch.cos(2 * math.pi * z / lam + phase)  # (n,)
    transverse = [j for j in range(points.shape[1]) if j != axis]
    xt = points[:, transverse]
    if radius is None:
        if outer_radius is not None:
            raise ValueError("outer_radius needs radius")
        factor = 1 + mod
    else:
        r_in = torch.as_tensor(radius, **opts)
        r_out = torch.as_tensor(float("nan") if outer_radius is None else outer_radius, **opts)
        if not 0 < float(r_in.detach()) < float(r_out.detach()):
            raise ValueError(f"need 0 < radius < outer_radius, got {float(r_in.detach())}, {outer_radius}")
        if not abs(float(a.detach())) * float(r_in.detach()) < float((r_out - r_in).detach()):
            raise ValueError("|amplitude|·radius must be < outer_radius − radius (else the shell inverts)")
        rho = xt.norm(dim=1)
        rho_safe = torch.clamp(rho, min=float(r_in.detach()))
        fall = torch.clamp((r_out - rho_safe) / (r_out - r_in), min=0.0)
        factor = torch.where(rho <= r_in, 1 + mod, 1 + mod * r_in * fall / rho_safe)
    cols = list(points.unbind(1))
    for i, j in enumerate(transverse):
        cols[j] = xt[:, i] * factor
    return torch.stack(cols, dim=1)


def _n_conforming(mesh: Mesh) -> int:
    return int(mesh.node_origin.max()) + 1


def conforming_points(mesh: Mesh) -> torch.Tensor:
    """(n_conforming, d) positions of the conforming mesh's shared nodes (``mesh.points`` = this[node_origin])."""
    out = torch.zeros(_n_conforming(mesh), mesh.dim, dtype=mesh.points.dtype, device=mesh.points.device)
    return out.index_copy(0, mesh.node_origin, mesh.points)


def displace(mesh: Mesh, displacement: torch.Tensor) -> Mesh:
    """The mesh with nodes moved by ``displacement`` (m), given on the conforming nodes.

    Args:
        mesh: the mesh.
        displacement: (n_conforming, d) with ``n_conforming = mesh.node_origin.max() + 1``: one vector per shared
            node, so both copies of an interface node move together and interfaces stay matched. (For a mesh
            without interfaces this is (n_nodes, d).)
    """
    n_conf = _n_conforming(mesh)
    if displacement.shape != (n_conf, mesh.dim):
        shape = tuple(displacement.shape)
        raise ValueError(f"displacement must have shape ({n_conf}, {mesh.dim}) (conforming nodes), got {shape}")
    return mesh.with_points(mesh.points + displacement[mesh.node_origin].to(mesh.points.dtype))


def _edges(mesh: Mesh) -> torch.Tensor:
    """(n_edges, 2) unique edges of the conforming mesh (shared node ids)."""
    cells = mesh.node_origin[mesh.cells]
    d1 = cells.shape[1]
    pairs = [(i, j) for i in range(d1) for j in range(i + 1, d1)]
    e = torch.cat([cells[:, [i, j]] for i, j in pairs])
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)


def smoothness(mesh: Mesh, displacement: torch.Tensor) -> torch.Tensor:
    """Graph-Laplacian energy of a displacement field: ``mean_edges |u_i − u_j|² / |x_i − x_j|²`` (dimensionless).

    ``displacement`` is (n_conforming, d) in m on the conforming nodes (as in :func:`displace`); the edge lengths are
    those of ``mesh`` (the undeformed geometry). Zero exactly for rigid translations; a smooth field with
    gradient G gives about ``mean |G·ê|²``.
    """
    n_conf = _n_conforming(mesh)
    if displacement.shape != (n_conf, mesh.dim):
        raise ValueError(f"displacement must have shape ({n_conf}, {mesh.dim}), got {tuple(displacement.shape)}")
    e = _edges(mesh)
    x = conforming_points(mesh).detach()
    du = displacement[e[:, 0]] - displacement[e[:, 1]]
    dx = x[e[:, 0]] - x[e[:, 1]]
    return ((du * du).sum(1) / (dx * dx).sum(1)).mean()
