"""B0, B1 and coil-sensitivity maps."""

import math

import pytest
import torch
from scipy.special import ellipe, ellipk

from gradmr.phantom.core import VoxelPhantom
from gradmr.phantom.fields import (
    MU0,
    coil_sensitivities,
    gaussian_b0,
    loop_field,
    polynomial_b0,
    polynomial_terms,
    smooth_b1,
)
from gradmr.phantom.shepp_logan import shepp_logan_phantom

VS = (2e-3, 2e-3, 4e-3)


def positions(n: int, d: float) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) - n // 2) * d


# ------------------------------------------------------------------------------------------------------------ B0
def test_polynomial_terms_order():
    assert polynomial_terms(2, ndim=3) == [
        (0, 0, 0),
        (1, 0, 0),
        (0, 1, 0),
        (0, 0, 1),
        (2, 0, 0),
        (1, 1, 0),
        (1, 0, 1),
        (0, 2, 0),
        (0, 1, 1),
        (0, 0, 2),
    ]
    assert polynomial_terms(2, ndim=2) == [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)]
    assert len(polynomial_terms(3, ndim=3)) == 20


@pytest.mark.parametrize("shape", [(24, 32), (6, 24, 32)])
def test_random_polynomial_b0_meets_the_peak(shape):
    b0 = polynomial_b0(shape, voxel_size=VS, seed=3, peak_hz=80.0)
    assert b0.shape == shape and b0.dtype == torch.float32
    assert b0.abs().max().item() == pytest.approx(80.0, rel=1e-6)
    assert torch.equal(b0, polynomial_b0(shape, voxel_size=VS, seed=3, peak_hz=80.0))
    assert not torch.equal(b0, polynomial_b0(shape, voxel_size=VS, seed=4, peak_hz=80.0))
    assert polynomial_b0(shape, voxel_size=VS, seed=3).abs().max().item() == pytest.approx(50.0, rel=1e-6)


def test_polynomial_b0_with_coefficients():
    # b0 = 10 + 20·x/hx − 5·y²/hy² on a 2D grid, no rescaling
    ny, nx = 16, 20
    c = torch.zeros(6, dtype=torch.float64)
    c[0], c[1], c[5] = 10.0, 20.0, -5.0
    b0 = polynomial_b0((ny, nx), voxel_size=VS, coefficients=c, dtype=torch.float64)
    x = positions(nx, VS[0]) / (nx * VS[0] / 2)
    y = positions(ny, VS[1]) / (ny * VS[1] / 2)
    expected = 10 + 20 * x[None, :] - 5 * y[:, None] ** 2
    assert torch.allclose(b0, expected, atol=1e-12)


def test_gaussian_b0_peak_and_width():
    shape = (9, 33, 33)
    w = 0.01
    b0 = gaussian_b0(shape, voxel_size=(1e-3, 1e-3, 1e-3), amplitude_hz=-120.0, width=w, dtype=torch.float64)
    assert b0.shape == shape
    assert b0[4, 16, 16].item() == pytest.approx(-120.0)  # the voxel at the origin
    x = positions(33, 1e-3)
    assert torch.allclose(b0[4, 16], -120.0 * torch.exp(-(x**2) / (2 * w * w)))
    # an off-centre bump in 2D, anisotropic width
    b2 = gaussian_b0((33, 33), voxel_size=(1e-3, 1e-3), amplitude_hz=50.0, width=(0.004, 0.008, 0.01), centre=(5e-3, 0))
    assert b2.shape == (33, 33) and b2[16, 21].item() == pytest.approx(50.0, rel=1e-6)


def test_gaussian_b0_gradcheck():
    def f(amplitude, width, centre):
        return gaussian_b0(
            (5, 7), voxel_size=(2e-3, 2e-3), amplitude_hz=amplitude, width=width, centre=centre, dtype=torch.float64
        )

    amplitude = torch.tensor(30.0, dtype=torch.float64, requires_grad=True)
    width = torch.tensor(4e-3, dtype=torch.float64, requires_grad=True)
    centre = torch.tensor([1e-3, -2e-3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (amplitude, width, centre))


def test_polynomial_b0_gradcheck_in_coefficients_and_peak():
    coeffs = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    peak = torch.tensor(40.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda c, p: polynomial_b0((5, 6), voxel_size=VS, coefficients=c, peak_hz=p, dtype=torch.float64),
        (coeffs, peak),
    )


# ------------------------------------------------------------------------------------------------------------ B1
@pytest.mark.parametrize("kind", ["gaussian", "polynomial"])
@pytest.mark.parametrize("shape", [(24, 32), (5, 24, 32)])
def test_smooth_b1_meets_the_range_exactly(kind, shape):
    b1 = smooth_b1(shape, voxel_size=VS, b1_range=(0.7, 1.25), kind=kind, seed=1, dtype=torch.float64)
    assert b1.shape == shape
    assert b1.min().item() == pytest.approx(0.7, abs=1e-12)
    assert b1.max().item() == pytest.approx(1.25, abs=1e-12)


def test_smooth_b1_range_over_a_mask():
    shape = (32, 32)
    y, x = torch.meshgrid(positions(32, 1.0), positions(32, 1.0), indexing="ij")
    mask = x**2 + y**2 <= 10.0**2
    b1 = smooth_b1(shape, voxel_size=VS, b1_range=(0.8, 1.2), mask=mask, dtype=torch.float64)
    assert b1[mask].min().item() == pytest.approx(0.8, abs=1e-12)
    assert b1[mask].max().item() == pytest.approx(1.2, abs=1e-12)
    assert b1[~mask].min() < 0.8  # outside the mask the smooth map goes on falling
    assert b1[16, 16].item() == pytest.approx(1.2, abs=1e-12)  # gaussian: brightest at the centre


def test_smooth_b1_gradcheck():
    lo = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    hi = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    width = torch.tensor(6e-3, dtype=torch.float64, requires_grad=True)
    centre = torch.tensor([1e-3, 0.5e-3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, w, c: smooth_b1((5, 6), voxel_size=VS, b1_range=(a, b), width=w, centre=c, dtype=torch.float64),
        (lo, hi, width, centre),
    )


# ------------------------------------------------------------------------------------------------- Biot–Savart
def test_loop_field_on_axis_equals_the_closed_form():
    a = 0.04
    d = torch.linspace(-0.1, 0.1, 11, dtype=torch.float64)
    normal = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    normal = normal / normal.norm()
    centre = torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64)
    pts = centre + d[:, None] * normal
    b = loop_field(pts, centre=centre, normal=normal, loop_radius=a, segments=48)
    exact = MU0 * a**2 / (2 * (a**2 + d**2) ** 1.5)
    assert torch.allclose(b @ normal, exact, rtol=1e-3)
    assert torch.allclose(b, exact[:, None] * normal, rtol=1e-3, atol=1e-3 * float(exact.min()))


def test_loop_field_off_axis_equals_the_elliptic_integral_form():
    # loop of radius a in the xy-plane at the origin, I = 1 A; field at (ρ, 0, z) with k² = 4aρ / ((a + ρ)² + z²)
    a = 0.05
    rho = torch.tensor([0.0101, 0.03, 0.07, 0.02], dtype=torch.float64)
    z = torch.tensor([0.02, -0.01, 0.04, 0.1], dtype=torch.float64)
    alpha2 = a**2 + rho**2 + z**2 - 2 * a * rho
    beta2 = a**2 + rho**2 + z**2 + 2 * a * rho
    m = (1 - alpha2 / beta2).numpy()
    big_k, big_e = torch.from_numpy(ellipk(m)), torch.from_numpy(ellipe(m))
    c = MU0 / math.pi
    bz = c / (2 * alpha2 * beta2.sqrt()) * ((a**2 - rho**2 - z**2) * big_e + alpha2 * big_k)
    brho = c * z / (2 * alpha2 * beta2.sqrt() * rho) * ((a**2 + rho**2 + z**2) * big_e - alpha2 * big_k)
    pts = torch.stack([rho, torch.zeros_like(rho), z], dim=-1)
    b = loop_field(pts, centre=(0, 0, 0), normal=(0, 0, 1), loop_radius=a, segments=64)
    scale = b.norm(dim=-1)
    assert torch.allclose(b[:, 2], bz, rtol=1e-3, atol=1e-3 * float(scale.min()))
    assert torch.allclose(b[:, 0], brho, rtol=1e-3, atol=1e-3 * float(scale.min()))
    assert b[:, 1].abs().max() < 1e-9 * scale.max()


def test_one_coil_on_its_axis_and_falling_with_distance():
    # coil 0 sits at (R, 0, 0) facing the centre: the x axis of the grid is its axis
    n, d = 33, 4e-3
    radius, a = 0.1, 0.03
    s = coil_sensitivities(
        (n, n), voxel_size=(d, d, d), n_coils=1, radius=radius, loop_radius=a, normalise=None, dtype=torch.float64
    )
    assert s.shape == (1, n, n) and s.dtype == torch.complex128
    on_axis = s[0, n // 2]  # y = 0 row
    dist = radius - positions(n, d)
    exact = MU0 * a**2 / (2 * (a**2 + dist**2) ** 1.5)
    assert torch.allclose(on_axis.real, exact, rtol=1e-3)  # Bx > 0 (field points outwards), By = 0
    assert on_axis.imag.abs().max() < 1e-6 * exact.min()
    # sensitivity falls with distance from the coil, along its axis and across the grid
    assert (on_axis.abs().diff() > 0).all()  # x increases towards the coil
    assert s[0].abs()[:, -1].mean() > 3 * s[0].abs()[:, 0].mean()


@pytest.mark.parametrize("kind", ["biot_savart", "gaussian"])
def test_coils_are_rotated_copies(kind):
    # N = 4 on an odd square grid (symmetric under 90° rotations): coil k is coil 0 rotated by k·90° about z,
    # times the phase e^{−ikπ/2} (Bx − i·By of a rotated field vector)
    n = 21
    s = coil_sensitivities((n, n), voxel_size=(5e-3, 5e-3, 5e-3), n_coils=4, kind=kind, dtype=torch.float64)
    for k in range(4):
        # the map of a coil rotated by +k·90° (counter-clockwise, +x towards +y), on (y, x) arrays: rot90 by −k
        rotated = torch.rot90(s[0], k=-k, dims=(-2, -1))
        assert torch.allclose(
            s[k], rotated * complex(math.cos(k * math.pi / 2), -math.sin(k * math.pi / 2)), atol=1e-12
        )
    # coil 1 sits at +y: brightest near the y = max edge
    assert s[1].abs()[-1].mean() > s[1].abs()[0].mean()


def test_sos_normalisation_is_one_number_for_all_voxels():
    n = 25
    raw = coil_sensitivities((3, n, n), voxel_size=(4e-3, 4e-3, 4e-3), n_coils=6, normalise=None, dtype=torch.float64)
    sos = coil_sensitivities((3, n, n), voxel_size=(4e-3, 4e-3, 4e-3), n_coils=6, dtype=torch.float64)
    assert sos.shape == (6, 3, n, n)
    rss = sos.abs().pow(2).sum(0).sqrt()
    assert rss[1, n // 2, n // 2].item() == pytest.approx(1.0, abs=1e-12)
    ratio = sos / raw
    assert torch.allclose(ratio, ratio[0, 0, 0, 0].expand_as(ratio))  # one common factor
    assert rss.max() > 1.5  # not flattened: brighter near the coils


def test_gaussian_coils_magnitude_and_phase():
    n, d = 33, 5e-3
    radius, width = 0.1, 0.05
    s = coil_sensitivities(
        (n, n),
        voxel_size=(d, d, d),
        n_coils=2,
        kind="gaussian",
        radius=radius,
        width=width,
        normalise=None,
        dtype=torch.float64,
    )
    x = positions(n, d)
    # coil 0 on the x axis at (R, 0): |s| = exp(−(x − R)²/(2w²)), phase linear in x with slope π/(2R)
    assert torch.allclose(s[0, n // 2].abs(), torch.exp(-((x - radius) ** 2) / (2 * width**2)))
    phase = torch.angle(s[0, n // 2])
    assert torch.allclose(phase.diff(), torch.full((n - 1,), math.pi / (2 * radius) * d, dtype=torch.float64))


def test_coil_gradcheck():
    width = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    radius = torch.tensor(0.08, dtype=torch.float64, requires_grad=True)

    def gauss(w, r):
        s = coil_sensitivities(
            (5, 5), voxel_size=VS, n_coils=3, kind="gaussian", width=w, radius=r, dtype=torch.float64
        )
        return torch.view_as_real(s)

    assert torch.autograd.gradcheck(gauss, (width, radius))
    loop = torch.tensor(0.02, dtype=torch.float64, requires_grad=True)

    def biot(a):
        s = coil_sensitivities((4, 5), voxel_size=VS, n_coils=2, loop_radius=a, segments=12, dtype=torch.float64)
        return torch.view_as_real(s)

    assert torch.autograd.gradcheck(biot, (loop,))


def test_phantoms_with_these_coils_validate():
    s2 = coil_sensitivities((16, 16), voxel_size=(0.015, 0.015, 0.005), n_coils=8)
    p = VoxelPhantom.create(pd=torch.ones(16, 16), t1=1.0, t2=0.1, coil_sens=s2, voxel_size=(0.015, 0.015, 0.005))
    assert p.coil_count == 8 and p.coil_sens.shape == (8, 1, 16, 16)
    s3 = coil_sensitivities((4, 16, 16), voxel_size=(0.015, 0.015, 0.06), n_coils=4, kind="gaussian")
    q = VoxelPhantom.create(pd=torch.ones(4, 16, 16), t1=1.0, t2=0.1, coil_sens=s3, voxel_size=(0.015, 0.015, 0.06))
    assert q.coil_sens.shape == (4, 4, 16, 16)
    b0 = polynomial_b0((16, 16), voxel_size=(0.015, 0.015, 0.005), seed=0)
    b1 = smooth_b1((16, 16), voxel_size=(0.015, 0.015, 0.005))
    sl = shepp_logan_phantom((16, 16), b0=b0, b1=b1, coil_sens=s2)
    assert sl.coil_count == 8 and torch.equal(sl.b0[0, 0], b0)


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: polynomial_b0((8,), voxel_size=VS, seed=0), "shape"),
        (lambda: polynomial_b0((8, 8), voxel_size=(-1e-3, 1e-3, 1e-3), seed=0), "voxel_size"),
        (lambda: polynomial_b0((8, 8), voxel_size=VS), "seed"),
        (lambda: polynomial_b0((8, 8), voxel_size=VS, coefficients=[1.0, 2.0]), "coefficients"),
        (lambda: polynomial_b0((8, 8), voxel_size=VS, seed=0, peak_hz=-5.0), "peak_hz"),
        (lambda: polynomial_b0((8, 8), voxel_size=VS, seed=0, order=-1), "order"),
        (lambda: gaussian_b0((8, 8), voxel_size=VS, amplitude_hz=10.0, width=0.0), "width"),
        (lambda: gaussian_b0((8, 8), voxel_size=VS, amplitude_hz=10.0, width=0.01, centre=(1, 2, 3, 4)), "centre"),
        (lambda: smooth_b1((8, 8), voxel_size=VS, b1_range=(1.2, 0.8)), "b1_range"),
        (lambda: smooth_b1((8, 8), voxel_size=VS, kind="sinc"), "kind"),
        (lambda: smooth_b1((8, 8), voxel_size=VS, kind="polynomial"), "seed"),
        (lambda: smooth_b1((8, 8), voxel_size=VS, mask=torch.ones(4, 4, dtype=torch.bool)), "mask"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, n_coils=0), "n_coils"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, kind="birdcage"), "kind"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, normalise="max"), "normalise"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, radius=-0.1), "radius"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, loop_radius=0.0), "loop_radius"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, kind="gaussian", width=-1.0), "width"),
        (lambda: coil_sensitivities((8, 8), voxel_size=VS, dtype=torch.complex64), "dtype"),
        (
            lambda: loop_field(torch.zeros(2, 3), centre=(0, 0, 0), normal=(0, 0, 1), loop_radius=0.1, segments=2),
            "segments",
        ),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
