"""Simulators: PDG (:mod:`gradmr.sim.pdg`), extended phase graphs (:mod:`gradmr.sim.epg`) and the Bloch isochromat
reference (:mod:`gradmr.sim.bloch`)."""

from __future__ import annotations

import torch

from ..phantom.core import VoxelPhantom
from ..phantom.fractions import TissueFractions, phantom_from_fractions
from ..sequence.core import Sequence

METHODS = ("pdg", "epg", "bloch")


def simulate(
    sequence: Sequence, phantom: VoxelPhantom | TissueFractions, *, method: str = "pdg", progress: bool = False
) -> torch.Tensor:
    """Simulate with the named method; returns the complex signal ``(samples, coils)`` in ADC order.

    ``phantom`` may be tissue fractions: they become a multi-compartment phantom with the 3 T tissue library
    (call :func:`~gradmr.phantom.fractions.phantom_from_fractions` yourself for another table or model).

    ``method="bloch"`` ignores diffusion (isochromats cannot represent it without a random walk).
    ``method="epg"`` needs a sequence whose gradients are integer multiples of one dephasing moment (spoilers,
    FISP trains; no imaging gradients) and ignores T2′ and diffusion (:mod:`gradmr.sim.epg.sequence`).
    For the methods' own options call :func:`gradmr.sim.pdg.simulate_pdg`, :func:`gradmr.sim.epg.simulate_epg`
    or :func:`gradmr.sim.bloch.simulate_bloch` directly.
    """
    if isinstance(phantom, TissueFractions):
        phantom = phantom_from_fractions(phantom)
    if method == "pdg":
        from .pdg import simulate_pdg

        return simulate_pdg(sequence, phantom, progress=progress)
    if method == "epg":
        from .epg import simulate_epg

        return simulate_epg(sequence, phantom)
    if method == "bloch":
        from .bloch import simulate_bloch

        return simulate_bloch(sequence, phantom, diffusion="ignore", progress=progress)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


__all__ = ["METHODS", "simulate"]
