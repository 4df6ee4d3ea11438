"""Fingerprints as the MRF application uses them: real amplitudes, unit-norm, with stated noise.

A FISP signal without off-resonance has one constant phase (:func:`~gradmr.sim.epg.phase_factor`); the fingerprint
is its real amplitude ``a`` (``signal = i·e^{iφ}·a``), shape ``(..., N)``. Matching and the networks see it
normalised to unit L2 norm; the norm carries PD.

Noise model (stated once, used by the experiments and the CLI): white Gaussian noise added to the amplitude with
standard deviation ``σ = rms(a) / snr`` per fingerprint, where ``rms(a) = ‖a‖/√N`` of the *noise-free* fingerprint.
(For complex data with circular noise of that σ per channel, the part along the signal's phase is exactly this.)
"""

from __future__ import annotations

import torch

from ..sim.epg import DEFAULT_STATES, FispTrain, fisp_signal

__all__ = ["add_noise", "normalise", "simulate_fingerprints"]


def simulate_fingerprints(
    train: FispTrain, t1, t2, *, b1=None, n_states: int = DEFAULT_STATES, method: str = "auto"
) -> torch.Tensor:
    """Real fingerprint amplitudes ``train.batch_shape + t1.shape + (N,)`` (M0 = 1); differentiable as
    :func:`~gradmr.sim.epg.fisp_signal` with the same ``method``."""
    return fisp_signal(train, t1, t2, b1=b1, n_states=n_states, method=method, real=True)


def normalise(x: torch.Tensor, *, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x / ‖x‖, ‖x‖)`` along the last dim. Raises on NaN/inf; an all-zero fingerprint stays 0 with norm 0."""
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError("fingerprints contain NaN or infinite values")
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return x / norm.clamp_min(eps), norm.squeeze(-1)


def add_noise(x: torch.Tensor, snr: float | None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` plus white Gaussian noise of σ = rms(x)/snr per fingerprint (module docs); ``None`` or inf: none."""
    if snr is None or snr == float("inf"):
        return x
    if not snr > 0:
        raise ValueError(f"snr must be > 0 (or None for no noise), got {snr}")
    rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) / x.shape[-1] ** 0.5
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x + noise * (rms / snr)
