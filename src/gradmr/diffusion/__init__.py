"""Differentiable diffusion MRI: the Bloch–Torrey equation on P1 finite elements, in torch.

Units (SI at every API edge): lengths in m, times in s, diffusivity in m²/s, b in s/m² (1000 s/mm² = 1e9 s/m²),
permeability in m/s (1 µm/µs = 1 m/s), gradient amplitude in T/m, q = γg in rad/(s·m). Computation is float64 /
complex128 (float32 is not enough near λ = 0). Converters for the usual lab units: :mod:`gradmr.units`
(``s_per_mm2_to_s_per_m2``, ``mm2_per_s_to_m2_per_s``, ``ms_to_s``) and :data:`UM` (1e-6 m), :data:`MS` (1e-3 s).

Where things live:

- :mod:`.mesh` (the :class:`Mesh` type, interface-node duplication), :mod:`.geometry` (generators, deformations,
  quality, file I/O through meshio);
- :mod:`.compartments` (D, T2, density, permeability), :mod:`.assembly` (M, K, Q, R, J, boundary flux in torch);
- :mod:`.sequences` (PGSE, double PGSE, cos-OGSE, piecewise constant; b, kernels, diffusion time, STA coefficient),
  :mod:`.directions` (HARDI sets);
- :mod:`.solvers` (BTPDE, matrix formalism, dense oracle), :mod:`.adc` (HADC, MF tensor, STA),
  :mod:`.simulate` (one call to normalised signals), :mod:`.fit` (inverse problems).
"""

from .adc import directional_surface, hadc, mf_adc_tensor, sta_adc
from .assembly import FEMatrices, assemble
from .compartments import Compartments, compartments
from .directions import hardi_directions, unit_direction
from .fit import FitResult, fit_parameters, fit_permeability, fit_radius
from .mesh import Mesh, from_conforming
from .sequences import PGSE, CosOGSE, DiffusionSequence, DoublePGSE, PiecewiseConstant
from .simulate import METHODS, DiffusionSignals, simulate, simulate_rows
from .solvers import btpde_signal, dense_signal, eigenbasis, mf_signal

#: One micrometre and one millisecond in SI, for readable literals (``5 * UM``, ``10 * MS``).
UM = 1e-6
MS = 1e-3

__all__ = [
    "UM",
    "MS",
    "Mesh",
    "from_conforming",
    "Compartments",
    "compartments",
    "FEMatrices",
    "assemble",
    "DiffusionSequence",
    "PGSE",
    "DoublePGSE",
    "CosOGSE",
    "PiecewiseConstant",
    "hardi_directions",
    "unit_direction",
    "METHODS",
    "DiffusionSignals",
    "simulate",
    "simulate_rows",
    "btpde_signal",
    "dense_signal",
    "eigenbasis",
    "mf_signal",
    "hadc",
    "mf_adc_tensor",
    "sta_adc",
    "directional_surface",
    "FitResult",
    "fit_parameters",
    "fit_radius",
    "fit_permeability",
]
