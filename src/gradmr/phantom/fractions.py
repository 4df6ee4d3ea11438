"""Tissue fractions on a grid, and the two ways of turning them into a phantom.

:class:`TissueFractions` holds, per voxel, the volume fraction of each named tissue (``csf``, ``gm``, ``wm``, …,
the names of :data:`~gradmr.phantom.tissues.TISSUE_NAMES`). :func:`phantom_from_fractions` turns it into a
:class:`~gradmr.phantom.VoxelPhantom` with the properties of a tissue table, differentiably in the fractions:

* ``model="multi"`` — the multi-compartment model: each tissue is a pool with its own T1, T2, T2′, D and
  ``pd = fraction · PD_tissue``. Signals of the pools add, which is what partial volume does physically.
* ``model="mixed"`` — the linear mixing of property maps used by BMapEst (Gundogdu et al., arXiv:2404.14739):
  one pool with ``q = Σ_t f_t q_t`` for every property ``q`` (PD included), exactly the paper's formula. It is
  an approximation that is wrong for mixed voxels (a voxel half GM, half WM does not relax with the mean T1),
  and where the fractions sum to ``s < 1`` (the edge of the head after area averaging) the relaxation times
  shrink by ``s`` as well — as in the paper's own maps. Voxels with no tissue get :data:`BACKGROUND` (PD 0).
  Use it to reproduce the paper; use ``"multi"`` for physics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .._tensors import TensorDataclass
from .core import VoxelPhantom
from .resample import area_resample
from .tissues import Tissue, tissue_table

#: Fractions may exceed [0, 1] (and their sum 1) by this much: float32 rounding after area averaging.
FRACTION_TOLERANCE = 1e-5

#: Properties that :func:`phantom_from_fractions` takes from the tissue table.
TISSUE_MAPS = ("pd", "t1", "t2", "t2dash", "d")

#: Properties of voxels that hold no tissue at all in ``model="mixed"``: finite and positive so that the phantom
#: validates; their PD is 0, so they carry no signal.
BACKGROUND = {"t1": 1.0, "t2": 0.1, "t2dash": 1.0, "d": 0.0}

MODELS = ("multi", "mixed")

#: Slice orientations of :meth:`TissueFractions.plane`, with the volume axes (x, y, z indices) that become the
#: image x and y axes and the through-plane axis.
PLANES = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}


@dataclass(frozen=True)
class TissueFractions(TensorDataclass):
    """Volume fractions of named tissues on a regular grid.

    Attributes
    ----------
    fractions : Tensor, shape ``(tissues, z, y, x)``
        Fraction of each voxel's volume occupied by each tissue, in [0, 1]; the sum over tissues is ≤ 1 (the
        rest is background: air, or tissue not modelled).
    names : tuple of str
        Tissue names, one per leading index, lower case (e.g. ``("csf", "gm", "wm")``).
    voxel_size : Tensor, shape ``(3,)``
        Voxel size in x, y, z [m].
    """

    fractions: torch.Tensor
    names: tuple[str, ...]
    voxel_size: torch.Tensor

    @staticmethod
    def create(
        fractions,
        names: Sequence[str] | None = None,
        *,
        voxel_size=(1e-3, 1e-3, 1e-3),
        dtype: torch.dtype | None = None,
        validate: bool = True,
    ) -> TissueFractions:
        """Build from a mapping ``{name: array}`` or from an array ``(tissues, …)`` with ``names``.

        Arrays may be 2D ``(y, x)`` or 3D ``(z, y, x)`` per tissue; a 2D array becomes one z slice. Tensors that
        require grad keep their graph. ``dtype`` defaults to the input's floating dtype (float32 otherwise).
        """
        if isinstance(fractions, Mapping):
            if names is not None:
                raise ValueError("give names only with an array of fractions, not with a mapping")
            names = tuple(fractions)
            if not names:
                raise ValueError("fractions must name at least one tissue")
            arrays = [torch.as_tensor(fractions[n]) for n in names]
            dtype = dtype or _float_dtype(arrays[0])
            shapes = {tuple(a.shape) for a in arrays}
            if len(shapes) != 1:
                raise ValueError(
                    "fractions of all tissues must have one shape, got "
                    + ", ".join(f"{n}: {tuple(a.shape)}" for n, a in zip(names, arrays, strict=True))
                )
            stacked = torch.stack([a.to(dtype) for a in arrays])
        else:
            if names is None:
                raise ValueError("names are required when fractions is an array (tissues, …)")
            stacked = torch.as_tensor(fractions)
            stacked = stacked.to(dtype or _float_dtype(stacked))
            names = tuple(names)
            if stacked.ndim < 3 or stacked.shape[0] != len(names):
                raise ValueError(
                    f"fractions must have shape (tissues, y, x) or (tissues, z, y, x) with {len(names)} tissues "
                    f"({', '.join(names)}), got {tuple(stacked.shape)}"
                )
        if stacked.ndim == 3:
            stacked = stacked[:, None]
        if stacked.ndim != 4:
            raise ValueError(f"fractions per tissue must be 2D (y, x) or 3D (z, y, x), got {stacked.ndim - 1}D")
        names = tuple(str(n).lower() for n in names)
        vs = torch.as_tensor(voxel_size, dtype=stacked.dtype).flatten()
        if vs.numel() != 3:
            raise ValueError(f"voxel_size must have three values (x, y, z) in m, got {vs.numel()}")
        out = TissueFractions(fractions=stacked, names=names, voxel_size=vs)
        if validate:
            out.validate()
        return out

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` for non-finite fractions, values outside [0, 1] or sums above 1."""
        f = self.fractions
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"tissue names must be unique, got {self.names}")
        if f.ndim != 4 or f.shape[0] != len(self.names):
            raise ValueError(f"fractions must have shape ({len(self.names)}, z, y, x), got {tuple(f.shape)}")
        for i, name in enumerate(self.names):
            fi = f[i].detach()
            if not torch.isfinite(fi).all():
                raise ValueError(f"fractions of {name} contain NaN or infinite values")
            lo, hi = float(fi.min()), float(fi.max())
            if lo < -FRACTION_TOLERANCE or hi > 1 + FRACTION_TOLERANCE:
                raise ValueError(f"fractions of {name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
        total = f.detach().sum(0)
        if float(total.max()) > 1 + FRACTION_TOLERANCE:
            idx = tuple(int(v) for v in torch.nonzero(total == total.max())[0])
            raise ValueError(
                f"tissue fractions must sum to at most 1 in every voxel, got {float(total.max()):.4g} at "
                f"(z, y, x) = {idx}"
            )
        vs = self.voxel_size
        if (vs <= 0).any() or not torch.isfinite(vs).all() or (vs > 1.0).any():
            raise ValueError(f"voxel_size must be finite, > 0 and in m (≤ 1 m), got {vs.tolist()}")

    # ------------------------------------------------------------------ access
    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(z, y, x)``."""
        return tuple(self.fractions.shape[1:])  # type: ignore[return-value]

    def __getitem__(self, name: str) -> torch.Tensor:
        """Fractions of tissue ``name``, shape ``(z, y, x)``."""
        try:
            return self.fractions[self.names.index(name.lower())]
        except ValueError:
            raise KeyError(f"no tissue {name!r}; these fractions hold {self.names}") from None

    def total(self) -> torch.Tensor:
        """Sum of the fractions over tissues, shape ``(z, y, x)``."""
        return self.fractions.sum(0)

    def volumes(self) -> dict[str, float]:
        """Volume of each tissue [m³]: sum of fractions × voxel volume."""
        dv = float(torch.prod(self.voxel_size.detach().double()))
        return {n: float(self.fractions[i].detach().double().sum()) * dv for i, n in enumerate(self.names)}

    def replace(self, **changes) -> TissueFractions:
        return dataclasses.replace(self, **changes)

    def select(self, names: Sequence[str]) -> TissueFractions:
        """The fractions of ``names`` only, in that order."""
        return self.replace(fractions=torch.stack([self[n] for n in names]), names=tuple(n.lower() for n in names))

    def slice_z(self, index: int) -> TissueFractions:
        """The 2D fractions of one z slice."""
        return self.replace(fractions=self.fractions[:, index : index + 1])

    def plane(self, orientation: str, index: int | None = None) -> TissueFractions:
        """A 2D slice ``(tissues, 1, ny, nx)`` of a volume whose axes are RAS (+x right, +y anterior, +z superior).

        ``axial``: image (x, y) = (right, anterior), through z; ``coronal``: (right, superior), through y;
        ``sagittal``: (anterior, superior), through x. Shown with ``origin="lower"`` axial and coronal slices are
        in the neurological convention. ``index`` counts along the through-plane axis (default: the middle).
        """
        if orientation not in PLANES:
            raise ValueError(f"orientation must be one of {tuple(PLANES)}, got {orientation!r}")
        ax_x, ax_y, through = PLANES[orientation]
        n = self.grid_shape[2 - through]
        i = n // 2 if index is None else int(index)
        if not 0 <= i < n:
            raise ValueError(f"index of a {orientation} slice must lie in [0, {n - 1}], got {index}")
        # dropping the through-plane axis of (z, y, x) leaves (image y, image x) in every orientation
        plane = self.fractions.select(3 - through, i)
        vs = self.voxel_size
        return self.replace(fractions=plane[:, None], voxel_size=torch.stack([vs[ax_x], vs[ax_y], vs[through]]))

    def resample(self, shape, *, fov=None) -> TissueFractions:
        """Area-average to ``shape`` (``(ny, nx)`` keeps z, ``(nz, ny, nx)`` resamples all three).

        ``fov`` (in x, y[, z] order, m) sets the output extent; by default the input's. A larger FOV pads with
        background and a smaller one crops, both centred. See :mod:`gradmr.phantom.resample`.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3) or any(s < 1 for s in shape):
            raise ValueError(f"shape must be (ny, nx) or (nz, ny, nx) with positive sizes, got {shape}")
        d = len(shape)
        vs_xyz = [float(v) for v in self.voxel_size]
        vin = tuple(reversed(vs_xyz[:d]))  # array-axis order: (y, x) or (z, y, x)
        if fov is None:
            vout = None
            new_xyz = [n_in * v / n for n_in, v, n in zip(self.grid_shape[3 - d :], vin, shape, strict=True)][::-1]
        else:
            fov_xyz = [float(v) for v in fov]
            if len(fov_xyz) != d or any(not v > 0 for v in fov_xyz):
                raise ValueError(f"fov must be {d} positive values (x, y{', z' if d == 3 else ''}) in m, got {fov}")
            new_xyz = [f / n for f, n in zip(fov_xyz, reversed(shape), strict=True)]
            vout = tuple(reversed(new_xyz))
        frac = area_resample(self.fractions, shape, voxel_size_in=vin, voxel_size_out=vout)
        voxel = torch.tensor(new_xyz + vs_xyz[d:], dtype=self.voxel_size.dtype)
        return self.replace(fractions=frac, voxel_size=voxel)


def _float_dtype(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def phantom_from_fractions(
    fractions: TissueFractions,
    *,
    tissues: Mapping[str, Tissue] | None = None,
    field_strength: float = 3.0,
    model: str = "multi",
    b0=None,
    b1=None,
    coil_sens=None,
    dtype: torch.dtype | None = None,
) -> VoxelPhantom:
    """A :class:`~gradmr.phantom.VoxelPhantom` from tissue fractions and a tissue table.

    Parameters
    ----------
    fractions : TissueFractions
        Fractions ``(tissues, z, y, x)``; gradients flow back to them.
    tissues : mapping name → :class:`~gradmr.phantom.tissues.Tissue`, optional
        Properties per tissue; by default :func:`~gradmr.phantom.tissues.tissue_table` at ``field_strength``
        (use ``tissue_table(preset="bmapest")`` to reproduce BMapEst). Every name in ``fractions`` must be in it.
    field_strength : float
        [T], for the default table.
    model : ``"multi"`` or ``"mixed"``
        See the module docstring.
    b0, b1 : Tensor ``(z, y, x)`` or scalar, optional
        Off-resonance [Hz] and relative transmit field, shared by all pools (defaults 0 Hz and 1).
    coil_sens : Tensor ``(coils, z, y, x)``, complex, optional
        Receive sensitivities (default: one uniform coil).
    dtype : torch.float32 or torch.float64, optional
        Default: the dtype of ``fractions``.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    table = tissue_table(field_strength) if tissues is None else dict(tissues)
    missing = [n for n in fractions.names if n not in table]
    if missing:
        raise ValueError(f"no properties for tissue(s) {missing}; the table has {sorted(table)}")
    fractions.validate()
    dtype = dtype or fractions.fractions.dtype
    f = fractions.fractions.to(dtype)  # (T, z, y, x)
    grid = f.shape[1:]

    def column(attr: str) -> torch.Tensor:
        return torch.tensor([getattr(table[n], attr) for n in fractions.names], dtype=dtype)[:, None, None, None]

    def shared(value, default: float, name: str) -> torch.Tensor:
        if value is None:
            return torch.full(grid, default, dtype=dtype)
        t = torch.as_tensor(value).to(dtype)
        if t.ndim == 2:
            t = t[None]
        t = t.expand(grid) if t.ndim == 0 else t
        if tuple(t.shape) != tuple(grid):
            raise ValueError(f"{name} must have shape (z, y, x) = {tuple(grid)} or be a scalar, got {tuple(t.shape)}")
        return t

    b0_map = shared(b0, 0.0, "b0")
    b1_map = shared(b1, 1.0, "b1")
    common = {"coil_sens": coil_sens, "voxel_size": fractions.voxel_size, "dtype": dtype}
    if model == "multi":
        n = f.shape[0]
        maps = {q: column(q).expand(n, *grid) for q in TISSUE_MAPS[1:]}
        return VoxelPhantom.create(
            pd=f * column("pd"), **maps, b0=b0_map.expand(n, *grid), b1=b1_map.expand(n, *grid), **common
        )
    has = f.sum(0) > 0
    maps = {"pd": (f * column("pd")).sum(0)}
    for q in TISSUE_MAPS[1:]:
        mixed = (f * column(q)).sum(0)
        maps[q] = torch.where(has, mixed, torch.full_like(mixed, BACKGROUND[q]))
    return VoxelPhantom.create(**{q: m[None] for q, m in maps.items()}, b0=b0_map[None], b1=b1_map[None], **common)
