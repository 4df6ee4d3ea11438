"""Bloch–Torrey signal solvers on assembled finite-element matrices.

- :mod:`.btpde` — Crank–Nicolson time stepping (sparse LU or BiCGStab) with a discrete-adjoint backward;
- :mod:`.mf` — the matrix formalism: truncated Laplace eigenbasis, exact propagation, frozen-basis gradients;
- :mod:`.dense` — the exact semi-discrete solution for small meshes (the gradient oracle);
- :mod:`.propagate` — the reduced-system propagation shared by the last two.
"""

from .btpde import btpde_signal
from .dense import dense_signal
from .mf import ModalBasis, eigenbasis, length_to_eigenvalue, mf_signal
from .propagate import ReducedSystem, propagate, reduce

__all__ = [
    "btpde_signal",
    "dense_signal",
    "ModalBasis",
    "eigenbasis",
    "length_to_eigenvalue",
    "mf_signal",
    "ReducedSystem",
    "propagate",
    "reduce",
]
