"""The voxel phantom: tissue maps on a regular grid.

Maps have shape ``(pools, z, y, x)``: a voxel may hold several tissue pools (e.g. the
CSF, GM and WM fractions of a partial-volume voxel), each with its own properties and
its proton density already weighted by its fraction. Simulators treat every pool as an
independent spin population at the voxel's position and sum the signals, because
partial volume mixes *signals*, not relaxation times.

Voxel centres lie at ``(i − N//2)·voxel_size`` along each axis (so the centre of the grid
is the origin and a centred FFT reconstructs the image without a shift).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch

from .._tensors import TensorDataclass, complex_dtype

#: Map names in file order, with their units (used in error messages and docs).
MAP_UNITS = {
    "pd": "relative",
    "t1": "s",
    "t2": "s",
    "t2dash": "s",
    "d": "m²/s",
    "b0": "Hz",
    "b1": "relative",
}

#: Defaults for maps a user leaves out (documented in the README and ``docs/conventions.md``).
MAP_DEFAULTS = {
    "pd": 1.0,
    "t1": float("inf"),  # placeholder: T1 has no default, it must be given
    "t2": float("inf"),
    "t2dash": 1.0,  # s: long enough to be negligible over a typical echo time
    "d": 0.0,  # m²/s: no diffusion
    "b0": 0.0,  # Hz: on resonance
    "b1": 1.0,  # nominal flip angles
}

#: Diffusivity above this (m²/s) is surely given in mm²/s or 10⁻³ mm²/s (free water at 37 °C is 3e-9).
_MAX_D = 1e-7


@dataclass(frozen=True)
class VoxelPhantom(TensorDataclass):
    """Tissue maps on a regular grid.

    Attributes
    ----------
    pd : Tensor, shape ``(pools, z, y, x)``
        Proton density (relative, ≥ 0), already weighted by each pool's fraction.
    t1, t2, t2dash : Tensor, shape ``(pools, z, y, x)``
        Longitudinal, transverse and reversible (Lorentzian) relaxation times [s].
    d : Tensor, shape ``(pools, z, y, x)``
        Isotropic diffusivity [m²/s].
    b0 : Tensor, shape ``(pools, z, y, x)``
        Off-resonance [Hz].
    b1 : Tensor, shape ``(pools, z, y, x)``
        Relative transmit field: the flip angle a voxel sees is ``b1 · α``.
    coil_sens : Tensor, shape ``(coils, z, y, x)``, complex
        Receive sensitivities; one uniform coil by default.
    voxel_size : Tensor, shape ``(3,)``
        Voxel size in x, y, z [m].
    """

    pd: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    t2dash: torch.Tensor
    d: torch.Tensor
    b0: torch.Tensor
    b1: torch.Tensor
    coil_sens: torch.Tensor
    voxel_size: torch.Tensor

    @staticmethod
    def create(
        *,
        pd,
        t1,
        t2,
        t2dash=None,
        d=None,
        b0=None,
        b1=None,
        coil_sens=None,
        voxel_size=(1e-3, 1e-3, 1e-3),
        dtype: torch.dtype = torch.float32,
        validate: bool = True,
    ) -> VoxelPhantom:
        """Build a phantom from maps of one shape.

        Each map may be 2D ``(y, x)``, 3D ``(z, y, x)`` or 4D ``(pools, z, y, x)``; missing maps
        take :data:`MAP_DEFAULTS`. Tensors that require grad keep their graph.
        """
        given = {"pd": pd, "t1": t1, "t2": t2, "t2dash": t2dash, "d": d, "b0": b0, "b1": b1}
        ref = _to_4d("pd", pd.to(dtype) if isinstance(pd, torch.Tensor) else torch.as_tensor(pd, dtype=dtype))
        maps = {}
        for name, value in given.items():
            if value is None:
                maps[name] = torch.full(ref.shape, MAP_DEFAULTS[name], dtype=dtype)
                continue
            t = value.to(dtype) if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=dtype)
            if t.ndim == 0:
                t = t.expand(ref.shape)
            t = _to_4d(name, t)
            if t.shape != ref.shape:
                raise ValueError(f"map {name} has shape {tuple(t.shape)}, but pd has shape {tuple(ref.shape)}")
            maps[name] = t
        grid = ref.shape[1:]
        if coil_sens is None:
            coil_sens = torch.ones((1, *grid), dtype=complex_dtype(dtype))
        else:
            coil_sens = torch.as_tensor(coil_sens)
            if coil_sens.ndim == 2:
                coil_sens = coil_sens[None, None]
            elif coil_sens.ndim == 3 and grid[0] == 1 and coil_sens.shape[1:] == grid[1:]:
                coil_sens = coil_sens[:, None]
            coil_sens = coil_sens.to(complex_dtype(dtype))
            if coil_sens.ndim != 4 or tuple(coil_sens.shape[1:]) != tuple(grid):
                raise ValueError(
                    f"coil_sens must have shape (coils, {', '.join(map(str, grid))}), got {tuple(coil_sens.shape)}"
                )
        vs = torch.as_tensor(voxel_size, dtype=dtype).flatten()
        if vs.numel() != 3:
            raise ValueError(f"voxel_size must have three values (x, y, z) in m, got {vs.numel()}")
        phantom = VoxelPhantom(coil_sens=coil_sens, voxel_size=vs, **maps)
        if validate:
            phantom.validate()
        return phantom

    # ------------------------------------------------------------------ geometry
    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(z, y, x)``."""
        return tuple(self.pd.shape[1:])  # type: ignore[return-value]

    @property
    def pool_count(self) -> int:
        return int(self.pd.shape[0])

    @property
    def coil_count(self) -> int:
        return int(self.coil_sens.shape[0])

    @property
    def fov(self) -> torch.Tensor:
        """Field of view in x, y, z [m]."""
        z, y, x = self.grid_shape
        return self.voxel_size * torch.tensor([x, y, z], dtype=self.voxel_size.dtype)

    def axis_positions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Voxel-centre coordinates along x, y and z [m], each of shape ``(N_axis,)``."""
        z, y, x = self.grid_shape
        dt = self.voxel_size.dtype
        return tuple(  # type: ignore[return-value]
            (torch.arange(n, dtype=dt) - n // 2) * self.voxel_size[i] for i, n in enumerate((x, y, z))
        )

    def positions(self) -> torch.Tensor:
        """Voxel-centre positions, shape ``(z·y·x, 3)`` in (x, y, z) [m], in C order of the grid."""
        px, py, pz = self.axis_positions()
        zz, yy, xx = torch.meshgrid(pz, py, px, indexing="ij")
        return torch.stack([xx.flatten(), yy.flatten(), zz.flatten()], dim=-1)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the map for non-finite or out-of-range values.

        Warns (``UserWarning``) where T2 > T1, which is unphysical but sometimes intended.
        """
        shape = self.pd.shape
        for name in MAP_UNITS:
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"map {name} has shape {tuple(value.shape)}, but pd has shape {tuple(shape)}")
            if not torch.isfinite(value).all():
                bad = int((~torch.isfinite(value)).sum())
                raise ValueError(f"map {name} contains {bad} NaN or infinite values; all values must be finite")
        if not torch.isfinite(self.coil_sens).all():
            raise ValueError("coil_sens contains NaN or infinite values")
        if (self.pd < 0).any():
            raise ValueError(f"map pd must be ≥ 0, got min {float(self.pd.min()):.3g}")
        for name in ("t1", "t2", "t2dash"):
            value = getattr(self, name)
            if (value <= 0).any():
                raise ValueError(f"map {name} must be > 0 s, got min {float(value.min()):.3g} s")
        if (self.d < 0).any():
            raise ValueError(f"map d must be ≥ 0 m²/s, got min {float(self.d.min()):.3g}")
        if (self.d > _MAX_D).any():
            raise ValueError(
                f"map d has values up to {float(self.d.max()):.3g}, above {_MAX_D:g} m²/s; diffusivity is in m²/s "
                "(free water at 37 °C is about 3e-9 m²/s)"
            )
        if (self.b1 < 0).any():
            raise ValueError(f"map b1 must be ≥ 0 (relative transmit field), got min {float(self.b1.min()):.3g}")
        if (self.voxel_size <= 0).any() or not torch.isfinite(self.voxel_size).all():
            raise ValueError(f"voxel_size must be finite and > 0 m, got {self.voxel_size.tolist()}")
        if (self.voxel_size > 1.0).any():
            raise ValueError(f"voxel_size is in m; got {self.voxel_size.tolist()} (over 1 m per voxel)")
        mask = self.pd > 0
        if (self.t2[mask] > self.t1[mask]).any():
            warnings.warn("some voxels have T2 > T1, which is unphysical", UserWarning, stacklevel=2)

    # -------------------------------------------------------------------- views
    def replace(self, **changes) -> VoxelPhantom:
        return dataclasses.replace(self, **changes)

    def slice_z(self, index: int) -> VoxelPhantom:
        """The 2D phantom of one z slice."""
        return VoxelPhantom(
            **{n: getattr(self, n)[:, index : index + 1] for n in MAP_UNITS},
            coil_sens=self.coil_sens[:, index : index + 1],
            voxel_size=self.voxel_size,
        )

    def total_pd(self) -> torch.Tensor:
        """Proton density summed over pools, shape ``(z, y, x)``: what a perfect image shows."""
        return self.pd.sum(0)


def _to_4d(name: str, t: torch.Tensor) -> torch.Tensor:
    if t.ndim == 2:
        return t[None, None]
    if t.ndim == 3:
        return t[None]
    if t.ndim == 4:
        return t
    raise ValueError(f"map {name} must be 2D (y, x), 3D (z, y, x) or 4D (pools, z, y, x), got {t.ndim}D")
