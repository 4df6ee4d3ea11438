"""Conjugate gradients: recover a known image from noise-free non-Cartesian samples."""

import math

import torch

from gradmr.metrics import nrmse
from gradmr.phantom.brain import brain_phantom
from gradmr.recon import EncodingOperator, cg_reconstruct

#: Noise-free, well-sampled data: the exact image must come back to much better than 1 %.
RECOVERY_NRMSE = 1e-2

N, FOV = 16, 0.2
KMAX = N / 2 / FOV  # 1/m, edge of the Cartesian k-space square


def truth():
    phantom = brain_phantom((N, N), fov=(FOV, FOV), dtype=torch.float64)
    return phantom.total_pd().flatten().to(torch.complex128), phantom.positions()


def test_random_trajectory_is_recovered():
    x, positions = truth()
    g = torch.Generator().manual_seed(0)
    k = (torch.rand(4 * N * N, 3, generator=g, dtype=torch.float64) * 2 - 1) * KMAX
    k[:, 2] = 0
    op = EncodingOperator(k, positions)
    recon = cg_reconstruct(op.forward(x), op, iterations=20, tol=1e-12)
    assert nrmse(recon, x) < RECOVERY_NRMSE


def test_radial_trajectory_is_recovered():
    x, positions = truth()
    spokes, samples = 32, 46
    angles = torch.arange(spokes, dtype=torch.float64) * math.pi / spokes
    # spokes reach √2·KMAX (×1.45) so that the corners of the Cartesian square are sampled too
    radius = (torch.arange(samples, dtype=torch.float64) - samples // 2) / (samples // 2) * KMAX * 1.45
    kx = (radius[None] * torch.cos(angles[:, None])).flatten()
    ky = (radius[None] * torch.sin(angles[:, None])).flatten()
    k = torch.stack([kx, ky, torch.zeros_like(kx)], dim=-1)
    op = EncodingOperator(k, positions)
    recon = cg_reconstruct(op.forward(x), op, iterations=20, tol=1e-12)
    assert nrmse(recon, x) < RECOVERY_NRMSE


def test_tikhonov_shrinks_and_gradients_flow():
    x, positions = truth()
    g = torch.Generator().manual_seed(1)
    k = (torch.rand(N * N, 3, generator=g, dtype=torch.float64) * 2 - 1) * KMAX
    k[:, 2] = 0
    op = EncodingOperator(k, positions)
    signal = op.forward(x).detach().requires_grad_(True)
    plain = cg_reconstruct(signal, op, iterations=5)
    damped = cg_reconstruct(signal, op, iterations=5, tikhonov=1e3)
    assert torch.linalg.vector_norm(damped) < torch.linalg.vector_norm(plain)
    (plain.abs() ** 2).sum().backward()
    assert signal.grad is not None and torch.isfinite(signal.grad).all()


def test_zero_iterations_and_zero_signal():
    x, positions = truth()
    op = EncodingOperator(torch.zeros(3, 3, dtype=torch.float64), positions)
    assert (cg_reconstruct(torch.zeros(3, 1, dtype=torch.complex128), op) == 0).all()
    assert (cg_reconstruct(op.forward(x), op, iterations=0) == 0).all()


def test_warm_start_at_the_solution_stays_there():
    x, positions = truth()
    g = torch.Generator().manual_seed(2)
    k = (torch.rand(2 * N * N, 3, generator=g, dtype=torch.float64) * 2 - 1) * KMAX
    k[:, 2] = 0
    op = EncodingOperator(k, positions)
    assert nrmse(cg_reconstruct(op.forward(x), op, iterations=3, x0=x), x) < 1e-12
