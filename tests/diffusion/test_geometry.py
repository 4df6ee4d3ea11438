"""Tests for gradmr.diffusion.geometry: structured grids, generators, deformations, quality, file I/O."""

from __future__ import annotations

import math

import meshio
import numpy as np
import pytest
import torch

from gradmr.diffusion import geometry as G
from gradmr.diffusion.geometry import shapes as S
from gradmr.diffusion.geometry.structured import kuhn_split, lattice, lattice_boxes, node_count
from gradmr.diffusion.mesh import Mesh, from_conforming, signed_volumes

UM = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# helpers


def outward_facet_vectors(mesh: Mesh, facets: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(n, d) outward normal × measure of each facet, oriented away from its owner cell's opposite vertex."""
    x = mesh.points.detach()
    f = x[facets]
    d = mesh.dim
    if d == 1:
        normal = torch.ones(len(facets), 1, dtype=x.dtype)
    elif d == 2:
        e = f[:, 1] - f[:, 0]
        normal = torch.stack([e[:, 1], -e[:, 0]], dim=1)
    else:
        normal = 0.5 * torch.linalg.cross(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0])
    cell_nodes = mesh.cells[cells]
    opposite = x[cell_nodes].sum(1) - f.sum(1)  # the one cell vertex not in the facet
    sign = torch.sign(((f.mean(1) - opposite) * normal).sum(1))
    return normal * sign[:, None]


def check_mesh(mesh: Mesh, n_compartments: int) -> dict[str, float]:
    """Invariants every generated mesh must satisfy; returns min quality and per-compartment volumes."""
    assert mesh.points.dtype == torch.float64
    assert mesh.n_compartments == n_compartments
    vol = signed_volumes(mesh.points.detach(), mesh.cells)
    assert bool((vol > 0).all()), "inverted or flat cells"
    q = G.mean_ratio_quality(mesh.points.detach(), mesh.cells)
    assert bool((q > 0).all())
    # every node is used and belongs to the compartment of its cells
    assert torch.equal(torch.unique(mesh.cells), torch.arange(mesh.n_nodes))
    comp_of_cell_nodes = mesh.node_compartment[mesh.cells]
    assert bool((comp_of_cell_nodes == mesh.cell_compartment[:, None]).all())
    # interfaces: the two copies coincide exactly, and lie between different compartments
    f = mesh.interface_facets
    if len(f):
        assert torch.equal(mesh.points[f[:, 0]], mesh.points[f[:, 1]])
        ic = mesh.interface_compartments
        assert bool((ic[:, 0] != ic[:, 1]).all())
        assert torch.equal(mesh.node_origin[f[:, 0]], mesh.node_origin[f[:, 1]])
    # the outer boundary is closed, and so is each compartment's boundary (outer facets + its interface facets)
    bvec = outward_facet_vectors(mesh, mesh.boundary_facets, mesh.boundary_cells)
    scale = bvec.norm(dim=1).sum()
    assert float(bvec.sum(0).norm() / scale) < 1e-12
    for c in range(n_compartments):
        own = mesh.cell_compartment[mesh.boundary_cells] == c
        parts = [bvec[own]]
        if len(f):
            for side in (0, 1):
                sel = mesh.interface_compartments[:, side] == c
                parts.append(outward_facet_vectors(mesh, f[sel, side], mesh.interface_cells[sel, side]))
        total = torch.cat(parts)
        assert float(total.sum(0).norm() / total.norm(dim=1).sum()) < 1e-12
    return {"min_quality": float(q.min()), "volumes": mesh.volumes().detach().numpy()}


# ----------------------------------------------------------------------------------------------------------------
# structured grids


@pytest.mark.parametrize("shape", [(4,), (3, 5), (3, 4, 2)])
def test_structured_split_is_conforming_for_any_flips(shape):
    rng = np.random.default_rng(0)
    d = len(shape)
    for flip in (None, [G.flip_toward_centre(n) for n in shape], [rng.random(n) < 0.5 for n in shape]):
        cells = G.simplices(shape, flip)
        x = lattice(shape).astype(float)
        assert cells.shape == (math.factorial(d) * int(np.prod(shape)), d + 1)
        vol = signed_volumes(torch.as_tensor(x), torch.as_tensor(cells))
        assert torch.allclose(vol, torch.full_like(vol, 1 / math.factorial(d)))
        mesh = from_conforming(x, cells)
        assert mesh.n_nodes == node_count(shape)
        # a non-conforming split would leave extra (internal) boundary facets
        if d == 1:
            expected = 2
        elif d == 2:
            expected = 2 * sum(shape)
        else:
            expected = 4 * (shape[0] * shape[1] + shape[1] * shape[2] + shape[0] * shape[2])
        assert len(mesh.boundary_facets) == expected


def test_kuhn_split_handedness_and_flip_toward_centre():
    assert G.flip_toward_centre(4).tolist() == [True, True, False, False]
    assert G.flip_toward_centre(5).tolist() == [True, True, False, False, False]
    assert G.flip_toward_centre(6, period=3).tolist() == [True, False, False, True, False, False]
    # a mirrored cube (x → −x) split with handed=−1 is positively oriented
    x = lattice((1, 1, 1)).astype(float) * np.array([-1.0, 1.0, 1.0])
    cells = kuhn_split(lattice_boxes((1, 1, 1)), handed=-1)
    assert bool((signed_volumes(torch.as_tensor(x), torch.as_tensor(cells)) > 0).all())
    with pytest.raises(ValueError, match="shape"):
        G.simplices((0, 2))


# ----------------------------------------------------------------------------------------------------------------
# generators


def test_interval_two_slabs():
    m = G.interval((5 * UM, 5 * UM), n_per_compartment=10)
    check_mesh(m, 2)
    assert m.n_nodes == 22 and m.n_cells == 20
    assert np.allclose(m.volumes().numpy(), [5 * UM, 5 * UM], rtol=1e-14)
    assert len(m.interface_facets) == 1 and len(m.boundary_facets) == 2
    assert float(m.points[m.interface_facets[0, 0], 0]) == pytest.approx(5 * UM, rel=1e-15)
    assert float(m.points.min()) == 0.0 and float(m.points.max()) == pytest.approx(10 * UM, rel=1e-15)


def test_slabs_3d_and_2d():
    m = G.slabs((5 * UM, 3 * UM), size=(4 * UM, 2 * UM), n=2)  # h = 1 µm → nx = 5, 3; ny = 4, nz = 2
    info = check_mesh(m, 2)
    assert m.n_nodes == (5 + 3 + 2) * 5 * 3
    assert np.allclose(info["volumes"], [40e-18, 24e-18], rtol=1e-13)
    assert info["min_quality"] == pytest.approx(0.7560, abs=1e-4)  # Kuhn tetrahedra of a cube
    iface = m.points[m.interface_facets[:, 0]].reshape(-1, 3)
    assert torch.allclose(iface[:, 0], torch.full_like(iface[:, 0], 5 * UM), rtol=1e-14, atol=0)
    assert float(m.interface_facets.shape[0]) == 4 * 2 * 2  # 4 × 2 squares, 2 triangles each
    m2 = G.slabs((5 * UM, 5 * UM), size=(2 * UM,), n=2, n_lateral=1)
    check_mesh(m2, 2)
    assert m2.dim == 2 and m2.n_nodes == (10 + 2) * 2


def test_disk_volume_converges_and_boundary_on_circle():
    r = 5 * UM
    errors = []
    for n in (8, 16, 32):
        m = G.disk(r, n)
        info = check_mesh(m, 1)
        assert m.n_nodes == (n + 1) ** 2 and info["min_quality"] > 0.8
        errors.append(info["volumes"][0] / (math.pi * r * r) - 1)
        b = torch.unique(m.boundary_facets)
        assert len(b) == 4 * n
        assert torch.allclose(
            m.points[b].norm(dim=1), torch.full((len(b),), r, dtype=torch.float64), rtol=1e-14, atol=0
        )
    # measured: −6.4e−3, −1.6e−3, −4.0e−4 (second order; inscribed polygon ⇒ negative)
    assert errors[0] == pytest.approx(-6.42e-3, rel=0.02)
    assert all(e < 0 for e in errors)
    assert errors[1] / errors[0] == pytest.approx(0.25, abs=0.01) and errors[2] / errors[1] == pytest.approx(
        0.25, abs=0.01
    )


def test_ball_volume_converges_and_boundary_on_sphere():
    r = 5 * UM
    exact = 4 / 3 * math.pi * r**3
    errors = []
    for n in (6, 10, 14):
        m = G.ball(r, n)
        info = check_mesh(m, 1)
        assert m.n_nodes == (n + 1) ** 3 and info["min_quality"] > 0.65
        errors.append(info["volumes"][0] / exact - 1)
        b = torch.unique(m.boundary_facets)
        assert len(b) == 6 * n * n + 2
        assert torch.allclose(
            m.points[b].norm(dim=1), torch.full((len(b),), r, dtype=torch.float64), rtol=1e-14, atol=0
        )
    # measured −2.74e−2 (343 nodes), −1.01e−2 (1331), −5.2e−3 (3375): second order in 1/n
    assert errors == pytest.approx([-2.74e-2, -1.01e-2, -5.18e-3], rel=0.02)


def test_cylinder_volume_and_caps():
    r, length = 2 * UM, 10 * UM
    m = G.cylinder(r, length, n=8)
    info = check_mesh(m, 1)
    assert m.n_nodes == 81 * 21  # n_axial = L/(2R/n) = 20
    assert info["min_quality"] > 0.6
    # the volume error is that of the cross-section (a disk of n = 8: −6.42e−3), exactly
    disk_err = G.disk(r, 8).volumes().item() / (math.pi * r * r) - 1
    assert info["volumes"][0] / (math.pi * r * r * length) - 1 == pytest.approx(disk_err, rel=1e-10)
    z = m.points[:, 2]
    assert float(z.min()) == pytest.approx(-length / 2, rel=1e-15) and float(z.max()) == pytest.approx(length / 2)


def test_sphere_in_box_interface_exact_and_volumes():
    r, h = 5 * UM, 8 * UM
    errors = []
    for n in (6, 10):
        m = G.sphere_in_box(r, h, n)
        info = check_mesh(m, 2)
        n_outer = S._auto_outer(h, r, n)
        assert m.n_nodes == (n + 1) ** 3 + (n_outer + 1) * (6 * n * n + 2)
        assert info["min_quality"] > 0.3
        assert info["volumes"].sum() == pytest.approx(8 * h**3, rel=1e-13)  # the box is exact
        # the inner compartment is exactly G.ball's mesh of the same n
        assert info["volumes"][0] == pytest.approx(G.ball(r, n).volumes().item(), rel=1e-13)
        errors.append(info["volumes"][0] / (4 / 3 * math.pi * r**3) - 1)
        iface = m.points[m.interface_facets[:, 0]].reshape(-1, 3)
        assert torch.allclose(iface.norm(dim=1), torch.full((len(iface),), r, dtype=torch.float64), rtol=1e-14, atol=0)
        b = m.points[torch.unique(m.boundary_facets)]
        assert torch.allclose(
            b.abs().max(dim=1).values, torch.full((len(b),), h, dtype=torch.float64), rtol=1e-14, atol=0
        )
        assert len(m.interface_facets) == 12 * n * n
    assert errors == pytest.approx([-2.74e-2, -1.01e-2], rel=0.02)


def test_cylinder_in_box_2d_and_3d():
    r, h = 2 * UM, 3.5 * UM
    m2 = G.cylinder_in_box(r, h, n=12)
    info = check_mesh(m2, 2)
    assert m2.dim == 2 and info["min_quality"] > 0.4
    assert info["volumes"].sum() == pytest.approx(4 * h * h, rel=1e-13)
    assert info["volumes"][0] == pytest.approx(G.disk(r, 12).volumes().item(), rel=1e-13)
    m3 = G.cylinder_in_box(r, h, 4 * UM, n=6)
    info = check_mesh(m3, 2)
    assert info["volumes"].sum() == pytest.approx(4 * h * h * 4 * UM, rel=1e-13)
    assert info["min_quality"] > 0.3
    with pytest.raises(ValueError, match="half_width"):
        G.cylinder_in_box(r, r)


def test_cylinders_lattice():
    radii = [1.5 * UM, 2.0 * UM, 1.0 * UM, 2.5 * UM, 1.8 * UM, 2.2 * UM]
    s = 6 * UM
    m = G.cylinders(radii, s, grid=(3, 2), n=8)
    info = check_mesh(m, 7)
    assert m.n_nodes == S._nodes_tiles(8, S._auto_outer(s / 2, float(np.mean(radii)), 8), (3, 2))
    assert info["volumes"].sum() == pytest.approx(6 * s * s, rel=1e-13)
    disk_err = G.disk(1.0, 8).volumes().item() / math.pi - 1
    assert np.allclose(info["volumes"][:6], math.pi * np.array(radii) ** 2 * (1 + disk_err), rtol=1e-12)
    # cylinder i·m + j centred at ((i − 1)·s, (j − 0.5)·s)
    for c in range(6):
        centre = m.points[m.node_compartment == c].mean(0)
        expected = torch.tensor([(c // 2 - 1) * s, (c % 2 - 0.5) * s], dtype=torch.float64)
        assert torch.allclose(centre, expected, atol=1e-12 * s)
    assert info["min_quality"] > 0.25  # measured 0.272: one layer count for radii from 1 to 2.5 µm in 3 µm tiles
    m3 = G.cylinders(2 * UM, s, length=3 * UM, grid=(2, 1), n=6)
    info3 = check_mesh(m3, 3)
    assert info3["volumes"].sum() == pytest.approx(2 * s * s * 3 * UM, rel=1e-13)
    with pytest.raises(ValueError, match="spacing/2"):
        G.cylinders([3 * UM], s)


@pytest.mark.parametrize(
    ("generator", "args", "target"),
    [
        (G.ball, (5 * UM,), 1500),
        (G.ball, (5 * UM,), 5000),
        (G.ball, (5 * UM,), 20000),
        (G.ball, (5 * UM,), 45000),
        (G.disk, (5 * UM,), 8000),
        (G.sphere_in_box, (5 * UM, 8 * UM), 5000),
        (G.cylinder, (2 * UM, 10 * UM), 3000),
        (G.cylinders, ([1 * UM, 2 * UM], 5 * UM, 4 * UM), 3000),
        (G.slabs, ((5 * UM, 5 * UM),), 2000),
    ],
)
def test_n_for_nodes_matches_closed_form_counts(generator, args, target):
    n = G.n_for_nodes(generator, target, *args)
    planner = S._PLANNERS[generator]
    counts = {k: planner(*args, n=k).n for k in (n - 1, n, n + 1)}
    assert counts[n] == n
    if generator is G.ball:
        assert {1500: 10, 5000: 16, 20000: 26, 45000: 35}[target] == n  # 1331, 4913, 19683, 46656 nodes
    if target <= 5000:  # build and compare the predicted with the real node count
        kwargs = {"n": n}
        mesh = generator(*args, **kwargs)
        assert mesh.n_nodes == generator(*args, nodes=target).n_nodes
        assert abs(mesh.n_nodes - target) / target < 0.3


def test_generator_parameter_errors():
    with pytest.raises(ValueError, match="radius"):
        G.ball(-1.0)
    with pytest.raises(ValueError, match="n or nodes"):
        G.ball(1.0, n=4, nodes=100)
    with pytest.raises(ValueError, match="n must be"):
        G.disk(1.0, n=1)
    with pytest.raises(ValueError, match="lengths"):
        G.interval([])
    with pytest.raises(ValueError, match="generator"):
        G.n_for_nodes(G.interval, 100)
    # the inversion guard: a reflected point set is refused, not silently reordered
    x = torch.as_tensor(lattice((2, 2)).astype(float))
    cells = G.simplices((2, 2))
    with pytest.raises(ValueError, match="invert"):
        S._finish(x * torch.tensor([-1.0, 1.0], dtype=torch.float64), cells, None)


# ----------------------------------------------------------------------------------------------------------------
# differentiability


def test_gradcheck_volumes_wrt_geometry_parameters():
    # parameters in µm, volumes in µm^d so that gradcheck's finite differences are well scaled
    def ball_volume(r):
        return G.ball(r * UM, 4).volumes() / UM**3

    r = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ball_volume, (r,))
    v = ball_volume(r)
    (g,) = torch.autograd.grad(v.sum(), r)
    assert float(g) == pytest.approx(3 * float(v.detach()) / 5.0, rel=1e-12)  # V ∝ R³

    def box_volumes(r, h):
        return G.sphere_in_box(r * UM, h * UM, 4, 2).volumes() / UM**3

    h = torch.tensor(8.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(box_volumes, (r, h))
    gr, gh = torch.autograd.grad(box_volumes(r, h).sum(), (r, h))
    assert abs(float(gr)) < 1e-9 and float(gh) == pytest.approx(24 * 64.0, rel=1e-12)  # total = 8h³

    def lattice_volumes(radii, length):
        return G.cylinders(radii * UM, 5 * UM, length * UM, grid=(2, 1), n=4, n_axial=2).volumes() / UM**3

    radii = torch.tensor([1.5, 2.0], dtype=torch.float64, requires_grad=True)
    length = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lattice_volumes, (radii, length))

    def slab_volumes(w):
        return G.slabs(w * UM, size=(2 * UM, 2 * UM), n=1).volumes() / UM**3

    assert torch.autograd.gradcheck(slab_volumes, (torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True),))


def test_points_keep_autograd_history_and_topology():
    r = torch.tensor(3 * UM, dtype=torch.float64, requires_grad=True)
    m1 = G.cylinder_in_box(r, 5 * UM, 4 * UM, n=6, n_outer=2, n_axial=4)
    assert m1.points.requires_grad
    m2 = G.cylinder_in_box(3.3 * UM, 5 * UM, 4 * UM, n=6, n_outer=2, n_axial=4)
    assert torch.equal(m1.cells, m2.cells) and torch.equal(m1.interface_facets, m2.interface_facets)


# ----------------------------------------------------------------------------------------------------------------
# deformations and regularisers


def test_scale_and_displace():
    m = G.sphere_in_box(2 * UM, 3 * UM, 4)
    p = G.scale(m.points, 1.5)
    assert torch.allclose(m.with_points(p).volumes(), 1.5**3 * m.volumes(), rtol=1e-13, atol=0)
    p = G.scale(m.points, torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    assert torch.allclose(m.with_points(p).volumes(), m.volumes(), rtol=1e-13, atol=0)
    n_conf = int(m.node_origin.max()) + 1
    u = 0.05 * UM * torch.randn(n_conf, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    md = G.displace(m, u)
    f = md.interface_facets
    assert torch.equal(md.points[f[:, 0]], md.points[f[:, 1]])
    assert torch.allclose(G.conforming_points(md), G.conforming_points(m) + u, rtol=0, atol=1e-20)
    with pytest.raises(ValueError, match="displacement"):
        G.displace(m, torch.zeros(m.n_nodes, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="factor"):
        G.scale(m.points, -1.0)


def test_bend_geometry_orientation_and_volume():
    r, length = 1 * UM, 10 * UM
    m = G.cylinder(r, length, n=6, n_axial=20)
    assert torch.equal(G.bend(m.points, 0.0), m.points)
    kappa = 1 / (4 * UM)  # κR = 0.25; the 10 µm axis turns through 2.5 rad
    p = G.bend(m.points, kappa)
    assert bool((G.mean_ratio_quality(p, m.cells) > 0.45).all())  # measured 0.469 (0.60 unbent)
    # the axis becomes an arc of radius 1/κ about (1/κ, 0, 0)
    on_axis = (m.points[:, 0] == 0) & (m.points[:, 1] == 0)
    arc = p[on_axis] - torch.tensor([1 / kappa, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(
        arc.norm(dim=1), torch.full((int(on_axis.sum()),), 1 / kappa, dtype=torch.float64), rtol=1e-13, atol=0
    )
    # volume is preserved up to the chord error of the straight cell edges, ≈ (κ·Δz)²/6
    dz = length / 20
    rel = float(m.with_points(p).volumes().sum() / m.volumes().sum()) - 1
    assert rel == pytest.approx(-((kappa * dz) ** 2) / 6, rel=0.05)
    k = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: G.bend(m.points[:50] / UM, k), (k,))
    assert torch.autograd.gradcheck(lambda k: G.bend(m.points[:50] / UM, k + 0.1), (k,))


def test_bead_volume_and_box_walls():
    r, length, lam = 1 * UM, 8 * UM, 4 * UM
    m = G.cylinder(r, length, n=8, n_axial=64)
    for a in (0.2, -0.3):
        p = G.bead(m.points, a, lam)
        assert bool((G.mean_ratio_quality(p, m.cells) > 0.3).all())
        # exact: πR²L(1 + a²/2) over whole wavelengths; the mesh ratio to its undeformed volume matches it closely
        ratio = float(m.with_points(p).volumes().sum() / m.volumes().sum())
        assert ratio == pytest.approx(1 + a * a / 2, rel=2e-3)
    c = G.cylinder_in_box(r, 2 * UM, length, n=6, n_axial=32)
    p = G.bead(c.points, 0.3, lam, radius=r, outer_radius=2 * UM)
    cd = c.with_points(p)
    assert bool((G.mean_ratio_quality(p, c.cells) > 0.1).all())
    assert float(cd.volumes().sum()) == pytest.approx(float(c.volumes().sum()), rel=1e-13)  # walls fixed
    b = torch.unique(c.boundary_facets)
    wall = c.points[b, :2].abs().max(dim=1).values == 2 * UM
    assert torch.equal(p[b[wall]], c.points[b[wall]])  # the side walls stay put…
    assert torch.equal(p[b, 2], c.points[b, 2])  # …and the caps stay in their planes
    with pytest.raises(ValueError, match="amplitude"):
        G.bead(m.points, 1.0, lam)
    a = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: G.bead(c.points[:60] / UM, a, 4.0, radius=1.0, outer_radius=2.0), (a,))


def test_mean_ratio_quality_reference_values():
    tet = torch.tensor([[0, 0, 0], [1, 0, 0], [0.5, 3**0.5 / 2, 0], [0.5, 3**0.5 / 6, (2 / 3) ** 0.5]])
    tet = tet.to(torch.float64)
    cells = torch.tensor([[0, 1, 2, 3], [0, 2, 1, 3]])
    q = G.mean_ratio_quality(tet, cells)
    assert q.tolist() == pytest.approx([1.0, -1.0], abs=1e-14)
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    rot = rot * torch.sign(torch.linalg.det(rot))
    assert G.mean_ratio_quality(3e-6 * tet @ rot.T + 1.0, cells).tolist() == pytest.approx([1.0, -1.0], abs=1e-12)
    # Kuhn tetrahedra of a cube: 12·(1/2)^(2/3)/10; right isosceles triangles: √3/2
    cube = torch.as_tensor(lattice((1, 1, 1)).astype(float))
    assert G.mean_ratio_quality(cube, torch.as_tensor(G.simplices((1, 1, 1)))).tolist() == pytest.approx(
        [1.2 * 0.5 ** (2 / 3)] * 6, abs=1e-14
    )
    sq = torch.as_tensor(lattice((1, 1)).astype(float))
    assert G.mean_ratio_quality(sq, torch.as_tensor(G.simplices((1, 1)))).tolist() == pytest.approx(
        [3**0.5 / 2] * 2, abs=1e-14
    )
    assert torch.autograd.gradcheck(lambda x: G.mean_ratio_quality(x, cells[:1]), (tet.clone().requires_grad_(),))


def test_regularisers_vanish_on_undeformed_mesh():
    m = G.sphere_in_box(2 * UM, 3 * UM, 4)
    n_conf = int(m.node_origin.max()) + 1
    assert float(G.quality_penalty(m)) == 0.0
    zero = torch.zeros(n_conf, 3, dtype=torch.float64)
    assert float(G.smoothness(m, zero)) == 0.0
    shift = zero + torch.tensor([1e-7, -2e-7, 3e-7], dtype=torch.float64)
    assert float(G.smoothness(m, shift)) == 0.0  # translations cost nothing
    # a uniform strain u = ε·x gives exactly ε² on every edge
    x = G.conforming_points(m)
    assert float(G.smoothness(m, 0.01 * x)) == pytest.approx(1e-4, rel=1e-12)
    u = 1e-7 * torch.randn(n_conf, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert float(G.smoothness(m, u)) > 0
    # collapsing a node onto its neighbour's plane makes cells degenerate → penalised, with a gradient
    pts = m.points.clone()
    pts[m.cells[0, 0]] = pts[m.cells[0, 1]] + 1e-3 * (pts[m.cells[0, 0]] - pts[m.cells[0, 1]])
    pts.requires_grad_(True)
    pen = G.quality_penalty(m, pts)
    assert float(pen.detach()) > 0
    (g,) = torch.autograd.grad(pen, pts)
    assert bool(torch.isfinite(g).all()) and float(g.abs().max()) > 0


# ----------------------------------------------------------------------------------------------------------------
# file I/O


@pytest.mark.parametrize("suffix", [".vtu", ".msh", ".node", ".mesh"])
def test_write_read_round_trip(tmp_path, suffix):
    m = G.sphere_in_box(2 * UM, 3 * UM, 4)
    path = tmp_path / f"mesh{suffix}"
    G.write_mesh(path, m)
    back = G.read_mesh(path)  # the file is in µm, read back in m
    assert (back.n_nodes, back.n_cells, back.n_compartments) == (m.n_nodes, m.n_cells, 2)
    assert len(back.interface_facets) == len(m.interface_facets)
    assert torch.allclose(back.volumes(), m.volumes(), rtol=1e-12, atol=0)
    # the same conforming nodes (up to numbering)
    a = np.unique(np.round(G.conforming_points(m).numpy() / UM, 9), axis=0)
    b = np.unique(np.round(G.conforming_points(back).numpy() / UM, 9), axis=0)
    assert np.array_equal(a, b)


def test_read_mesh_units_keys_and_2d(tmp_path):
    # a hand-made 2-D mesh in µm with two labelled triangles, extra line cells and an unused node
    points = np.array([[0, 0, 0], [2, 0, 0], [2, 2, 0], [0, 2, 0], [9, 9, 0]], dtype=float)
    cells = [("triangle", np.array([[0, 1, 2], [0, 2, 3]])), ("line", np.array([[0, 1]]))]
    data = {"region": [np.array([7, 3]), np.array([0])], "weight": [np.array([0.5, 1.5]), np.array([0.0])]}
    path = tmp_path / "square.vtu"
    meshio.write(path, meshio.Mesh(points, cells, cell_data=data))
    m = G.read_mesh(path)  # the only integer cell data, "region", gives the compartments
    assert m.dim == 2 and m.n_compartments == 2 and m.n_nodes == 6
    assert np.allclose(m.volumes().numpy(), [2e-12, 2e-12], rtol=1e-13)  # µm² → m²; label 3 → 0
    assert m.cell_compartment.tolist() == [1, 0]
    m1 = G.read_mesh(path, length_unit=1.0)
    assert np.allclose(m1.volumes().numpy(), [2.0, 2.0])
    with pytest.raises(ValueError, match="compartment_key"):
        G.read_mesh(path, compartment_key="gmsh:physical")
    with pytest.raises(ValueError, match="integer"):
        G.read_mesh(path, compartment_key="weight")
    with pytest.raises(FileNotFoundError):
        G.read_mesh(tmp_path / "missing.msh")
    quads = tmp_path / "quads.vtu"
    meshio.write(quads, meshio.Mesh(points[:4], [("quad", np.array([[0, 1, 2, 3]]))]))
    with pytest.raises(ValueError, match="no linear simplex"):
        G.read_mesh(quads)
    tilted = tmp_path / "tilted.vtu"
    tilt = points[:4] + np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    meshio.write(tilted, meshio.Mesh(tilt, [("triangle", np.array([[0, 1, 2], [0, 2, 3]]))]))
    with pytest.raises(ValueError, match="plane"):
        G.read_mesh(tilted)


def test_read_tetgen_region_attribute(tmp_path):
    # TetGen .node/.ele written by hand: two tetrahedra sharing a face, regions 1 and 2, 1-based numbering
    (tmp_path / "t.node").write_text("5 3 0 0\n1 0 0 0\n2 1 0 0\n3 0 1 0\n4 0 0 1\n5 0 0 -1\n")
    (tmp_path / "t.ele").write_text("2 4 1\n1 1 2 3 4 1\n2 1 3 2 5 2\n")
    m = G.read_mesh(tmp_path / "t.ele")
    assert m.n_compartments == 2 and m.n_nodes == 8  # the shared face's 3 nodes are duplicated
    assert len(m.interface_facets) == 1 and len(m.boundary_facets) == 6
    assert np.allclose(m.volumes().numpy(), [1 / 6 * 1e-18] * 2, rtol=1e-13)
