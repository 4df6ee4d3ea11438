"""The MR Shepp–Logan phantom (Gach, Tanase & Boada, ICSEng 2008)."""

import math

import numpy as np
import pytest
import torch

from gradmr.phantom.core import VoxelPhantom
from gradmr.phantom.shepp_logan import (
    SHEPP_LOGAN_TISSUES,
    shepp_logan_labels,
    shepp_logan_phantom,
    shepp_logan_regions,
)

# --- the published table, written out here independently of the module -----------------------------------------
# Gach et al. 2008, tissue table: T1 = A·B0^C [s, B0 in T] (CSF: T1 = 4.2 s), T2 [s] and PD.
# (Check on A: Bottomley et al. 1984 give grey matter T1 = 0.00116·ν^0.376 and white matter 0.00071·ν^0.382 with
#  ν in Hz; at ν = 42.58 MHz/T·B0 these are 0.857·B0^0.376 and 0.583·B0^0.382.)
PAPER_TISSUES = {  # A, C, T2, PD
    "scalp": (0.324, 0.137, 0.070, 0.80),
    "marrow": (0.533, 0.088, 0.050, 0.12),
    "csf": (None, None, 1.99, 0.98),
    "gm": (0.857, 0.376, 0.100, 0.745),
    "wm": (0.583, 0.382, 0.080, 0.617),
    "tumor": (0.926, 0.217, 0.100, 0.95),
}
CSF_T1 = 4.2
# Gach et al. 2008, ellipsoid table (normalised units; angle in degrees about z): x, y, z, a, b, c, θ, PD, tissue
PAPER_ELLIPSOIDS = [
    ("a", 0, 0, 0, 0.72, 0.95, 0.93, 0, 0.80, "scalp"),
    ("b", 0, 0, 0, 0.69, 0.92, 0.90, 0, 0.12, "marrow"),
    ("c", 0, -0.0184, 0, 0.6624, 0.874, 0.88, 0, 0.98, "csf"),
    ("d", 0, -0.0184, 0, 0.6524, 0.864, 0.87, 0, 0.745, "gm"),
    ("e", -0.22, 0, -0.25, 0.41, 0.16, 0.21, -72, 0.98, "csf"),
    ("f", 0.22, 0, -0.25, 0.31, 0.11, 0.22, 72, 0.98, "csf"),
    ("g", 0, 0.35, -0.25, 0.21, 0.25, 0.35, 0, 0.617, "wm"),
    ("h", 0, 0.1, -0.25, 0.046, 0.046, 0.046, 0, 0.95, "tumor"),
    ("i", -0.08, -0.605, -0.25, 0.046, 0.023, 0.02, 0, 0.95, "tumor"),
    ("j", 0.06, -0.605, -0.25, 0.046, 0.023, 0.02, -90, 0.95, "tumor"),
    ("k", 0, -0.1, -0.25, 0.046, 0.046, 0.046, 0, 0.95, "tumor"),
    ("l", 0, -0.605, -0.25, 0.023, 0.023, 0.023, 0, 0.95, "tumor"),
    ("m", 0.06, -0.105, 0.0625, 0.056, 0.04, 0.1, -90, 0.93, "tumor"),
    ("n", 0, 0.1, 0.625, 0.056, 0.056, 0.1, 0, 0.98, "csf"),
]


def paper_t1(tissue: str, field: float) -> float:
    a, c, _, _ = PAPER_TISSUES[tissue]
    return CSF_T1 if tissue == "csf" else a * field**c


def level(e, x, y, z):
    """The ellipsoid function of ``e`` (≤ 1 inside) at normalised points (numpy arrays)."""
    _, cx, cy, cz, a, b, c, deg, *_ = e
    t = math.radians(deg)
    dx, dy = x - cx, y - cy
    p = (math.cos(t) * dx + math.sin(t) * dy) / a
    q = (-math.sin(t) * dx + math.cos(t) * dy) / b
    return p**2 + q**2 + ((z - cz) / c) ** 2


def inside(e, x, y, z):
    return level(e, x, y, z) <= 1


# ------------------------------------------------------------------------------------------------------ the table
@pytest.mark.parametrize("field", [1.5, 3.0])
def test_region_table_equals_the_paper(field):
    r = shepp_logan_regions()
    assert len(r) == len(PAPER_ELLIPSOIDS) == 14
    assert r.names == tuple(e[0] for e in PAPER_ELLIPSOIDS)
    assert r.tissues == tuple(e[9] for e in PAPER_ELLIPSOIDS)
    expected = torch.tensor([e[1:8] for e in PAPER_ELLIPSOIDS], dtype=torch.float64)
    assert torch.equal(r.centre, expected[:, 0:3])
    assert torch.equal(r.semi_axes, expected[:, 3:6])
    assert torch.allclose(torch.rad2deg(r.angle), expected[:, 6], atol=1e-12)
    assert r.pd.tolist() == [e[8] for e in PAPER_ELLIPSOIDS]
    values = r.at(field)
    for i, e in enumerate(PAPER_ELLIPSOIDS):
        tissue = e[9]
        assert values["t1"][i].item() == pytest.approx(paper_t1(tissue, field), rel=1e-12)
        assert values["t2"][i].item() == PAPER_TISSUES[tissue][2]
    assert "Gach" in r.source and "10.1109/ICSEng.2008.15" in r.source


def test_t1_values_at_both_fields():
    # spot values of the power law, by hand: GM 0.857·1.5^0.376, WM 0.583·3^0.382
    r = shepp_logan_regions()
    gm, wm = r.names.index("d"), r.names.index("g")
    assert r.at(1.5)["t1"][gm].item() == pytest.approx(0.9981, abs=1e-4)
    assert r.at(3.0)["t1"][wm].item() == pytest.approx(0.8870, abs=1e-4)
    assert torch.equal(r.at(1.5)["t2"], r.at(3.0)["t2"])  # T2 does not depend on the field
    assert (r.at(3.0)["t1"] >= r.at(1.5)["t1"]).all()


# ------------------------------------------------------------------------------------------- values at known points
def _known_points():
    """(ellipsoid, x, y, z): a point where that ellipsoid is the one on top, x a multiple of 0.02 and y of 0.005."""
    shells = {"a": (0.70, 0.0, 0.0), "b": (0.68, 0.0, 0.0), "c": (0.66, 0.0, 0.0), "d": (0.0, 0.0, 0.0)}
    points = []
    for e in PAPER_ELLIPSOIDS:
        x, y, z = shells.get(e[0], e[1:4])
        points.append((e, x, y, z))
    return points


@pytest.mark.parametrize("field", [1.5, 3.0])
def test_voxel_values_at_region_points_equal_the_table(field):
    ny, nx = 400, 100  # voxel centres at multiples of 0.005 in y and 0.02 in x (normalised)
    sections = {}
    for e, x, y, z in _known_points():
        if z not in sections:
            sections[z] = (
                shepp_logan_phantom((ny, nx), field_strength=field, supersampling=1, z_slice=z, dtype=torch.float64),
                shepp_logan_labels((ny, nx), supersampling=1, z_slice=z),
            )
        p, labels = sections[z]
        ix, iy = round(x / (2 / nx)) + nx // 2, round(y / (2 / ny)) + ny // 2
        assert p.positions().reshape(ny, nx, 3)[iy, ix, :2].tolist() == pytest.approx([x * 0.12, y * 0.12])
        pool = SHEPP_LOGAN_TISSUES.index(e[9])
        assert p.pd[pool, 0, iy, ix].item() == pytest.approx(e[8], abs=1e-12), e[0]
        others = [k for k in range(len(SHEPP_LOGAN_TISSUES)) if k != pool]
        assert (p.pd[others, 0, iy, ix] == 0).all(), e[0]
        assert p.t1[pool, 0, iy, ix].item() == pytest.approx(paper_t1(e[9], field), rel=1e-12)
        assert p.t2[pool, 0, iy, ix].item() == pytest.approx(PAPER_TISSUES[e[9]][2], rel=1e-12)
        assert labels[0, iy, ix].item() == PAPER_ELLIPSOIDS.index(e) + 1


def test_region_on_top_wins_where_inner_ellipsoids_overlap():
    # tumour h overlaps the white-matter ellipsoid g: the overlap is tumour (PD 0.95), not PD_t + PD_wm − PD_gm
    n = 100
    p = shepp_logan_phantom((n, n), supersampling=1, pools="single", dtype=torch.float64)
    x0, y0 = 0.0, 0.12  # inside g ((0.12 − 0.35)/0.25)² < 1 and inside h ((0.12 − 0.1)/0.046)² < 1
    assert inside(PAPER_ELLIPSOIDS[6], x0, y0, -0.25) and inside(PAPER_ELLIPSOIDS[7], x0, y0, -0.25)
    ix, iy = round(x0 / (2 / n)) + n // 2, round(y0 / (2 / n)) + n // 2
    assert p.pd[0, 0, iy, ix].item() == pytest.approx(0.95)
    assert p.t1[0, 0, iy, ix].item() == pytest.approx(paper_t1("tumor", 3.0))


# ------------------------------------------------------------------------------------------ agreement with a peer
def _ours_single(matrix, field, z_slice=-0.25, supersampling=1):
    p = shepp_logan_phantom(
        matrix, field_strength=field, supersampling=supersampling, z_slice=z_slice, pools="single", dtype=torch.float64
    )
    return p.pd[0].numpy(), p.t1[0].numpy(), p.t2[0].numpy()


def _explained(x, y, z):
    """Points where a peer may differ: inside two or more of the inner ellipsoids e … n (additive peers give sums
    there), or on an ellipsoid surface to rounding (the two grids agree only to the last bit)."""
    count = sum(inside(e, x, y, z).astype(int) for e in PAPER_ELLIPSOIDS[4:])
    on_surface = np.zeros(np.shape(x), dtype=bool)
    for e in PAPER_ELLIPSOIDS:
        on_surface |= np.abs(level(e, x, y, z) - 1) < 1e-9
    return (count >= 2) | on_surface


@pytest.mark.parametrize("field", [1.5, 3.0])
@pytest.mark.parametrize("z_slice", [-0.25, 0.0])
def test_agrees_with_phantominator_2d(field, z_slice):
    phantominator = pytest.importorskip("phantominator")
    n = 128
    # phantominator samples linspace(−1, 1, N); with N = n + 1 its first n points are our voxel centres
    m0, t1, t2 = phantominator.mr_shepp_logan((n + 1, n + 1, 1), B0=field, zlims=(z_slice, z_slice))
    m0, t1, t2 = (a[:n, :n, 0] for a in (m0, t1, t2))  # (y, x)
    pd, our_t1, our_t2 = (a[0] for a in _ours_single((n, n), field, z_slice))
    head = m0 > 0
    equal_pd = np.isclose(pd, m0, rtol=0, atol=1e-9)
    equal_t1 = np.isclose(our_t1, t1, rtol=1e-9) | ~head
    equal_t2 = np.isclose(our_t2, t2, rtol=1e-9) | ~head
    assert equal_pd.mean() > 0.995 and equal_t1.mean() > 0.995 and equal_t2.mean() > 0.995
    # every disagreement lies where inner ellipsoids overlap: phantominator adds and subtracts ellipsoids there
    u = (np.arange(n) - n // 2) * (2 / n)
    yy, xx = np.meshgrid(u, u, indexing="ij")
    assert (~(equal_pd & equal_t1 & equal_t2) <= _explained(xx, yy, z_slice)).all()
    if z_slice == -0.25:
        assert (~equal_pd).any()  # the section through the inner structures has such overlaps


def test_agrees_with_phantominator_3d():
    phantominator = pytest.importorskip("phantominator")
    n = 40
    m0, t1, _ = phantominator.mr_shepp_logan((n + 1, n + 1, n + 1), B0=3.0)
    m0, t1 = (a[:n, :n, :n].transpose(2, 0, 1) for a in (m0, t1))  # (y, x, z) → (z, y, x)
    pd, our_t1, _ = _ours_single((n, n, n), 3.0)
    equal = np.isclose(pd, m0, atol=1e-9) & (np.isclose(our_t1, t1, rtol=1e-9) | (m0 == 0))
    assert equal.mean() > 0.999
    u = (np.arange(n) - n // 2) * (2 / n)
    zz, yy, xx = np.meshgrid(u, u, u, indexing="ij")
    assert (~equal <= _explained(xx, yy, zz)).all()


def test_supersampled_phantom_agrees_with_phantominator_away_from_edges():
    phantominator = pytest.importorskip("phantominator")
    n = 128
    m0 = phantominator.mr_shepp_logan((n + 1, n + 1, 1), B0=3.0, zlims=(-0.25, -0.25))[0][:n, :n, 0]
    pd = _ours_single((n, n), 3.0, supersampling=4)[0][0]
    labels = shepp_logan_labels((n, n), supersampling=1).numpy()[0]
    # voxels whose 3 × 3 neighbourhood carries one label are away from every edge
    pad = np.pad(labels, 1, mode="edge")
    same = np.ones_like(labels, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= pad[1 + dy : 1 + dy + n, 1 + dx : 1 + dx + n] == labels
    assert same.mean() > 0.8
    assert np.isclose(pd[same], m0[same], atol=1e-6).mean() > 0.995


# ----------------------------------------------------------------------------------------------------- 2D vs 3D
def test_2d_is_the_middle_slice_of_3d():
    p3 = shepp_logan_phantom((5, 48, 48), supersampling=1, dtype=torch.float64)
    p2 = shepp_logan_phantom((48, 48), supersampling=1, z_slice=0.0, dtype=torch.float64)
    for name in ("pd", "t1", "t2", "t2dash", "b0", "b1"):
        assert torch.equal(getattr(p2, name)[:, 0], getattr(p3, name)[:, 2]), name


def test_default_2d_section_is_the_3d_slice_at_z_minus_quarter():
    # nz = 8: voxel 3 sits at (3 − 4)·2/8 = −0.25
    p3 = shepp_logan_phantom((8, 48, 48), supersampling=1, dtype=torch.float64)
    p2 = shepp_logan_phantom((48, 48), supersampling=1, dtype=torch.float64)
    assert torch.equal(p2.pd[:, 0], p3.pd[:, 3])
    # the familiar picture: ventricles (CSF inside the grey matter) and tumours are in this section, not at z = 0
    mid = shepp_logan_phantom((48, 48), supersampling=1, z_slice=0.0)
    tumour = SHEPP_LOGAN_TISSUES.index("tumor")
    assert (p2.pd[tumour] > 0).sum() > (mid.pd[tumour] > 0).sum()


# ----------------------------------------------------------------------------------------------- partial volume
def test_partial_volume_pools_and_areas():
    n, s = 128, 4
    p = shepp_logan_phantom((n, n), supersampling=s, dtype=torch.float64)
    assert p.pool_count == len(SHEPP_LOGAN_TISSUES)
    total = p.total_pd()[0]
    assert (total <= 0.98 + 1e-12).all()
    partial = (p.pd > 0).sum(0)[0] >= 2
    assert partial.any()
    # scalp area in the section z = −0.25 against the ellipse areas π·a·b·(1 − ((z − zc)/c)²)
    z = -0.25
    area = lambda a, b, c: math.pi * a * b * (1 - (z / c) ** 2)  # noqa: E731
    expected = area(0.72, 0.95, 0.93) - area(0.69, 0.92, 0.90)
    measured = float(p.pd[SHEPP_LOGAN_TISSUES.index("scalp")].sum()) / 0.80 * (2 / n) ** 2
    assert measured == pytest.approx(expected, rel=0.01)
    # single-pool model: same total PD
    q = shepp_logan_phantom((n, n), supersampling=s, pools="single", dtype=torch.float64)
    assert torch.allclose(q.pd[0], p.pd.sum(0))
    assert q.pool_count == 1


# --------------------------------------------------------------------------------------------------- shape, dtype
def test_shapes_dtypes_voxel_size():
    p = shepp_logan_phantom((32, 48), fov=(0.24, 0.2), slice_thickness=4e-3)
    assert p.pd.shape == (6, 1, 32, 48) and p.pd.dtype == torch.float32
    assert p.coil_sens.dtype == torch.complex64
    assert torch.allclose(p.voxel_size, torch.tensor([0.24 / 48, 0.2 / 32, 4e-3]))
    q = shepp_logan_phantom((6, 16, 20), field_strength=1.5, fov=(0.2, 0.22, 0.24), dtype=torch.float64)
    assert q.pd.shape == (6, 6, 16, 20) and q.t1.dtype == torch.float64
    assert torch.allclose(q.voxel_size, torch.tensor([0.2 / 20, 0.22 / 16, 0.24 / 6], dtype=torch.float64))
    assert (q.t2dash == 1.0).all() and (q.d == 0).all()
    labels = shepp_logan_labels((6, 16, 20), supersampling=2)
    assert labels.shape == (6, 16, 20) and labels.dtype == torch.int64
    assert labels.min() >= 0 and labels.max() <= 14
    p.validate()
    q.validate()


def test_shared_maps_are_passed_to_all_pools():
    b0 = torch.linspace(-10, 10, 16).expand(16, 16)
    p = shepp_logan_phantom((16, 16), b0=b0, b1=0.9, t2dash=0.05)
    assert torch.equal(p.b0[3, 0], b0) and (p.b1 == 0.9).all() and torch.allclose(p.t2dash, torch.tensor(0.05))
    coils = torch.ones((2, 1, 16, 16), dtype=torch.complex64)
    assert shepp_logan_phantom((16, 16), coil_sens=coils).coil_count == 2
    assert isinstance(p, VoxelPhantom)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"matrix": (0, 8)}, "matrix"),
        ({"matrix": (8,)}, "matrix"),
        ({"matrix": (2, 2, 2, 2)}, "matrix"),
        ({"field_strength": 2.0}, "field_strength"),
        ({"fov": -0.2}, "fov"),
        ({"fov": (0.2, 0.2, 0.2)}, "fov"),
        ({"supersampling": 0}, "supersampling"),
        ({"supersampling": 1.5}, "supersampling"),
        ({"pools": "multi"}, "pools"),
        ({"z_slice": 1.5}, "z_slice"),
        ({"t2dash": 0.0}, "t2dash"),
        ({"slice_thickness": -1e-3}, "slice_thickness"),
        ({"b0": torch.zeros(3, 3)}, "b0"),
    ],
)
def test_bad_inputs(kwargs, match):
    kwargs = {"matrix": (8, 8), **kwargs}
    with pytest.raises(ValueError, match=match):
        shepp_logan_phantom(**kwargs)


def test_bad_label_inputs():
    with pytest.raises(ValueError, match="supersampling"):
        shepp_logan_labels((8, 8), supersampling=-1)
    with pytest.raises(ValueError, match="fov"):
        shepp_logan_labels((8, 8), fov=(0.1,))
    with pytest.raises(ValueError, match="field_strength"):
        shepp_logan_regions().at(7.0)
