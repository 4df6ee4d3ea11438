"""Measurement noise at a stated SNR for the weighted images that BMapEst fits.

The noise level σ is the standard deviation of the noise in *each* of the real and imaginary channels (the
thermal noise of a receiver: white, complex Gaussian, the same in every pixel after a unitary FFT), and the SNR
is the amplitude ratio in decibels,

    SNR [dB] = 20·log10(S / σ),   so   σ = S · 10^(−SNR/20),

with the signal level S chosen by ``reference``:

* ``"mean_in_mask"`` — the mean magnitude ``|image|`` over the pixels of ``mask`` (the whole image when no
  mask is given), the usual definition for brain images (mean signal in the brain over σ);
* ``"max"`` — the largest magnitude in the image (the peak-signal definition).

By default one σ serves all contrasts, with S taken over all of them together: the images of one protocol share
a receiver, so they share a noise floor, and a dark contrast (an inversion time near a null) is noisier relative
to its signal, as on a scanner. ``per_contrast=True`` gives every image its own σ, from its own S.

``kind="gaussian"`` adds the noise: complex noise to complex images, real noise (σ) to real images.
``kind="rician"`` returns the magnitude ``|image + n|`` with complex noise ``n`` (real images taken as complex
with zero phase): the magnitude image of a scanner, whose noise is Rician — biased upwards where the signal is
low (at zero signal the mean is ``σ·√(π/2)``, Gudbjartsson & Patz, MRM 34:910, 1995).
"""

from __future__ import annotations

import numpy as np
import torch

KINDS = ("gaussian", "rician")
REFERENCES = ("mean_in_mask", "max")


def _generator(seed: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def _images(images) -> torch.Tensor:
    t = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if t.ndim < 2:
        raise ValueError(f"images must have shape (..., y, x), got {tuple(t.shape)}")
    if not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.get_default_dtype())
    return t


def noise_sigma(
    images,
    *,
    snr_db: float,
    reference: str = "mean_in_mask",
    mask=None,
    per_contrast: bool = False,
) -> torch.Tensor:
    """The noise σ (per real/imaginary channel) that gives ``images`` the SNR ``snr_db`` (see the module).

    Returns a 0-dim tensor, or with ``per_contrast=True`` one σ per leading entry (shape ``images.shape[:-2]``).
    """
    x = _images(images)
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    mag = x.detach().abs().to(torch.float64)
    lead = mag.shape[:-2]
    if mask is not None:
        m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
        if tuple(m.shape) != tuple(mag.shape[-2:]):
            raise ValueError(f"mask must have shape {tuple(mag.shape[-2:])}, got {tuple(m.shape)}")
        m = m.to(device=mag.device, dtype=torch.bool)
        if not bool(m.any()):
            raise ValueError("mask is empty")
        values = mag[..., m]  # (..., pixels in mask)
    else:
        values = mag.reshape(*lead, -1)
    flat = values.reshape(-1, values.shape[-1]) if per_contrast else values.reshape(1, -1)
    level = flat.mean(dim=-1) if reference == "mean_in_mask" else flat.amax(dim=-1)
    if not bool((level > 0).all()):
        raise ValueError("the signal level is zero: no SNR can be defined")
    sigma = level * 10.0 ** (-float(snr_db) / 20.0)
    return sigma.reshape(lead) if per_contrast else sigma.reshape(())


def add_noise(
    images,
    *,
    snr_db: float,
    kind: str = "gaussian",
    seed: int | torch.Generator | None = None,
    reference: str = "mean_in_mask",
    mask=None,
    per_contrast: bool = False,
) -> torch.Tensor:
    """``images`` ``(contrasts, y, x)`` (or any ``(..., y, x)``; complex or real) with noise at ``snr_db``.

    σ comes from :func:`noise_sigma`. ``kind="gaussian"`` keeps the input's type (complex noise for complex
    images); ``kind="rician"`` returns real magnitudes. ``seed`` is an int, a :class:`torch.Generator` (drawn
    from, so successive calls differ) or ``None`` (fresh entropy). With ``reference="max"`` the mask, if given,
    selects where the peak is looked for. Not differentiable in the noise level (σ is a constant); the images
    keep their graph.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    x = _images(images)
    sigma = noise_sigma(x, snr_db=snr_db, reference=reference, mask=mask, per_contrast=per_contrast)
    real_dtype = x.real.dtype if x.is_complex() else x.dtype
    sigma = sigma.to(real_dtype)[..., None, None] if per_contrast else sigma.to(real_dtype)
    g = _generator(seed)
    complex_noise = x.is_complex() or kind == "rician"
    re = torch.randn(x.shape, generator=g, dtype=real_dtype).to(x.device)
    if not complex_noise:
        return x + sigma * re
    im = torch.randn(x.shape, generator=g, dtype=real_dtype).to(x.device)
    noisy = x + torch.complex(sigma * re, sigma * im)
    return noisy.abs() if kind == "rician" else noisy


__all__ = ["KINDS", "REFERENCES", "add_noise", "noise_sigma"]
