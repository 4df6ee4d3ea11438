"""The dense small-mesh route: the exact semi-discrete solution by Cholesky and matrix exponentials.

With Φ = I the reduced system is the full FE system: y' = −L⁻¹(A + i q f J)L⁻ᵀ y with M = LLᵀ, propagated exactly
over each interval by ``torch.linalg.matrix_exp``. No truncation, no time step: this is the oracle against which the
matrix formalism (truncated basis) and the BTPDE (time stepping) are checked, and its autograd gradients are the
exact gradients of the semi-discrete model. Cost O(n³) per exponential — meant for meshes up to ~1–2k nodes.
"""

from __future__ import annotations

import numpy as np
import torch

from ..assembly import FEMatrices
from .propagate import propagate, reduce

__all__ = ["dense_signal", "DENSE_MAX_NODES"]

#: Refuse larger meshes (an n×n complex exponential per encoding).
DENSE_MAX_NODES = 4000


def dense_signal(fe: FEMatrices, q, direction, durations: np.ndarray, values: np.ndarray) -> torch.Tensor:
    """Exact semi-discrete signals (unnormalised, complex (S,)); fully differentiable by autograd."""
    if fe.n > DENSE_MAX_NODES:
        raise ValueError(f"the dense route is for meshes up to {DENSE_MAX_NODES} nodes, this one has {fe.n}")
    return propagate(reduce(fe, None), q, direction, durations, values)
