"""Forward models of BMapEst: tissue fractions → the weighted images of a protocol.

* ``"multi"`` — the multi-compartment model (each tissue its own spin pool, signals summed by fraction), which is
  what partial volume physically is. With uniform B0 and B1 the magnetisation of a pool does not depend on where it
  sits, so the signal of tissue ``t`` at sample ``κ`` from a voxel at ``r`` is ``h_t(κ)·e^{−2πiκ·r}``, with
  ``h_t`` the signal of one voxel of pure tissue at the origin (simulated once per contrast and tissue with the PDG;
  it carries the whole sequence: preparation, transient, relaxation along the readout, diffusion, voxel shape).
  Every contrast is then ``S_c(κ) = Σ_t h_ct(κ)·F[f_t](κ)``: linear in the fractions, evaluated with FFTs —
  the estimation problem becomes a convex least-squares fit. (Exact when every emitting state of the pool has the
  dephasing of the sample itself; states left by spoilers sit outside the voxel's k band and emit nothing. The test
  compares it with a full PDG simulation of the multi-pool phantom.)
* ``"mixed"`` — the paper's mapping: one pool per voxel with ``q = Σ_t f_t q_t`` for PD, T1, T2, T2′ and D, simulated
  with the PDG per voxel (its graph follows the voxel's own relaxation, so gradients reach the maps); slow, and
  non-convex.

Images are reconstructed as the sequences allow: every protocol contrast samples the Cartesian grid once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..phantom.core import VoxelPhantom
from ..phantom.fractions import TissueFractions, phantom_from_fractions
from ..phantom.tissues import Tissue, tissue_table
from ..recon.fft import centred_fft, centred_ifft, grid_cartesian
from ..sequence.core import Sequence as MRSequence
from ..sim.pdg import simulate_pdg

#: Tissues of BMapEst, in map order.
TISSUES = ("csf", "gm", "wm")

MODELS = ("multi", "mixed")


@dataclass(frozen=True)
class Acquisition:
    """What the forward model needs to know about the protocol and the grid.

    Attributes
    ----------
    sequences : list of Sequence
        One per contrast, each sampling the Cartesian ``matrix`` grid at ``fov`` once.
    matrix : (ny, nx)
    fov : (x, y) [m]
    slice_thickness : float [m]
    """

    sequences: list
    matrix: tuple[int, int]
    fov: tuple[float, float]
    slice_thickness: float = 8e-3

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        ny, nx = self.matrix
        return (self.fov[0] / nx, self.fov[1] / ny, self.slice_thickness)

    def grid(self) -> dict:
        ny, nx = self.matrix
        return {"fov": (self.fov[0], self.fov[1], self.slice_thickness), "matrix": (1, ny, nx)}


def _check_sequences(acq: Acquisition) -> None:
    if not acq.sequences:
        raise ValueError("the acquisition needs at least one sequence")
    for i, seq in enumerate(acq.sequences):
        if not isinstance(seq, MRSequence):
            raise TypeError(f"sequence {i} is a {type(seq).__name__}, not a gradmr Sequence")


def tissue_kernels(
    acq: Acquisition, *, tissues: Mapping[str, Tissue] | None = None, names: Sequence[str] = TISSUES
) -> torch.Tensor:
    """k-space kernels ``h_ct`` on the grid, shape ``(contrasts, tissues, ny, nx)``, complex128.

    ``h_ct`` is the gridded signal of one voxel of pure tissue ``t`` (PD included) at the origin under contrast
    ``c`` (PDG, no gradient needed: the kernels do not depend on the maps).
    """
    _check_sequences(acq)
    table = tissue_table(preset="bmapest") if tissues is None else dict(tissues)
    out = []
    for seq in acq.sequences:
        per_tissue = []
        for name in names:
            t = table[name]
            one = torch.ones(1, 1, dtype=torch.float64)
            voxel = VoxelPhantom.create(
                pd=one * t.pd, t1=one * t.t1, t2=one * t.t2, t2dash=one * t.t2dash, d=one * t.d,
                voxel_size=acq.voxel_size, dtype=torch.float64,
            )  # fmt: skip
            with torch.no_grad():
                signal = simulate_pdg(seq, voxel)
            per_tissue.append(grid_cartesian(signal, seq.kspace().detach().double(), **acq.grid())[0, 0])
        out.append(torch.stack(per_tissue))
    return torch.stack(out)


def images_multi(fractions: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Images of the multi-compartment model, ``(contrasts, ny, nx)`` complex, from fractions ``(tissues, ny, nx)``.

    Differentiable (and linear) in ``fractions``.
    """
    if fractions.shape[0] != kernels.shape[1] or fractions.shape[1:] != kernels.shape[2:]:
        raise ValueError(
            f"fractions {tuple(fractions.shape)} do not match the kernels' (tissues, ny, nx) = "
            f"{tuple(kernels.shape[1:])}"
        )
    spectra = centred_fft(fractions.to(kernels.dtype)[:, None])[:, 0]  # (tissues, ny, nx)
    return centred_ifft((kernels * spectra[None]).sum(1)[:, None])[:, 0]


def kspace_multi(fractions: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Gridded k-space of the multi-compartment model, ``(contrasts, ny, nx)`` complex."""
    spectra = centred_fft(fractions.to(kernels.dtype)[:, None])[:, 0]
    return (kernels * spectra[None]).sum(1)


def images_mixed(
    fractions: torch.Tensor,
    acq: Acquisition,
    *,
    tissues: Mapping[str, Tissue] | None = None,
    names: Sequence[str] = TISSUES,
) -> torch.Tensor:
    """Images of the paper's linear mixing of property maps, ``(contrasts, ny, nx)`` complex (PDG per voxel)."""
    _check_sequences(acq)
    table = tissue_table(preset="bmapest") if tissues is None else dict(tissues)
    fr = TissueFractions.create(fractions, tuple(names), voxel_size=acq.voxel_size, dtype=fractions.dtype)
    phantom = phantom_from_fractions(fr, tissues=table, model="mixed")
    out = []
    for seq in acq.sequences:
        signal = simulate_pdg(seq, phantom)
        kgrid = grid_cartesian(signal, seq.kspace().detach().to(fractions.dtype), **acq.grid())
        out.append(centred_ifft(kgrid)[0, 0])
    return torch.stack(out)


def simulate_images(
    fractions: torch.Tensor,
    acq: Acquisition,
    *,
    model: str = "multi",
    tissues: Mapping[str, Tissue] | None = None,
    kernels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images ``(contrasts, ny, nx)`` of fractions ``(3, ny, nx)`` (CSF, GM, WM) under the protocol ``acq``."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if model == "multi":
        k = tissue_kernels(acq, tissues=tissues) if kernels is None else kernels
        return images_multi(fractions, k)
    return images_mixed(fractions, acq, tissues=tissues)
