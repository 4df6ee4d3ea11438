"""The explicit encoding operator: adjointness, chunking, and agreement with the FFT path."""

import math

import torch

from gradmr.phantom import VoxelPhantom
from gradmr.recon import EncodingOperator, centred_fft, grid_cartesian, reconstruct_cartesian

#: float64 round-off of sums over a few hundred terms.
EXACT = 1e-10


def random_operator(*, coils=3, chunk_elements=2**22, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = (torch.rand(57, 3, generator=g, dtype=torch.float64) - 0.5) * 400  # 1/m
    positions = (torch.rand(23, 3, generator=g, dtype=torch.float64) - 0.5) * 0.05  # m
    sens = torch.randn(coils, 23, generator=g, dtype=torch.complex128) if coils else None
    return EncodingOperator(k, positions, sens, chunk_elements=chunk_elements)


def test_adjoint_identity_complex128():
    g = torch.Generator().manual_seed(5)
    for coils in (0, 3):
        op = random_operator(coils=coils, chunk_elements=100)  # several chunks
        x = torch.randn(op.voxel_count, generator=g, dtype=torch.complex128)
        y = torch.randn(op.sample_count, op.coil_count, generator=g, dtype=torch.complex128)
        lhs = torch.vdot(op.forward(x).flatten(), y.flatten())
        rhs = torch.vdot(x, op.adjoint(y))
        assert abs(lhs - rhs) < EXACT * abs(lhs)


def test_forward_matches_the_written_sum_and_chunking_changes_nothing():
    op = random_operator(coils=2)
    small = random_operator(coils=2, chunk_elements=50)
    x = torch.randn(op.voxel_count, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    phase = -2 * math.pi * op.kspace @ op.positions.T
    expected = torch.exp(1j * phase) @ (op.coil_sens * x).T  # s[k, c] = Σ_r c(r) m(r) e^{−2πi k·r}
    assert torch.allclose(op.forward(x), expected, atol=EXACT)
    assert torch.allclose(small.forward(x), expected, atol=EXACT)


def test_forward_on_the_cartesian_grid_equals_the_fft_path():
    matrix, fov = (1, 6, 8), (0.08, 0.06, 0.005)
    phantom = VoxelPhantom.create(
        pd=torch.rand(matrix, generator=torch.Generator().manual_seed(2)),
        t1=torch.ones(matrix),
        t2=torch.full(matrix, 0.1),
        voxel_size=(0.01, 0.01, 0.005),
        dtype=torch.float64,
    )
    ky, kx = torch.meshgrid(
        (torch.arange(6, dtype=torch.float64) - 3) / fov[1],
        (torch.arange(8, dtype=torch.float64) - 4) / fov[0],
        indexing="ij",
    )
    k = torch.stack([kx.flatten(), ky.flatten(), torch.zeros(48, dtype=torch.float64)], dim=-1)
    op = EncodingOperator(k, phantom.positions())
    image = phantom.total_pd().to(torch.complex128)
    signal = op.forward(image.flatten())
    grid = grid_cartesian(signal, k, fov=fov, matrix=matrix)
    assert torch.allclose(grid[0], centred_fft(image), atol=EXACT)
    assert torch.allclose(reconstruct_cartesian(signal, k, fov=fov, matrix=matrix)[0], image, atol=EXACT)


def test_gradients_flow_to_trajectory_and_image_through_checkpointed_chunks():
    def grads(chunk_elements):
        base = random_operator(coils=2)
        k = base.kspace.clone().requires_grad_(True)
        x = torch.randn(base.voxel_count, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
        x.requires_grad_(True)
        op = EncodingOperator(k, base.positions, base.coil_sens, chunk_elements=chunk_elements)
        loss = (op.forward(x).abs() ** 2).sum() + (op.adjoint(op.forward(x)).abs() ** 2).sum()
        loss.backward()
        return k.grad, x.grad

    k_one, x_one = grads(2**22)
    k_many, x_many = grads(60)
    assert torch.isfinite(k_one).all() and k_one.abs().max() > 0
    assert torch.allclose(k_one, k_many, rtol=1e-9, atol=1e-12)
    assert torch.allclose(x_one, x_many, rtol=1e-9, atol=1e-12)


def test_float32_trajectory_gives_complex64():
    op = EncodingOperator(torch.zeros(4, 3), torch.zeros(2, 3))
    assert op.forward(torch.ones(2)).dtype == torch.complex64
    assert torch.allclose(op.forward(torch.ones(2)), torch.full((4, 1), 2.0 + 0j))


def test_brain_slice_comes_back_the_right_way_round():
    """Simulate the asymmetric brain slice with the explicit sum, reconstruct by FFT: no flip, no mirror."""
    from gradmr.phantom.brain import brain_phantom

    n, fov = 24, (0.2, 0.2, 5e-3)
    phantom = brain_phantom((n, n), fov=fov[:2], slice_thickness=fov[2], dtype=torch.float64)
    ky, kx = torch.meshgrid(*(((torch.arange(n, dtype=torch.float64) - n // 2) / 0.2),) * 2, indexing="ij")
    k = torch.stack([kx.flatten(), ky.flatten(), torch.zeros(n * n, dtype=torch.float64)], dim=-1)
    signal = EncodingOperator(k, phantom.positions()).forward(phantom.total_pd().flatten())
    image = reconstruct_cartesian(signal, k, fov=fov, matrix=(1, n, n))[0]
    truth = phantom.total_pd()
    assert torch.allclose(image.real, truth, atol=1e-10)
    assert not torch.allclose(truth, truth.flip(-1), atol=0.1)  # a mirrored result would have failed
