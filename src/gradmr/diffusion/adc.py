"""Apparent diffusion coefficients without simulating a signal: HADC, the matrix-formalism tensor, and the STA.

All three are per compartment and assume impermeable membranes (κ = 0, each compartment on its own) and isotropic D.

- :func:`hadc` — the homogenised ADC (Schiavi et al. 2016), the exact b → 0 limit of the signal's ADC. Its model
  is the diffusion equation for ω with the source D(d·n)F(t) on the compartment's boundary; in the Neumann eigenbasis
  ω's modes are convolutions of F with e^{−λt}, so ADC = D − D²/(V∫F²)·Σ_k h_k² I_F(λ_k) with h_k = ∮(d·n)φ_k and
  I_F the sequence's F-kernel. Truncation drops only small high-mode corrections, so few modes suffice.
- :func:`mf_adc_tensor` — the matrix formalism's Gaussian (second-order) effective tensor,
  D_ij = Σ_k B⁽ⁱ⁾_0k B⁽ʲ⁾_0k I_f(λ_k)/∫F² with B_0k = ∫x φ_k/√V. Equal to HADC when all modes are kept (the two are
  related mode by mode through λ∫xφ = D∮nφ); truncated it converges more slowly. Isotropic for a ball.
- :func:`sta_adc` — the short-time approximation D(1 − 4/(3√π)·√D·(A_d/V)·C) with A_d = ∮(d·n)² and C the
  sequence's STA coefficient (√(Δ−…) for PGSE, finite-pulse corrected).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .assembly import FEMatrices, outward_area_normals
from .compartments import Compartments
from .mesh import Mesh
from .solvers.mf import ModalBasis

__all__ = ["hadc", "mf_adc_tensor", "sta_adc", "directional_surface"]


def _isotropic(tissue: Compartments) -> torch.Tensor:
    if tissue.diffusivity.ndim != 1:
        raise ValueError("HADC / MF-ADC / STA here need isotropic (scalar) diffusivities per compartment")
    return tissue.diffusivity.detach().to(torch.float64)


def _unit(direction, dim: int) -> np.ndarray:
    d = np.asarray(torch.as_tensor(direction, dtype=torch.float64).detach(), dtype=np.float64).reshape(-1)
    if d.shape != (dim,) or not np.all(np.isfinite(d)) or np.linalg.norm(d) == 0:
        raise ValueError(f"direction must be a finite nonzero {dim}-vector, got {d}")
    return d / np.linalg.norm(d)


def _compartment_volumes(fe: FEMatrices, n_comp: int) -> np.ndarray:
    w = fe.weights.detach().numpy()
    return np.bincount(fe.node_compartment.numpy(), weights=w, minlength=n_comp)


def hadc(fe: FEMatrices, tissue: Compartments, sequence, direction, *, n_steps: int = 2000) -> torch.Tensor:
    """Homogenised ADC (m²/s) of each compartment along ``direction``: (n_compartments,).

    Solves the HADC model on the full FE space (no modal truncation) by Crank–Nicolson with about ``n_steps`` steps
    aligned to the sequence's intervals: M ω' = −K ω + F(t)·D h_d, ω(0) = 0, then
    ADC = D − D/(V∫F²)·∫F(t) h_dᵀω(t) dt (trapezoid rule, second order like the time stepping).
    Membranes are treated as impermeable (each compartment on its own).
    """
    import scipy.sparse.linalg

    dvec = _isotropic(tissue).numpy()
    u = _unit(direction, fe.dim)
    comp = fe.node_compartment.numpy()
    h = u @ fe.boundary_flux.detach().numpy()
    src = dvec[comp] * h
    m = fe.to_scipy(fe.mass).tocsc()
    k = fe.to_scipy(fe.stiffness).tocsc()
    durations, values = sequence.intervals()
    total = float(np.sum(durations))
    # step edges: each interval split into ≥ 1 equal steps, about n_steps in all
    edges = [0.0]
    for tau in durations:
        n_sub = max(1, int(math.ceil(n_steps * tau / total)))
        edges.extend(edges[-1] + tau * np.arange(1, n_sub + 1) / n_sub)
    t = np.asarray(edges)
    # F(t) at the edges: f is constant on each interval, so F is exactly piecewise linear
    bounds = np.concatenate([[0.0], np.cumsum(durations)])
    f_cum = np.concatenate([[0.0], np.cumsum(np.asarray(values) * np.asarray(durations))])
    big_f = np.interp(t, bounds, f_cum)
    factors: dict[float, object] = {}
    omega = np.zeros(fe.n)
    acc = np.zeros(tissue.n)  # ∫F h_cᵀω dt per compartment
    h_by_comp = np.stack([h * (comp == c) for c in range(tissue.n)])  # (K, n): each compartment's own boundary
    prev = np.zeros(tissue.n)
    for i in range(len(t) - 1):
        step = t[i + 1] - t[i]
        key = round(step, 15)
        if key not in factors:
            factors[key] = (scipy.sparse.linalg.splu(m + 0.5 * step * k), m - 0.5 * step * k)
        lu, rhs_m = factors[key]
        omega = lu.solve(rhs_m @ omega + 0.5 * step * (big_f[i] + big_f[i + 1]) * src)
        cur = big_f[i + 1] * (h_by_comp @ omega)
        acc += 0.5 * step * (prev + cur)
        prev = cur
    vol = _compartment_volumes(fe, tissue.n)
    f2 = float(sequence.int_F2())
    return torch.as_tensor(dvec - dvec * acc / (vol * f2))


def mf_adc_tensor(fe: FEMatrices, basis: ModalBasis, tissue: Compartments, sequence, points: torch.Tensor):
    """The matrix formalism's effective diffusion tensor per compartment, (n_compartments, dim, dim) in m²/s.

    ``points`` are the mesh nodes (n, dim) in m; ``basis`` the Neumann basis (``include_flux=False``).
    """
    _isotropic(tissue)
    x = points.detach().numpy()
    mphi = fe.to_scipy(fe.mass) @ basis.phi.numpy()  # (n, p)
    kern = np.asarray(sequence.kernel_f(basis.eigenvalues.numpy()), dtype=np.float64)
    f2 = float(sequence.int_F2())
    vol = _compartment_volumes(fe, tissue.n)
    comp = fe.node_compartment.numpy()
    out = np.empty((tissue.n, fe.dim, fe.dim))
    for c in range(tissue.n):
        b = (x * (comp == c)[:, None]).T @ mphi  # (dim, p) = ∫x φ_k over compartment c
        out[c] = (b * kern) @ b.T / (vol[c] * f2)
    return torch.as_tensor(out)


def directional_surface(mesh: Mesh, direction) -> torch.Tensor:
    """A_d/V per compartment, in 1/m: ∮(d·n)² dA over each compartment's boundary divided by its volume."""
    u = torch.as_tensor(_unit(direction, mesh.dim))
    _, owner, an = outward_area_normals(mesh)
    area = an.norm(dim=1)
    ad = (an @ u) ** 2 / area
    comp = mesh.cell_compartment[owner]
    surf = torch.zeros(mesh.n_compartments, dtype=ad.dtype).index_add(0, comp, ad)
    return surf / mesh.volumes()


def sta_adc(mesh: Mesh, tissue: Compartments, sequence, direction) -> torch.Tensor:
    """Short-time-approximation ADC (m²/s) per compartment: D(1 − 4/(3√π)·√D·(A_d/V)·C)."""
    dvec = _isotropic(tissue)
    coef = float(sequence.sta_coefficient())
    sv = directional_surface(mesh, direction).detach()
    return dvec * (1 - 4.0 / (3.0 * math.sqrt(math.pi)) * torch.sqrt(dvec) * sv * coef)
