"""Mesh-deformation inverse problems: an axon's bead amplitude from its signals, and the deformation regularisers.

Both use the matrix formalism with a frozen eigenbasis, recomputed at the current geometry between optimiser runs
(the way ``experiments/diffusion_axon_shape.py`` fits a beaded, bent axon).
"""

from __future__ import annotations

import pytest
import torch

from gradmr.diffusion import geometry as geo
from gradmr.diffusion.assembly import assemble
from gradmr.diffusion.compartments import compartments
from gradmr.diffusion.mesh import Mesh
from gradmr.diffusion.sequences import PGSE
from gradmr.diffusion.simulate import simulate
from gradmr.diffusion.solvers.mf import ModalBasis, eigenbasis

UM = 1e-6
F64 = torch.float64
D = 2e-9  # m²/s
TISSUE = compartments(1, diffusivity=D)
SEQS = [PGSE(10e-3, 20e-3)]
B = [1e9, 3e9, 1e10]  # s/m² (1, 3, 10 ms/µm²)
DIRS = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # ⊥ and ∥ to the axon
WAVELENGTH = 8 * UM


def _basis(mesh: Mesh) -> ModalBasis:
    return eigenbasis(assemble(mesh, TISSUE), diffusivity=D, length_scale=1.5 * UM, method="sparse")


def _signals(mesh: Mesh, basis: ModalBasis) -> torch.Tensor:
    return simulate(mesh, TISSUE, SEQS, B, DIRS, basis=basis).signal


def test_bead_amplitude_recovered_from_signals():
    """A beaded axon (a = 0.2) is recovered from a = 0.05 to |Δa| < 1e-3 with a refreshed frozen basis.

    Noise-free signals from the same mesh and truncation: a = 0.2 is an exact fixed point of "recompute the basis,
    minimise", so the tolerance (0.5 % of a) only covers the optimiser's stopping rule.
    """
    mesh = geo.cylinder(2 * UM, 16 * UM, n=4)  # two bead wavelengths
    assert 300 <= mesh.n_nodes <= 1500

    def at(a) -> Mesh:
        return mesh.with_points(geo.bead(mesh.points, a, WAVELENGTH))

    truth = at(0.2)
    target = _signals(truth, _basis(truth)).detach()
    scale = float(torch.mean(target**2))
    a = torch.tensor(0.05, dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS([a], max_iter=5, line_search_fn="strong_wolfe", tolerance_grad=1e-14)
    with torch.no_grad():
        start = float(torch.mean((_signals(at(a), _basis(at(a))) - target) ** 2) / scale)
    for _ in range(6):
        basis = _basis(at(a.detach()))

        def closure(basis=basis):
            opt.zero_grad()
            loss = torch.mean((_signals(at(a), basis) - target) ** 2) / scale
            loss.backward()
            return loss.detach()

        before = float(a.detach())
        opt.step(closure)
        if abs(float(a.detach()) - before) < 1e-7:
            break
    assert float(a.detach()) == pytest.approx(0.2, abs=1e-3)
    with torch.no_grad():
        final = float(torch.mean((_signals(at(a), _basis(at(a))) - target) ** 2) / scale)
    assert start > 1e-5 and final < 1e-8  # rms signal error < 1e-4 of the rms signal


def test_regularisers_repair_what_the_signals_cannot_see():
    """Interior-node roughness survives a data-only fit; quality_penalty lifts bad cells, smoothness smooths the field.

    The domain of a beaded axon is kept exact (boundary nodes at the truth) and only its interior nodes are jittered
    (0.12 µm, h ≈ 1 µm): the signals see this only through the discretisation (a misfit ~1e-6 of a straight
    cylinder's), so fitting them alone leaves the displacement field rough and the worst cell at η = 0.19. Adding
    ``quality_penalty`` (threshold 0.3) lifts every cell to the threshold without smoothing the field; adding
    ``smoothness`` as well removes most of the roughness; the data misfit stays small throughout.
    """
    mesh = geo.cylinder(2 * UM, 8 * UM, n=4)  # one bead wavelength, 225 nodes
    x = geo.conforming_points(mesh).detach()
    u_true = geo.bead(x, 0.2, WAVELENGTH) - x
    truth = geo.displace(mesh, u_true)
    target = _signals(truth, _basis(truth)).detach()
    straight = float(torch.mean((_signals(mesh, _basis(mesh)) - target) ** 2))

    interior = torch.ones(mesh.n_nodes, dtype=torch.bool)
    interior[mesh.boundary_facets.reshape(-1)] = False
    jitter = 0.12 * UM * torch.randn(mesh.n_nodes, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    u0 = u_true + jitter * interior[:, None]

    def quality(u):
        return geo.mean_ratio_quality(geo.displace(mesh, u).points, mesh.cells)

    smooth0, q0 = float(geo.smoothness(mesh, u0)), float(quality(u0).min())
    assert q0 < 0.2  # some cells are poor (none inverted: the mesh assembles)
    basis = _basis(geo.displace(mesh, u0))

    def fit(w_smooth: float, w_quality: float):
        p = (u0 / UM).clone().requires_grad_(True)  # displacement in µm
        opt = torch.optim.LBFGS([p], max_iter=15, line_search_fn="strong_wolfe", tolerance_grad=1e-14)

        def terms():
            u = p * UM
            deformed = geo.displace(mesh, u)
            data = torch.mean((_signals(deformed, basis) - target) ** 2) / straight
            reg = w_smooth * geo.smoothness(mesh, u) + w_quality * geo.quality_penalty(mesh, deformed.points, 0.3)
            return data, reg

        def closure():
            opt.zero_grad()
            data, reg = terms()
            (data + reg).backward()
            return (data + reg).detach()

        with torch.no_grad():
            data0 = float(terms()[0])
        opt.step(closure)
        with torch.no_grad():
            u = p * UM
            return data0, float(terms()[0]), float(geo.smoothness(mesh, u)), float(quality(u).min())

    data0, data_only, smooth_only, q_only = fit(0.0, 0.0)
    assert data0 < 1e-5 and data_only < 0.1 * data0  # the signals were fitted …
    assert smooth_only > 0.95 * smooth0 and q_only < 0.2  # … without repairing the mesh
    _, data_q, smooth_q, q_q = fit(0.0, 1.0)
    assert q_q > 0.29 and smooth_q > 0.95 * smooth0 and data_q < 1e-6
    _, data_sq, smooth_sq, q_sq = fit(0.1, 1.0)
    assert smooth_sq < 0.5 * smooth0 and q_sq > 0.5 and data_sq < 1e-4
