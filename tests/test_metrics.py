"""Image metrics against closed forms and, where installed, scikit-image."""

import math

import numpy as np
import pytest
import torch

from gradmr.metrics import dice, nrmse, psnr, ssim

EXACT = 1e-12
#: scikit-image computes in float64 with scipy's filters; agreement to round-off is expected.
SKIMAGE_AGREEMENT = 1e-10


def test_nrmse_real_and_complex():
    b = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert abs(float(nrmse(b * 1.1, b)) - 0.1) < EXACT
    bc = torch.tensor([3.0j, 4.0], dtype=torch.complex128)
    assert abs(float(nrmse(bc + torch.tensor([0.5, 0.0], dtype=torch.complex128), bc)) - 0.1) < EXACT
    with pytest.raises(ValueError, match="same shape"):
        nrmse(b, b[:1])


def test_psnr_closed_form():
    b = torch.zeros(10, dtype=torch.float64)
    b[0] = 2.0  # data range 2
    a = b + 0.1  # mse 0.01
    assert abs(float(psnr(a, b)) - 10 * math.log10(4 / 0.01)) < EXACT
    assert abs(float(psnr(a, b, data_range=1.0)) - 20.0) < EXACT


def test_ssim_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 16, 20, generator=g, dtype=torch.float64)
    same = ssim(x, x, data_range=1.0)
    assert same.shape == (2,)
    assert torch.allclose(same, torch.ones(2, dtype=torch.float64), atol=EXACT)
    noisy = x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    assert (ssim(noisy, x, data_range=1.0) < 0.9).all()
    with pytest.raises(ValueError, match="at least 11"):
        ssim(x[:, :8, :8], x[:, :8, :8], data_range=1.0)
    with pytest.raises(TypeError):
        ssim(x.to(torch.complex128), x.to(torch.complex128), data_range=1.0)


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.random((23, 31))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    expected = metrics.structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert abs(float(ssim(torch.from_numpy(a), torch.from_numpy(b), data_range=1.0)) - expected) < SKIMAGE_AGREEMENT


def test_ssim_is_differentiable():
    x = torch.rand(12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ssim(t, x * 0.9, data_range=1.0), (y,), fast_mode=True)


def test_dice():
    a = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    b = torch.tensor([1, 0, 1, 0], dtype=torch.bool)
    assert float(dice(a, b)) == 0.5
    assert float(dice(a, a)) == 1.0
    assert float(dice(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool))) == 1.0
    assert abs(float(dice(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 1.0]))) - 2 * 1.5 / 3.5) < 1e-6
