"""Matrix formalism: the Bloch–Torrey system in a truncated basis of Laplace eigenfunctions.

The eigenproblem (K + Q) φ = λ M φ is solved outside autograd — by block shift-invert Lanczos
(:mod:`gradmr.diffusion.solvers.eigen`, with an exact mode count from Sylvester's inertia) for large meshes, dense
``scipy.linalg.eigh`` for small ones, SciPy's ``eigsh`` on request — and truncated by a length scale ℓ: modes with
λ ≤ π² D_max / ℓ² are kept (ℓ = 1 µm keeps ≈ 150–230 modes of a 5 µm ball). The signal is then propagated exactly in
that basis (:func:`gradmr.diffusion.solvers.propagate.propagate`), batched over b-values, directions and sequences.

Gradients use a *frozen basis*: Φ is a constant and the matrices are projected onto it with autograd, so the
gradient is that of the Galerkin model on span Φ. It is exact for anything that leaves span Φ invariant (a pure
rescaling of the mesh, D, T2) and approximate for shape changes; recompute the basis (:func:`eigenbasis`) every few
optimiser steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

from ..assembly import FEMatrices
from .eigen import DEFAULT_BLOCK, DENSE_MAX_NODES, lowest_eigenpairs
from .propagate import propagate, reduce

__all__ = ["ModalBasis", "eigenbasis", "length_to_eigenvalue", "mf_signal", "scaled_basis"]

#: Meshes up to this many nodes use the dense generalised eigensolver (the Lanczos solver's own cut-off).
DENSE_EIGEN_MAX_NODES = DENSE_MAX_NODES
#: Block size of the Lanczos eigen-solve.
EIGEN_BLOCK = DEFAULT_BLOCK


@dataclass(frozen=True)
class ModalBasis:
    """Laplace eigenfunctions of a mesh.

    Attributes:
        phi: (n, p) eigenvectors, M-orthonormal (φᵢᵀ M φⱼ = δᵢⱼ), constant (no autograd history).
        eigenvalues: (p,) λ in 1/s, ascending.
        eigenvalue_max: the truncation λ_max in 1/s.
        length_scale: the truncation length ℓ in m.
    """

    phi: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvalue_max: float
    length_scale: float

    @property
    def n_modes(self) -> int:
        return int(self.phi.shape[1])


def length_to_eigenvalue(length_scale: float, diffusivity: float) -> float:
    """λ = π² D / ℓ² (1/s): the eigenvalue of a mode of wavelength 2ℓ at diffusivity D (m²/s)."""
    return math.pi**2 * diffusivity / length_scale**2


def eigenbasis(
    fe: FEMatrices,
    *,
    diffusivity: float,
    length_scale: float = 1e-6,
    include_flux: bool = True,
    method: str = "auto",
    max_modes: int = 5000,
) -> ModalBasis:
    """Eigenpairs of (K + Q) φ = λ M φ with λ ≤ π² D/ℓ², computed without autograd.

    Args:
        fe: assembled matrices.
        diffusivity: the D (m²/s) that converts ``length_scale`` to an eigenvalue (use the largest in the model).
        length_scale: ℓ in m; smaller keeps more modes (more accurate, slower).
        include_flux: include the membrane term Q (False: the compartments' Neumann eigenfunctions, as HADC needs).
        method: ``"dense"`` (scipy ``eigh``), ``"sparse"`` (block shift-invert Lanczos,
            :func:`gradmr.diffusion.solvers.eigen.lowest_eigenpairs`), ``"arpack"`` (SciPy ``eigsh`` shift-invert,
            one vector at a time; slower, kept as a cross-check) or ``"auto"`` (dense up to
            :data:`DENSE_EIGEN_MAX_NODES` nodes, else sparse).
        max_modes: refuse to compute more modes than this (raise; increase ``length_scale``).
    """
    if length_scale <= 0 or not math.isfinite(length_scale):
        raise ValueError(f"length_scale must be a positive length in m, got {length_scale}")
    if length_scale > 1e-2:
        raise ValueError(f"length_scale {length_scale:g} is not in metres (1 µm = 1e-6 m)")
    lam_max = length_to_eigenvalue(length_scale, diffusivity)
    a = fe.to_scipy(fe.stiffness + (fe.flux if include_flux else 0 * fe.flux)).tocsc()
    m = fe.to_scipy(fe.mass).tocsc()
    n = fe.n
    if method == "auto":
        method = "dense" if n <= DENSE_EIGEN_MAX_NODES else "sparse"
    if method == "dense":
        w, v = scipy.linalg.eigh(a.toarray(), m.toarray())  # all pairs (gvd): faster than a subset (gvx)
        keep = w <= lam_max
        w, v = w[keep], v[:, keep]
    elif method == "sparse":
        # the mode count is known exactly before any iteration (inertia), so max_modes is checked up front
        # identical disconnected compartments repeat every eigenvalue; a block at least that wide finds all copies
        block = max(EIGEN_BLOCK, int(fe.node_compartment.max()) + 1 + 4)
        try:
            w, v, _ = lowest_eigenpairs(a, m, lam_max, max_count=max_modes, block=block)
        except ValueError as err:
            raise ValueError(
                f"length_scale {length_scale:g} m needs more than max_modes={max_modes} modes ({err}); increase it"
            ) from err
        except RuntimeError as err:  # not converged within its basis budget: ARPACK is slower but has restarts
            warnings.warn(f"block Lanczos eigen-solve failed ({err}); falling back to eigsh", stacklevel=2)
            w, v = _arpack(a, m, lam_max, fe, diffusivity, max_modes)
    elif method == "arpack":
        w, v = _arpack(a, m, lam_max, fe, diffusivity, max_modes)
    else:
        raise ValueError(f"method must be 'auto', 'dense', 'sparse' or 'arpack', got {method!r}")
    if len(w) > max_modes:
        raise ValueError(f"length_scale {length_scale:g} m keeps {len(w)} > max_modes={max_modes} modes")
    # M-orthonormalise (the solvers return M-orthonormal vectors up to round-off; make it exact)
    gram = v.T @ (m @ v)
    chol = np.linalg.cholesky(0.5 * (gram + gram.T))
    v = np.linalg.solve(chol, v.T).T
    return ModalBasis(
        phi=torch.as_tensor(v, dtype=torch.float64),
        eigenvalues=torch.as_tensor(np.maximum(w, 0.0), dtype=torch.float64),
        eigenvalue_max=lam_max,
        length_scale=length_scale,
    )


def scaled_basis(basis: ModalBasis, scale: float, dim: int, eigenvalue_max: float | None = None) -> ModalBasis:
    """The eigenbasis of the same mesh with every coordinate multiplied by ``scale`` — no eigen-solve.

    Under x → s·x the mass matrix scales by s^d and the stiffness by s^(d−2), so λ → λ/s² and the M-orthonormal
    φ → φ·s^(−d/2) (the flux term Q scales by s^(d−1), so this holds for impermeable meshes only). Modes are kept up
    to ``eigenvalue_max`` (default: the basis's own). Shrinking raises every eigenvalue, so a basis solved for the
    largest scale an optimiser may visit serves every smaller one exactly, as a recomputation would; asking for a
    larger scale than the basis covers raises.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    lam_max = basis.eigenvalue_max if eigenvalue_max is None else float(eigenvalue_max)
    if lam_max * scale**2 > basis.eigenvalue_max * (1 + 1e-12):
        raise ValueError(
            f"the basis holds modes up to λ = {basis.eigenvalue_max:g} 1/s; at scale {scale:g} it would need "
            f"{lam_max * scale**2:g} (compute it at a smaller scale)"
        )
    eigenvalues = basis.eigenvalues / scale**2
    keep = eigenvalues <= lam_max
    return ModalBasis(
        phi=basis.phi[:, keep] * scale ** (-dim / 2),
        eigenvalues=eigenvalues[keep],
        eigenvalue_max=lam_max,
        length_scale=basis.length_scale * math.sqrt(basis.eigenvalue_max / lam_max) if lam_max > 0 else math.inf,
    )


def mf_signal(
    fe: FEMatrices,
    basis: ModalBasis,
    q,
    direction,
    durations: np.ndarray,
    values: np.ndarray,
) -> torch.Tensor:
    """Matrix-formalism signals (unnormalised, complex (S,)) for S encodings with q (S,) rad/(s·m), direction (S, dim).

    Differentiable in ``fe`` through the frozen-basis projection.
    """
    return propagate(reduce(fe, basis.phi), q, direction, durations, values)


def _arpack(a, m, lam_max: float, fe: FEMatrices, diffusivity: float, max_modes: int):
    """Eigenpairs λ ≤ λ_max by ``eigsh`` shift-invert, enlarging the request until one exceeds λ_max."""
    n = fe.n
    k = min(max(_weyl_estimate(fe, lam_max, diffusivity) + 20, 30), n - 2)
    shift = -1e-3 * lam_max
    while True:
        if k > max_modes:
            raise ValueError(
                f"λ_max = {lam_max:g} 1/s needs more than max_modes={max_modes} modes; increase length_scale"
            )
        w, v = scipy.sparse.linalg.eigsh(a, k=k, M=m, sigma=shift, which="LM")
        if w.max() > lam_max or k >= n - 2:
            break
        k = min(int(1.5 * k), n - 2)
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    keep = w <= lam_max
    return w[keep], v[:, keep]


def _weyl_estimate(fe: FEMatrices, lam: float, diffusivity: float) -> int:
    """Neumann eigenvalues below λ by Weyl's law with its boundary term, N ≈ c_d V k^d + A k^(d−1)/(2^(d+1)π^(d−2)…).

    The area A is bounded below by the isoperimetric inequality (exact for a ball), so the count errs low for other
    shapes and :func:`eigenbasis` then enlarges its request.
    """
    vol = float(fe.weights.detach().sum())
    d = fe.dim
    k = math.sqrt(lam / diffusivity)
    if d == 1:
        return int(vol * k / math.pi + 1)
    if d == 2:
        perimeter = 2.0 * math.sqrt(math.pi * vol)
        return int(vol * k**2 / (4 * math.pi) + perimeter * k / (4 * math.pi))
    area = (36.0 * math.pi * vol**2) ** (1.0 / 3.0)
    return int(vol * k**3 / (6 * math.pi**2) + area * k**2 / (16 * math.pi))
