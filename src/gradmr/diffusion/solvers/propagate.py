"""Exact propagation of a Galerkin-reduced Bloch–Torrey system through a piecewise-constant gradient profile.

Given a fixed basis Φ (n, p) — Laplace eigenfunctions (matrix formalism) or the identity (dense oracle) — the
reduced system is Φᵀ M Φ ν' = −Φᵀ (K + Q + R + i q f(t) J_d) Φ ν. With the Cholesky factor L of Φᵀ M Φ and y = Lᵀν
it becomes y' = −(Ã + i q f Ĵ_d) y, propagated exactly over each interval of constant f by ``matrix_exp``:
y(TE) = E_K … E_1 y(0), E_m = exp(−τ_m (Ã + i q f_m Ĵ_d)). Everything is torch, so gradients reach the matrices
(and through them the geometry and the tissue parameters) with Φ frozen. Ã and Ĵ are real, so
exp(−τ(Ã − i q f Ĵ)) is the complex conjugate of exp(−τ(Ã + i q f Ĵ)): one exponential serves both lobes of a PGSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..assembly import FEMatrices

__all__ = ["ReducedSystem", "reduce", "propagate"]


@dataclass(frozen=True)
class ReducedSystem:
    """The symmetrised reduced system y' = −(a + i q f Σ_k d_k j_k) y.

    Attributes:
        a: (p, p) real symmetric, 1/s (diffusion, exchange and relaxation).
        j: (dim, p, p) real symmetric, m (first moments).
        y0: (p,) initial state (density).
        c: (p,) signal functional: S = cᵀ y(TE).

    :attr:`s0` = cᵀ y0 is the signal at t = 0 (the total magnetisation Σρ|Ω| when Φ spans the constants).
    """

    a: torch.Tensor
    j: torch.Tensor
    y0: torch.Tensor
    c: torch.Tensor

    @property
    def s0(self) -> torch.Tensor:
        return self.c @ self.y0


class _Project(torch.autograd.Function):
    """Φᵀ A_m Φ for a stack of sparse matrices A_m (values (k, nnz) on one pattern), with a lean backward.

    The gradient of a value at (r, c) is Φ[r]·(G Φ[c]) — one gather and row-wise dot per matrix instead of autograd's
    (nnz, p) intermediates of a gather/scatter formulation.
    """

    @staticmethod
    def forward(ctx, values, rows, cols, n, phi):
        out = []
        for v in values:
            a = torch.sparse_coo_tensor(torch.stack([rows, cols]), v, (n, n), check_invariants=False, is_coalesced=True)
            out.append(phi.T @ torch.sparse.mm(a, phi))
        ctx.save_for_backward(rows, cols, phi)
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad):
        rows, cols, phi = ctx.saved_tensors
        grads = []
        for g in grad:
            pg = phi @ g  # (n, p): row r of ΦG
            grads.append((pg[rows] * phi[cols]).sum(dim=1))
        return torch.stack(grads), None, None, None, None


def _project(fe: FEMatrices, values: torch.Tensor, phi: torch.Tensor | None) -> torch.Tensor:
    """Φᵀ A Φ for values (nnz,) or (k, nnz); dense A when ``phi`` is None."""
    if phi is None:
        if values.ndim == 1:
            return fe.to_dense(values)
        return torch.stack([fe.to_dense(v) for v in values])
    if values.ndim == 1:
        return _Project.apply(values.unsqueeze(0), fe.rows, fe.cols, fe.n, phi)[0]
    return _Project.apply(values, fe.rows, fe.cols, fe.n, phi)


def reduce(fe: FEMatrices, phi: torch.Tensor | None = None) -> ReducedSystem:
    """Project ``fe`` onto the columns of ``phi`` (n, p) (``None``: the full nodal basis, i.e. the dense system).

    Differentiable in every value vector of ``fe``; ``phi`` is treated as a constant (frozen basis).
    """
    if phi is not None:
        phi = phi.detach().to(fe.mass.dtype)
    m = _project(fe, fe.mass, phi)
    a = _project(fe, fe.stiffness + fe.flux + fe.relaxation, phi)
    j = _project(fe, fe.moments, phi)
    b0 = fe.matmul(fe.mass, fe.density)
    w = fe.weights
    if phi is not None:
        b0 = phi.T @ b0
        w = phi.T @ w
    m = 0.5 * (m + m.T)
    chol = torch.linalg.cholesky(m)

    def sym(x: torch.Tensor) -> torch.Tensor:
        y = torch.linalg.solve_triangular(chol, x, upper=False)
        y = torch.linalg.solve_triangular(chol, y.transpose(-1, -2), upper=False)
        return 0.5 * (y + y.transpose(-1, -2))

    a_t = sym(a)
    j_t = sym(j)
    y0 = torch.linalg.solve_triangular(chol, b0[:, None], upper=False)[:, 0]
    c = torch.linalg.solve_triangular(chol, w[:, None], upper=False)[:, 0]
    return ReducedSystem(a=a_t, j=j_t, y0=y0, c=c)


#: Above this many distinct (duration, |f|) intervals (smooth profiles such as cos-OGSE in 2 × 1000 pieces), the
#: intervals are applied to the state by a Taylor series instead of one matrix exponential each.
MAX_EXPONENTIALS = 16


def _taylor_apply(
    a: torch.Tensor,
    j: torch.Tensor,
    direction: torch.Tensor,
    s: torch.Tensor,
    tau: float,
    y: torch.Tensor,
    a_norm: float,
    j_norm: np.ndarray,
) -> torch.Tensor:
    """y ← exp(−τ(a + i s Σ_k d_k j_k)) y by a truncated Taylor series with substeps (error below 1e-14 of ‖y‖).

    a (p, p) and j (dim, p, p) complex, direction (S, dim), s (S,) real (= q·f), y (S, p) complex;
    a_norm = ‖a‖₁, j_norm (S,) = ‖Σ d_k j_k‖₁. The direction sum is applied as dim matrix products on the whole
    batch, never forming the (S, p, p) stack.
    """
    theta = tau * (a_norm + float(np.max(np.abs(s.detach().numpy()) * j_norm)))
    n_sub = max(1, math.ceil(theta / 0.5))
    h = tau / n_sub
    x = theta / n_sub
    order, err, k = 1, x, 1  # smallest order with x^(k+1)/(k+1)! below 1e-16
    while err > 1e-16 and order < 40:
        k += 1
        err *= x / k
        order = k
    weights = (1j * s).to(y.dtype)[:, None] * direction.to(y.dtype).T[:, :, None]  # (dim, S, 1)
    a_t = a.T
    j_t = j.transpose(1, 2)
    for _ in range(n_sub):
        term, acc = y, y
        for k in range(1, order + 1):
            jterm = (term.unsqueeze(0) @ j_t) * weights  # (dim, S, p)
            term = (-h / k) * (term @ a_t + jterm.sum(0))
            acc = acc + term
        y = acc
    return y


def propagate(
    system: ReducedSystem,
    q: torch.Tensor,
    direction: torch.Tensor,
    durations: np.ndarray,
    values: np.ndarray,
) -> torch.Tensor:
    """Signals cᵀ y(TE) for S encodings: q (S,) in rad/(s·m), direction (S, dim); returns complex (S,).

    ``durations`` (K,) in s and ``values`` (K,) define the piecewise-constant profile f. One matrix exponential is
    computed per encoding and distinct (duration, |f|) pair; f = 0 intervals share one real exponential. Profiles with
    more than :data:`MAX_EXPONENTIALS` distinct pairs are applied interval by interval with a Taylor series.
    """
    a, j = system.a, system.j
    cdtype = torch.complex128 if a.dtype == torch.float64 else torch.complex64
    q = torch.as_tensor(q, dtype=a.dtype)
    direction = torch.as_tensor(direction, dtype=a.dtype)
    if direction.ndim == 1:
        direction = direction.expand(q.shape[0], -1)
    jd = torch.einsum("sk,kij->sij", direction, j)  # (S, p, p)
    y = system.y0.to(cdtype).expand(q.shape[0], -1)
    durations = np.asarray(durations, dtype=float)
    values = np.asarray(values, dtype=float)
    if not bool((q.detach() != 0).any()) and not q.requires_grad:
        values = np.zeros_like(values)  # no gradient: only relaxation and diffusion act (the b = 0 reference)
    keys = {(float(t), abs(float(f))) for t, f in zip(durations, values, strict=True) if t > 0}
    taylor = len(keys) > MAX_EXPONENTIALS
    if taylor:
        a_c, j_c = a.to(cdtype), j.to(cdtype)
        a_norm = float(a.detach().abs().sum(0).max())
        j_norm = jd.detach().abs().sum(1).max(dim=1).values.numpy()
    cache: dict[tuple[float, float], torch.Tensor] = {}
    for tau, f in zip(durations, values, strict=True):
        if tau <= 0:
            continue
        if taylor and f != 0:
            y = _taylor_apply(a_c, j_c, direction, q * f, float(tau), y, a_norm, j_norm)
            continue
        key = (float(tau), abs(float(f)))
        e = cache.get(key)
        if e is None:
            if f == 0:
                e = torch.linalg.matrix_exp(-tau * a).to(cdtype)
            else:
                gen = -tau * (a.to(cdtype) + 1j * (q * abs(f))[:, None, None].to(cdtype) * jd.to(cdtype))
                e = torch.linalg.matrix_exp(gen)
            cache[key] = e
        if f < 0:
            e = e.conj()
        y = (e @ y.unsqueeze(-1)).squeeze(-1) if e.ndim == 3 else y @ e.T
    return y @ system.c.to(cdtype)
