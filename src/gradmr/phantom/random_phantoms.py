"""Seeded random tissue properties and random block phantoms, for training sets.

:func:`random_tissue_properties` draws independent voxels (e.g. a fingerprinting dictionary or training set);
:func:`random_block_phantom` paints rectangular or elliptical blocks of random properties on an empty grid, in the
spirit of the sparse synthetic phantoms MR-zero trains on.

Distributions
-------------
* T1 and T2: log-uniform on their ranges (``log_uniform=True``, the default: every decade weighs the same) or
  uniform. With ``t2_le_t1=True`` pairs with T2 > T1 are rejected and drawn again, so ``(T1, T2)`` is uniform (in
  log or linear units) on the part of the rectangle ``t1_range × t2_range`` where T2 ≤ T1. Rejection keeps the
  joint density flat there but tilts the marginals where the ranges overlap: with the default ranges long T1 and
  short T2 are somewhat more likely than under the unconstrained law (the T1 density is proportional to the length
  of the allowed T2 interval). Drawing T2 as a fraction of T1 would instead change the shape of the T2 law.
* PD, B0 and B1: uniform on their ranges.

Reproducibility
---------------
``seed`` is an ``int`` (a fresh :class:`torch.Generator` seeded with it: the same seed gives the same draws) or a
:class:`torch.Generator`, which is advanced. Draws are made in float64 on the CPU and then cast to ``dtype``, so
float32 and float64 results come from the same numbers.
"""

from __future__ import annotations

import math

import torch

from .core import VoxelPhantom

#: Default ranges (used by both functions).
T1_RANGE = (0.1, 4.0)  # s
T2_RANGE = (0.01, 2.0)  # s
PD_RANGE = (0.0, 1.0)  # relative
B0_RANGE = (-50.0, 50.0)  # Hz
B1_RANGE = (1.0, 1.0)  # relative: nominal flip angles unless asked

#: Properties of the background of a block phantom: PD 0 (no signal), finite positive relaxation times so that
#: the phantom validates, on resonance, nominal B1.
BACKGROUND = {"pd": 0.0, "t1": 1.0, "t2": 0.1, "b0": 0.0, "b1": 1.0}

BLOCK_SHAPES = ("rectangle", "ellipse")

#: Give up on T2 ≤ T1 rejection sampling after this many candidates per requested value.
_MAX_CANDIDATES_PER_VALUE = 10_000


def _generator(seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or a torch.Generator, got {seed!r}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return torch.Generator().manual_seed(seed)


def _check_range(name: str, value, *, low: float, high: float, unit: str, positive: bool = False) -> tuple:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (min, max) in {unit}, got {value!r}") from None
    bound_lo = "(" if positive else "["
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < low or hi > high or (positive and lo <= 0):
        raise ValueError(
            f"{name} must be (min, max) with min ≤ max inside {bound_lo}{low:g}, {high:g}] {unit}, got ({lo:g}, {hi:g})"
        )
    return lo, hi


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, log: bool) -> torch.Tensor:
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    if log:
        a, b = math.log(lo), math.log(hi)
        return torch.exp(a + (b - a) * u).clamp(lo, hi)
    return (lo + (hi - lo) * u).clamp(lo, hi)


def _relaxation_pairs(
    gen: torch.Generator, n: int, t1_range: tuple, t2_range: tuple, log: bool, t2_le_t1: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if not t2_le_t1:
        return _uniform(gen, n, *t1_range, log), _uniform(gen, n, *t2_range, log)
    if t2_range[0] > t1_range[1]:
        raise ValueError(
            f"t2_range {t2_range} lies entirely above t1_range {t1_range} s: no pair has T2 ≤ T1 (set t2_le_t1=False?)"
        )
    t1 = torch.empty(n, dtype=torch.float64)
    t2 = torch.empty(n, dtype=torch.float64)
    filled, drawn, accepted = 0, 0, 0
    while filled < n:
        rate = max(accepted, 1) / max(drawn, 1) if drawn else 1.0
        batch = min(int((n - filled) / rate * 1.2) + 16, 1 << 24)
        c1 = _uniform(gen, batch, *t1_range, log)
        c2 = _uniform(gen, batch, *t2_range, log)
        ok = c2 <= c1
        drawn += batch
        accepted += int(ok.sum())
        take = min(int(ok.sum()), n - filled)
        t1[filled : filled + take] = c1[ok][:take]
        t2[filled : filled + take] = c2[ok][:take]
        filled += take
        if filled < n and drawn > _MAX_CANDIDATES_PER_VALUE * max(n, 100):
            raise ValueError(
                f"t1_range {t1_range} s and t2_range {t2_range} s leave too little room for T2 ≤ T1 "
                f"({accepted} of {drawn} candidates accepted)"
            )
    return t1, t2


def random_tissue_properties(
    n: int,
    *,
    seed,
    t1_range=T1_RANGE,
    t2_range=T2_RANGE,
    pd_range=PD_RANGE,
    b0_range=B0_RANGE,
    b1_range=B1_RANGE,
    t2_le_t1: bool = True,
    log_uniform: bool = True,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Draw ``n`` independent sets of tissue properties.

    Parameters
    ----------
    n : int
        Number of draws (≥ 1).
    seed : int or torch.Generator
        Same int ⇒ same draws; a generator is advanced.
    t1_range, t2_range : (min, max)
        [s], within (0, 100] s; a degenerate range (min = max) gives a constant.
    pd_range : (min, max)
        Relative proton density, within [0, 100].
    b0_range : (min, max)
        Off-resonance [Hz], within [−1e5, 1e5] Hz.
    b1_range : (min, max)
        Relative transmit field, within [0, 10].
    t2_le_t1 : bool
        Reject and redraw pairs with T2 > T1 (see the module docstring for what this does to the marginals).
    log_uniform : bool
        Draw T1 and T2 log-uniformly (default) or uniformly.
    dtype : torch.float32 or torch.float64

    Returns
    -------
    dict of str → Tensor, each of shape ``(n,)``
        ``"pd"``, ``"t1"`` [s], ``"t2"`` [s], ``"b0"`` [Hz], ``"b1"``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    gen = _generator(seed)
    t1_r = _check_range("t1_range", t1_range, low=0.0, high=100.0, unit="s", positive=True)
    t2_r = _check_range("t2_range", t2_range, low=0.0, high=100.0, unit="s", positive=True)
    pd_r = _check_range("pd_range", pd_range, low=0.0, high=100.0, unit="(relative)")
    b0_r = _check_range("b0_range", b0_range, low=-1e5, high=1e5, unit="Hz")
    b1_r = _check_range("b1_range", b1_range, low=0.0, high=10.0, unit="(relative)")
    t1, t2 = _relaxation_pairs(gen, n, t1_r, t2_r, bool(log_uniform), bool(t2_le_t1))
    out = {
        "pd": _uniform(gen, n, *pd_r, False),
        "t1": t1,
        "t2": t2,
        "b0": _uniform(gen, n, *b0_r, False),
        "b1": _uniform(gen, n, *b1_r, False),
    }
    return {k: v.to(dtype) for k, v in out.items()}


def _check_int_range(name: str, value, *, low: int, high: int | None = None) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        lo, hi = pair
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
    except (TypeError, ValueError):
        ok = False
    if not ok or lo > hi or lo < low or (high is not None and hi > high):
        top = "" if high is None else f", at most {high}"
        raise ValueError(f"{name} must be an integer or a pair (min, max) of integers ≥ {low}{top}, got {value!r}")
    return lo, hi


def random_block_phantom(
    matrix=(64, 64),
    *,
    seed,
    n_blocks=(5, 20),
    block_size=(2, 16),
    shape: str = "rectangle",
    fov=0.2,
    slice_thickness: float = 5e-3,
    t1_range=T1_RANGE,
    t2_range=T2_RANGE,
    pd_range=PD_RANGE,
    b0_range=B0_RANGE,
    b1_range=B1_RANGE,
    t2_le_t1: bool = True,
    log_uniform: bool = True,
    dtype: torch.dtype = torch.float32,
) -> VoxelPhantom:
    """A sparse synthetic phantom: blocks of random properties at random places on an empty background.

    Parameters
    ----------
    matrix : (ny, nx) or (nz, ny, nx)
        Grid size.
    seed : int or torch.Generator
        Same int ⇒ same phantom; a generator is advanced.
    n_blocks : int or (min, max)
        Number of blocks, drawn uniformly from the inclusive range.
    block_size : int or (min, max)
        Edge length of a block along each axis [voxels], drawn per block and axis from the inclusive range and
        clipped to the grid.
    shape : ``"rectangle"`` or ``"ellipse"``
        Blocks fill their box, or the ellipse (ellipsoid in 3D) inscribed in it.
    fov : float or (x, y[, z])
        Field of view [m].
    slice_thickness : float
        Voxel size along z of a 2D phantom [m].
    t1_range, t2_range, pd_range, b0_range, b1_range, t2_le_t1, log_uniform
        As in :func:`random_tissue_properties`; one draw per block.
    dtype : torch.float32 or torch.float64

    Returns
    -------
    VoxelPhantom
        One pool; every block lies entirely inside the grid and later blocks overwrite earlier ones. Voxels of no
        block take :data:`BACKGROUND` (PD 0). Voxel size ``fov / matrix`` (and ``slice_thickness`` in 2D).
    """
    try:
        dims = tuple(int(v) for v in matrix)
    except TypeError:
        raise ValueError(f"matrix must be (ny, nx) or (nz, ny, nx), got {matrix!r}") from None
    if len(dims) not in (2, 3) or any(v < 1 for v in dims):
        raise ValueError(f"matrix must be (ny, nx) or (nz, ny, nx) with positive sizes, got {tuple(matrix)}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if shape not in BLOCK_SHAPES:
        raise ValueError(f"shape must be one of {BLOCK_SHAPES}, got {shape!r}")
    nb = _check_int_range("n_blocks", n_blocks, low=0)
    bs = _check_int_range("block_size", block_size, low=1)
    try:
        fov_v = tuple(float(v) for v in fov)
    except TypeError:
        fov_v = (float(fov),) * len(dims)
    if len(fov_v) != len(dims) or any(not (0 < v <= 10.0) for v in fov_v):
        raise ValueError(f"fov must be one value or {len(dims)} values (x, y[, z]), each in (0, 10] m, got {fov!r}")
    if len(dims) == 2 and not (0 < float(slice_thickness) <= 1.0):
        raise ValueError(f"slice_thickness must be in (0, 1] m, got {slice_thickness}")
    gen = _generator(seed)

    count = int(torch.randint(nb[0], nb[1] + 1, (1,), generator=gen))
    grid = dims if len(dims) == 3 else (1, *dims)
    maps = {k: torch.full(grid, v, dtype=torch.float64) for k, v in BACKGROUND.items()}
    if count > 0:
        props = random_tissue_properties(
            count,
            seed=gen,
            t1_range=t1_range,
            t2_range=t2_range,
            pd_range=pd_range,
            b0_range=b0_range,
            b1_range=b1_range,
            t2_le_t1=t2_le_t1,
            log_uniform=log_uniform,
            dtype=torch.float64,
        )
        spatial = dims  # the axes blocks are placed along: (y, x) or (z, y, x)
        sizes = [torch.randint(bs[0], bs[1] + 1, (count,), generator=gen).clamp(max=n) for n in spatial]
        starts = [
            torch.floor(torch.rand(count, generator=gen, dtype=torch.float64) * (n - size + 1)).long()
            for n, size in zip(spatial, sizes, strict=True)
        ]
        axes = [torch.arange(n, dtype=torch.float64) for n in spatial]
        for b in range(count):
            masks = []
            for ax, (coord, st, sz) in enumerate(zip(axes, starts, sizes, strict=True)):
                lo, size = int(st[b]), int(sz[b])
                if shape == "rectangle":
                    m = ((coord >= lo) & (coord < lo + size)).to(torch.float64)
                else:  # normalised squared distance from the box centre along this axis
                    m = ((coord - (lo + (size - 1) / 2)) / (size / 2)) ** 2
                view = [1] * len(spatial)
                view[ax] = -1
                masks.append(m.reshape(view))
            if shape == "rectangle":
                inside = masks[0].bool()
                for m in masks[1:]:
                    inside = inside & m.bool()
            else:
                total = masks[0]
                for m in masks[1:]:
                    total = total + m
                inside = total <= 1.0
            inside = inside.expand(spatial).reshape(grid)
            for k in maps:
                maps[k] = torch.where(inside, props[k][b], maps[k])

    vs = [f / n for f, n in zip(fov_v, reversed(dims), strict=True)]
    if len(dims) == 2:
        vs.append(float(slice_thickness))
    return VoxelPhantom.create(**maps, voxel_size=tuple(vs), dtype=dtype)
