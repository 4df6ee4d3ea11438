"""Voxel phantoms: tissue maps on a grid, and where they come from.

* :mod:`~gradmr.phantom.core` — :class:`VoxelPhantom`, the maps a simulator consumes.
* :mod:`~gradmr.phantom.tissues` — the tissue library (1.5 T, 3 T, presets) with a source per value.
* :mod:`~gradmr.phantom.fractions` — :class:`TissueFractions` and :func:`phantom_from_fractions`
  (multi-compartment or BMapEst linear mixing); :mod:`~gradmr.phantom.resample` — area averaging.
* Built-ins (:mod:`~gradmr.phantom.builtin`): the procedural brain, the MNI152 templates, the MR Shepp–Logan,
  random block phantoms; :mod:`~gradmr.phantom.brainweb` — BMapEst's preprocessing of BrainWeb volumes.
* :mod:`~gradmr.phantom.fields` — smooth B0/B1 maps and coil sensitivities; :mod:`~gradmr.phantom.plot` — figures.
"""

from .brain import brain_phantom, tissue_fractions
from .brainweb import bmapest_preprocess
from .builtin import BUILTIN_PHANTOMS, builtin_fractions, builtin_phantom
from .core import MAP_DEFAULTS, MAP_UNITS, VoxelPhantom
from .fields import coil_sensitivities, gaussian_b0, polynomial_b0, smooth_b1
from .fractions import TissueFractions, phantom_from_fractions
from .mni152 import mni152_fractions, mni152_slice, mni152_volume
from .random_phantoms import random_block_phantom, random_tissue_properties
from .resample import area_resample
from .shepp_logan import shepp_logan_phantom
from .tissues import BRAIN_TISSUES, TISSUE_NAMES, Tissue, tissue, tissue_table

__all__ = [
    "BRAIN_TISSUES",
    "BUILTIN_PHANTOMS",
    "MAP_DEFAULTS",
    "MAP_UNITS",
    "TISSUE_NAMES",
    "Tissue",
    "TissueFractions",
    "VoxelPhantom",
    "area_resample",
    "bmapest_preprocess",
    "brain_phantom",
    "builtin_fractions",
    "builtin_phantom",
    "coil_sensitivities",
    "gaussian_b0",
    "mni152_fractions",
    "mni152_slice",
    "mni152_volume",
    "phantom_from_fractions",
    "polynomial_b0",
    "random_block_phantom",
    "random_tissue_properties",
    "shepp_logan_phantom",
    "smooth_b1",
    "tissue",
    "tissue_fractions",
    "tissue_table",
]
