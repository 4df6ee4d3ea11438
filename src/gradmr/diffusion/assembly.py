"""P1 finite-element matrices of the Bloch–Torrey equation, assembled in torch (differentiable in the geometry).

The semi-discrete Bloch–Torrey equation for the nodal magnetisation ξ(t) (complex, one value per node) is

    M dξ/dt = −(K + Q + R + i·q·f(t)·Σ_k d_k J_k) ξ,      ξ(0) = ρ,      S(t) = wᵀ ξ(t),  w = M·1,

with M the mass matrix ∫φ_iφ_j, K the stiffness ∫∇φ_i·D∇φ_j, Q the membrane exchange
∫_Γ κ (φ_i − φ_i')(φ_j − φ_j') over interface facets (the two copies of a node on either side), R the relaxation
∫φ_iφ_j/T2, J_k the gradient-direction (first-moment) matrices ∫x_k φ_iφ_j, q = γg in rad/(s·m) and f(t) the
sequence's time profile. Every element matrix is closed-form on the simplex, computed from vertex coordinates with
torch operations, so the global matrices carry autograd history back to :attr:`Mesh.points` and to the
compartment parameters. All matrices share one sparsity pattern (:class:`FEMatrices`) so that solvers can combine
their value vectors freely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .compartments import Compartments
from .mesh import Mesh

__all__ = ["FEMatrices", "assemble", "barycentric_gradients", "check_orientation", "outward_area_normals"]


@dataclass(frozen=True)
class FEMatrices:
    """Global P1 matrices as value vectors on one shared sparsity pattern (COO, coalesced, rows then cols sorted).

    Attributes:
        rows, cols: (nnz,) int64 pattern.
        n: number of nodes.
        mass: (nnz,) M in m^dim.
        stiffness: (nnz,) K = ∫∇φ·D∇φ in m^dim/s.
        flux: (nnz,) Q (membrane exchange) in m^dim/s.
        relaxation: (nnz,) R = ∫φφ/T2 in m^dim/s.
        moments: (dim, nnz) J_k = ∫x_k φφ in m^(dim+1).
        density: (n,) initial magnetisation ρ per node.
        weights: (n,) w = M·1 (the signal is wᵀξ), in m^dim.
        boundary_flux: (dim, n) h_k = ∫ n_k φ over each compartment's boundary (outer walls and both sides of every
            interface, outward normals), in m^(dim−1); the HADC model's source.
        node_compartment: (n,) compartment of each node.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    n: int
    mass: torch.Tensor
    stiffness: torch.Tensor
    flux: torch.Tensor
    relaxation: torch.Tensor
    moments: torch.Tensor
    density: torch.Tensor
    weights: torch.Tensor
    boundary_flux: torch.Tensor
    node_compartment: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.moments.shape[0])

    def direction_moment(self, direction: torch.Tensor) -> torch.Tensor:
        """Σ_k d_k J_k for one direction (dim,) or several (n_dir, dim) → (nnz,) or (n_dir, nnz)."""
        return direction.to(self.moments.dtype) @ self.moments

    def to_scipy(self, values: torch.Tensor):
        """A SciPy CSR matrix of one value vector on the pattern (detached)."""
        import scipy.sparse as sp

        v = values.detach().cpu().numpy()
        return sp.csr_matrix((v, (self.rows.cpu().numpy(), self.cols.cpu().numpy())), shape=(self.n, self.n))

    def to_dense(self, values: torch.Tensor) -> torch.Tensor:
        """A dense (n, n) tensor of one value vector (differentiable; for small meshes)."""
        out = torch.zeros(self.n * self.n, dtype=values.dtype, device=values.device)
        out = out.index_add(0, self.rows * self.n + self.cols, values)
        return out.reshape(self.n, self.n)

    def matmul(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(A x) for the matrix with ``values`` and x (n,) or (n, m) — differentiable in both."""
        xs = x[self.cols]
        prod = values.unsqueeze(-1) * xs if x.ndim == 2 else values * xs
        shape = (self.n,) + tuple(x.shape[1:])
        out = torch.zeros(shape, dtype=prod.dtype, device=prod.device)
        return out.index_add(0, self.rows, prod)


def barycentric_gradients(points: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the P1 basis functions and signed volumes.

    Returns ``(grads, volumes)``: grads (n_cells, d+1, d) in 1/m, the gradient of each vertex's barycentric
    coordinate; volumes (n_cells,) signed, in m^d.
    """
    x = points[cells]
    edges = x[:, 1:, :] - x[:, :1, :]  # (m, d, d), rows = edges
    d = points.shape[1]
    vol = torch.linalg.det(edges) / math.factorial(d)
    g = torch.linalg.inv(edges).transpose(1, 2)  # rows: ∇λ_1 … ∇λ_d
    g0 = -g.sum(dim=1, keepdim=True)
    return torch.cat([g0, g], dim=1), vol


def outward_area_normals(
    mesh: Mesh, grads: torch.Tensor | None = None, volumes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every compartment's boundary facets with |F|·n (outward normal times facet measure).

    Returns ``(facets, owner, area_normal)``: facets (f, d) node indices — the outer boundary facets followed by both
    copies of every interface facet —, owner (f,) the cell on the inside, area_normal (f, d) in m^(d−1).
    Uses |F|·n = −d·|T|·∇λ_opp with λ_opp the barycentric coordinate of the owner's vertex opposite the facet.
    """
    if grads is None or volumes is None:
        grads, volumes = barycentric_gradients(mesh.points, mesh.cells)
    d = mesh.dim
    owner = torch.cat([mesh.boundary_cells, mesh.interface_cells.reshape(-1)])
    facets = torch.cat([mesh.boundary_facets, mesh.interface_facets.reshape(-1, d)])
    if owner.numel() == 0:
        return facets, owner, torch.zeros(0, d, dtype=mesh.points.dtype)
    own_nodes = mesh.cells[owner]  # (f, d+1)
    in_facet = (own_nodes[:, :, None] == facets[:, None, :]).any(-1)
    opp = (~in_facet).to(torch.int64).argmax(dim=1)
    area_normal = -d * volumes[owner][:, None] * grads[owner, opp]
    return facets, owner, area_normal


def check_orientation(volumes: torch.Tensor, what: str = "mesh") -> None:
    """Raise if any cell is inverted or degenerate (signed volume ≤ 0)."""
    v = volumes.detach()
    bad = int((v <= 0).sum())
    if bad:
        raise ValueError(
            f"{what}: {bad} of {v.numel()} cells are inverted or degenerate (signed volume ≤ 0, smallest "
            f"{float(v.min()):.3g}); the geometry map moved vertices too far for the fixed topology"
        )


def _triple_weights(d: int, dtype) -> torch.Tensor:
    """W[i,j,l] with ∫φ_iφ_jφ_l = |T|·d!/(d+3)!·W[i,j,l] (W = product of factorials of index multiplicities)."""
    n = d + 1
    w = np.ones((n, n, n))
    for i in range(n):
        for j in range(n):
            for k in range(n):
                counts = np.bincount([i, j, k], minlength=n)
                w[i, j, k] = np.prod([math.factorial(c) for c in counts])
    return torch.as_tensor(w * math.factorial(d) / math.factorial(d + 3), dtype=dtype)


def _pattern(row_blocks: list[np.ndarray], col_blocks: list[np.ndarray], n: int):
    keys = [r.astype(np.int64) * n + c.astype(np.int64) for r, c in zip(row_blocks, col_blocks, strict=True)]
    uniq, inv = np.unique(np.concatenate(keys), return_inverse=True)
    slots, start = [], 0
    for k in keys:
        slots.append(torch.as_tensor(inv[start : start + len(k)].ravel()))
        start += len(k)
    return torch.as_tensor(uniq // n), torch.as_tensor(uniq % n), len(uniq), slots


def _scatter(nnz: int, slot: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(values.shape[:-1] + (nnz,), dtype=values.dtype, device=values.device)
    return out.index_add(-1, slot, values)


def assemble(mesh: Mesh, tissue: Compartments) -> FEMatrices:
    """All Bloch–Torrey matrices of ``mesh`` with the parameters of ``tissue`` (one entry per compartment).

    Differentiable in ``mesh.points`` and every field of ``tissue``. Raises if a cell is inverted (see
    :func:`check_orientation`), if ``tissue`` has the wrong number of compartments, or if a permeable interface joins
    compartments of different density (the exchange term here assumes equal densities across a membrane).
    """
    if tissue.n != mesh.n_compartments:
        raise ValueError(f"tissue has {tissue.n} compartments, the mesh has {mesh.n_compartments}")
    pts = mesh.points
    dtype = pts.dtype
    d, n = mesh.dim, mesh.n_nodes
    cells = mesh.cells
    comp = mesh.cell_compartment
    grads, vol = barycentric_gradients(pts, cells)
    check_orientation(vol)
    nv = d + 1

    # element matrices, (m, nv, nv)
    eye = torch.eye(nv, dtype=dtype)
    mass_ref = (1 + eye) / ((d + 1) * (d + 2))
    mass_e = vol[:, None, None] * mass_ref
    diff = tissue.diffusivity.to(dtype)
    if diff.ndim == 1:
        stiff_e = vol[:, None, None] * diff[comp][:, None, None] * (grads @ grads.transpose(1, 2))
    else:
        if diff.shape[1] != d:
            raise ValueError(f"diffusivity tensors are {diff.shape[1]}×{diff.shape[1]}, the mesh is {d}-D")
        stiff_e = vol[:, None, None] * (grads @ diff[comp] @ grads.transpose(1, 2))
    inv_t2 = 1.0 / tissue.t2.to(dtype)
    relax_e = mass_e * inv_t2[comp][:, None, None]
    w3 = _triple_weights(d, dtype)
    x = pts[cells]  # (m, nv, d)
    mom_e = vol[None, :, None, None] * torch.einsum("ijl,mlk->kmij", w3, x)  # (d, m, nv, nv)

    cells_np = cells.cpu().numpy()
    r_cell = np.repeat(cells_np, nv, axis=1).ravel()
    c_cell = np.tile(cells_np, (1, nv)).ravel()

    # interface exchange: κ ∫_Γ (u − u')(v − v'), facet mass on (d−1)-simplices
    fac = mesh.interface_facets
    blocks_r, blocks_c = [r_cell], [c_cell]
    q_vals = None
    if fac.shape[0] and float(tissue.permeability.detach().abs().max()) > 0:
        ic = mesh.interface_compartments
        kappa = tissue.permeability.to(dtype)[ic[:, 0], ic[:, 1]]
        rho = tissue.density.detach()
        permeable = kappa.detach() > 0
        if bool((rho[ic[permeable, 0]] != rho[ic[permeable, 1]]).any()):
            raise ValueError("a permeable interface joins compartments of different density; not supported")
        from .mesh import facet_measures

        area = facet_measures(pts, fac[:, 0, :])
        fm_ref = (1 + torch.eye(d, dtype=dtype)) / (d * (d + 1))
        fm = (kappa * area)[:, None, None] * fm_ref  # (f, d, d)
        a = fac[:, 0, :].cpu().numpy()
        b = fac[:, 1, :].cpu().numpy()
        rr, cc, vv = [], [], []
        for s1, s2, sign in ((a, a, 1.0), (b, b, 1.0), (a, b, -1.0), (b, a, -1.0)):
            rr.append(np.repeat(s1, d, axis=1).ravel())
            cc.append(np.tile(s2, (1, d)).ravel())
            vv.append(sign * fm.reshape(-1))
        blocks_r.append(np.concatenate(rr))
        blocks_c.append(np.concatenate(cc))
        q_vals = torch.cat(vv)

    rows, cols, nnz, slots = _pattern(blocks_r, blocks_c, n)
    mass = _scatter(nnz, slots[0], mass_e.reshape(-1))
    stiffness = _scatter(nnz, slots[0], stiff_e.reshape(-1))
    relaxation = _scatter(nnz, slots[0], relax_e.reshape(-1))
    moments = _scatter(nnz, slots[0], mom_e.reshape(d, -1))
    flux = _scatter(nnz, slots[1], q_vals) if q_vals is not None else torch.zeros(nnz, dtype=dtype)

    density = tissue.density.to(dtype)[mesh.node_compartment]
    weights = torch.zeros(n, dtype=dtype).index_add(0, torch.as_tensor(r_cell), mass_e.reshape(-1))

    # boundary flux h_k = ∫ n_k φ_i over boundary and interface facets: |F|·n/d per facet vertex
    facets, _, area_normal = outward_area_normals(mesh, grads, vol)
    h = torch.zeros(d, n, dtype=dtype)
    if facets.shape[0]:
        h = h.index_add(1, facets.reshape(-1), (area_normal / d).repeat_interleave(d, dim=0).T)

    return FEMatrices(
        rows=rows,
        cols=cols,
        n=n,
        mass=mass,
        stiffness=stiffness,
        flux=flux,
        relaxation=relaxation,
        moments=moments,
        density=density,
        weights=weights,
        boundary_flux=h,
        node_compartment=mesh.node_compartment,
    )
