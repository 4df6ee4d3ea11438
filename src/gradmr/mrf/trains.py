"""The fingerprinting trains of the MRF experiments, as :class:`~gradmr.sim.epg.FispTrain` (SI units, rad).

* ``"fisp"`` — MRF-FISP after Jiang et al. 2015 (:func:`~gradmr.sequence.mrf.jiang_flip_angles`, our seeded TR
  curve :func:`~gradmr.sequence.mrf.jiang_trs`, TE 1.908 ms, inversion with TI 18 ms), 1000 TRs.
* ``"spline5"``, ``"spline11noisy"`` — stand-ins for the trains of Liu et al. 2021 (TR 8.7552 ms, TE 4.9226 ms,
  inversion first, 1120 TRs; flip angles a seeded spline through 5 or 11 random knots, the second with noise). The
  originals are not public; see :mod:`gradmr.sequence.mrf`.

These trains are the same ones the core builders (:func:`~gradmr.sequence.mrf.fisp_mrf`,
:func:`~gradmr.sequence.mrf.spline_mrf`) turn into full event sequences.
"""

from __future__ import annotations

import torch

from ..sequence import mrf as _mrf
from ..sim.epg import FispTrain

#: Names accepted by :func:`mrf_train`.
TRAINS = ("fisp", "spline5", "spline11noisy")

__all__ = ["TRAINS", "mrf_train"]


def mrf_train(name: str = "fisp", *, frames: int | None = None, seed: int = 0, dtype=torch.float32) -> FispTrain:
    """The named train (see the module docs); ``frames`` TRs (default: the train's own length), ``seed`` of its
    random parts (the TR curve of ``fisp``, the knots and noise of the spline trains)."""
    if name == "fisp":
        n = _mrf.JIANG_FRAMES if frames is None else frames
        return FispTrain.create(
            _mrf.jiang_flip_angles(n),
            _mrf.jiang_trs(n, seed=seed),
            torch.full((n,), _mrf.JIANG_TE, dtype=torch.float64),
            inversion_time=_mrf.JIANG_TI,
            dtype=dtype,
        )
    if name in ("spline5", "spline11noisy"):
        n = _mrf.SPLINE_FRAMES if frames is None else frames
        flips = _mrf.spline5_flip_angles(n, seed) if name == "spline5" else _mrf.spline11noisy_flip_angles(n, seed)
        return FispTrain.create(
            flips,
            torch.full((n,), _mrf.SPLINE_TR, dtype=torch.float64),
            torch.full((n,), _mrf.SPLINE_TE, dtype=torch.float64),
            inversion_time=_mrf.SPLINE_TI,
            dtype=dtype,
        )
    raise ValueError(f"train must be one of {TRAINS}, got {name!r}")
