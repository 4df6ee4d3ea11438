"""P1 assembly: exact identities of the element matrices, invariances, gradients, orientation guard."""

import math

import numpy as np
import pytest
import torch
from meshes import ball, boxes, disk, interval

from gradmr.diffusion.assembly import assemble, barycentric_gradients
from gradmr.diffusion.compartments import Compartments, compartments


@pytest.mark.parametrize("make", [lambda: interval((4e-6, 6e-6), 20), lambda: disk(5e-6, 2), lambda: ball(5e-6, 1)])
def test_exact_integrals(make):
    mesh = make()
    fe = assemble(mesh, compartments(mesh.n_compartments, diffusivity=2e-9, t2=0.05))
    one = torch.ones(fe.n, dtype=torch.float64)
    vol = fe.weights.sum()
    assert torch.allclose(fe.matmul(fe.mass, one), fe.weights, rtol=1e-14, atol=0)
    assert float(vol) == pytest.approx(float(mesh.volumes().sum()), rel=1e-13)
    # K·1 = 0 (constants are in the kernel), R = M/T2
    assert float(fe.matmul(fe.stiffness, one).abs().max()) < 1e-12 * float(fe.stiffness.abs().max())
    assert torch.allclose(fe.relaxation, fe.mass / 0.05, rtol=1e-14)
    x = mesh.points
    for k in range(mesh.dim):
        # 1ᵀ J_k 1 = ∫x_k ; 1ᵀ J_k x_k = ∫x_k² = x_kᵀ M x_k (P1 exact) ; x_kᵀ K x_k = D·|Ω|
        assert float(one @ fe.matmul(fe.moments[k], one)) == pytest.approx(float(fe.weights @ x[:, k]), rel=1e-12)
        xk = x[:, k]
        lhs = float(one @ fe.matmul(fe.moments[k], xk))
        assert lhs == pytest.approx(float(xk @ fe.matmul(fe.mass, xk)), rel=1e-12)
        assert float(xk @ fe.matmul(fe.stiffness, xk)) == pytest.approx(2e-9 * float(vol), rel=1e-12)
    # divergence theorem: Σ boundary flux = 0 per direction, and h_k·x_k = |Ω|
    assert float(fe.boundary_flux.sum(dim=1).abs().max()) < 1e-12 * float(vol) ** ((mesh.dim - 1) / mesh.dim)
    for k in range(mesh.dim):
        assert float(fe.boundary_flux[k] @ x[:, k]) == pytest.approx(float(vol), rel=1e-12)


def test_interface_exchange_matrix():
    mesh = interval((5e-6, 5e-6), 10)
    fe = assemble(mesh, compartments(2, permeability=1e-4))
    q = fe.to_dense(fe.flux)
    a, b = mesh.interface_facets[0, 0, 0], mesh.interface_facets[0, 1, 0]
    assert float(q[a, a]) == pytest.approx(1e-4) and float(q[b, b]) == pytest.approx(1e-4)
    assert float(q[a, b]) == pytest.approx(-1e-4) and float(q[b, a]) == pytest.approx(-1e-4)
    assert float(q.abs().sum()) == pytest.approx(4e-4)
    m3 = boxes((5e-6, 5e-6), (4, 2, 2), size=2e-6)
    fe3 = assemble(m3, compartments(2, permeability=1e-4))
    one = torch.ones(fe3.n, dtype=torch.float64)
    # Q·1 = 0 (exchange conserves magnetisation); ∫_Γ κ over one side = κ·area
    assert float(fe3.matmul(fe3.flux, one).abs().max()) < 1e-25
    side0 = (m3.node_compartment == 0).to(torch.float64)
    assert float(side0 @ fe3.matmul(fe3.flux, side0)) == pytest.approx(1e-4 * 4e-12, rel=1e-12)


def test_scaling_invariance_of_matrices():
    mesh = ball(5e-6, 1)
    alpha = 1.7
    fe1 = assemble(mesh, compartments(1, diffusivity=2e-9))
    fe2 = assemble(mesh.with_points(alpha * mesh.points), compartments(1, diffusivity=alpha**2 * 2e-9))
    assert torch.allclose(fe2.mass, alpha**3 * fe1.mass, rtol=1e-13)
    assert torch.allclose(
        fe2.stiffness, alpha**3 * fe1.stiffness, rtol=1e-12, atol=1e-13 * float(fe2.stiffness.abs().max())
    )
    assert torch.allclose(fe2.moments, alpha**4 * fe1.moments, rtol=1e-12, atol=1e-13 * float(fe2.moments.abs().max()))


def test_rotation_invariance():
    mesh = ball(5e-6, 1)
    rot, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    if torch.det(rot) < 0:
        rot[:, 0] = -rot[:, 0]
    fe1 = assemble(mesh, compartments(1))
    fe2 = assemble(mesh.with_points(mesh.points @ rot.T), compartments(1))
    assert torch.allclose(fe1.mass, fe2.mass, rtol=1e-12)
    assert torch.allclose(fe1.stiffness, fe2.stiffness, rtol=1e-10, atol=1e-12 * float(fe1.stiffness.abs().max()))
    # J rotates as a vector: Σ_k R_jk J_k(original) = J_j(rotated)
    assert torch.allclose(rot @ fe1.moments, fe2.moments, rtol=1e-10, atol=1e-12 * float(fe1.moments.abs().max()))


def test_tensor_diffusivity_matches_scalar():
    mesh = disk(5e-6, 2)
    iso = assemble(mesh, compartments(1, diffusivity=2e-9))
    ten = assemble(mesh, compartments(1, diffusivity=2e-9 * torch.eye(2, dtype=torch.float64).unsqueeze(0)))
    assert torch.allclose(iso.stiffness, ten.stiffness, rtol=1e-13)


def test_orientation_guard_and_bad_input():
    mesh = ball(5e-6, 1)
    flipped = mesh.points.clone()
    c = mesh.cells[0]
    flipped[c[0]] = 2 * flipped[c[1:]].mean(0) - flipped[c[0]]  # reflect one vertex through the opposite face
    with pytest.raises(ValueError, match="inverted"):
        assemble(mesh.with_points(flipped), compartments(1))
    with pytest.raises(ValueError, match="compartments"):
        assemble(mesh, compartments(2))
    with pytest.raises(ValueError, match="m²/s"):
        compartments(1, diffusivity=2e-3)
    with pytest.raises(ValueError, match="t2"):
        compartments(1, t2=-1.0)
    with pytest.raises(ValueError, match="density"):
        assemble(interval((5e-6, 5e-6), 4), compartments(2, density=[1.0, 0.5], permeability=1e-5))


def test_gradcheck_assembly_in_vertices():
    mesh = ball(1.0, 0)  # a handful of cells, unit coordinates keep gradcheck's steps meaningful
    pts = mesh.points.clone().requires_grad_(True)
    f64 = torch.float64
    # non-dimensional (unit-length) problem: build the dataclass directly, past the SI guard of compartments()
    tissue = Compartments(
        torch.tensor([0.7], dtype=f64), torch.tensor([2.0], dtype=f64), torch.ones(1, dtype=f64), torch.zeros(1, 1)
    )

    def fn(p):
        fe = assemble(mesh.with_points(p), tissue)
        return fe.mass, fe.stiffness, fe.moments, fe.boundary_flux

    assert torch.autograd.gradcheck(fn, (pts,), eps=1e-6, atol=1e-8)


def test_barycentric_gradients_sum_to_zero():
    mesh = ball(5e-6, 1)
    g, vol = barycentric_gradients(mesh.points, mesh.cells)
    assert float(g.sum(1).abs().max()) < 1e-9 * float(g.abs().max())
    assert float(vol.sum()) == pytest.approx(float(mesh.volumes().sum()))
    assert float(vol.sum()) < 4 / 3 * math.pi * (5e-6) ** 3
    assert np.all(vol.numpy() > 0)
