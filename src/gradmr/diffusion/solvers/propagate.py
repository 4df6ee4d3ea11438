"""Exact propagation of a Galerkin-reduced Bloch–Torrey system through a piecewise-constant gradient profile.

Given a fixed basis Φ (n, p) — Laplace eigenfunctions (matrix formalism) or the identity (dense oracle) — the
reduced system is Φᵀ M Φ ν' = −Φᵀ (K + Q + R + i q f(t) J_d) Φ ν. With the Cholesky factor L of Φᵀ M Φ and y = Lᵀν
it becomes y' = −(Ã + i q f Ĵ_d) y, propagated exactly over each interval of constant f by ``matrix_exp``:
y(TE) = E_K … E_1 y(0), E_m = exp(−τ_m (Ã + i q f_m Ĵ_d)). Everything is torch, so gradients reach the matrices
(and through them the geometry and the tissue parameters) with Φ frozen. Ã and Ĵ are real, so
exp(−τ(Ã − i q f Ĵ)) is the complex conjugate of exp(−τ(Ã + i q f Ĵ)): one exponential serves both lobes of a PGSE.

For larger bases (≳ 50 modes with tens of encodings) the intervals with a gradient are instead applied to the states
as actions y ← exp(−τA) y by batched Arnoldi with adaptive substeps (:func:`_krylov_apply`): no (S, p, p) stack is
formed, one matrix product (S, p) @ (p, (1 + dim) p) per Krylov vector serves every encoding, and the backward pass is
an adjoint Krylov propagation. Both routes are exact to round-off (≈ 1e-12 relative); :func:`propagate` picks the
cheaper by a cost model.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..assembly import FEMatrices

__all__ = ["ReducedSystem", "reduce", "propagate", "METHODS"]


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


def _csr_rows(rows: torch.Tensor, cols: torch.Tensor, n: int) -> torch.Tensor | None:
    """CSR row pointers of a pattern given in row-major order (columns ascending in each row), else None."""
    if rows.numel() == 0:
        return None
    key = rows * n + cols
    if not bool((key[1:] > key[:-1]).all()):
        return None
    crow = torch.zeros(n + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return crow


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """An (n, n) torch CSR matrix (PyTorch's "beta" warning about sparse CSR silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, values, (n, n), check_invariants=False)


class _Project(torch.autograd.Function):
    """Φᵀ A_m Φ for a stack of sparse matrices A_m (values (k, nnz) on one pattern), with a lean backward.

    The gradient of a value at (r, c) is Φ[r]·(G Φ[c]) = (Φ G Φᵀ)[r, c] on the pattern: a sampled dense product
    (``torch.sparse.sampled_addmm`` on the CSR pattern; ≈ 13× a gather of (nnz, p) rows at 20k nodes), with the gather
    as the fallback for a pattern not in row-major order.
    """

    @staticmethod
    def forward(ctx, values, rows, cols, n, phi):
        crow = _csr_rows(rows, cols, n)
        out = []
        for v in values:
            if crow is not None:
                a = _csr(crow, cols, v, n)
                out.append(phi.T @ (a @ phi))
            else:
                a = torch.sparse_coo_tensor(
                    torch.stack([rows, cols]), v, (n, n), check_invariants=False, is_coalesced=True
                )
                out.append(phi.T @ torch.sparse.mm(a, phi))
        ctx.save_for_backward(rows, cols, phi)
        ctx.crow = crow
        ctx.n = n
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad):
        rows, cols, phi = ctx.saved_tensors
        crow = ctx.crow
        grads = []
        if crow is not None:
            pattern = _csr(crow, cols, torch.zeros(cols.shape[0], dtype=phi.dtype), ctx.n)
            phi_t = phi.T.contiguous()
        for g in grad:
            pg = phi @ g  # (n, p): row r of ΦG
            if crow is not None:
                grads.append(torch.sparse.sampled_addmm(pattern, pg, phi_t, beta=0.0).values())
            else:
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


#: Above this many distinct (duration, |f|) intervals (smooth profiles such as cos-OGSE in 2 × 200 pieces), ``auto``
#: applies the intervals to the state (Krylov action, or Taylor series) instead of one matrix exponential each.
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


#: Largest Krylov dimension of one :func:`_krylov_apply` substep.
KRYLOV_DIM = 30
#: Krylov dimensions at which a basis stops early when the whole remaining interval already meets the tolerance.
KRYLOV_CHECKS = (4, 8, 12, 16, 20, 25)
#: Substep candidates tried per Krylov round: h_max·2^(−i/2), i < KRYLOV_CANDIDATES (a factor 2^(−5.5) ≈ 1/45 range).
KRYLOV_CANDIDATES = 12


def _realified(a: torch.Tensor, j: torch.Tensor):
    """x ↦ Â x, Â = [[a, −J], [J, a]] the real form of a + iJ, J = Σ_k w_k j_k, for rows x = [Re v | Im v] (n, 2p).

    a (p, p) and j (dim, p, p) real; per-row weights w (n, dim). One real product (2n, p) @ (p, (1 + dim) p) per
    call (the real and imaginary parts as rows, a, j_1 … j_dim side by side as columns); no (n, p, p) stack is formed.
    The transpose Âᵀ is ``_realified(a.T, j.transpose(1, 2))`` with weights −w.
    """
    p, dim = a.shape[0], j.shape[0]
    big = torch.cat([a.T, *j.transpose(1, 2)], dim=1)  # (p, (1 + dim) p)

    def op(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        z = (x.reshape(2 * n, p) @ big).view(n, 2, 1 + dim, p)
        jz = (z[:, :, 1:] * w[:, None, :, None]).sum(2)  # (n, 2, p): J Re v, J Im v
        return torch.cat([z[:, 0, 0] - jz[:, 1], z[:, 1, 0] + jz[:, 0]], dim=1)

    return op


def _arnoldi(op, x: torch.Tensor, m: int, thresh: float, converged=None):
    """Batched Arnoldi (Gram–Schmidt with one re-orthogonalisation pass) on the rows of x (n, N), no autograd.

    Returns β = ‖x‖ (n,), the orthonormal basis V (n, k + 1, N) and the Hessenberg matrix H (n, k + 1, k) with
    A V_k = V_{k+1} H, where k = m or the first k in :data:`KRYLOV_CHECKS` at which ``converged(β, H)`` is True.
    A subdiagonal entry at or below ``thresh`` (happy breakdown: the Krylov space is invariant to that accuracy) is
    set to 0 and the next basis vector to 0.
    """
    n = x.shape[0]
    beta = x.norm(dim=1)
    basis = x.new_zeros(n, m + 1, x.shape[1])
    hess = x.new_zeros(n, m + 1, m)
    basis[:, 0] = x / torch.where(beta > 0, beta, 1.0)[:, None]
    for k in range(m):
        w = op(basis[:, k])
        v = basis[:, : k + 1]
        h = (v @ w[:, :, None])[:, :, 0]
        w -= (h[:, None, :] @ v)[:, 0]
        h2 = (v @ w[:, :, None])[:, :, 0]
        w -= (h2[:, None, :] @ v)[:, 0]
        norm = w.norm(dim=1)
        ok = norm > thresh
        basis[:, k + 1] = torch.where(ok[:, None], w / torch.where(ok, norm, 1.0)[:, None], 0.0)
        hess[:, : k + 1, k] = h + h2
        hess[:, k + 1, k] = torch.where(ok, norm, 0.0)
        if k + 1 < m and (
            not bool(ok.any())
            or (converged is not None and k + 1 in KRYLOV_CHECKS and converged(beta, hess[:, : k + 2, : k + 1]))
        ):
            m = k + 1
            break
    return beta, basis[:, : m + 1], hess[:, : m + 1, :m]


def _augmented(hess: torch.Tensor) -> torch.Tensor:
    """[[−H_k, 0], [h_{k+1,k} e_kᵀ, 0]] (n, k + 1, k + 1): exp(h ·) e_1 = (exp(−hH_k) e_1, ∫_0^h ρ) with the residual
    coefficient ρ(t) = h_{k+1,k} e_kᵀ exp(−tH_k) e_1."""
    n, k = hess.shape[0], hess.shape[2]
    g = hess.new_zeros(n, k + 1, k + 1)
    g[:, :k, :k] = -hess[:, :k]
    g[:, k, k - 1] = hess[:, k, k - 1]
    return g


def _error_estimate(u: torch.Tensor, hess: torch.Tensor, beta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """β max(|∫_0^h ρ|, h |ρ(h)|) from u = exp(h G) e_1 of :func:`_augmented` (..., k + 1) (broadcast over h)."""
    k = hess.shape[2]
    sub = hess[:, k, k - 1].abs()
    if u.ndim == 3:
        sub, beta = sub[:, None], beta[:, None]
    return beta * torch.maximum(u[..., k].abs(), h * sub * u[..., k - 1].abs())


def _krylov_step(
    hess: torch.Tensor, beta: torch.Tensor, h_max: torch.Tensor, bound_rate: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest substep h = h_max·2^(−i/2), i < :data:`KRYLOV_CANDIDATES`, with error estimate ≤ bound_rate·h.

    The error of β V_k exp(−h H_k) e_1 is estimated by β max(|∫_0^h ρ|, h |ρ(h)|) (the integrated and the final
    residual). The exponentials at the two smallest candidates are squared up to the others. hess (n, k + 1, k),
    beta (n,), h_max (n,), bound_rate (n,); returns h (n,), 0 where even the smallest candidate fails, and
    exp(−hH_k) e_1 (n, k).
    """
    n, c = hess.shape[0], KRYLOV_CANDIDATES
    g = _augmented(hess)
    h = h_max[:, None] * 2.0 ** (-0.5 * torch.arange(c, dtype=hess.dtype))  # (n, c), largest first
    base = torch.linalg.matrix_exp(h[:, c - 2 :, None, None] * g[:, None])  # (n, 2, k + 1, k + 1)
    cols = [None] * c
    for odd in (0, 1):
        e, i = base[:, odd], c - 2 + odd
        while i >= 0:
            cols[i] = e[:, :, 0]
            i -= 2
            if i >= 0:
                e = e @ e
    u = torch.stack(cols, 1)  # (n, c, k + 1)
    good = _error_estimate(u, hess, beta, h) <= bound_rate[:, None] * h
    first = good.to(torch.int8).argmax(1)
    u = u[torch.arange(n), first, :-1]
    return torch.where(good.any(1), h.gather(1, first[:, None])[:, 0], 0.0), u


def _krylov_rounds(op, w, x, remaining, tau, tol, m, on_round=None):
    """Rows x (n, N) ← exp(−r_i Â_i) x_i for per-row durations r (n,) s, Â_i = ``op(·, w_i)``; no autograd.

    Each row advances on its own substeps: per round, the rows still short of their duration build a Krylov basis
    of their state (at most m vectors, fewer when the whole remaining duration already meets the tolerance), take the
    largest candidate substep h whose a-posteriori estimate is below tol‖x‖h/τ, and become β V exp(−hH) e_1.
    ``on_round(rows, beta, basis, hess, h, rem)`` sees each round (rem: the durations left before the substep).
    """
    remaining = remaining.clone()
    guess = remaining.clone()
    thresh = 1e-3 * tol / tau  # dropping a coupling this small changes the state by ≤ 1e-3 tol ‖x‖
    x = x.clone()
    while True:
        rows = torch.nonzero(remaining > 0).reshape(-1)
        if rows.numel() == 0:
            return x
        rem = remaining[rows]
        wr = w[rows]
        whole = {}

        def converged(beta, hess, rem=rem, whole=whole):
            u = torch.linalg.matrix_exp(rem[:, None, None] * _augmented(hess))[:, :, 0]
            if bool((_error_estimate(u, hess, beta, rem) <= tol * beta * rem / tau).all()):
                whole["u"] = u[:, :-1]
                return True
            return False

        beta, basis, hess = _arnoldi(lambda v, wr=wr: op(v, wr), x[rows], m, thresh, converged)
        k = hess.shape[2]
        if "u" in whole and whole["u"].shape[1] == k:
            h, ex = rem, whole["u"]
        else:
            h_max = torch.minimum(guess[rows], rem)
            h, ex = _krylov_step(hess, beta, h_max, tol * beta / tau)
            while bool((h == 0).any()):
                bad = torch.nonzero(h == 0).reshape(-1)
                h_max[bad] *= 2.0 ** (-0.5 * KRYLOV_CANDIDATES)
                if bool((h_max[bad] < 1e-12 * tau).any()):
                    raise RuntimeError("Krylov substep selection failed (substep below 1e-12 of the interval)")
                h[bad], ex[bad] = _krylov_step(hess[bad], beta[bad], h_max[bad], tol * beta[bad] / tau)
            guess[rows] = torch.where(h == h_max, 4.0 * h, 1.5 * h)
        remaining[rows] = torch.where(h >= rem, 0.0, rem - h)
        x[rows] = beta[:, None] * (ex[:, None, :] @ basis[:, :k])[:, 0]
        if on_round is not None:
            on_round(rows, beta, basis[:, :k], hess[:, :k], h, rem)


def _gradient_piece(grads, w, jt, forward, sub, gamma, basis_a, hess_a, h, t_b) -> None:
    """Add the piece [t_b − h, t_b] of one forward substep to ∂L/∂a, ∂L/∂j and ∂L/∂w (in place, no autograd).

    On the piece the state is x(t) = β V exp(−t H) e_1 (``forward`` = (β, V, H) of the substep, t from its start) and
    the adjoint μ(t) = γ W exp(−(t_b − t) G) e_1 (the adjoint basis W = ``basis_a``, G = ``hess_a``), so ∂L/∂Â =
    −∫ μ xᵀ dt = −W C Vᵀ with C = γβ ∫ exp(−(t_b − t)G) e_1 e_1ᵀ exp(−tHᵀ) dt, the upper-right block of one
    exponential of [[−G, e_1 u_aᵀ], [0, −Hᵀ]] (Van Loan; u_a = exp(−t_a H) e_1). With Â = [[a, −J], [J, a]]:
    ∂L/∂a = Σ (∂L/∂Â)_rr + (∂L/∂Â)_ii and ∂L/∂J = (∂L/∂Â)_ir − (∂L/∂Â)_ri, contracted over the batch by matrix
    products of (rows · k, p) blocks. ``sub`` indexes the substep's rows; w (n, dim) are their weights.
    """
    g_a, g_j, g_w = grads
    beta_f, basis_f, hess_f = forward
    n, ka, kf = sub.numel(), hess_a.shape[2], hess_f.shape[2]
    p = basis_f.shape[2] // 2
    u_a = torch.linalg.matrix_exp(-(t_b - h)[:, None, None] * hess_f[sub])[:, :, 0]  # x(t_a) = β V u_a
    blk = hess_f.new_zeros(n, ka + kf, ka + kf)
    blk[:, :ka, :ka] = -hess_a
    blk[:, 0, ka:] = u_a
    blk[:, ka:, ka:] = -hess_f[sub].transpose(1, 2)
    c = torch.linalg.matrix_exp(h[:, None, None] * blk)[:, :ka, ka:] * (gamma * beta_f[sub])[:, None, None]
    v = basis_f[sub].reshape(n, kf, 2, p)
    pm = (c.transpose(1, 2) @ basis_a).reshape(n, kf, 2, p)  # −∂L/∂Â = Σ_l pm_l v_lᵀ
    g_a.sub_(pm.reshape(-1, p).T @ v.reshape(-1, p))
    lhs = torch.stack([pm[:, :, 1], -pm[:, :, 0]], 2)  # (n, kf, 2, p): rows paired with [v_r, v_i]
    wl = (w[sub].T[:, :, None, None, None] * lhs).reshape(w.shape[1], -1, p)  # (dim, n kf 2, p)
    g_j.sub_(wl.transpose(1, 2) @ v.reshape(-1, p))
    if g_w is not None:
        jv = (v.reshape(-1, p) @ jt).view(n, kf, 2, -1, p)  # j_d v
        g_w[sub] -= (lhs[:, :, :, None] * jv).sum((1, 2, 4))


def _one_thread(fn):
    """Run ``fn`` on one intra-op thread: the Krylov rounds are thousands of small products, which a second thread
    slows down (240 encodings, 296 modes: 4.0–4.3 s on one thread, 5.2–8.0 s on two, same machine and run)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1:
            return fn(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


class _KrylovAction(torch.autograd.Function):
    """x ← exp(−τÂ) x for rows x (S, 2p), Â the real form of a + i Σ_k w_k j_k; backward by the adjoint.

    Reverse mode through Arnoldi amplifies round-off (the basis is far more sensitive to a than the result is;
    measured gradient errors 1e-7 … 1e-4 on a 213-mode ball). The backward here instead propagates the adjoint
    μ(t) = exp(−(τ−t)Âᵀ) ḡ backwards with its own Krylov substeps, each inside one forward substep, and accumulates
    ∂L/∂Â = −∫ μ(t) x(t)ᵀ dt exactly on each piece (:func:`_gradient_piece`), contracted to the gradients of a, j
    and w without forming any p × p matrix per encoding.
    """

    @staticmethod
    @_one_thread
    def forward(ctx, a, j, w, x, tau, tol, m):
        records = []
        x_out = _krylov_rounds(
            _realified(a, j),
            w,
            x,
            torch.full((x.shape[0],), tau, dtype=x.dtype),
            tau,
            tol,
            m,
            on_round=lambda rows, beta, basis, hess, h, rem: records.append((rows, beta, basis, hess, h)),
        )
        ctx.save_for_backward(a, j, w)
        ctx.records, ctx.tau, ctx.tol, ctx.m = records, tau, tol, m
        return x_out

    @staticmethod
    @torch.autograd.function.once_differentiable
    @_one_thread
    def backward(ctx, grad):
        a, j, w = ctx.saved_tensors
        need_w = ctx.needs_input_grad[2]
        op_t = _realified(a.T, j.transpose(1, 2))
        jt = torch.cat(list(j.transpose(1, 2)), dim=1) if need_w else None  # (p, dim p)
        g_a, g_j = torch.zeros_like(a), torch.zeros_like(j)
        g_w = torch.zeros_like(w) if need_w else None
        mu = grad.clone()
        need_matrices = any(ctx.needs_input_grad[:3])
        for rows, beta, basis, hess, h in reversed(ctx.records):
            g_wr = torch.zeros_like(w[rows]) if need_w else None
            piece = functools.partial(_gradient_piece, (g_a, g_j, g_wr), w[rows], jt, (beta, basis, hess))
            piece = piece if need_matrices else None
            mu[rows] = _krylov_rounds(op_t, -w[rows], mu[rows], h, ctx.tau, ctx.tol, ctx.m, on_round=piece)
            if need_w:
                g_w[rows] += g_wr
        need_a, need_j = ctx.needs_input_grad[:2]
        return g_a if need_a else None, g_j if need_j else None, g_w, mu, None, None, None


def _krylov_apply(
    a: torch.Tensor,
    j: torch.Tensor,
    direction: torch.Tensor,
    s: torch.Tensor,
    tau: float,
    y: torch.Tensor,
    tol: float = 1e-12,
    m: int = KRYLOV_DIM,
) -> torch.Tensor:
    """y ← exp(−τ(a + i s Σ_k d_k j_k)) y for a batch, by Arnoldi with adaptive substeps (no (S, p, p) stack).

    Args:
        a: (p, p) real, 1/s, with positive semidefinite symmetric part (then ‖exp(−tA)‖₂ ≤ 1: errors do not grow).
        j: (dim, p, p) real, m.
        direction: (S, dim) gradient directions.
        s: (S,) real, q·f in rad/(s·m).
        tau: interval length in s.
        y: (S, p) complex states.
        tol: error per interval relative to ‖y‖ (a substep of length h is accepted when its a-posteriori estimate is
            below tol·‖y‖·h/τ; at least 100 machine epsilons). Round-off adds ≈ 1e-16·τ‖a‖ (≈ 1e-13 … 1e-12 for
            τ‖a‖ = 100 … 600).
        m: largest Krylov dimension per substep.

    The complex system is propagated in its real form [Re y | Im y] (2p), whose Krylov spaces give the same
    polynomial accuracy (the spectrum is closed under conjugation). The substep lengths are chosen from detached values
    (the result does not depend on them to the tolerance). Differentiable in a, j, direction, s and y: the backward
    pass is an adjoint Krylov propagation of the same accuracy (:class:`_KrylovAction`).
    """
    if tau <= 0:
        return y
    p = y.shape[1]
    m = max(1, min(m, 2 * p))
    tol = max(tol, 100.0 * torch.finfo(a.dtype).eps)
    cdtype = torch.complex128 if a.dtype == torch.float64 else torch.complex64
    y = y.to(cdtype)
    x = _KrylovAction.apply(a, j, s[:, None] * direction, torch.cat([y.real, y.imag], dim=1), float(tau), tol, m)
    return torch.complex(x[:, :p], x[:, p:])


METHODS = ("auto", "expm", "krylov", "taylor")


#: Profiles of many distinct intervals use the Krylov action (instead of Taylor) from this many eigenmodes on.
KRYLOV_MANY_INTERVALS_MIN_MODES = 100


def _nearly_diagonal(a: torch.Tensor) -> bool:
    """True when a's off-diagonal part is below 5 % of its norm (a Laplace eigenbasis, not the stiff nodal basis)."""
    ad = a.detach()
    return float((ad - torch.diag_embed(ad.diagonal())).norm()) <= 0.05 * float(ad.norm())


def _auto(a: torch.Tensor, dim: int, n_enc: int, n_keys: int, n_intervals: int, tau_max: float, grad: bool) -> str:
    """The cheaper of ``"expm"`` and ``"krylov"`` by a cost model measured on one core (1331-node ball, 17–213 modes).

    expm: ≈ 3e-9 s · p²(p + 40) per encoding and distinct interval (× 6 with the backward). Krylov: ≈ 2.5 ms per
    interval plus 3.5e-10 s · (1 + dim) p² per encoding and matrix–vector product (× 2.8 with the backward); ≈ 50
    products per interval when a is nearly diagonal (a Laplace eigenbasis: the state stays in the slow modes), else
    ≈ 20 + 13 √(τ ‖a‖_∞) (the nodal basis of the dense route, where the stiff modes are excited).
    """
    p = a.shape[0]
    ad = a.detach()
    if _nearly_diagonal(ad):
        products = 50.0
    else:
        products = 20.0 + 13.0 * math.sqrt(tau_max * float(ad.abs().sum(1).max()))
    expm = n_keys * n_enc * 3e-9 * p**2 * (p + 40) * (6.0 if grad else 1.0)
    krylov = n_intervals * (2.5e-3 + n_enc * products * 3.5e-10 * (1 + dim) * p**2) * (2.8 if grad else 1.0)
    return "krylov" if krylov < expm else "expm"


def propagate(
    system: ReducedSystem,
    q: torch.Tensor,
    direction: torch.Tensor,
    durations: np.ndarray,
    values: np.ndarray,
    *,
    method: str = "auto",
    tol: float = 1e-12,
) -> torch.Tensor:
    """Signals cᵀ y(TE) for S encodings: q (S,) in rad/(s·m), direction (S, dim); returns complex (S,).

    ``durations`` (K,) in s and ``values`` (K,) define the piecewise-constant profile f. Intervals with f = 0 share
    one real matrix exponential. The others, by ``method``:

    - ``"expm"``: one (S, p, p) complex matrix exponential per distinct (duration, |f|) pair (f < 0 uses the complex
      conjugate), applied to the states;
    - ``"krylov"``: the action exp(−τA) y per interval by Arnoldi with adaptive substeps (:func:`_krylov_apply`,
      error below ``tol`` ‖y‖ per interval), never forming an (S, p, p) stack;
    - ``"taylor"``: the action by a substepped Taylor series (for profiles of many short intervals);
    - ``"auto"``: above :data:`MAX_EXPONENTIALS` distinct pairs ``"krylov"`` in an eigenbasis of at least
      :data:`KRYLOV_MANY_INTERVALS_MIN_MODES` modes (cos-OGSE n = 2 in 400 intervals, 60 encodings, 213 modes: 12 s vs
      37 s by Taylor, equal to 3e-14) and ``"taylor"`` otherwise; else the cheaper of ``"expm"`` and
      ``"krylov"`` by a cost model (Krylov from ≈ 40–80 modes with tens of encodings, ≈ 20–40 with a backward pass;
      the conjugate trick makes expm relatively cheaper for profiles that repeat a lobe, e.g. double PGSE).

    All methods are exact to round-off (``tol`` bounds the Krylov error per interval relative to ‖y‖) and
    differentiable by autograd in the system, q and direction.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    a, j = system.a, system.j
    cdtype = torch.complex128 if a.dtype == torch.float64 else torch.complex64
    q = torch.as_tensor(q, dtype=a.dtype)
    direction = torch.as_tensor(direction, dtype=a.dtype)
    if direction.ndim == 1:
        direction = direction.expand(q.shape[0], -1)
    y = system.y0.to(cdtype).expand(q.shape[0], -1)
    durations = np.asarray(durations, dtype=float)
    values = np.asarray(values, dtype=float)
    if not bool((q.detach() != 0).any()) and not q.requires_grad:
        values = np.zeros_like(values)  # no gradient: only relaxation and diffusion act (the b = 0 reference)
    pulses = [(float(t), abs(float(f))) for t, f in zip(durations, values, strict=True) if t > 0 and f != 0]
    keys = set(pulses)
    if method == "auto":
        if len(keys) > MAX_EXPONENTIALS:
            method = "krylov" if _nearly_diagonal(a) and a.shape[0] >= KRYLOV_MANY_INTERVALS_MIN_MODES else "taylor"
        elif keys:
            grad = torch.is_grad_enabled() and any(t.requires_grad for t in (a, j, q, direction, system.y0, system.c))
            method = _auto(a, j.shape[0], q.shape[0], len(keys), len(pulses), max(t for t, _ in pulses), grad)
    if method == "taylor" and keys:
        jd = torch.einsum("sk,kij->sij", direction.detach(), j.detach())
        a_c, j_c = a.to(cdtype), j.to(cdtype)
        a_norm = float(a.detach().abs().sum(0).max())
        j_norm = jd.abs().sum(1).max(dim=1).values.numpy()
    if method == "expm" and keys:
        jd = torch.einsum("sk,kij->sij", direction, j)  # (S, p, p)
    cache: dict[tuple[float, float], torch.Tensor] = {}
    for tau, f in zip(durations, values, strict=True):
        if tau <= 0:
            continue
        if f != 0 and method == "taylor":
            y = _taylor_apply(a_c, j_c, direction, q * f, float(tau), y, a_norm, j_norm)
            continue
        if f != 0 and method == "krylov":
            y = _krylov_apply(a, j, direction, q * f, float(tau), y, tol=tol)
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
