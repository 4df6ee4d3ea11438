"""Bloch isochromat simulation: the exact, slow reference simulator."""

from .isochromat import lorentzian_quantiles, simulate_bloch, spin_offsets, subgrid_shape

__all__ = ["lorentzian_quantiles", "simulate_bloch", "spin_offsets", "subgrid_shape"]
