"""The MR Shepp–Logan phantom of Gach, Tanase & Boada (2008), in 2D and 3D.

Geometry
--------
Fourteen ellipsoids ``a`` … ``n`` (the 3D Shepp–Logan head of Kak & Slaney, with a scalp shell and the small
"tumours" of the 2D phantom added by Gach et al.) in normalised coordinates: the cube ``[−1, 1]³`` spans the field
of view, ``x = u·fov_x/2`` and likewise for y and z. Each ellipsoid has a centre, semi-axes along its own axes and
a rotation ``θ`` about z: its first semi-axis points along ``(cos θ, sin θ, 0)``, counter-clockwise from +x.
Axes follow the package conventions: +y is the direction of increasing row index, and voxel centres lie at
``(i − N//2)·Δ``.

Properties by region
--------------------
The CT phantom *adds* ellipse intensities; the MR phantom assigns tissue *properties* per region, so a point
takes the PD, T1 and T2 of the **last** ellipsoid in table order that contains it (the table is ordered from the
outside in: scalp ⊃ marrow ⊃ CSF ⊃ grey matter ⊃ the inner structures). Where two inner ellipsoids overlap (the
tumour ``h`` sits on the edge of the white-matter ellipsoid ``g``; the ventricle ``e`` overlaps ``g`` and the tumour
``k``), the later one wins. (Implementations that build the MR maps by adding and subtracting ellipsoids, like
phantominator, give sums such as ``PD_tumour + PD_WM − PD_GM`` in these overlaps — values of no tissue.)

Tissues
-------
Per tissue the paper gives PD, T2 (field-independent), a magnetic susceptibility χ and T1 as the power law
``T1 = A·B0^C`` (B0 in T, T1 in s; A and C from the frequency fits of Bottomley et al. 1984 — e.g. grey matter
``0.00116 s·(ν/Hz)^0.376`` at ν = γ̄·B0 gives A = 0.857 s, C = 0.376); CSF has a fixed T1 of 4.2 s. This module
tabulates the two field strengths the package supports, 1.5 T and 3 T. The PD is given per ellipsoid; all are the
tissue's value except ``m`` (a tumour with PD 0.93 rather than 0.95), kept as tabulated. The paper's χ values are
carried in the table but not turned into T2′: they are bulk susceptibilities relative to vacuum, and
``1/T2′ = γ·B0·|χ|`` (phantominator's ``T2star`` option) would give a T2′ of about 0.1 ms. T2′ is one value for all
tissues, set by the caller.

The paper also lists a fifteenth ellipsoid ``o`` (a blood clot at (0.56, −0.4, −0.25)); as in phantominator, which
notes that the paper's phantom does not use it, it is left out here (it would also reach through the grey matter
into the skull).

2D
--
A 2D phantom is the section of the 3D one at ``z = z_slice`` (normalised). The default ``z_slice = −0.25`` is the
plane through the centres of the inner ellipsoids, where the familiar 2D Shepp–Logan picture lies (ventricles, the
white-matter ellipse and the small tumours); the central plane ``z = 0`` shows only the shells, the white-matter
ellipsoid and tumour ``m``. ``z_slice = 0`` gives the middle slice of a 3D grid.

Partial volume
--------------
Each voxel is sampled at ``supersampling`` points per axis (in-plane only for 2D sections); every sub-sample takes
the region on top there. ``pools="tissue"`` (default) makes one pool per tissue (scalp, marrow, CSF, GM, WM,
tumour) with ``pd = Σ_regions fraction·PD_region`` and the tissue's T1 and T2: signals of the pools add, which is
what partial volume does physically. ``pools="single"`` makes one pool with the same total PD and the T1, T2 of the
tissue that covers most sub-samples (an approximation for mixed voxels).

Source
------
Gach HM, Tanase C, Boada F. 2D & 3D Shepp-Logan phantom standards for MRI. 19th International Conference on
Systems Engineering (ICSEng 2008), Las Vegas, NV, pp. 521–526, doi:10.1109/ICSEng.2008.15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .core import MAP_DEFAULTS, VoxelPhantom

#: Field strengths [T] the table is given for.
FIELD_STRENGTHS = (1.5, 3.0)

#: Pools of ``pools="tissue"``, in order.
SHEPP_LOGAN_TISSUES = ("scalp", "marrow", "csf", "gm", "wm", "tumor")

#: Properties of voxels with no tissue in ``pools="single"``: finite and positive so that the phantom validates;
#: their PD is 0, so they carry no signal.
BACKGROUND = {"t1": 1.0, "t2": 0.1}

POOL_MODELS = ("tissue", "single")

SOURCE = (
    "Gach HM, Tanase C, Boada F. 2D & 3D Shepp-Logan phantom standards for MRI. 19th International Conference on "
    "Systems Engineering (ICSEng 2008), pp. 521-526, doi:10.1109/ICSEng.2008.15: ellipsoid geometry (after the 3D "
    "Shepp-Logan head of Kak & Slaney, Principles of Computerized Tomographic Imaging, IEEE Press 1988), PD per "
    "ellipsoid, T2 and chi per tissue, T1 = A*B0^C per tissue (A, C from Bottomley PA et al., Med Phys "
    "1984;11:425-448) and T1(CSF) = 4.2 s. Transcribed as tabulated in phantominator 0.7.0 (mr_shepp_logan.py); "
    "the blood-clot ellipsoid o is not used."
)

# tissue: (A [s], C, fixed T1 [s] or None, T2 [s], chi)
_TISSUES = {
    "scalp": (0.324, 0.137, None, 0.070, -7.5e-6),
    "marrow": (0.533, 0.088, None, 0.050, -8.85e-6),
    "csf": (None, None, 4.2, 1.99, -9.0e-6),
    "gm": (0.857, 0.376, None, 0.100, -9.0e-6),
    "wm": (0.583, 0.382, None, 0.080, -9.0e-6),
    "tumor": (0.926, 0.217, None, 0.100, -9.0e-6),
}

# name: (centre x, y, z), (semi-axes), rotation about z [deg], PD, tissue — normalised units, outside in
_ELLIPSOIDS = (
    ("a", (0.0, 0.0, 0.0), (0.72, 0.95, 0.93), 0.0, 0.80, "scalp"),
    ("b", (0.0, 0.0, 0.0), (0.69, 0.92, 0.90), 0.0, 0.12, "marrow"),
    ("c", (0.0, -0.0184, 0.0), (0.6624, 0.874, 0.88), 0.0, 0.98, "csf"),
    ("d", (0.0, -0.0184, 0.0), (0.6524, 0.864, 0.87), 0.0, 0.745, "gm"),
    ("e", (-0.22, 0.0, -0.25), (0.41, 0.16, 0.21), -72.0, 0.98, "csf"),
    ("f", (0.22, 0.0, -0.25), (0.31, 0.11, 0.22), 72.0, 0.98, "csf"),
    ("g", (0.0, 0.35, -0.25), (0.21, 0.25, 0.35), 0.0, 0.617, "wm"),
    ("h", (0.0, 0.1, -0.25), (0.046, 0.046, 0.046), 0.0, 0.95, "tumor"),
    ("i", (-0.08, -0.605, -0.25), (0.046, 0.023, 0.02), 0.0, 0.95, "tumor"),
    ("j", (0.06, -0.605, -0.25), (0.046, 0.023, 0.02), -90.0, 0.95, "tumor"),
    ("k", (0.0, -0.1, -0.25), (0.046, 0.046, 0.046), 0.0, 0.95, "tumor"),
    ("l", (0.0, -0.605, -0.25), (0.023, 0.023, 0.023), 0.0, 0.95, "tumor"),
    ("m", (0.06, -0.105, 0.0625), (0.056, 0.04, 0.1), -90.0, 0.93, "tumor"),
    ("n", (0.0, 0.1, 0.625), (0.056, 0.056, 0.1), 0.0, 0.98, "csf"),
)

#: Sub-samples per chunk when labelling (bounds memory for large 3D grids).
_CHUNK_POINTS = 1 << 22


@dataclass(frozen=True)
class SheppLoganRegions:
    """The ellipsoids of the MR Shepp–Logan phantom and their properties, in drawing order (outside in).

    Attributes
    ----------
    names : tuple of str, length R
        Ellipsoid letters as in the paper (``"a"`` … ``"n"``).
    tissues : tuple of str, length R
        Tissue of each ellipsoid, one of :data:`SHEPP_LOGAN_TISSUES`.
    centre : Tensor, shape ``(R, 3)``
        Centres (x, y, z), normalised (the FOV spans [−1, 1]).
    semi_axes : Tensor, shape ``(R, 3)``
        Semi-axes along the ellipsoid's own axes, normalised.
    angle : Tensor, shape ``(R,)``
        Rotation about z [rad], counter-clockwise from +x to the first semi-axis.
    pd : Tensor, shape ``(R,)``
        Proton density (relative).
    t1, t2 : Tensor, shape ``(len(field_strengths), R)``
        Relaxation times [s] at each field strength (T2 does not depend on it).
    chi : Tensor, shape ``(R,)``
        Volume magnetic susceptibility (SI, dimensionless), as tabulated; not used by the phantom.
    field_strengths : tuple of float
        [T], the rows of ``t1`` and ``t2``.
    source : str
        Citation.
    """

    names: tuple[str, ...]
    tissues: tuple[str, ...]
    centre: torch.Tensor
    semi_axes: torch.Tensor
    angle: torch.Tensor
    pd: torch.Tensor
    t1: torch.Tensor
    t2: torch.Tensor
    chi: torch.Tensor
    field_strengths: tuple[float, ...]
    source: str

    def __len__(self) -> int:
        return len(self.names)

    def at(self, field_strength: float) -> dict[str, torch.Tensor]:
        """``{"pd", "t1", "t2"}``, each of shape ``(R,)``, at ``field_strength`` [T] (1.5 or 3.0)."""
        row = _field_row(field_strength)
        return {"pd": self.pd, "t1": self.t1[row], "t2": self.t2[row]}


def _field_row(field_strength: float) -> int:
    for i, b in enumerate(FIELD_STRENGTHS):
        if math.isclose(float(field_strength), b):
            return i
    raise ValueError(f"field_strength must be one of {FIELD_STRENGTHS} T, got {field_strength}")


def _tissue_t1(tissue: str, field: float) -> float:
    a, c, fixed, _, _ = _TISSUES[tissue]
    return fixed if fixed is not None else a * field**c


def shepp_logan_regions() -> SheppLoganRegions:
    """The table of the MR Shepp–Logan phantom (Gach et al. 2008): geometry and PD, T1, T2 per ellipsoid.

    Returns
    -------
    SheppLoganRegions
        Fourteen ellipsoids in drawing order, float64 tensors; see the module docstring for the conventions.
    """
    f64 = torch.float64
    tissues = tuple(e[5] for e in _ELLIPSOIDS)
    return SheppLoganRegions(
        names=tuple(e[0] for e in _ELLIPSOIDS),
        tissues=tissues,
        centre=torch.tensor([e[1] for e in _ELLIPSOIDS], dtype=f64),
        semi_axes=torch.tensor([e[2] for e in _ELLIPSOIDS], dtype=f64),
        angle=torch.deg2rad(torch.tensor([e[3] for e in _ELLIPSOIDS], dtype=f64)),
        pd=torch.tensor([e[4] for e in _ELLIPSOIDS], dtype=f64),
        t1=torch.tensor([[_tissue_t1(t, b) for t in tissues] for b in FIELD_STRENGTHS], dtype=f64),
        t2=torch.tensor([[_TISSUES[t][3] for t in tissues] for _ in FIELD_STRENGTHS], dtype=f64),
        chi=torch.tensor([_TISSUES[t][4] for t in tissues], dtype=f64),
        field_strengths=FIELD_STRENGTHS,
        source=SOURCE,
    )


# ---------------------------------------------------------------------------------------------------- sampling
def _check_matrix(matrix) -> tuple[int, ...]:
    try:
        m = tuple(int(v) for v in matrix)
    except TypeError:
        raise ValueError(f"matrix must be (ny, nx) or (nz, ny, nx), got {matrix!r}") from None
    if len(m) not in (2, 3) or any(v < 1 for v in m) or any(int(v) != v for v in matrix):
        raise ValueError(f"matrix must be (ny, nx) or (nz, ny, nx) with positive integer sizes, got {tuple(matrix)}")
    return m


def _check_fov(fov, ndim: int) -> tuple[float, ...]:
    """FOV in (x, y[, z]) order [m]."""
    names = "(x, y)" if ndim == 2 else "(x, y, z)"
    try:
        values = tuple(float(v) for v in fov)
    except TypeError:
        values = (float(fov),) * ndim
    if len(values) != ndim or any(not (0 < v <= 10.0) or not math.isfinite(v) for v in values):
        raise ValueError(f"fov must be one value or {ndim} values {names}, each in (0, 10] m, got {fov!r}")
    return values


def _check_supersampling(supersampling) -> int:
    if isinstance(supersampling, bool) or int(supersampling) != supersampling or not 1 <= supersampling <= 16:
        raise ValueError(f"supersampling must be an integer in [1, 16], got {supersampling!r}")
    return int(supersampling)


def _check_z_slice(z_slice) -> float:
    z = float(z_slice)
    if not -1.0 <= z <= 1.0:
        raise ValueError(f"z_slice must be a normalised position in [-1, 1], got {z_slice}")
    return z


def _axis(n: int, s: int) -> torch.Tensor:
    """Normalised sub-sample positions along an axis of ``n`` voxels (FOV = [−1, 1]), shape ``(n·s,)``."""
    centres = torch.arange(n, dtype=torch.float64) - n // 2
    offsets = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    return (centres[:, None] + offsets[None, :]).flatten() * (2.0 / n)


def _sample_labels(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, regions: SheppLoganRegions) -> torch.Tensor:
    """Region index (0 background, r + 1 for ellipsoid r) at the points ``w × v × u``, shape ``(W, V, U)``."""
    labels = torch.zeros((w.numel(), v.numel(), u.numel()), dtype=torch.int64)
    for r in range(len(regions)):
        cx, cy, cz = regions.centre[r]
        a, b, c = regions.semi_axes[r]
        rz = ((w - cz) / c) ** 2
        if bool((rz > 1).all()):
            continue
        cos, sin = torch.cos(regions.angle[r]), torch.sin(regions.angle[r])
        du = (u - cx)[None, :]
        dv = (v - cy)[:, None]
        p = (cos * du + sin * dv) / a
        q = (-sin * du + cos * dv) / b
        inside = (p * p + q * q)[None] + rz[:, None, None] <= 1.0
        labels.masked_fill_(inside, r + 1)
    return labels


def _label_chunks(matrix: tuple[int, ...], s: int, z_slice: float, regions: SheppLoganRegions):
    """Yield ``(z0, z1, sz, labels)`` per block of voxel slices; ``labels`` has shape ``((z1−z0)·sz, ny·s, nx·s)``."""
    if len(matrix) == 2:
        ny, nx = matrix
        yield 0, 1, 1, _sample_labels(_axis(nx, s), _axis(ny, s), torch.tensor([z_slice], dtype=torch.float64), regions)
        return
    nz, ny, nx = matrix
    u, v, w = _axis(nx, s), _axis(ny, s), _axis(nz, s)
    per_slice = (ny * s) * (nx * s) * s
    step = max(1, _CHUNK_POINTS // per_slice)
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        yield z0, z1, s, _sample_labels(u, v, w[z0 * s : z1 * s], regions)


def _voxel_mean(x: torch.Tensor, sz: int, s: int) -> torch.Tensor:
    """Mean over the sub-samples of each voxel: ``(Z·sz, Y·s, X·s)`` → ``(Z, Y, X)``."""
    zs, ys, xs = x.shape
    return x.reshape(zs // sz, sz, ys // s, s, xs // s, s).mean(dim=(1, 3, 5))


def shepp_logan_labels(matrix=(128, 128), *, fov=0.24, supersampling: int = 1, z_slice: float = -0.25) -> torch.Tensor:
    """Region labels of the MR Shepp–Logan phantom on a grid.

    Parameters
    ----------
    matrix : (ny, nx) or (nz, ny, nx)
        Grid size; a 2D matrix is the section at ``z_slice``.
    fov : float or (x, y[, z])
        Field of view [m]; it spans the phantom's normalised [−1, 1] along each axis. Only the voxel positions in
        normalised units matter here, so the labels do not depend on it beyond its validation.
    supersampling : int
        1: the label at each voxel centre. ``s > 1``: the label most sub-samples of the voxel take (``s`` per axis,
        in-plane only for 2D; ties go to the lower label).
    z_slice : float
        Normalised z of a 2D section, in [−1, 1] (ignored for 3D).

    Returns
    -------
    Tensor, shape ``(z, y, x)``, int64
        0 for background, ``r + 1`` for ellipsoid ``r`` of :func:`shepp_logan_regions` (``1`` = ``"a"``, the scalp).
    """
    matrix = _check_matrix(matrix)
    _check_fov(fov, len(matrix))
    s = _check_supersampling(supersampling)
    z = _check_z_slice(z_slice)
    regions = shepp_logan_regions()
    nz = 1 if len(matrix) == 2 else matrix[0]
    out = torch.zeros((nz, *matrix[-2:]), dtype=torch.int64)
    for z0, z1, sz, labels in _label_chunks(matrix, s, z, regions):
        if s == 1:
            out[z0:z1] = labels
            continue
        counts = torch.stack([_voxel_mean((labels == r).to(torch.float32), sz, s) for r in range(len(regions) + 1)])
        out[z0:z1] = counts.argmax(0)
    return out


def _shared_map(value, default: float, name: str, grid: tuple[int, int, int], dtype: torch.dtype) -> torch.Tensor:
    if value is None:
        return torch.full(grid, default, dtype=dtype)
    t = value.to(dtype) if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=dtype)
    if t.ndim == 0:
        return t.expand(grid)
    if t.ndim == 2:
        t = t[None]
    if tuple(t.shape) != tuple(grid):
        raise ValueError(f"{name} must be a scalar or have shape (z, y, x) = {grid} or (y, x), got {tuple(t.shape)}")
    return t


def shepp_logan_phantom(
    matrix=(128, 128),
    *,
    field_strength: float = 3.0,
    fov=0.24,
    supersampling: int = 2,
    z_slice: float = -0.25,
    slice_thickness: float = 5e-3,
    pools: str = "tissue",
    t2dash: float = MAP_DEFAULTS["t2dash"],
    b0=None,
    b1=None,
    coil_sens=None,
    dtype: torch.dtype = torch.float32,
) -> VoxelPhantom:
    """The MR Shepp–Logan phantom (Gach et al. 2008) as a :class:`~gradmr.phantom.VoxelPhantom`.

    Parameters
    ----------
    matrix : (ny, nx) or (nz, ny, nx)
        Grid size. A 2D matrix gives the section at ``z_slice`` (z = 1); a 3D one the whole head, the grid centred
        on the phantom's centre.
    field_strength : float
        1.5 or 3.0 [T]: selects T1 (T2 and PD do not depend on it).
    fov : float or (x, y) or (x, y, z)
        Field of view [m] (default 0.24 m on every axis); the phantom's normalised [−1, 1] spans it, so a
        non-square FOV stretches the head.
    supersampling : int
        Sub-samples per voxel along each axis (in-plane only for 2D) for the partial-volume fractions.
    z_slice : float
        Normalised z of the 2D section, in [−1, 1]; see the module docstring (ignored for 3D).
    slice_thickness : float
        Voxel size along z of a 2D phantom [m] (bookkeeping only: the section is thin).
    pools : ``"tissue"`` or ``"single"``
        ``"tissue"``: one pool per tissue of :data:`SHEPP_LOGAN_TISSUES`, ``pd = Σ fraction·PD`` over the regions
        of that tissue, the tissue's T1 and T2. ``"single"``: one pool with the total PD and the T1, T2 of the tissue
        that covers most of the voxel; voxels with no tissue get :data:`BACKGROUND` (and PD 0).
    t2dash : float
        T2′ of all tissues [s] (the paper gives none).
    b0, b1 : Tensor ``(z, y, x)`` or ``(y, x)``, or scalar, optional
        Off-resonance [Hz] and relative transmit field shared by all pools (defaults 0 Hz and 1).
    coil_sens : Tensor ``(coils, z, y, x)``, complex, optional
        Receive sensitivities (default: one uniform coil).
    dtype : torch.float32 or torch.float64

    Returns
    -------
    VoxelPhantom
        Maps ``(pools, z, y, x)``; diffusivity 0. Voxel size ``(fov_x/nx, fov_y/ny, fov_z/nz or slice_thickness)``.
    """
    matrix = _check_matrix(matrix)
    ndim = len(matrix)
    fov_xyz = _check_fov(fov, ndim)
    s = _check_supersampling(supersampling)
    z = _check_z_slice(z_slice)
    row = _field_row(field_strength)
    if pools not in POOL_MODELS:
        raise ValueError(f"pools must be one of {POOL_MODELS}, got {pools!r}")
    if not (0 < float(t2dash) < math.inf):
        raise ValueError(f"t2dash must be a finite time > 0 s, got {t2dash}")
    if ndim == 2 and not (0 < float(slice_thickness) <= 1.0):
        raise ValueError(f"slice_thickness must be in (0, 1] m, got {slice_thickness}")

    regions = shepp_logan_regions()
    n_t = len(SHEPP_LOGAN_TISSUES)
    tissue_of = torch.tensor([-1] + [SHEPP_LOGAN_TISSUES.index(t) for t in regions.tissues])
    pd_of = torch.cat([torch.zeros(1, dtype=torch.float64), regions.pd])
    grid = (1 if ndim == 2 else matrix[0], *matrix[-2:])
    pool_pd = torch.zeros((n_t, *grid), dtype=torch.float64)
    cover = torch.zeros((n_t, *grid), dtype=torch.float64)  # fraction of sub-samples per tissue
    for z0, z1, sz, labels in _label_chunks(matrix, s, z, regions):
        t_sub = tissue_of[labels]
        pd_sub = pd_of[labels]
        for t in range(n_t):
            is_t = t_sub == t
            pool_pd[t, z0:z1] = _voxel_mean(torch.where(is_t, pd_sub, 0.0), sz, s)
            cover[t, z0:z1] = _voxel_mean(is_t.to(torch.float64), sz, s)

    t1_t = torch.tensor([_tissue_t1(t, FIELD_STRENGTHS[row]) for t in SHEPP_LOGAN_TISSUES], dtype=torch.float64)
    t2_t = torch.tensor([_TISSUES[t][3] for t in SHEPP_LOGAN_TISSUES], dtype=torch.float64)
    b0_map = _shared_map(b0, MAP_DEFAULTS["b0"], "b0", grid, dtype)
    b1_map = _shared_map(b1, MAP_DEFAULTS["b1"], "b1", grid, dtype)
    voxel_size = [f / n for f, n in zip(fov_xyz, reversed(matrix), strict=True)]
    if ndim == 2:
        voxel_size.append(float(slice_thickness))

    if pools == "tissue":
        maps = {
            "pd": pool_pd,
            "t1": t1_t[:, None, None, None].expand(n_t, *grid),
            "t2": t2_t[:, None, None, None].expand(n_t, *grid),
        }
        n_pools = n_t
    else:
        has = cover.sum(0) > 0
        major = cover.argmax(0)
        maps = {
            "pd": pool_pd.sum(0)[None],
            "t1": torch.where(has, t1_t[major], BACKGROUND["t1"])[None],
            "t2": torch.where(has, t2_t[major], BACKGROUND["t2"])[None],
        }
        n_pools = 1
    full = (n_pools, *grid)
    return VoxelPhantom.create(
        **maps,
        t2dash=torch.full(full, float(t2dash), dtype=dtype),
        b0=b0_map[None].expand(full),
        b1=b1_map[None].expand(full),
        coil_sens=coil_sens,
        voxel_size=tuple(voxel_size),
        dtype=dtype,
    )
