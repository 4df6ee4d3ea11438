"""Intra-voxel dephasing: how a voxel of finite size attenuates a state of dephasing k.

A state with dephasing k (1/m) in a voxel of spin density ρ_voxel(r) emits
∫ ρ_voxel(r) exp(−2πi k·r) dr, i.e. the voxel's Fourier transform at k. On a uniform grid
this factor is the same for every voxel, so it multiplies per (state, sample).

* ``"sinc"`` (default, as MR-zero): the ideal band-limited voxel whose density is a sinc;
  its transform is 1 for ``−1/(2Δ) ≤ k < 1/(2Δ)`` along each axis and 0 outside. Nothing is
  attenuated inside the Nyquist band, and a state dephased beyond it emits exactly nothing.
* ``"box"``: a uniformly filled box voxel; the factor is Π_d sinc(k_d Δ_d)
  (normalised sinc, sin(πx)/(πx)). This is what isochromats spread over a voxel see.
"""

from __future__ import annotations

import torch

VOXEL_SHAPES = ("sinc", "box")

#: Slack at the band edge [cycles per voxel] so that a Cartesian sample at exactly −k_nyquist is
#: kept and one at +k_nyquist (outside the FFT-conform band) is dropped despite round-off. Files
#: written by pypulseq (amplitudes to ~6 digits) put the first sample of a line at
#: −0.5 − 1.3e-6 cycles per voxel, so the slack must be well above that.
_EDGE_SLACK = 1e-3


def voxel_dephasing(k: torch.Tensor, voxel_size: torch.Tensor, shape: str) -> torch.Tensor:
    """Attenuation factor for dephasing ``k`` of shape ``(..., 3)`` [1/m]; returns shape ``(...)``."""
    x = k * voxel_size  # cycles per voxel
    if shape == "sinc":
        inside = (x >= -0.5 - _EDGE_SLACK) & (x < 0.5 - _EDGE_SLACK)
        return inside.all(dim=-1).to(k.dtype)
    if shape == "box":
        return torch.sinc(x).prod(dim=-1)
    raise ValueError(f"voxel_shape must be one of {VOXEL_SHAPES}, got {shape!r}")
