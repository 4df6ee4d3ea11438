"""Cartesian reconstruction: gridding samples onto the DFT grid and the centred inverse DFT.

Conventions (``docs/conventions.md``): the signal is ``s(k) = Σ_r c(r)·m(r)·exp(−2πi k·r)``, voxel ``i``
lies at ``(i − N//2)·Δ`` and k-space index ``n`` at ``(n − N//2)/FOV`` with ``FOV = N·Δ``. Then

``s[n] = Σ_i m[i]·exp(−2πi (n − N//2)(i − N//2)/N)``  and  ``m[i] = (1/N) Σ_n s[n]·exp(+2πi (n − N//2)(i − N//2)/N)``,

i.e. ``m = fftshift(ifftn(ifftshift(s)))`` with numpy's ``"backward"`` normalisation (1/N on the inverse). A
voxel of proton density 1 therefore reconstructs to the value 1, whatever the matrix size.
"""

from __future__ import annotations

import torch

from .._tensors import complex_dtype, real_dtype

#: Largest distance of a sample from its grid point, in grid steps, for it to count as on the grid.
#: Trajectories built from float32 moments carry relative errors ~1e-6; 1e-3 of a step is far above
#: that and far below any real off-grid design.
GRID_TOLERANCE = 1e-3

_SPATIAL = (-3, -2, -1)


def _check_matrix(matrix) -> tuple[int, int, int]:
    m = tuple(int(n) for n in matrix)
    if len(m) != 3 or any(n < 1 for n in m):
        raise ValueError(f"matrix must be three positive sizes (nz, ny, nx), got {tuple(matrix)}")
    return m  # type: ignore[return-value]


def _check_fov(fov) -> tuple[float, float, float]:
    f = tuple(float(v) for v in torch.as_tensor(fov).flatten().tolist())
    if len(f) != 3 or any(not (v > 0) for v in f):
        raise ValueError(f"fov must be three positive lengths (x, y, z) in m, got {f}")
    if any(v > 10.0 for v in f):
        raise ValueError(f"fov is in m; got {f} (over 10 m)")
    return f  # type: ignore[return-value]


def kspace_indices(kspace: torch.Tensor, *, fov, matrix) -> torch.Tensor:
    """Grid indices ``(samples, 3)`` in (z, y, x) order of each sample, index ``round(k·FOV) + N//2``.

    Raises
    ------
    ValueError
        If a sample is more than :data:`GRID_TOLERANCE` of a grid step away from a grid point, or falls
        outside the matrix.
    """
    nz, ny, nx = _check_matrix(matrix)
    fx, fy, fz = _check_fov(fov)
    if kspace.ndim != 2 or kspace.shape[-1] != 3:
        raise ValueError(f"kspace must have shape (samples, 3), got {tuple(kspace.shape)}")
    k = kspace.detach().to(torch.float64)
    steps = k * torch.tensor([fx, fy, fz], dtype=torch.float64)  # (samples, 3) in (x, y, z)
    nearest = torch.round(steps)
    off = (steps - nearest).abs()
    if (off > GRID_TOLERANCE).any():
        worst = int(off.max(dim=1).values.argmax())
        raise ValueError(
            f"kspace sample {worst} at {k[worst].tolist()} 1/m is {float(off[worst].max()):.3g} grid steps off the "
            f"Cartesian grid of fov {(fx, fy, fz)} m (tolerance {GRID_TOLERANCE}); use a non-Cartesian "
            "reconstruction (gradmr.recon.cg_reconstruct) instead"
        )
    sizes = torch.tensor([nx, ny, nz], dtype=torch.float64)
    index = nearest + torch.div(sizes, 2, rounding_mode="floor")
    outside = ((index < 0) | (index >= sizes)).any(dim=1)
    if outside.any():
        first = int(outside.nonzero()[0, 0])
        raise ValueError(
            f"kspace sample {first} at {k[first].tolist()} 1/m falls outside the matrix (nz, ny, nx) = "
            f"{(nz, ny, nx)} for fov {(fx, fy, fz)} m; the grid covers indices −N//2 … N − N//2 − 1 per axis"
        )
    return index.flip(-1).to(torch.long)


def grid_cartesian(signal: torch.Tensor, kspace: torch.Tensor, *, fov, matrix) -> torch.Tensor:
    """Place Cartesian samples on the k-space grid.

    Parameters
    ----------
    signal : Tensor, shape ``(samples, coils)``, complex
    kspace : Tensor, shape ``(samples, 3)``
        Trajectory in x, y, z [1/m]; sample ``j`` goes to index ``round(k·FOV) + N//2`` per axis.
    fov : sequence of 3 floats
        Field of view in x, y, z [m]. For a 2D acquisition (``nz = 1``) any positive z value works.
    matrix : sequence of 3 ints
        ``(nz, ny, nx)``.

    Returns
    -------
    Tensor, shape ``(coils, nz, ny, nx)``, complex
        Unsampled points are 0; a point sampled several times holds the mean of its samples.
        Differentiable with respect to ``signal``.
    """
    if signal.ndim != 2:
        raise ValueError(f"signal must have shape (samples, coils), got {tuple(signal.shape)}")
    if signal.shape[0] != kspace.shape[0]:
        raise ValueError(f"signal has {signal.shape[0]} samples but kspace has {kspace.shape[0]}")
    nz, ny, nx = _check_matrix(matrix)
    index = kspace_indices(kspace, fov=fov, matrix=matrix).to(signal.device)
    flat = (index[:, 0] * ny + index[:, 1]) * nx + index[:, 2]
    cdt = complex_dtype(real_dtype(signal.dtype))
    values = signal.to(cdt).transpose(0, 1)  # (coils, samples)
    coils = values.shape[0]
    grid = torch.zeros(coils, nz * ny * nx, dtype=cdt, device=signal.device).index_add(1, flat, values)
    counts = torch.zeros(nz * ny * nx, dtype=real_dtype(cdt), device=signal.device)
    counts = counts.index_add(0, flat, torch.ones_like(flat, dtype=counts.dtype))
    grid = grid / counts.clamp(min=1)
    return grid.reshape(coils, nz, ny, nx)


def centred_ifft(kgrid: torch.Tensor) -> torch.Tensor:
    """Centred inverse DFT over the last three axes, ``fftshift(ifftn(ifftshift(·)))`` with 1/N."""
    shifted = torch.fft.ifftshift(kgrid, dim=_SPATIAL)
    return torch.fft.fftshift(torch.fft.ifftn(shifted, dim=_SPATIAL, norm="backward"), dim=_SPATIAL)


def centred_fft(image: torch.Tensor) -> torch.Tensor:
    """Centred forward DFT over the last three axes: the noise-free Cartesian signal of ``image``.

    The inverse of :func:`centred_ifft`: ``s[n] = Σ_i m[i]·exp(−2πi (n − N//2)(i − N//2)/N)``.
    """
    shifted = torch.fft.ifftshift(image, dim=_SPATIAL)
    return torch.fft.fftshift(torch.fft.fftn(shifted, dim=_SPATIAL, norm="backward"), dim=_SPATIAL)


def reconstruct_cartesian(signal: torch.Tensor, kspace: torch.Tensor, *, fov, matrix) -> torch.Tensor:
    """Image from Cartesian samples by the centred inverse DFT.

    Parameters
    ----------
    signal : Tensor, shape ``(samples, coils)``, complex
    kspace : Tensor, shape ``(samples, 3)`` [1/m]
    fov : sequence of 3 floats, (x, y, z) [m]
    matrix : sequence of 3 ints, ``(nz, ny, nx)``

    Returns
    -------
    Tensor, shape ``(coils, nz, ny, nx)``, complex
        Voxel ``(iz, iy, ix)`` lies at ``((ix − nx//2)Δx, (iy − ny//2)Δy, (iz − nz//2)Δz)``. Normalised so that
        a voxel with ``m = 1`` (coil sensitivity 1) fully sampled reconstructs to 1.
    """
    return centred_ifft(grid_cartesian(signal, kspace, fov=fov, matrix=matrix))


def combine_coils(images: torch.Tensor, coil_sens: torch.Tensor | None = None) -> torch.Tensor:
    """Combine coil images ``(coils, ...)`` into one image ``(...)``.

    Without ``coil_sens``: root sum of squares, real and ≥ 0 (its gradient at 0 is taken as 0).
    With ``coil_sens`` (same shape, or broadcastable): the sensitivity-weighted (Roemer, noise covariance
    identity) combination ``Σ conj(c)·x / Σ |c|²``, complex; 0 where every sensitivity is 0. With one coil of
    sensitivity 1 this returns the image itself.
    """
    if images.ndim < 1:
        raise ValueError("images must have a leading coils axis")
    if coil_sens is None:
        return torch.linalg.vector_norm(images, dim=0)
    sens = coil_sens.to(images.device)
    if not sens.is_complex():
        sens = sens.to(complex_dtype(real_dtype(images.dtype)))
    weight = (sens.abs() ** 2).sum(0)
    numer = (sens.conj() * images).sum(0)
    safe = torch.where(weight > 0, weight, torch.ones_like(weight))
    return torch.where(weight > 0, numer / safe, torch.zeros_like(numer))
