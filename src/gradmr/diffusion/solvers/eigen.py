"""The lowest eigenpairs of a sparse symmetric pencil, K φ = λ M φ with λ ≤ λ_max, by block shift-invert Lanczos.

This is the eigen-solve behind the matrix formalism. SciPy's ``eigsh`` (ARPACK) does the same job one vector at a
time: on a 20k-node ball with ≈ 300 wanted modes it spends ~1000 single right-hand-side triangular solves and BLAS-2
re-orthogonalisation. Here the same Krylov space is grown a block of ``block`` vectors at a time:

1. factorise S = K − σM once (σ < 0, so S is positive definite for a positive semi-definite K) with a nested
   dissection ordering from METIS (:mod:`pymetis`) when it is installed — about half the fill of SuperLU's minimum
   degree orderings on 3-D meshes — else SuperLU's ``MMD_AT_PLUS_A``;
2. block Lanczos on T = S⁻¹M, which is self-adjoint in the M inner product and maps λ to θ = 1/(λ − σ): each step is
   one multi-right-hand-side solve (BLAS-3 in SuperLU's supernodes; the columns split over worker threads, as
   SuperLU releases the GIL) and a full M-re-orthogonalisation against the whole basis (rows split over the
   threads), repeated only for a column that lost most of its norm (Daniel–Gragg–Kaufman–Stewart);
3. the projected matrix is block tridiagonal and comes for free from the orthogonalisation coefficients; its Ritz
   pairs give the standard Lanczos residual estimate ‖B_{j+1} s_last‖ without forming any vector. Iteration stops
   when every Ritz pair with λ ≤ λ_max (and the next ``guard`` ones) has a relative residual below ``tol``;
4. the Ritz vectors are formed once and refined by a Rayleigh–Ritz step on (K, M) (so the returned eigenvalues are
   Rayleigh quotients, upper bounds of the exact ones), and their true residuals are checked;
5. completeness: Sylvester's law of inertia counts the eigenvalues below λ_max exactly from the signs of the pivots
   of an LDLᵀ factorisation of K − λ_max M. If the Krylov space has missed a mode, iteration continues; if the count
   cannot be read (a pivot was needed) it is skipped and reported in ``info``.

The dense algebra runs on one BLAS thread (OpenBLAS threads on top of the worker threads made it slower). A thick
restart is not implemented: the basis grows to ``max_basis`` columns (default 10× the inertia count + 4 blocks; in
practice ≈ 3.7× the wanted modes, 436 MB at 45k nodes); beyond it :func:`lowest_eigenpairs` raises RuntimeError
(and :func:`~gradmr.diffusion.solvers.mf.eigenbasis` falls back to ``eigsh``).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from threadpoolctl import threadpool_limits

#: Default Lanczos block size: 16 needed the fewest solves at 5k–20k nodes (928 vs 1536 with 64 at 5k nodes).
DEFAULT_BLOCK = 16
#: Below this many unknowns the pencil is solved densely (scipy ``eigh``).
DENSE_MAX_NODES = 500
#: A Krylov basis of about this many times the wanted modes is needed; beyond n, solve densely instead.
KRYLOV_FACTOR = 5
#: ... but only up to this many unknowns (dense memory and time grow as n² and n³).
DENSE_SHARE_MAX_NODES = 6000
#: Re-orthogonalise a Lanczos block a second time when a column lost more than this fraction of its M-norm.
REORTHOGONALISE_BELOW = 0.7071

__all__ = [
    "DEFAULT_BLOCK",
    "DENSE_MAX_NODES",
    "EigenInfo",
    "SymmetricFactor",
    "fill_reducing_order",
    "factorize",
    "lowest_eigenpairs",
]


def fill_reducing_order(matrix: sp.spmatrix) -> np.ndarray | None:
    """A nested-dissection permutation of a structurally symmetric sparse matrix (METIS), or None without pymetis."""
    try:
        import pymetis
    except ImportError:  # pragma: no cover - pymetis is a core dependency; kept for stripped installs
        return None
    graph = sp.csr_matrix(matrix, copy=True)
    graph.setdiag(0)
    graph.eliminate_zeros()
    if graph.nnz == 0:
        return np.arange(graph.shape[0])
    order = pymetis.nested_dissection(
        pymetis.CSRAdjacency(graph.indptr.astype(np.int64), graph.indices.astype(np.int64))
    )
    perm = np.asarray(order[0] if isinstance(order, tuple) else order, dtype=np.int64)
    if perm.shape != (graph.shape[0],) or not np.array_equal(np.sort(perm), np.arange(graph.shape[0])):
        return None  # pragma: no cover - defensive: a malformed ordering falls back to SuperLU's own
    return perm


@dataclass
class SymmetricFactor:
    """A sparse LU of a symmetric matrix with a symmetric (diagonal-pivot) elimination order.

    Attributes:
        lu: SuperLU object of P S Pᵀ (``perm`` is P; identity ordering inside SuperLU when ``perm`` is given).
        perm: (n,) symmetric permutation, or None when SuperLU chose its own column order.
        symmetric_pivots: True when SuperLU kept every diagonal pivot, so that U's diagonal is D of S = L D Lᵀ.
    """

    lu: object
    perm: np.ndarray | None
    symmetric_pivots: bool

    def solve(self, rhs: np.ndarray, pool: ThreadPoolExecutor | None = None, workers: int = 1) -> np.ndarray:
        """S⁻¹ rhs for rhs of shape (n,) or (n, k).

        With a ``pool`` of ``workers`` > 1 threads the columns are split over them (SuperLU releases the GIL and its
        own solve is single-threaded): ≈ 1.7× on 2 cores for 16 columns at 20k nodes.
        """
        if self.perm is not None:
            rhs = rhs[self.perm]
        if pool is not None and workers > 1 and rhs.ndim == 2 and rhs.shape[1] >= 2 * workers:
            parts = np.array_split(np.arange(rhs.shape[1]), workers)
            x = np.concatenate(list(pool.map(lambda c: self.lu.solve(np.asfortranarray(rhs[:, c])), parts)), axis=1)
        else:
            x = self.lu.solve(np.asfortranarray(rhs))
        if self.perm is None:
            return x
        out = np.empty_like(x)
        out[self.perm] = x
        return out

    def n_negative(self) -> int | None:
        """Number of negative eigenvalues of S (Sylvester's inertia), or None when the pivots were not symmetric."""
        if not self.symmetric_pivots:
            return None
        return int((self.lu.U.diagonal() < 0).sum())


def factorize(matrix: sp.spmatrix, perm: np.ndarray | None = None) -> SymmetricFactor:
    """Factorise a symmetric sparse matrix with diagonal pivots in a fill-reducing symmetric order.

    ``perm``: a symmetric permutation computed beforehand (e.g. shared by matrices of one pattern); default METIS.
    """
    matrix = sp.csc_matrix(matrix)
    if perm is None:
        perm = fill_reducing_order(matrix)
    opts = {"SymmetricMode": True}
    if perm is None:
        lu = spla.splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options=opts)
    else:
        lu = spla.splu(matrix[perm][:, perm].tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0.0, options=opts)
    symmetric = bool(np.array_equal(lu.perm_r, lu.perm_c))
    return SymmetricFactor(lu=lu, perm=perm, symmetric_pivots=symmetric)


@dataclass
class EigenInfo:
    """What :func:`lowest_eigenpairs` did: sizes, counts and seconds."""

    n: int
    wanted: int = 0
    basis: int = 0
    solves: int = 0
    second_passes: int = 0
    inertia_count: int | None = None
    max_residual: float = math.nan
    seconds: dict = field(default_factory=dict)


def _m_orthonormalise(w: np.ndarray, m: sp.spmatrix, rng: np.random.Generator, basis: np.ndarray, mw=None):
    """M-orthonormal Q, upper-triangular R (b×b) with W = Q R (Cholesky QR, twice), and M Q.

    ``mw`` = M W when the caller has it (M Q is then carried along without a sparse product). ``basis`` (n, j) is
    M-orthonormal and W is assumed already orthogonal to it. A (numerically) rank-deficient W — the Krylov space has
    found an invariant subspace — has its lost directions replaced by random vectors made M-orthogonal to ``basis``
    and to W, with zero rows in R (R is then no longer triangular).
    """
    b = w.shape[1]
    r_total = np.eye(b)
    q = w
    mq = m @ w if mw is None else mw
    for _ in range(2):
        gram = q.T @ mq
        gram = 0.5 * (gram + gram.T)
        try:
            chol = np.linalg.cholesky(gram)
            if np.diag(chol).min() <= 1e-7 * np.diag(chol).max():
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            q, r_total = _m_orthonormalise_deficient(q, m, rng, basis, r_total)
            return q, r_total, m @ q
        q = scipy.linalg.solve_triangular(chol, q.T, lower=True, check_finite=False).T
        mq = scipy.linalg.solve_triangular(chol, mq.T, lower=True, check_finite=False).T
        r_total = chol.T @ r_total
    return q, r_total, mq


def _m_orthonormalise_deficient(q, m, rng, basis, r_total):
    b = q.shape[1]
    gram = q.T @ (m @ q)
    evals, evecs = np.linalg.eigh(0.5 * (gram + gram.T))
    scale = max(float(evals.max()), 0.0)
    good = evals > 1e-14 * scale if scale > 0 else np.zeros(b, dtype=bool)
    root = np.sqrt(np.where(good, evals, 1.0))
    kept = q @ (evecs[:, good] / root[good])
    r_step = np.zeros((b, b))
    r_step[: good.sum()] = root[good, None] * evecs[:, good].T
    fresh = rng.standard_normal((q.shape[0], b - int(good.sum())))
    for _ in range(2):
        for other in (basis, kept):
            if other.shape[1]:
                fresh -= other @ (other.T @ (m @ fresh))
    gram_f = fresh.T @ (m @ fresh)
    chol = np.linalg.cholesky(0.5 * (gram_f + gram_f.T))
    fresh = scipy.linalg.solve_triangular(chol, fresh.T, lower=True).T
    q = np.concatenate([kept, fresh], axis=1)
    r_total = r_step @ r_total
    gram = q.T @ (m @ q)  # one more Cholesky QR pass for orthonormality to round-off
    chol = np.linalg.cholesky(0.5 * (gram + gram.T))
    q = scipy.linalg.solve_triangular(chol, q.T, lower=True, check_finite=False).T
    return q, chol.T @ r_total


def _orthogonalise(w: np.ndarray, mw: np.ndarray, basis: np.ndarray, pool, workers: int) -> None:
    """w ← w − V (Vᵀ M w) in place for an M-orthonormal V (n, j), given mw = M w; rows split over the pool's threads."""
    if pool is None or workers < 2 or basis.shape[1] == 0:
        w -= basis @ (basis.T @ mw)
        return
    rows = np.array_split(np.arange(w.shape[0]), workers)
    spans = [slice(r[0], r[-1] + 1) for r in rows]
    coeffs = sum(pool.map(lambda sl: basis[sl].T @ mw[sl], spans))

    def update(sl):
        w[sl] -= basis[sl] @ coeffs

    list(pool.map(update, spans))


def _rows_matmul(a: np.ndarray, b: np.ndarray, pool, workers: int) -> np.ndarray:
    """a @ b for a tall a (n, j), rows split over the pool's threads."""
    if pool is None or workers < 2:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]))

    def part(r):
        out[r[0] : r[-1] + 1] = a[r[0] : r[-1] + 1] @ b

    list(pool.map(part, np.array_split(np.arange(a.shape[0]), workers)))
    return out


def _ritz(alphas, betas, theta_min):
    """Eigenpairs θ ≥ theta_min (descending) of the block tridiagonal matrix with blocks alphas and betas.

    Dense (subset) eigh: SciPy's banded solver with vectors was slower at these sizes (≤ ~1500).
    """
    b = alphas[0].shape[0]
    size = len(alphas) * b
    t_mat = np.zeros((size, size))
    for i, a_i in enumerate(alphas):
        t_mat[i * b : (i + 1) * b, i * b : (i + 1) * b] = a_i
    for i, b_i in enumerate(betas):
        t_mat[(i + 1) * b : (i + 2) * b, i * b : (i + 1) * b] = b_i
        t_mat[i * b : (i + 1) * b, (i + 1) * b : (i + 2) * b] = b_i.T
    theta, vecs = scipy.linalg.eigh(t_mat, subset_by_value=(theta_min, np.inf), check_finite=False)
    return theta[::-1], vecs[:, ::-1]


def lowest_eigenpairs(
    stiffness: sp.spmatrix,
    mass: sp.spmatrix,
    eigenvalue_max: float,
    *,
    block: int = DEFAULT_BLOCK,
    tol: float = 1e-8,
    guard: int = 4,
    max_basis: int | None = None,
    check_inertia: bool = True,
    max_count: int | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, EigenInfo]:
    """All eigenpairs of K φ = λ M φ with λ ≤ ``eigenvalue_max`` (K symmetric positive semi-definite, M SPD).

    Args:
        stiffness: K (n, n), sparse symmetric, positive semi-definite (1/s units with M in m³ scale alike).
        mass: M (n, n), sparse symmetric positive definite.
        eigenvalue_max: λ_max (same units as K/M eigenvalues, 1/s here); > 0.
        block: Lanczos block size, ≥ the largest eigenvalue multiplicity (identical disconnected compartments
            repeat eigenvalues); default :data:`DEFAULT_BLOCK`.
        tol: relative Lanczos residual ‖T x − θ x‖_M / θ at which a Ritz pair counts as converged.
        guard: how many Ritz pairs above λ_max must also converge (so that no wanted mode hides behind the cut).
        max_basis: largest basis (columns) before giving up (RuntimeError); default
            max(10·(inertia count) + 4·block, 24·block), < n.
        check_inertia: count the modes first by Sylvester's law (one more factorisation) and iterate until that
            many have converged.
        max_count: raise ValueError when more eigenvalues than this lie below λ_max (known before iterating).
        seed: seed of the random start block.
        threads: worker threads for the block solves (default ``torch.get_num_threads()``); the dense algebra runs
            on one BLAS thread meanwhile (OpenBLAS threads on these skinny products cost more than they gain).

    Returns:
        (eigenvalues (p,) ascending, eigenvectors (n, p) M-orthonormal, :class:`EigenInfo`).
    """
    workers = max(1, int(torch.get_num_threads() if threads is None else threads))
    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
        return _lowest_eigenpairs(
            stiffness, mass, eigenvalue_max, block, tol, guard, max_basis, check_inertia, max_count, seed, workers, pool
        )


def _lowest_eigenpairs(
    stiffness, mass, eigenvalue_max, block, tol, guard, max_basis, check_inertia, max_count, seed, workers, pool
):
    if not (eigenvalue_max > 0 and math.isfinite(eigenvalue_max)):
        raise ValueError(f"eigenvalue_max must be positive and finite, got {eigenvalue_max}")
    if block < 1:
        raise ValueError(f"block must be ≥ 1, got {block}")
    n = stiffness.shape[0]
    if stiffness.shape != (n, n) or mass.shape != (n, n):
        raise ValueError(f"stiffness {stiffness.shape} and mass {mass.shape} must be square and of one size")
    info = EigenInfo(n=n)
    t_start = time.perf_counter()
    k = sp.csr_matrix(stiffness)
    m = sp.csr_matrix(mass)
    target = None  # the exact number of eigenvalues below λ_max (Sylvester), when it can be read
    sigma = -1e-3 * eigenvalue_max
    pending = None
    if n > DENSE_MAX_NODES:
        # both factorisations share one pattern, hence one ordering; they run side by side on the pool
        t0 = time.perf_counter()
        perm = fill_reducing_order(k + m)
        pending = pool.submit(factorize, k - sigma * m, perm) if workers > 1 else None
        if check_inertia:
            target = factorize(k - eigenvalue_max * m, perm).n_negative()
            info.seconds["inertia"] = time.perf_counter() - t0
            info.inertia_count = target
        if max_count is not None and target is not None and target > max_count:
            raise ValueError(
                f"{target} eigenvalues lie below eigenvalue_max={eigenvalue_max:g}, more than max_count={max_count}"
            )
    block = min(block, n)
    if n <= DENSE_MAX_NODES or (
        n <= DENSE_SHARE_MAX_NODES and target is not None and KRYLOV_FACTOR * target + block >= n
    ):
        # small, or wanting a large share of the spectrum: the Krylov basis would approach n anyway
        lam, x = scipy.linalg.eigh(k.toarray(), m.toarray(), check_finite=False)
        keep = lam <= eigenvalue_max
        lam, x = lam[keep], x[:, keep]
        info.wanted = int(keep.sum())
        info.inertia_count = info.inertia_count if info.inertia_count is not None else info.wanted
        info.max_residual = 0.0
        info.seconds["total"] = time.perf_counter() - t_start
        return lam, x, info
    t0 = time.perf_counter()
    factor = pending.result() if pending is not None else factorize(k - sigma * m, perm)
    info.seconds["factorise"] = time.perf_counter() - t0  # the part not hidden behind the inertia count
    rng = np.random.default_rng(seed)
    if max_basis is None:
        max_basis = max(10 * (target or 0) + 4 * block, 24 * block)
    limit = min(n - block, max_basis)
    basis = np.empty((n, min(limit, 8 * block)))
    theta_cut = 1.0 / (eigenvalue_max - sigma)
    theta_watch = 1.0 / (1.25 * eigenvalue_max - sigma)  # Ritz pairs up to 1.25 λ_max are computed (guard ones)
    # block tridiagonal projection of T: diagonal blocks alpha[j], sub-diagonal blocks beta[j] (upper triangular)
    alphas: list[np.ndarray] = []
    betas: list[np.ndarray] = []
    start = rng.standard_normal((n, block))
    v, _, mv = _m_orthonormalise(start, m, rng, basis[:, :0])
    mv_prev = np.zeros_like(mv)  # M times the previous block (none yet)
    basis[:, :block] = v
    used = block
    converged = False
    theta = s_vecs = None
    wanted = 0
    last_check = 0
    t_lanczos = time.perf_counter()
    while True:
        j = len(alphas)
        v = basis[:, j * block : (j + 1) * block]
        w = factor.solve(mv, pool, workers)
        info.solves += v.shape[1]
        mw = m @ w
        alpha = v.T @ mw
        alpha = 0.5 * (alpha + alpha.T)
        alphas.append(alpha)
        w -= v @ alpha
        mw -= mv @ alpha
        if j > 0:
            w -= basis[:, (j - 1) * block : j * block] @ betas[-1].T
            mw -= mv_prev @ betas[-1].T
        # full re-orthogonalisation in the M inner product (the local terms are in alpha/beta); a second pass only
        # when the first removed most of a column (Daniel–Gragg–Kaufman–Stewart criterion)
        norm_before = np.sqrt(np.maximum(np.einsum("ij,ij->j", w, mw), 0.0))
        _orthogonalise(w, mw, basis[:, :used], pool, workers)
        mw = m @ w
        norm_after = np.sqrt(np.maximum(np.einsum("ij,ij->j", w, mw), 0.0))
        if (norm_after < REORTHOGONALISE_BELOW * norm_before).any():
            _orthogonalise(w, mw, basis[:, :used], pool, workers)
            mw = m @ w
            info.second_passes += 1
        q_next, beta, mq_next = _m_orthonormalise(w, m, rng, basis[:, :used], mw)
        mv_prev = mv
        size = len(alphas) * block
        check = size >= 3 * max(target or 0, block) and size - last_check >= max(2 * block, 64)
        if check or used + block > limit:
            last_check = size
            theta, s_vecs = _ritz(alphas, betas, theta_watch)
            wanted = int((theta >= theta_cut).sum())
            watch = min(wanted + guard, len(theta))
            residual = np.linalg.norm(beta @ s_vecs[-block:, :watch], axis=0) / np.abs(theta[:watch])
            complete = target is None or wanted >= target
            if watch and residual.max() < tol and complete:
                converged = True
                break
        if used + block > limit:
            break
        betas.append(beta)
        if used + block > basis.shape[1]:  # grow the basis storage geometrically
            grown = np.empty((n, min(limit, 2 * basis.shape[1] + block)))
            grown[:, :used] = basis[:, :used]
            basis = grown
        basis[:, used : used + block] = q_next
        mv = mq_next
        used += block
    info.seconds["lanczos"] = time.perf_counter() - t_lanczos
    info.basis = used
    if not converged:
        raise RuntimeError(
            f"block Lanczos did not converge within a basis of {used} vectors "
            f"({wanted} modes below λ_max found, inertia count {target}); raise max_basis or length_scale"
        )
    # Ritz vectors of the wanted pairs (+ guard), refined by Rayleigh–Ritz on (K, M)
    t0 = time.perf_counter()
    take = min(wanted + guard, used)
    x = _rows_matmul(basis[:, :used], s_vecs[:, :take], pool, workers)
    kx, mx = k @ x, m @ x
    h = x.T @ kx
    g = x.T @ mx
    lam, y = scipy.linalg.eigh(0.5 * (h + h.T), 0.5 * (g + g.T), check_finite=False)
    keep = lam <= eigenvalue_max
    lam, y = lam[keep], y[:, keep]
    x, kx, mx = x @ y, kx @ y, mx @ y
    res = kx - mx * lam
    mx_norm = np.linalg.norm(mx, axis=0)
    info.max_residual = float((np.linalg.norm(res, axis=0) / (eigenvalue_max * mx_norm)).max()) if len(lam) else 0.0
    info.wanted = int(len(lam))
    info.seconds["ritz"] = time.perf_counter() - t0
    info.seconds["total"] = time.perf_counter() - t_start
    return lam, x, info
