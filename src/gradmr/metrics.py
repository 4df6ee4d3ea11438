"""Image metrics — one definition for the whole project.

All functions take torch tensors (numpy arrays are converted), are differentiable where that makes
sense (``nrmse``, ``psnr``, ``ssim``) and return 0-dim tensors (or one value per leading entry for ``ssim``).
"""

from __future__ import annotations

import torch

#: SSIM constants and window, as Wang et al. 2004 and scikit-image's ``structural_similarity`` with
#: ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def nrmse(a, b) -> torch.Tensor:
    """Normalised root-mean-square error ``‖a − b‖ / ‖b‖`` (``b`` is the reference; complex allowed)."""
    a, b = _as_tensor(a), _as_tensor(b)
    _same_shape(a, b)
    return torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)


def psnr(a, b, data_range: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10·log10(R² / mean|a − b|²)`` with ``b`` the reference.

    ``data_range`` R defaults to ``max(b) − min(b)`` for real ``b`` and to ``max|b|`` for complex ``b``
    (scikit-image would use the dtype's range for floats; pass ``data_range`` to match it).
    """
    a, b = _as_tensor(a), _as_tensor(b)
    _same_shape(a, b)
    if data_range is None:
        data_range = float(b.abs().max()) if b.is_complex() else float(b.max() - b.min())
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    mse = ((a - b).abs() ** 2).mean()
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_kernel(dtype: torch.dtype, device) -> torch.Tensor:
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _symmetric_index(n: int, radius: int, device) -> torch.Tensor:
    """Indices of an axis padded by ``radius`` with scipy's ``mode='reflect'`` (``d c b a | a b c d``)."""
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _gaussian_filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of ``(batch, y, x)`` with symmetric boundaries (same size out)."""
    r = (kernel.numel() - 1) // 2
    _, ny, nx = x.shape
    xp = x[:, _symmetric_index(ny, r, x.device)][:, :, _symmetric_index(nx, r, x.device)]
    xp = xp[:, None]
    xp = torch.nn.functional.conv2d(xp, kernel.view(1, 1, -1, 1))
    xp = torch.nn.functional.conv2d(xp, kernel.view(1, 1, 1, -1))
    return xp[:, 0]


def ssim(a, b, data_range: float) -> torch.Tensor:
    """Mean structural similarity of 2D images ``(..., y, x)`` (real), one value per leading entry.

    Matches ``skimage.metrics.structural_similarity(a, b, data_range=R, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``: Gaussian window σ = 1.5 truncated at 3.5σ (11 × 11), symmetric
    boundaries, K1 = 0.01, K2 = 0.03, and the mean over the map cropped by the window radius (5) on each side.
    Images must be at least 11 × 11. Take ``.abs()`` of complex images first.
    """
    a, b = _as_tensor(a), _as_tensor(b)
    _same_shape(a, b)
    if a.is_complex() or b.is_complex():
        raise TypeError("ssim takes real images; pass magnitudes (.abs()) of complex images")
    if a.ndim < 2:
        raise ValueError(f"ssim needs images of shape (..., y, x), got {tuple(a.shape)}")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    kernel = _gaussian_kernel(torch.float64 if a.dtype == torch.float64 else torch.float32, a.device)
    r = (kernel.numel() - 1) // 2
    ny, nx = a.shape[-2:]
    if min(ny, nx) < kernel.numel():
        raise ValueError(f"ssim needs images of at least {kernel.numel()} × {kernel.numel()}, got {ny} × {nx}")
    lead = a.shape[:-2]
    x = a.reshape(-1, ny, nx).to(kernel.dtype)
    y = b.reshape(-1, ny, nx).to(kernel.dtype)
    mux, muy = _gaussian_filter(x, kernel), _gaussian_filter(y, kernel)
    vx = _gaussian_filter(x * x, kernel) - mux**2
    vy = _gaussian_filter(y * y, kernel) - muy**2
    cxy = _gaussian_filter(x * y, kernel) - mux * muy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s = ((2 * mux * muy + c1) * (2 * cxy + c2)) / ((mux**2 + muy**2 + c1) * (vx + vy + c2))
    return s[:, r : ny - r, r : nx - r].mean(dim=(-2, -1)).reshape(lead)


def dice(a_mask, b_mask) -> torch.Tensor:
    """Dice coefficient ``2|A ∩ B| / (|A| + |B|)`` of two masks (bool, or soft masks in [0, 1]).

    Two empty masks give 1.
    """
    a, b = _as_tensor(a_mask), _as_tensor(b_mask)
    _same_shape(a, b)
    dt = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    a, b = a.to(dt), b.to(dt)
    denom = a.sum() + b.sum()
    if float(denom) == 0:
        return torch.ones((), dtype=dt)
    return 2 * (a * b).sum() / denom


__all__ = ["dice", "nrmse", "psnr", "ssim"]
