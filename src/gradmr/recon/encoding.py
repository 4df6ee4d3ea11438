"""The explicit encoding operator for arbitrary (non-Cartesian) trajectories.

``A m = s`` with ``s[k, c] = Σ_r c_c(r)·m(r)·exp(−2πi k·r)`` (the Fourier sign of ``docs/conventions.md``),
evaluated as a dense matrix product in chunks of samples so that memory stays at about
``chunk × voxels`` complex numbers, whatever the number of samples. Exact (no NUFFT approximation), cost
``O(samples · voxels · coils)``: meant for the small images of tests and optimisation loops.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from .._tensors import complex_dtype, real_dtype

#: Default bound on the number of complex elements of one chunk of the encoding matrix
#: (2**22 elements: 32 MiB in complex64).
DEFAULT_CHUNK_ELEMENTS = 2**22


class EncodingOperator:
    """Linear map from an image on given positions to multi-coil samples on a trajectory.

    Parameters
    ----------
    kspace : Tensor, shape ``(samples, 3)``
        Trajectory in x, y, z [1/m].
    positions : Tensor, shape ``(voxels, 3)``
        Voxel positions in x, y, z [m] (e.g. :meth:`gradmr.phantom.VoxelPhantom.positions`).
    coil_sens : Tensor, shape ``(coils, voxels)``, complex, optional
        Receive sensitivities; one coil of sensitivity 1 when ``None``.
    chunk_elements : int
        At most this many elements (samples × voxels) of the encoding matrix exist at once.

    All tensors may require grad; gradients flow to the image, the trajectory, the positions and the
    sensitivities. When grad is enabled each chunk is checkpointed, so backward memory is bounded too.
    The working precision follows ``kspace`` (float32 → complex64, float64 → complex128).
    """

    def __init__(
        self,
        kspace: torch.Tensor,
        positions: torch.Tensor,
        coil_sens: torch.Tensor | None = None,
        *,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        if kspace.ndim != 2 or kspace.shape[1] != 3:
            raise ValueError(f"kspace must have shape (samples, 3), got {tuple(kspace.shape)}")
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (voxels, 3), got {tuple(positions.shape)}")
        if kspace.is_complex() or not kspace.is_floating_point():
            raise TypeError(f"kspace must be a real floating tensor, got {kspace.dtype}")
        if chunk_elements < 1:
            raise ValueError(f"chunk_elements must be ≥ 1, got {chunk_elements}")
        self.real_dtype = real_dtype(kspace.dtype)
        self.complex_dtype = complex_dtype(self.real_dtype)
        self.kspace = kspace
        self.positions = positions.to(self.real_dtype)
        voxels = positions.shape[0]
        if coil_sens is not None:
            if coil_sens.ndim != 2 or coil_sens.shape[1] != voxels:
                raise ValueError(f"coil_sens must have shape (coils, {voxels}), got {tuple(coil_sens.shape)}")
            coil_sens = coil_sens.to(self.complex_dtype)
        self.coil_sens = coil_sens
        self.chunk = max(1, chunk_elements // max(voxels, 1))

    # ------------------------------------------------------------------ shapes
    @property
    def sample_count(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def voxel_count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def coil_count(self) -> int:
        return 1 if self.coil_sens is None else int(self.coil_sens.shape[0])

    # ------------------------------------------------------------------ helpers
    def _phases(self, k: torch.Tensor) -> torch.Tensor:
        """``exp(−2πi k·r)``, shape ``(chunk, voxels)``, built from real cos/sin (fast on CPU)."""
        phase = (-2 * math.pi) * (k.to(self.real_dtype) @ self.positions.T)
        return torch.polar(torch.ones_like(phase), phase)

    def _needs_checkpoint(self, *tensors: torch.Tensor | None) -> bool:
        return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)

    # ------------------------------------------------------------------ operators
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``A m``: image ``(voxels,)`` → signal ``(samples, coils)``, complex."""
        if image.shape != (self.voxel_count,):
            raise ValueError(f"image must have shape ({self.voxel_count},), got {tuple(image.shape)}")
        m = image.to(self.complex_dtype)
        weighted = m[None, :] if self.coil_sens is None else self.coil_sens * m  # (coils, voxels)
        use_ckpt = self._needs_checkpoint(m, weighted, self.kspace, self.positions)

        def block(k: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return self._phases(k) @ w.T  # (chunk, coils)

        out = []
        for start in range(0, self.sample_count, self.chunk):
            k = self.kspace[start : start + self.chunk]
            out.append(checkpoint(block, k, weighted, use_reentrant=False) if use_ckpt else block(k, weighted))
        if not out:
            return torch.zeros(0, self.coil_count, dtype=self.complex_dtype, device=image.device)
        return torch.cat(out, dim=0)

    __call__ = forward

    def adjoint(self, signal: torch.Tensor) -> torch.Tensor:
        """``Aᴴ s``: signal ``(samples, coils)`` → image ``(voxels,)``, complex."""
        if signal.shape != (self.sample_count, self.coil_count):
            raise ValueError(
                f"signal must have shape ({self.sample_count}, {self.coil_count}), got {tuple(signal.shape)}"
            )
        s = signal.to(self.complex_dtype)
        use_ckpt = self._needs_checkpoint(s, self.kspace, self.positions)

        def block(k: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self._phases(k).conj().T @ y  # (voxels, coils)

        total = torch.zeros(self.voxel_count, self.coil_count, dtype=self.complex_dtype, device=signal.device)
        for start in range(0, self.sample_count, self.chunk):
            k = self.kspace[start : start + self.chunk]
            y = s[start : start + self.chunk]
            total = total + (checkpoint(block, k, y, use_reentrant=False) if use_ckpt else block(k, y))
        if self.coil_sens is None:
            return total[:, 0]
        return (self.coil_sens.conj().T * total).sum(dim=1)

    def normal(self, image: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A m``."""
        return self.adjoint(self.forward(image))
