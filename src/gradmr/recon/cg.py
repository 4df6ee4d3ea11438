"""Conjugate gradients on the normal equations, for non-Cartesian reconstruction."""

from __future__ import annotations

from typing import Protocol

import torch


class LinearOperator(Protocol):
    """What :func:`cg_reconstruct` needs: ``forward`` (image → signal) and its ``adjoint``."""

    def forward(self, image: torch.Tensor) -> torch.Tensor: ...

    def adjoint(self, signal: torch.Tensor) -> torch.Tensor: ...


def cg_reconstruct(
    signal: torch.Tensor,
    operator: LinearOperator,
    *,
    iterations: int = 20,
    tikhonov: float = 0.0,
    tol: float = 1e-6,
    x0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Solve ``(AᴴA + λI) x = Aᴴ s`` by conjugate gradients (CGNE/CGLS on the normal equations).

    Parameters
    ----------
    signal : Tensor, shape ``(samples, coils)``, complex
    operator : object with ``forward`` and ``adjoint`` (e.g. :class:`~gradmr.recon.EncodingOperator`)
    iterations : int
        Maximum number of CG iterations (≥ 0).
    tikhonov : float
        λ ≥ 0, the weight of ``‖x‖²`` added to ``‖Ax − s‖²``.
    tol : float
        Stop when the residual norm of the normal equations falls below ``tol · ‖Aᴴ s‖``.
    x0 : Tensor, optional
        Starting image (zeros by default).

    Returns
    -------
    Tensor, shape ``(voxels,)``, complex
        Differentiable through the iterations (autograd records each one; the stopping test itself is not
        differentiated).
    """
    if iterations < 0:
        raise ValueError(f"iterations must be ≥ 0, got {iterations}")
    if tikhonov < 0:
        raise ValueError(f"tikhonov must be ≥ 0, got {tikhonov}")
    if tol < 0:
        raise ValueError(f"tol must be ≥ 0, got {tol}")

    def normal(v: torch.Tensor) -> torch.Tensor:
        out = operator.adjoint(operator.forward(v))
        return out + tikhonov * v if tikhonov else out

    b = operator.adjoint(signal)
    if x0 is None:
        x = torch.zeros_like(b)
        r = b
    else:
        x = x0.to(b.dtype)
        r = b - normal(x)
    p = r
    rr = torch.vdot(r, r).real
    threshold = float((tol * torch.linalg.vector_norm(b.detach())) ** 2)
    for _ in range(iterations):
        if float(rr.detach()) <= threshold:
            break
        ap = normal(p)
        alpha = rr / torch.vdot(p, ap).real
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = torch.vdot(r, r).real
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
