"""Calling MR-zero (``mrzerocore``, AGPL, optional) as a peer: phantom conversion and its accurate settings.

MR-zero is only *called*; none of its code is used. Shared by the peer tests and the benchmarks.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch


def to_mrzero(phantom, pool: int = 0):
    """One pool of a gradmr phantom as an MR-zero ``VoxelGridPhantom`` with the same voxel positions.

    gradmr maps are ``(pools, z, y, x)`` in SI; MR-zero's are ``(x, y, z)`` with D in 10⁻³ mm²/s, B1 and coil_sens with
    a leading coil axis and an affine in mm. MR-zero places voxel ``i`` at ``affine[:3, :3] @ (i − n//2)`` (the
    translation column is ignored), so a diagonal affine of the voxel size gives gradmr's ``(i − N//2)·voxel_size``.
    """
    import MRzeroCore as mr0

    def xyz(m: torch.Tensor) -> torch.Tensor:
        return m[pool].permute(2, 1, 0).to(torch.float32)

    affine = torch.zeros(3, 4)
    affine[:3, :3] = torch.diag(phantom.voxel_size.detach().double() * 1000).float()
    return mr0.VoxelGridPhantom(
        xyz(phantom.pd),
        xyz(phantom.t1),
        xyz(phantom.t2),
        xyz(phantom.t2dash),
        xyz(phantom.d) * 1e9,
        xyz(phantom.b0),
        xyz(phantom.b1)[None].to(torch.complex64),
        phantom.coil_sens.permute(0, 3, 2, 1).to(torch.complex64),
        affine,
    )


def run_mrzero(seq_or_path, data):
    """MR-zero with the accurate settings of the notes (2000 states, 1e-5 pre-pass; 1e-3 main pass).

    Returns its signal ``(samples, coils)`` *in its own convention* (``i ×`` gradmr's for the same file).
    """
    import MRzeroCore as mr0

    seq = mr0.Sequence.import_file(str(seq_or_path)) if isinstance(seq_or_path, str | Path) else seq_or_path
    with contextlib.redirect_stdout(io.StringIO()):
        graph = mr0.compute_graph(seq, data, 2000, 1e-5)
    return mr0.execute_graph(graph, seq, data, 1e-3, 1e-3, print_progress=False)
