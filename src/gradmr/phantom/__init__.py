"""Voxel phantoms: tissue maps on a grid, and where they come from."""

from .brain import BRAIN_TISSUES, brain_phantom, tissue_fractions
from .core import MAP_DEFAULTS, MAP_UNITS, VoxelPhantom
from .tissues import Tissue, tissue, tissue_table

__all__ = [
    "BRAIN_TISSUES",
    "MAP_DEFAULTS",
    "MAP_UNITS",
    "Tissue",
    "VoxelPhantom",
    "brain_phantom",
    "tissue",
    "tissue_fractions",
    "tissue_table",
]
