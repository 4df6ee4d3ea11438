"""Cartesian gridding, the centred inverse DFT and coil combination, against the written convention."""

import math

import numpy as np
import pytest
import torch

from gradmr.recon import centred_fft, combine_coils, grid_cartesian, reconstruct_cartesian

#: float64 round-off of a few hundred terms.
EXACT = 1e-10


def cartesian_kspace(matrix, fov):
    """All grid points ``(n − N//2)/FOV`` in C order of (z, y, x), as (samples, 3) in (x, y, z) [1/m]."""
    nz, ny, nx = matrix
    axes = [(torch.arange(n, dtype=torch.float64) - n // 2) / f for n, f in zip((nz, ny, nx), fov[::-1], strict=True)]
    kz, ky, kx = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([kx.flatten(), ky.flatten(), kz.flatten()], dim=-1)


def direct_signal(kspace, position, value=1.0):
    """s(k) = m·exp(−2πi k·r) written out (docs/conventions.md), for one voxel."""
    phase = -2 * math.pi * (kspace @ torch.as_tensor(position, dtype=torch.float64))
    return (value * torch.exp(1j * phase))[:, None]


@pytest.mark.parametrize("matrix", [(1, 6, 5), (3, 4, 5)])
def test_single_voxel_reconstructs_to_one_at_its_place(matrix):
    fov = (0.05, 0.04, 0.03)  # x, y, z
    nz, ny, nx = matrix
    iz, iy, ix = nz - 1, 1, nx - 1  # off-centre, not symmetric
    vs = [f / n for f, n in zip(fov, (nx, ny, nz), strict=True)]
    position = [(ix - nx // 2) * vs[0], (iy - ny // 2) * vs[1], (iz - nz // 2) * vs[2]]
    k = cartesian_kspace(matrix, fov)
    image = reconstruct_cartesian(direct_signal(k, position), k, fov=fov, matrix=matrix)
    assert image.shape == (1, *matrix)
    expected = torch.zeros(matrix, dtype=torch.complex128)
    expected[iz, iy, ix] = 1.0
    assert torch.allclose(image[0], expected, atol=EXACT)


def test_positive_x_voxel_lands_at_higher_index_and_sample_order_does_not_matter():
    fov, matrix = (0.08, 0.08, 0.005), (1, 8, 8)
    k = cartesian_kspace(matrix, fov)
    position = [0.02, -0.01, 0.0]  # +x, −y of the centre: index (ix, iy) = (4 + 2, 4 − 1)
    perm = torch.randperm(k.shape[0], generator=torch.Generator().manual_seed(1))
    image = reconstruct_cartesian(direct_signal(k, position)[perm], k[perm], fov=fov, matrix=matrix)
    peak = int(image.abs().argmax())
    assert np.unravel_index(peak, matrix) == (0, 3, 6)


def test_centred_fft_is_the_forward_model_and_inverts():
    torch.manual_seed(0)
    fov, matrix = (0.06, 0.05, 0.005), (1, 5, 6)
    image = torch.randn(matrix, dtype=torch.complex128)
    k = cartesian_kspace(matrix, fov)
    nz, ny, nx = matrix
    vs = [f / n for f, n in zip(fov, (nx, ny, nz), strict=True)]
    signal = torch.zeros(k.shape[0], 1, dtype=torch.complex128)
    for iz, iy, ix in np.ndindex(*matrix):
        pos = [(ix - nx // 2) * vs[0], (iy - ny // 2) * vs[1], (iz - nz // 2) * vs[2]]
        signal = signal + direct_signal(k, pos, image[iz, iy, ix])
    grid = grid_cartesian(signal, k, fov=fov, matrix=matrix)
    assert torch.allclose(grid[0], centred_fft(image), atol=EXACT)
    assert torch.allclose(reconstruct_cartesian(signal, k, fov=fov, matrix=matrix)[0], image, atol=EXACT)


def test_unsampled_points_are_zero_and_repeats_are_averaged():
    fov, matrix = (0.04, 0.04, 0.005), (1, 4, 4)
    k = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [25.0, -50.0, 0.0]], dtype=torch.float64)
    s = torch.tensor([[1.0], [3.0], [5.0j]], dtype=torch.complex128)
    grid = grid_cartesian(s, k, fov=fov, matrix=matrix)
    assert grid[0, 0, 2, 2] == 2.0  # centre: mean of 1 and 3
    assert grid[0, 0, 0, 3] == 5.0j  # ky = −2/FOV → index 0, kx = +1/FOV → index 3
    assert int((grid != 0).sum()) == 2


def test_off_grid_and_outside_samples_raise():
    fov, matrix = (0.04, 0.04, 0.005), (1, 4, 4)
    s = torch.ones(1, 1, dtype=torch.complex64)
    with pytest.raises(ValueError, match="off the Cartesian grid"):
        grid_cartesian(s, torch.tensor([[12.6, 0.0, 0.0]]), fov=fov, matrix=matrix)
    with pytest.raises(ValueError, match="outside the matrix"):
        grid_cartesian(s, torch.tensor([[50.0, 0.0, 0.0]]), fov=fov, matrix=matrix)  # index 2 + 2 = 4
    with pytest.raises(ValueError, match="outside the matrix"):
        grid_cartesian(s, torch.tensor([[0.0, 0.0, 200.0]]), fov=fov, matrix=matrix)


def test_reconstruction_is_differentiable():
    fov, matrix = (0.03, 0.03, 0.005), (1, 3, 3)
    k = cartesian_kspace(matrix, fov)
    signal = torch.randn(k.shape[0], 2, dtype=torch.complex128, generator=torch.Generator().manual_seed(2))
    signal.requires_grad_(True)

    def fn(s):
        return combine_coils(reconstruct_cartesian(s, k, fov=fov, matrix=matrix))

    assert torch.autograd.gradcheck(fn, (signal,))


def test_combine_coils():
    torch.manual_seed(3)
    image = torch.randn(1, 4, 5, dtype=torch.complex128)
    sens = torch.randn(3, 1, 4, 5, dtype=torch.complex128)
    coil_images = sens * image
    expected_sos = torch.sqrt((coil_images.abs() ** 2).sum(0))
    assert torch.allclose(combine_coils(coil_images), expected_sos, atol=EXACT)
    assert torch.allclose(combine_coils(coil_images, sens), image, atol=EXACT)
    sens[:, 0, 0, 0] = 0
    assert combine_coils(sens * image, sens)[0, 0, 0] == 0
    # one uniform coil: the image itself
    assert torch.allclose(combine_coils(image[None], torch.ones(1, 1, 4, 5)), image)
