"""Smooth field maps for phantoms: off-resonance (B0), transmit field (B1) and receive coil sensitivities.

All maps live on the package grid: voxel centres at ``(i − N//2)·Δ`` along each axis, positions in metres, shapes
``(y, x)`` or ``(z, y, x)`` as given (coil maps add a leading ``coils`` axis). Every map is built with torch
operations, so it is differentiable in its real-valued parameters (amplitudes, widths, centres, radii, ranges)
where they are given as tensors that require grad.

Coil sensitivities
------------------
``kind="biot_savart"``: ``n_coils`` circular loops of radius ``loop_radius`` on a cylinder of radius ``radius``
about the z axis. Loop ``k`` is centred at ``radius·(cos φ_k, sin φ_k, 0)``, ``φ_k = 2πk/N``, its plane tangent
to the cylinder (its axis points at the centre). Its field per unit current is the Biot–Savart integral over the
loop, evaluated with the midpoint rule on ``segments`` straight pieces (exact on the loop axis for any number of
pieces, and converging exponentially fast elsewhere). The current circulates right-handedly about the outward
radial direction, so on the loop's axis the field points outwards. By reciprocity the receive sensitivity is
proportional to the field the coil makes per unit current; this module returns its transverse part as the
complex number

    ``s = Bx − i·By``  [T/A],

the component that couples to magnetisation precessing in the negative sense (the receive field B1⁻; sign
conventions for B1⁻ differ between texts by complex conjugation, i.e. the sense of precession). Because of this,
coil ``k`` is coil 0 rotated by ``φ_k`` about z times the constant phase ``e^{−iφ_k}``: rotating a field vector by
``φ`` multiplies ``Bx + i·By`` by ``e^{iφ}``.

``kind="gaussian"``: ``|s| = exp(−|r − r_k|²/(2w²))`` about the same coil centres ``r_k``, with the phase
``−φ_k + phase_slope·(r − r_k)·ê_k`` (``ê_k`` the outward unit vector at coil k): linear across the object, with
the same rotation property as the Biot–Savart coils.

``normalise="sos"`` divides all coils by one number so that the root-sum-of-squares over coils is 1 at the centre
voxel of the grid (index ``N//2`` on every axis, the origin); it does not flatten the maps voxel by voxel.
"""

from __future__ import annotations

import math

import torch

from .._tensors import as_tensor, complex_dtype
from ..constants import MU0_T_M_PER_A as MU0

COIL_KINDS = ("biot_savart", "gaussian")
B1_KINDS = ("gaussian", "polynomial")
NORMALISATIONS = ("sos", None)

#: Segment × voxel pairs per chunk of the Biot–Savart sum (bounds memory).
_FIELD_CHUNK = 1 << 20

#: Default peak |B0| of a random polynomial map [Hz].
DEFAULT_PEAK_HZ = 50.0


# ------------------------------------------------------------------------------------------------ grid helpers
def _check_shape(shape) -> tuple[int, ...]:
    try:
        s = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"shape must be (y, x) or (z, y, x), got {shape!r}") from None
    if len(s) not in (2, 3) or any(v < 1 for v in s):
        raise ValueError(f"shape must be (y, x) or (z, y, x) with positive sizes, got {tuple(shape)}")
    return s


def _check_voxel_size(voxel_size, ndim: int) -> tuple[float, float, float]:
    """Voxel size (x, y, z) [m]; a 2D shape may give (x, y) (z is then irrelevant)."""
    try:
        v = tuple(float(x) for x in voxel_size)
    except TypeError:
        raise ValueError(f"voxel_size must be (x, y, z) in m, got {voxel_size!r}") from None
    if ndim == 2 and len(v) == 2:
        v = (*v, 1e-3)
    if len(v) != 3 or any(not (0 < x <= 1.0) for x in v):
        raise ValueError(f"voxel_size must be three values (x, y, z), each in (0, 1] m, got {tuple(voxel_size)}")
    return v  # type: ignore[return-value]


def _coordinates(shape: tuple[int, ...], voxel_size: tuple[float, float, float]):
    """Positions x, y, z [m], float64, broadcastable to ``(Z, Y, X)`` (Z = 1 for a 2D shape)."""
    z, y, x = shape if len(shape) == 3 else (1, *shape)
    f64 = torch.float64
    px = ((torch.arange(x, dtype=f64) - x // 2) * voxel_size[0]).reshape(1, 1, x)
    py = ((torch.arange(y, dtype=f64) - y // 2) * voxel_size[1]).reshape(1, y, 1)
    pz = ((torch.arange(z, dtype=f64) - z // 2) * voxel_size[2]).reshape(z, 1, 1)
    return px, py, pz


def _half_extent(shape: tuple[int, ...], voxel_size) -> tuple[float, float, float]:
    """Half the FOV along x, y, z [m] (0 along z for a 2D shape)."""
    z, y, x = shape if len(shape) == 3 else (0, *shape)
    return x * voxel_size[0] / 2, y * voxel_size[1] / 2, z * voxel_size[2] / 2


def _out(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Broadcastable to ``(Z, Y, X)`` → the caller's shape."""
    grid = shape if len(shape) == 3 else (1, *shape)
    return t.expand(grid).reshape(shape)


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")


def _vector(name: str, value, *, ndim: int, unit: str) -> torch.Tensor:
    """A position/width given as 1 value (isotropic), ``ndim`` or 3 values (x, y[, z]) → float64 tensor (3,)."""
    t = as_tensor(value, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(3)
    elif t.numel() == 2 and ndim == 2:
        t = torch.cat([t, torch.zeros(1, dtype=torch.float64)])
    elif t.numel() != 3:
        raise ValueError(f"{name} must have 1, {ndim} or 3 values (x, y, z) in {unit}, got {t.numel()}")
    if not torch.isfinite(t.detach()).all():
        raise ValueError(f"{name} must be finite, got {t.detach().tolist()}")
    return t


# ------------------------------------------------------------------------------------------------------ B0 maps
def polynomial_terms(order: int, *, ndim: int = 3) -> list[tuple[int, ...]]:
    """Exponents of the monomials of a polynomial of total degree ≤ ``order`` in (x, y[, z]).

    Degree 0 first, then degree 1, …; within a degree in descending powers of x, then y. For ``ndim = 3`` and
    ``order = 2``: ``1, x, y, z, x², xy, xz, y², yz, z²``.
    """
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 8:
        raise ValueError(f"order must be an integer in [0, 8], got {order!r}")
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    terms = []
    for degree in range(order + 1):
        for i in range(degree, -1, -1):
            if ndim == 2:
                terms.append((i, degree - i))
                continue
            for j in range(degree - i, -1, -1):
                terms.append((i, j, degree - i - j))
    return terms


def _polynomial(shape, voxel_size, coefficients, order: int, seed, *, name: str) -> torch.Tensor:
    """Σ c_t · monomial_t on normalised positions (each axis divided by its half FOV), ``(Z, Y, X)`` float64."""
    ndim = len(shape)
    terms = polynomial_terms(order, ndim=ndim)
    if coefficients is None:
        if seed is None:
            raise ValueError(f"{name}: give coefficients, or a seed (int or torch.Generator) to draw them")
        if isinstance(seed, torch.Generator):
            gen = seed
        elif isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63:
            gen = torch.Generator().manual_seed(seed)
        else:
            raise ValueError(f"{name}: seed must be an int in [0, 2**63) or a torch.Generator, got {seed!r}")
        coeffs = torch.randn(len(terms), generator=gen, dtype=torch.float64)
        coeffs[0] = 0.0  # a global offset is a centre-frequency error, not an inhomogeneity
    else:
        coeffs = as_tensor(coefficients, dtype=torch.float64).flatten()
        if coeffs.numel() != len(terms):
            raise ValueError(
                f"coefficients must have {len(terms)} values for order {order} in {ndim}D "
                f"(see polynomial_terms), got {coeffs.numel()}"
            )
    px, py, pz = _coordinates(shape, voxel_size)
    hx, hy, hz = _half_extent(shape, voxel_size)
    nx, ny = px / hx, py / hy
    nz = pz / hz if ndim == 3 else torch.zeros_like(pz)
    out = torch.zeros((), dtype=torch.float64)
    for c, powers in zip(coeffs, terms, strict=True):
        e = (*powers, 0) if ndim == 2 else powers
        out = out + c * nx ** e[0] * ny ** e[1] * nz ** e[2]
    return out.expand(shape if ndim == 3 else (1, *shape))


def polynomial_b0(
    shape,
    *,
    voxel_size,
    coefficients=None,
    order: int = 2,
    seed=None,
    peak_hz=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A smooth polynomial off-resonance map (shim-like).

    Parameters
    ----------
    shape : (y, x) or (z, y, x)
    voxel_size : (x, y, z)
        [m]; a 2D shape may give (x, y).
    coefficients : sequence or Tensor, optional
        [Hz], one per term of :func:`polynomial_terms` ``(order, ndim=len(shape))``; positions are normalised by
        half the FOV along each axis (so x runs over about [−1, 1]). Differentiable.
    order : int
        Total degree (default 2).
    seed : int or torch.Generator, optional
        Without ``coefficients``: draw them standard normal (constant term 0) with this seed.
    peak_hz : float or Tensor, optional
        If given, scale the map so that its largest |value| on the grid equals ``peak_hz`` (≥ 0, differentiable).
        Default: :data:`DEFAULT_PEAK_HZ` for random coefficients, no scaling for given ones.
    dtype : torch.float32 or torch.float64

    Returns
    -------
    Tensor, shape ``shape``
        Off-resonance [Hz].
    """
    shape = _check_shape(shape)
    vs = _check_voxel_size(voxel_size, len(shape))
    _check_dtype(dtype)
    poly = _polynomial(shape, vs, coefficients, order, seed, name="polynomial_b0")
    if peak_hz is None and coefficients is None:
        peak_hz = DEFAULT_PEAK_HZ
    if peak_hz is not None:
        peak = as_tensor(peak_hz, dtype=torch.float64)
        if peak.numel() != 1 or not bool(torch.isfinite(peak.detach()).all()) or float(peak.detach()) < 0:
            raise ValueError(f"peak_hz must be one finite value ≥ 0 Hz, got {peak_hz}")
        top = poly.detach().abs().max()
        if float(top) == 0.0:
            raise ValueError("the polynomial is zero on the whole grid; it cannot be scaled to peak_hz")
        poly = poly * (peak.reshape(()) / poly.abs().max())
    return _out(poly.to(dtype), shape)


def gaussian_b0(
    shape,
    *,
    voxel_size,
    amplitude_hz,
    width,
    centre=(0.0, 0.0, 0.0),
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A Gaussian off-resonance bump, ``amplitude · exp(−Σ_axes (r − centre)²/(2·width²))`` (a susceptibility-like
    local field, e.g. near an air cavity).

    Parameters
    ----------
    shape : (y, x) or (z, y, x)
    voxel_size : (x, y, z)
        [m]; a 2D shape may give (x, y) (its slice is the plane z = 0).
    amplitude_hz : float or Tensor
        Peak off-resonance [Hz] (any sign). Differentiable.
    width : float or Tensor, 1 or 3 values
        Standard deviation [m], isotropic or per axis (x, y, z); > 0. Differentiable.
    centre : 2 or 3 values (x, y[, z])
        [m]. Differentiable.
    dtype : torch.float32 or torch.float64

    Returns
    -------
    Tensor, shape ``shape``
        Off-resonance [Hz].
    """
    shape = _check_shape(shape)
    vs = _check_voxel_size(voxel_size, len(shape))
    _check_dtype(dtype)
    amp = as_tensor(amplitude_hz, dtype=torch.float64)
    if amp.numel() != 1 or not bool(torch.isfinite(amp.detach()).all()):
        raise ValueError(f"amplitude_hz must be one finite value [Hz], got {amplitude_hz}")
    w = _vector("width", width, ndim=len(shape), unit="m")
    if (w.detach() <= 0).any():
        raise ValueError(f"width must be > 0 m, got {w.detach().tolist()}")
    c = _vector("centre", centre, ndim=len(shape), unit="m")
    px, py, pz = _coordinates(shape, vs)
    arg = ((px - c[0]) / w[0]) ** 2 + ((py - c[1]) / w[1]) ** 2 + ((pz - c[2]) / w[2]) ** 2
    b0 = amp.reshape(()) * torch.exp(-0.5 * arg)
    return _out(b0.to(dtype), shape)


# ------------------------------------------------------------------------------------------------------ B1 maps
def smooth_b1(
    shape,
    *,
    voxel_size,
    b1_range=(0.8, 1.2),
    kind: str = "gaussian",
    mask=None,
    width=None,
    centre=(0.0, 0.0, 0.0),
    order: int = 2,
    seed=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A smooth relative transmit field whose minimum and maximum are exactly ``b1_range``.

    The map is a smooth bump, rescaled linearly so that its minimum over the grid (or over ``mask``) is
    ``b1_range[0]`` and its maximum ``b1_range[1]``; outside ``mask`` it may leave the range.

    Parameters
    ----------
    shape : (y, x) or (z, y, x)
    voxel_size : (x, y, z)
        [m]; a 2D shape may give (x, y).
    b1_range : (min, max)
        Relative B1 (0 ≤ min < max ≤ 10); floats or tensors (differentiable).
    kind : ``"gaussian"`` or ``"polynomial"``
        ``"gaussian"``: ``exp(−|r − centre|²/(2·width²))``, bright at ``centre`` (the central brightening of
        head imaging at 3 T). ``"polynomial"``: a random polynomial of total degree ``order`` drawn with ``seed``
        (as :func:`polynomial_b0`).
    mask : bool Tensor of shape ``shape``, optional
        Voxels over which the range is met (at least two, with different values of the bump).
    width : float or Tensor, 1 or 3 values, optional
        Gaussian standard deviation [m]; default half the largest FOV edge. Differentiable.
    centre : 2 or 3 values
        Gaussian centre (x, y[, z]) [m]. Differentiable.
    order : int
        Polynomial degree (``"polynomial"``).
    seed : int or torch.Generator, optional
        Required for ``"polynomial"``.
    dtype : torch.float32 or torch.float64

    Returns
    -------
    Tensor, shape ``shape``
        Relative transmit field.
    """
    shape = _check_shape(shape)
    vs = _check_voxel_size(voxel_size, len(shape))
    _check_dtype(dtype)
    if kind not in B1_KINDS:
        raise ValueError(f"kind must be one of {B1_KINDS}, got {kind!r}")
    try:
        lo, hi = (as_tensor(v, dtype=torch.float64).reshape(()) for v in b1_range)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"b1_range must be a pair (min, max), got {b1_range!r}") from None
    lo_f, hi_f = float(lo.detach()), float(hi.detach())
    if not (0.0 <= lo_f < hi_f <= 10.0):
        raise ValueError(f"b1_range must satisfy 0 ≤ min < max ≤ 10, got ({lo_f:g}, {hi_f:g})")
    if kind == "gaussian":
        if width is None:
            hx, hy, hz = _half_extent(shape, vs)
            width = max(hx, hy, hz)
        w = _vector("width", width, ndim=len(shape), unit="m")
        if (w.detach() <= 0).any():
            raise ValueError(f"width must be > 0 m, got {w.detach().tolist()}")
        c = _vector("centre", centre, ndim=len(shape), unit="m")
        px, py, pz = _coordinates(shape, vs)
        bump = torch.exp(-0.5 * (((px - c[0]) / w[0]) ** 2 + ((py - c[1]) / w[1]) ** 2 + ((pz - c[2]) / w[2]) ** 2))
    else:
        bump = _polynomial(shape, vs, None, order, seed, name="smooth_b1")
    bump = _out(bump, shape)
    if mask is None:
        values = bump.flatten()
    else:
        m = torch.as_tensor(mask)
        if m.dtype != torch.bool or tuple(m.shape) != shape:
            raise ValueError(f"mask must be a bool tensor of shape {shape}, got {m.dtype} {tuple(m.shape)}")
        values = bump[m]
    if values.numel() < 2:
        raise ValueError(f"mask must select at least 2 voxels, got {values.numel()}")
    vmin, vmax = values.min(), values.max()
    if float((vmax - vmin).detach()) <= 1e-12 * max(1.0, float(vmax.detach().abs())):
        raise ValueError("the smooth map is constant over the grid or mask; widen the mask or change width")
    b1 = lo + (hi - lo) * (bump - vmin) / (vmax - vmin)
    return b1.to(dtype)


# -------------------------------------------------------------------------------------------- coil sensitivities
def loop_field(
    points: torch.Tensor,
    *,
    centre,
    normal,
    loop_radius,
    segments: int = 48,
    current: float = 1.0,
) -> torch.Tensor:
    """Magnetic field of a circular current loop by the Biot–Savart law, midpoint rule on ``segments`` pieces.

    Parameters
    ----------
    points : Tensor, shape ``(..., 3)``
        Field points (x, y, z) [m].
    centre : 3 values
        Loop centre [m].
    normal : 3 values
        Loop axis (normalised here); the current circulates right-handedly about it, so on the axis the field
        points along ``normal``.
    loop_radius : float or Tensor
        [m], > 0. Differentiable.
    segments : int
        Number of straight pieces (≥ 3).
    current : float
        [A].

    Returns
    -------
    Tensor, shape ``(..., 3)``, float64
        B [T]. On the axis at distance d: ``μ0·I·a²/(2(a² + d²)^{3/2})`` for any ``segments``.
    """
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 3:
        raise ValueError(f"segments must be an integer ≥ 3, got {segments!r}")
    a = as_tensor(loop_radius, dtype=torch.float64).reshape(())
    if not float(a.detach()) > 0:
        raise ValueError(f"loop_radius must be > 0 m, got {float(a.detach())}")
    c = as_tensor(centre, dtype=torch.float64).flatten()
    n = as_tensor(normal, dtype=torch.float64).flatten()
    if c.numel() != 3 or n.numel() != 3 or float(n.detach().norm()) == 0:
        raise ValueError("centre and normal must be 3 values (x, y, z), the normal non-zero")
    n = n / n.norm()
    # an orthonormal pair (e1, e2) in the loop plane with e1 × e2 = n
    helper = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    if abs(float(n.detach()[2])) > 0.9:
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    e1 = torch.linalg.cross(helper, n)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(n, e1)
    pts = as_tensor(points, dtype=torch.float64)
    if pts.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {tuple(pts.shape)}")
    d_theta = 2 * math.pi / segments
    theta = (torch.arange(segments, dtype=torch.float64) + 0.5) * d_theta
    cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    src = c + a * (cos * e1 + sin * e2)  # (M, 3) segment midpoints
    dl = (a * d_theta) * (-sin * e1 + cos * e2)  # (M, 3) segment vectors
    flat = pts.reshape(-1, 3)
    chunk = max(1, _FIELD_CHUNK // segments)
    parts = []
    for i0 in range(0, flat.shape[0], chunk):
        p = flat[i0 : i0 + chunk]
        rx = p[None, :, 0] - src[:, 0:1]  # (M, V)
        ry = p[None, :, 1] - src[:, 1:2]
        rz = p[None, :, 2] - src[:, 2:3]
        inv3 = torch.rsqrt(rx * rx + ry * ry + rz * rz) ** 3
        lx, ly, lz = dl[:, 0:1], dl[:, 1:2], dl[:, 2:3]
        bx = ((ly * rz - lz * ry) * inv3).sum(0)
        by = ((lz * rx - lx * rz) * inv3).sum(0)
        bz = ((lx * ry - ly * rx) * inv3).sum(0)
        parts.append(torch.stack([bx, by, bz], dim=-1))
    field = torch.cat(parts).reshape(pts.shape)
    return field * (MU0 * current / (4 * math.pi))


def coil_sensitivities(
    shape,
    *,
    voxel_size,
    n_coils: int = 8,
    kind: str = "biot_savart",
    radius=None,
    loop_radius=None,
    segments: int = 48,
    width=None,
    phase_slope=None,
    normalise: str | None = "sos",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Receive sensitivities of ``n_coils`` coils evenly spaced around the z axis.

    Parameters
    ----------
    shape : (y, x) or (z, y, x)
    voxel_size : (x, y, z)
        [m]; a 2D shape may give (x, y) (its slice is the plane z = 0).
    n_coils : int
        Number of coils (1 … 128); coil k sits at the angle ``2πk/n_coils`` from +x.
    kind : ``"biot_savart"`` or ``"gaussian"``
        See the module docstring.
    radius : float or Tensor, optional
        Distance of the coil centres from the z axis [m]; default 0.6 × the larger in-plane FOV edge (just outside
        the grid's inscribed circle). Differentiable.
    loop_radius : float or Tensor, optional
        Radius of each loop [m] (``"biot_savart"``); default ``radius · min(0.5, π/n_coils)``. Differentiable.
    segments : int
        Straight pieces per loop for the Biot–Savart integral.
    width : float or Tensor, optional
        Gaussian width w [m] (``"gaussian"``); default ``0.75 · radius``. Differentiable.
    phase_slope : float or Tensor, optional
        Phase gradient along ``ê_k`` [rad/m] (``"gaussian"``); default ``π / (2·radius)``. Differentiable.
    normalise : ``"sos"`` or None
        ``"sos"``: one common factor so the root-sum-of-squares over coils is 1 at the grid centre. None: raw
        values (``"biot_savart"``: T/A; ``"gaussian"``: 1 at the coil centre).
    dtype : torch.float32 or torch.float64
        Real dtype; the result is the matching complex dtype.

    Returns
    -------
    Tensor, shape ``(coils, *shape)``, complex
        ``Bx − i·By`` per unit current for ``"biot_savart"``. (``VoxelPhantom.create`` accepts it for a 2D or 3D
        grid.)
    """
    shape = _check_shape(shape)
    vs = _check_voxel_size(voxel_size, len(shape))
    _check_dtype(dtype)
    if kind not in COIL_KINDS:
        raise ValueError(f"kind must be one of {COIL_KINDS}, got {kind!r}")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    if isinstance(n_coils, bool) or not isinstance(n_coils, int) or not 1 <= n_coils <= 128:
        raise ValueError(f"n_coils must be an integer in [1, 128], got {n_coils!r}")
    hx, hy, _ = _half_extent(shape, vs)
    radius_t = as_tensor(1.2 * max(hx, hy) if radius is None else radius, dtype=torch.float64).reshape(())
    if not (0 < float(radius_t.detach()) <= 10.0):
        raise ValueError(f"radius must be in (0, 10] m, got {float(radius_t.detach())}")
    px, py, pz = _coordinates(shape, vs)
    grid = shape if len(shape) == 3 else (1, *shape)
    points = torch.stack(torch.broadcast_tensors(px, py, pz), dim=-1)  # (Z, Y, X, 3)
    maps = []
    if kind == "biot_savart":
        a = (
            radius_t * min(0.5, math.pi / n_coils)
            if loop_radius is None
            else as_tensor(loop_radius, dtype=torch.float64)
        )
        a = a.reshape(())
        if not (0 < float(a.detach()) <= 10.0):
            raise ValueError(f"loop_radius must be in (0, 10] m, got {float(a.detach())}")
        for k in range(n_coils):
            phi = 2 * math.pi * k / n_coils
            outward = torch.tensor([math.cos(phi), math.sin(phi), 0.0], dtype=torch.float64)
            b = loop_field(points, centre=radius_t * outward, normal=outward, loop_radius=a, segments=segments)
            maps.append(torch.complex(b[..., 0], -b[..., 1]))
    else:
        w = 0.75 * radius_t if width is None else as_tensor(width, dtype=torch.float64).reshape(())
        if not float(w.detach()) > 0:
            raise ValueError(f"width must be > 0 m, got {float(w.detach())}")
        g = math.pi / 2 / radius_t if phase_slope is None else as_tensor(phase_slope, dtype=torch.float64).reshape(())
        if not bool(torch.isfinite(g.detach())):
            raise ValueError(f"phase_slope must be finite [rad/m], got {phase_slope}")
        for k in range(n_coils):
            phi = 2 * math.pi * k / n_coils
            cx, cy = radius_t * math.cos(phi), radius_t * math.sin(phi)
            dx, dy = px - cx, py - cy
            mag = torch.exp(-(dx * dx + dy * dy + pz * pz) / (2 * w * w))
            phase = -phi + g * (dx * math.cos(phi) + dy * math.sin(phi))
            maps.append(torch.complex(mag * torch.cos(phase), mag * torch.sin(phase)).expand(grid))
    sens = torch.stack(maps)  # (coils, Z, Y, X)
    if not bool(torch.isfinite(torch.view_as_real(sens.detach())).all()):
        raise ValueError("coil sensitivities are not finite: a voxel lies on a coil wire; increase radius")
    if normalise == "sos":
        centre_idx = tuple(n // 2 for n in grid)
        rss = sens[(slice(None), *centre_idx)].abs().pow(2).sum().sqrt()
        if float(rss.detach()) == 0.0:
            raise ValueError("the coils have zero root-sum-of-squares at the grid centre; cannot normalise")
        sens = sens / rss
    return sens.reshape(n_coils, *shape).to(complex_dtype(dtype))
