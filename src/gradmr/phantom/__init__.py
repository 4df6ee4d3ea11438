"""Voxel phantoms: tissue maps on a grid, and where they come from."""

from .core import MAP_DEFAULTS, MAP_UNITS, VoxelPhantom

__all__ = ["MAP_DEFAULTS", "MAP_UNITS", "VoxelPhantom"]
