"""One call from a geometry, tissue parameters and sequences to normalised diffusion signals.

:func:`simulate` assembles the FE matrices, solves with the chosen method and returns :class:`DiffusionSignals`,
one row per (sequence, direction, b-value). Signals are normalised to each sequence's own b = 0 signal (which
carries any T2 decay), so S(b=0) = 1. The result is differentiable in ``mesh.points`` and in every ``tissue`` field
for all three methods (``mf``: frozen-basis gradients; ``btpde``: discrete adjoint; ``dense``: exact autograd).
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceType
from dataclasses import dataclass

import torch

from .assembly import FEMatrices, assemble
from .compartments import Compartments
from .mesh import Mesh
from .solvers.dense import DENSE_MAX_NODES
from .solvers.mf import ModalBasis, eigenbasis
from .solvers.propagate import propagate, reduce

__all__ = ["DiffusionSignals", "simulate", "simulate_rows", "METHODS", "encodings"]

#: Solvers :func:`simulate` offers.
METHODS = ("mf", "btpde", "dense")


@dataclass(frozen=True)
class DiffusionSignals:
    """Signals of S encodings (rows ordered sequence → direction → b).

    Attributes:
        b: (S,) b-values in s/m².
        direction: (S, dim) unit gradient directions.
        sequence_index: (S,) index into the ``sequences`` given to :func:`simulate`.
        signal: (S,) real part of S/S(b=0) (the imaginary part vanishes for domains symmetric about the centre).
        raw: (S,) complex unnormalised signal wᵀξ(TE), in m^dim (density × volume).
        s0: (S,) complex b = 0 signal of each row's sequence.
    """

    b: torch.Tensor
    direction: torch.Tensor
    sequence_index: torch.Tensor
    signal: torch.Tensor
    raw: torch.Tensor
    s0: torch.Tensor


def _directions(directions, dim: int) -> torch.Tensor:
    d = torch.as_tensor(directions, dtype=torch.float64)
    if d.ndim == 1:
        d = d.unsqueeze(0)
    if d.ndim != 2 or d.shape[1] < dim:
        raise ValueError(f"directions must have shape (n, {dim}) or (n, 3), got {tuple(d.shape)}")
    if d.shape[1] > dim:
        if d[:, dim:].abs().max() > 1e-12:
            raise ValueError(
                f"the mesh is {dim}-D: directions must have zero components beyond the first {dim} "
                f"(an infinite cylinder's 2-D cross-section sees only the in-plane gradient)"
            )
        d = d[:, :dim]
    norm = d.norm(dim=1, keepdim=True)
    if not torch.isfinite(d).all() or (norm == 0).any():
        raise ValueError("directions must be finite and nonzero")
    return d / norm


def _check_b(b: torch.Tensor) -> torch.Tensor:
    bd = b.detach()
    if not torch.isfinite(bd).all() or (bd < 0).any():
        raise ValueError(f"b-values must be finite and ≥ 0 in s/m², got {bd.tolist()}")
    if bd.numel() and 0 < float(bd.max()) < 1e6:
        raise ValueError(
            f"b-values up to {float(bd.max()):g} look like s/mm² (all below 1 s/mm² in s/m²); give them in s/m² "
            "(1000 s/mm² = 1e9 s/m²)"
        )
    return b


def encodings(sequences, bvalues, directions, dim: int):
    """The (sequence index, direction, b) rows of a simulation, as tensors (S,), (S, dim), (S,)."""
    b = _check_b(torch.as_tensor(bvalues, dtype=torch.float64).reshape(-1))
    d = _directions(directions, dim)
    ns, nd, nb = len(sequences), d.shape[0], b.numel()
    seq_idx = torch.arange(ns).repeat_interleave(nd * nb)
    dirs = d.repeat_interleave(nb, dim=0).repeat(ns, 1)
    bb = b.repeat(ns * nd)
    return seq_idx, dirs, bb


def _solver(method: str, fe: FEMatrices, basis: ModalBasis | None, dt: float, progress: bool):
    """A function (q, dirs, durations, values, progress) → complex signals, with the reduction done once."""
    if method in ("mf", "dense"):
        if method == "dense" and fe.n > DENSE_MAX_NODES:
            raise ValueError(f"the dense route is for meshes up to {DENSE_MAX_NODES} nodes, this one has {fe.n}")
        system = reduce(fe, basis.phi if method == "mf" else None)
        return lambda q, dirs, durations, values, show: propagate(system, q, dirs, durations, values)
    from .solvers.btpde import btpde_signal

    return lambda q, dirs, durations, values, show: btpde_signal(
        fe, q, dirs, durations, values, dt=dt, progress=show and progress
    )


def simulate(
    mesh: Mesh,
    tissue: Compartments,
    sequences,
    bvalues,
    directions=(1.0, 0.0, 0.0),
    *,
    method: str = "mf",
    length_scale: float = 1e-6,
    basis: ModalBasis | None = None,
    dt: float = 5e-5,
    n_intervals: int | None = None,
    progress: bool = False,
) -> DiffusionSignals:
    """Normalised signals of ``mesh`` with ``tissue`` for every (sequence, direction, b-value).

    Args:
        mesh: the geometry (m).
        tissue: per-compartment parameters.
        sequences: one diffusion sequence or a list (:mod:`gradmr.diffusion.sequences`).
        bvalues: b-values in s/m² (1000 s/mm² = 1e9 s/m²).
        directions: (n, 3) or (3,) gradient directions (normalised here).
        method: ``"mf"`` (matrix formalism), ``"btpde"`` (Crank–Nicolson time stepping) or ``"dense"`` (exact, small
            meshes only).
        length_scale: the matrix formalism's truncation length in m.
        basis: a precomputed eigenbasis to reuse (frozen-basis gradients); computed when ``None``.
        dt: the BTPDE time step in s.
        n_intervals: piecewise-constant intervals per lobe for smooth (OGSE) profiles.
        progress: show progress bars on long solves.
    """
    seqs = list(sequences) if isinstance(sequences, SequenceType) else [sequences]
    if not seqs:
        raise ValueError("sequences is empty")
    seq_idx, dirs, b = encodings(seqs, bvalues, directions, mesh.dim)
    return simulate_rows(
        mesh,
        tissue,
        seqs,
        seq_idx,
        b,
        dirs,
        method=method,
        length_scale=length_scale,
        basis=basis,
        dt=dt,
        n_intervals=n_intervals,
        progress=progress,
    )


def simulate_rows(
    mesh: Mesh,
    tissue: Compartments,
    sequences: list,
    sequence_index,
    b,
    directions,
    *,
    method: str = "mf",
    length_scale: float = 1e-6,
    basis: ModalBasis | None = None,
    dt: float = 5e-5,
    n_intervals: int | None = None,
    progress: bool = False,
) -> DiffusionSignals:
    """Like :func:`simulate`, for explicit rows: sequence_index (S,), b (S,) in s/m², directions (S, dim)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    seq_idx = torch.as_tensor(sequence_index, dtype=torch.int64).reshape(-1)
    b = _check_b(torch.as_tensor(b, dtype=torch.float64).reshape(-1))
    dirs = _directions(directions, mesh.dim)
    if not (seq_idx.shape[0] == b.shape[0] == dirs.shape[0]):
        raise ValueError(
            f"sequence_index, b and directions must have one row each per encoding, got {seq_idx.shape[0]}, "
            f"{b.shape[0]} and {dirs.shape[0]}"
        )
    if seq_idx.numel() and (seq_idx.min() < 0 or seq_idx.max() >= len(sequences)):
        raise ValueError(f"sequence_index must lie in [0, {len(sequences)})")
    fe = assemble(mesh, tissue)
    if method == "mf" and basis is None:
        basis = eigenbasis(fe, diffusivity=tissue.max_diffusivity, length_scale=length_scale)
    solve = _solver(method, fe, basis, dt, progress)
    raw = torch.zeros(b.shape[0], dtype=torch.complex128)
    s0 = torch.zeros(b.shape[0], dtype=torch.complex128)
    for i, seq in enumerate(sequences):
        rows = torch.nonzero(seq_idx == i).reshape(-1)
        if rows.numel() == 0:
            continue
        durations, values = seq.intervals(n_intervals) if n_intervals is not None else seq.intervals()
        q = seq.q_from_b(b[rows])
        sig = solve(q, dirs[rows], durations, values, True)
        zero = solve(torch.zeros(1, dtype=torch.float64), dirs[rows][:1], durations, values, False)
        raw = raw.index_copy(0, rows, sig)
        s0 = s0.index_copy(0, rows, zero.expand(rows.numel()))
    return DiffusionSignals(b=b, direction=dirs, sequence_index=seq_idx, signal=(raw / s0).real, raw=raw, s0=s0)
