"""Extended phase graphs (Weigel, J Magn Reson Imaging 2015;41:266): the fast simulator of spoiled and FISP trains.

* :func:`fisp_signal` — batched fingerprints of :class:`FispTrain` (MR fingerprinting): a compiled kernel for
  dictionaries, forward sensitivities for T1/T2/B1 gradients, plain autograd for everything else.
* :func:`simulate_epg` — the EPG of a core :class:`~gradmr.sequence.Sequence` on a phantom, so that one sequence
  drives PDG, EPG and Bloch (``gradmr.sim.simulate(method="epg")``).
"""

from .fisp import DEFAULT_STATES, METHODS, fisp_signal, phase_factor
from .sequence import epg_shifts, simulate_epg
from .train import MAX_FLIP_RAD, FispTrain, fisp_train_from_sequence

__all__ = [
    "DEFAULT_STATES",
    "MAX_FLIP_RAD",
    "METHODS",
    "FispTrain",
    "epg_shifts",
    "fisp_signal",
    "fisp_train_from_sequence",
    "phase_factor",
    "simulate_epg",
]
