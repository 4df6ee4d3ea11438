"""Gradient directions: unit vectors and near-uniform HARDI direction sets.

:func:`hardi_directions` starts from a Fibonacci spiral (randomly rotated by ``seed``) and minimises the electrostatic
energy Σ 1/|d_i − d_j| on the unit sphere by projected gradient descent with step control. With
``hemisphere=True`` the directions are axes: each d_i carries its antipode −d_i as a second charge, so the energy
is Σ_{i<j} 1/|d_i − d_j| + 1/|d_i + d_j| (Jones et al. 1999), and the result is folded onto z ≥ 0. Small sets
converge to the known optima (6 axes: the icosahedron's; 4 points on the full sphere: a tetrahedron).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["hardi_directions", "unit_direction"]


def unit_direction(d):
    """``d / |d|`` for a 3-vector; list/numpy → (3,) float64 numpy array, torch tensor → float64 tensor (keeps grad).

    Raises ValueError for a shape other than (3,), a NaN/inf entry or a zero vector.
    """
    if isinstance(d, torch.Tensor):
        t = d.to(torch.float64)
        if t.shape != (3,):
            raise ValueError(f"d must be a 3-vector, got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t.detach()).all()):
            raise ValueError(f"d must be finite, got {t.detach().tolist()}")
        norm = torch.linalg.vector_norm(t)
        if float(norm.detach()) == 0.0:
            raise ValueError("d must be non-zero (a gradient direction)")
        return t / norm
    a = np.asarray(d, dtype=np.float64)
    if a.shape != (3,):
        raise ValueError(f"d must be a 3-vector, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"d must be finite, got {a.tolist()}")
    norm = float(np.linalg.norm(a))
    if norm == 0.0:
        raise ValueError("d must be non-zero (a gradient direction)")
    return a / norm


def _fibonacci(n: int, hemisphere: bool) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - i / n if hemisphere else 1.0 - 2.0 * i / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _energy_and_force(d: np.ndarray, antipodal: bool):
    """Coulomb energy and the force −∇E (n, 3) of unit vectors d, from |d_i ∓ d_j|² = 2 ∓ 2 d_i·d_j."""
    n = d.shape[0]
    gram = d @ d.T
    off = ~np.eye(n, dtype=bool)
    energy = 0.0
    force = np.zeros_like(d)
    for sign in (1.0, -1.0) if antipodal else (1.0,):
        inv = np.zeros((n, n))
        inv[off] = 1.0 / np.sqrt(np.clip(2.0 - 2.0 * sign * gram[off], 1e-300, None))
        energy += inv.sum() / 2.0
        inv3 = inv**3
        force += inv3.sum(axis=1, keepdims=True) * d - sign * (inv3 @ d)
    return energy, force


def hardi_directions(n: int, hemisphere: bool = True, seed: int = 0, iterations: int = 200) -> np.ndarray:
    """(n, 3) float64 near-uniform unit vectors, deterministic for given arguments.

    Args:
        n: number of directions, integer ≥ 1.
        hemisphere: True for n axes (antipodal symmetry; returned with z ≥ 0, ties broken towards y > 0 then
            x > 0), False for n points spread over the whole sphere.
        seed: seed of the random rotation of the initial Fibonacci spiral.
        iterations: maximum number of repulsion steps (stops earlier once the energy no longer decreases).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
        raise ValueError(f"iterations must be an integer ≥ 0, got {iterations!r}")
    n = int(n)
    rng = np.random.default_rng(seed)
    d = _fibonacci(n, hemisphere) @ _random_rotation(rng).T
    if n > 1:
        energy, force = _energy_and_force(d, hemisphere)
        step = 0.1 / math.sqrt(n)  # a fraction of the typical spacing
        for _ in range(int(iterations)):
            tangential = force - np.sum(force * d, axis=1, keepdims=True) * d
            scale = np.max(np.linalg.norm(tangential, axis=1))
            if scale == 0.0:
                break
            trial = d + step * tangential / scale
            trial /= np.linalg.norm(trial, axis=1, keepdims=True)
            e_trial, f_trial = _energy_and_force(trial, hemisphere)
            if e_trial < energy:
                d, energy, force = trial, e_trial, f_trial
                step *= 1.2
            else:
                step *= 0.5
            if step < 1e-10:
                break
    if hemisphere:
        key = np.where(d[:, 2] != 0, d[:, 2], np.where(d[:, 1] != 0, d[:, 1], d[:, 0]))
        d = np.where(key[:, None] < 0, -d, d)
    return d / np.linalg.norm(d, axis=1, keepdims=True)
