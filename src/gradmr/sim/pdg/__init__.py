"""Phase Distribution Graph simulator (Endres et al., MRM 2023): plan without grad, run with grad."""

from .simulate import simulate_pdg
from .voxel_shape import VOXEL_SHAPES, voxel_dephasing

__all__ = ["VOXEL_SHAPES", "simulate_pdg", "voxel_dephasing"]
