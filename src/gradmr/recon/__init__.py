"""Reconstruction: Cartesian FFT, the explicit encoding operator and CG for non-Cartesian data."""

from .cg import cg_reconstruct
from .encoding import EncodingOperator
from .fft import (
    GRID_TOLERANCE,
    centred_fft,
    centred_ifft,
    combine_coils,
    grid_cartesian,
    kspace_indices,
    reconstruct_cartesian,
)
from .noncartesian import GridEncodingOperator, density_weights, reconstruct_noncartesian

__all__ = [
    "GRID_TOLERANCE",
    "EncodingOperator",
    "GridEncodingOperator",
    "centred_fft",
    "centred_ifft",
    "cg_reconstruct",
    "combine_coils",
    "density_weights",
    "grid_cartesian",
    "kspace_indices",
    "reconstruct_cartesian",
    "reconstruct_noncartesian",
]
