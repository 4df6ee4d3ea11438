"""Per-compartment tissue parameters of a Bloch–Torrey model: diffusivity, T2, spin density, permeability.

All SI: diffusivity in m²/s (free water at 37 °C ≈ 3e-9, the reference cases use 2e-9), T2 in s (``inf`` means no
relaxation), density dimensionless (relative spin density), permeability in m/s (membranes: 1e-6 … 1e-4 m/s is
1e-6 … 1e-4 µm/µs). Any field may be a tensor with ``requires_grad`` — the assembly is differentiable in all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Compartments", "compartments"]


@dataclass(frozen=True)
class Compartments:
    """Tissue parameters of K compartments.

    Attributes:
        diffusivity: (K,) isotropic diffusivity in m²/s, or (K, d, d) symmetric positive-definite tensors.
        t2: (K,) transverse relaxation time in s (``inf``: none).
        density: (K,) relative spin density (initial magnetisation per unit volume).
        permeability: (K, K) symmetric membrane permeability in m/s between compartments (diagonal unused).
    """

    diffusivity: torch.Tensor
    t2: torch.Tensor
    density: torch.Tensor
    permeability: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.t2.shape[0])

    @property
    def max_diffusivity(self) -> float:
        """Largest diffusivity (largest tensor eigenvalue) in m²/s, as a float."""
        d = self.diffusivity.detach()
        if d.ndim == 3:
            return float(torch.linalg.eigvalsh(d).max())
        return float(d.max())


def _as(value, n: int, name: str, dtype=torch.float64) -> torch.Tensor:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=dtype)
    if not t.is_floating_point():
        t = t.to(dtype)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have shape ({n},), got {tuple(t.shape)}")
    return t


def compartments(
    n: int = 1,
    *,
    diffusivity=2e-9,
    t2=math.inf,
    density=1.0,
    permeability=0.0,
) -> Compartments:
    """Validated :class:`Compartments` for ``n`` compartments; scalars are broadcast.

    ``diffusivity`` is in m²/s: a scalar, (n,), or (n, d, d) tensors; ``t2`` in s (> 0, ``inf`` allowed);
    ``density`` ≥ 0; ``permeability`` in m/s ≥ 0, a scalar (between every pair) or a symmetric (n, n) matrix.
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    d = diffusivity if isinstance(diffusivity, torch.Tensor) else torch.as_tensor(diffusivity, dtype=torch.float64)
    if not d.is_floating_point():
        d = d.to(torch.float64)
    if d.ndim == 3 or (d.ndim == 2 and d.shape[0] == d.shape[1] and d.shape[0] in (1, 2, 3) and n == 1):
        if d.ndim == 2:
            d = d.unsqueeze(0)
        if d.shape[0] != n or d.shape[1] != d.shape[2]:
            raise ValueError(f"diffusivity tensors must have shape ({n}, dim, dim), got {tuple(d.shape)}")
        if not torch.allclose(d.detach(), d.detach().transpose(1, 2)):
            raise ValueError("diffusivity tensors must be symmetric")
        ev = torch.linalg.eigvalsh(d.detach())
        if not torch.isfinite(ev).all() or ev.min() < 0:
            raise ValueError("diffusivity tensors must be finite and positive semi-definite (m²/s)")
        dmax = float(ev.max())
    else:
        d = _as(d, n, "diffusivity")
        if not torch.isfinite(d.detach()).all() or (d.detach() < 0).any():
            raise ValueError(f"diffusivity must be finite and ≥ 0 in m²/s, got {d.detach().tolist()}")
        dmax = float(d.detach().max())
    if dmax > 1e-6:
        raise ValueError(
            f"diffusivity {dmax:g} is not in m²/s (free water is ≈ 3e-9 m²/s; 1e-3 mm²/s = 1e-9 m²/s = 1e-3 µm²/µs)"
        )
    t2t = _as(t2, n, "t2")
    if torch.isnan(t2t.detach()).any() or (t2t.detach() <= 0).any():
        raise ValueError(f"t2 must be > 0 in s (inf for none), got {t2t.detach().tolist()}")
    rho = _as(density, n, "density")
    if not torch.isfinite(rho.detach()).all() or (rho.detach() < 0).any():
        raise ValueError(f"density must be finite and ≥ 0, got {rho.detach().tolist()}")
    k = permeability if isinstance(permeability, torch.Tensor) else torch.as_tensor(permeability, dtype=torch.float64)
    if not k.is_floating_point():
        k = k.to(torch.float64)
    if k.ndim == 0:
        k = k * (1 - torch.eye(n, dtype=k.dtype))
    if k.shape != (n, n):
        raise ValueError(f"permeability must be a scalar or have shape ({n}, {n}), got {tuple(k.shape)}")
    kd = k.detach()
    if not torch.isfinite(kd).all() or (kd < 0).any() or not torch.allclose(kd, kd.T):
        raise ValueError("permeability must be finite, ≥ 0 and symmetric (m/s)")
    return Compartments(diffusivity=d, t2=t2t, density=rho, permeability=k)
