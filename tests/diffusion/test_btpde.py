"""BTPDE θ-method solver: discrete-adjoint gradients, exact invariances, 1-D slab references, LU vs iterative."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from skfem import MeshTet, MeshTri

from gradmr.diffusion.assembly import assemble
from gradmr.diffusion.compartments import compartments
from gradmr.diffusion.mesh import from_conforming
from gradmr.diffusion.solvers import btpde as btpde_module
from gradmr.diffusion.solvers import btpde_signal

UM = 1e-6
F64 = torch.float64


def pgse(delta: float, big_delta: float):
    """PGSE profile (durations in s, values) and its b-value factor δ²(Δ − δ/3) in s³ (b = q²·factor)."""
    return [delta, big_delta - delta, delta], [1.0, 0.0, -1.0], delta**2 * (big_delta - delta / 3)


def q_of_b(b_s_per_mm2, delta, big_delta):
    """q in rad/(s·m) for b in s/mm² (1 s/mm² = 1e6 s/m²)."""
    return np.sqrt(np.asarray(b_s_per_mm2, dtype=float) * 1e6 / pgse(delta, big_delta)[2])


def interval_mesh(length: float, n_el: int, n_comp: int = 1):
    """1-D mesh of [0, length] with n_el elements, split into n_comp equal compartments."""
    x = np.linspace(0.0, length, n_el + 1)[:, None]
    cells = np.stack([np.arange(n_el), np.arange(1, n_el + 1)], axis=1)
    return from_conforming(x, cells, (np.arange(n_el) * n_comp) // n_el)


def two_boxes(nx=11, ny=6, nz=6):
    """Boxes [0,5]×[0,5]×[0,5] µm and [5,10]×[0,5]×[0,5] µm sharing the face x = 5 µm (432 nodes by default)."""
    m = MeshTet.init_tensor(np.linspace(0, 10 * UM, nx), np.linspace(0, 5 * UM, ny), np.linspace(0, 5 * UM, nz))
    labels = (m.p[0, m.t].mean(axis=0) > 5 * UM).astype(int)
    return from_conforming(m.p.T, m.t.T, labels)


# ---------------------------------------------------------------------------------------------------------------
# gradients


def _scaled_fn(fe, durations, values, dt, solver):
    """The signal as a function of O(1) versions of every input (so gradcheck's eps fits every one of them)."""
    scale = {"mass": 1e12, "stiffness": 1e15, "flux": 1e15, "relaxation": 1e13, "moments": 1e18, "weights": 1e12}

    def fn(mass, stiffness, flux, relaxation, moments, density, weights, q, direction):
        f2 = dataclasses.replace(
            fe,
            mass=mass / scale["mass"],
            stiffness=stiffness / scale["stiffness"],
            flux=flux / scale["flux"],
            relaxation=relaxation / scale["relaxation"],
            moments=moments / scale["moments"],
            density=density,
            weights=weights / scale["weights"],
        )
        return btpde_signal(f2, q * 1e8, direction, durations, values, dt=dt, solver=solver) * 1e12

    names = ["mass", "stiffness", "flux", "relaxation", "moments", "density", "weights"]
    args = [getattr(fe, k).detach() * scale.get(k, 1.0) for k in names]
    return fn, args


def _tiny_fe():
    m = MeshTri.init_tensor(np.linspace(0, 4 * UM, 3), np.linspace(0, 3 * UM, 3))
    labels = (m.p[0, m.t].mean(axis=0) > 2 * UM).astype(int)
    mesh = from_conforming(m.p.T, m.t.T, labels)
    return assemble(mesh, compartments(2, t2=[0.05, 0.08], density=1.0, permeability=1e-5))


@pytest.mark.parametrize("solver", ["lu", "bicgstab", "ilu"])
def test_gradcheck_all_inputs(solver):
    """torch.autograd.gradcheck (real and imaginary parts) in every input, on a 12-node two-compartment mesh."""
    fe = _tiny_fe()
    fn, args = _scaled_fn(fe, [2e-3, 1e-3, 2e-3], [1.0, 0.0, -0.7], 1e-3, solver)
    q = torch.tensor([1.0, 2.5], dtype=F64)  # × 1e8 rad/(s·m): qδ·L ≈ 1–2 rad over 4 µm
    d = torch.tensor([[0.6, 0.8], [1.0, 0.0]], dtype=F64)
    inputs = [a.clone().requires_grad_() for a in [*args, q, d]]
    signal = fn(*inputs)
    assert (signal.imag.abs() > 1e-2 * signal.abs()).all()  # a non-trivial complex signal
    # full Jacobian with LU; the random-projection check for the iterative solvers keeps the test fast
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=solver != "lu")


def _loss(fe, q, direction, seq, a, dt, **kw):
    s = btpde_signal(fe, q, direction, seq[0], seq[1], dt=dt, **kw)
    return (torch.conj(a) * s).real.sum() * 1e15  # a generic real functional of Re S and Im S


def test_adjoint_matches_finite_differences_geometry_and_tissue():
    """Adjoint gradient vs central differences of the full solve: vertex positions, D, κ, T2, q, direction."""
    mesh = two_boxes()
    assert 300 <= mesh.n_nodes <= 800
    delta, big_delta = 5e-3, 10e-3
    seq = pgse(delta, big_delta)
    q0 = torch.tensor(q_of_b([1500.0, 3000.0], delta, big_delta))
    d0 = torch.tensor([[0.8, 0.36, 0.48], [1.0, 0.0, 0.0]], dtype=F64)
    a = torch.tensor([0.3 - 0.8j, 1.1 + 0.4j], dtype=torch.complex128)
    rng = np.random.default_rng(3)
    pts0 = mesh.points.detach().clone()
    # a smooth displacement direction (vanishing nowhere in particular), of order the element size
    v = torch.tensor(rng.normal(size=(3, 3)))
    disp = torch.sin(pts0 / (3 * UM)) @ v * (0.1 * UM)
    pars0 = {
        "diffusivity": torch.tensor([2e-9, 1.5e-9], dtype=F64),
        "permeability": torch.tensor(3e-5, dtype=F64),
        "t2": torch.tensor([0.04, 0.07], dtype=F64),
    }

    def loss(pts, pars, q, d):
        tissue = compartments(2, diffusivity=pars["diffusivity"], t2=pars["t2"], permeability=pars["permeability"])
        return _loss(assemble(mesh.with_points(pts), tissue), q, d, seq, a, dt=2.5e-4, solver="lu")

    pts = pts0.clone().requires_grad_()
    pars = {k: p.clone().requires_grad_() for k, p in pars0.items()}
    q, d = q0.clone().requires_grad_(), d0.clone().requires_grad_()
    loss(pts, pars, q, d).backward()

    checks = []
    eps = 1e-4
    with torch.no_grad():
        # vertex positions, along the displacement field
        fd = (loss(pts0 + eps * disp, pars0, q0, d0) - loss(pts0 - eps * disp, pars0, q0, d0)) / (2 * eps)
        checks.append(("points", float((pts.grad * disp).sum()), float(fd)))
        for name, p0 in pars0.items():
            dp = eps * p0 * torch.linspace(1.0, 0.5, p0.numel(), dtype=F64).reshape(p0.shape)
            hi = dict(pars0, **{name: p0 + dp})
            lo = dict(pars0, **{name: p0 - dp})
            fd = (loss(pts0, hi, q0, d0) - loss(pts0, lo, q0, d0)) / 2
            checks.append((name, float((pars[name].grad * dp).sum()), float(fd)))
        dq = eps * q0
        fd = (loss(pts0, pars0, q0 + dq, d0) - loss(pts0, pars0, q0 - dq, d0)) / 2
        checks.append(("q", float((q.grad * dq).sum()), float(fd)))
        dd = eps * torch.tensor([[0.3, -0.2, 0.5], [0.0, 0.7, -0.4]], dtype=F64)
        fd = (loss(pts0, pars0, q0, d0 + dd) - loss(pts0, pars0, q0, d0 - dd)) / 2
        checks.append(("direction", float((d.grad * dd).sum()), float(fd)))
    for name, ad, fd in checks:
        assert abs(fd) > 0, name
        assert abs(ad - fd) <= 1e-5 * abs(fd), (name, ad, fd)


@pytest.mark.parametrize("solver", ["bicgstab", "ilu"])
def test_lu_and_iterative_agree_signal_and_gradient(solver):
    """The iterative solvers give LU's signal and adjoint gradient (to their 1e-12 residual, accumulated)."""
    mesh = two_boxes()
    delta, big_delta = 5e-3, 10e-3
    seq = pgse(delta, big_delta)
    q = q_of_b([1000.0, 3000.0], delta, big_delta)
    out = {}
    for name in ("lu", solver):
        diff = torch.tensor([2e-9, 1e-9], dtype=F64, requires_grad=True)
        fe = assemble(mesh, compartments(2, diffusivity=diff, permeability=1e-4, t2=0.05))
        s = btpde_signal(fe, q, [1.0, 0.0, 0.0], *seq[:2], dt=1e-4, solver=name)
        (s.real.sum() + s.imag.sum()).backward()
        out[name] = (s.detach(), diff.grad.clone())
    (s_lu, g_lu), (s_it, g_it) = out["lu"], out[solver]
    assert float((s_lu - s_it).abs().max() / s_lu.abs().max()) < 1e-10
    assert float((g_lu - g_it).abs().max() / g_lu.abs().max()) < 1e-9


@pytest.mark.parametrize("n_dirs", [2, 5])
def test_ilu_batches_mixed_encodings_like_lu(n_dirs):
    """solver="ilu" steps every encoding of an interval in one batch: q = 0 columns, several q per direction, and
    either one J_u per direction (≤ dim directions) or the dim J_k with per-column weights (more directions); the
    signals and the adjoint gradients in q, direction and vertex positions equal LU's. Non-PGSE profile with
    unequal intervals (two step lengths, so two shared preconditioners), checkpointed backward."""
    mesh = two_boxes(7, 4, 4)
    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(n_dirs, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    d_all = np.repeat(dirs, 2, axis=0)  # two q per direction
    q_all = np.tile([0.0, 6e5], n_dirs) + np.repeat(np.arange(n_dirs) * 1e5, 2)
    out = {}
    for name in ("lu", "ilu"):
        pts = mesh.points.detach().clone().requires_grad_()
        fe = assemble(mesh.with_points(pts), compartments(2, permeability=1e-4, t2=[0.05, 0.1]))
        q = torch.tensor(q_all, dtype=F64, requires_grad=True)
        d = torch.tensor(d_all, dtype=F64, requires_grad=True)
        stats = {}
        s = btpde_signal(
            fe, q, d, [3e-3, 2.5e-3, 3e-3], [1.0, 0.0, -0.6], dt=2e-4, solver=name, checkpoint_every=4, stats=stats
        )
        (s.real.sum() - 2 * s.imag.sum()).backward()
        out[name] = (s.detach(), q.grad, d.grad, pts.grad)
        if name == "ilu":
            assert stats["factorisations"] == 3 and stats["preconditioners"] == 2
    for a, b in zip(out["lu"], out["ilu"], strict=True):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-10


def test_checkpointing_gives_the_same_gradient(monkeypatch):
    """Recomputing from every c-th state (checkpointing) reproduces the full-history adjoint to roundoff."""
    mesh = two_boxes(7, 4, 4)
    seq = pgse(4e-3, 9e-3)
    grads, used = [], []
    for every in (1, 7, None):
        if every is None:  # automatic choice once the trajectory exceeds the history budget
            monkeypatch.setattr(btpde_module, "HISTORY_BUDGET_BYTES", 1000)
        pts = mesh.points.detach().clone().requires_grad_()
        fe = assemble(mesh.with_points(pts), compartments(2, permeability=1e-4, t2=[0.05, 0.1]))
        stats = {}
        s = btpde_signal(fe, [4e5, 7e5], [0.6, 0.0, 0.8], *seq[:2], dt=2e-4, checkpoint_every=every, stats=stats)
        (s.real.sum() - 2 * s.imag.sum()).backward()
        grads.append(pts.grad)
        used.append(stats["checkpoint_every"])
    assert used == [1, 7, 6]  # 25 steps in the longest interval: ⌊√25⌋ + 1
    for g in grads[1:]:
        assert float((grads[0] - g).abs().max() / grads[0].abs().max()) < 1e-12


# ---------------------------------------------------------------------------------------------------------------
# exact invariances (diffusion-reference.md §1)


def test_zero_diffusivity_refocuses_exactly():
    """D = 0: Crank–Nicolson lobes (same steps) cancel exactly, S = S0 for every q."""
    mesh = two_boxes(7, 4, 4)
    fe = assemble(mesh, compartments(2, diffusivity=0.0))
    seq = pgse(5e-3, 10e-3)
    q = q_of_b([500.0, 3000.0, 10000.0], 5e-3, 10e-3)
    s = btpde_signal(fe, q, [0.48, 0.6, 0.64], *seq[:2], dt=1e-4)
    s0 = float(fe.weights.sum())
    assert float((s - s0).abs().max()) < 1e-12 * s0


def test_uniform_t2_factor():
    """Uniform T2, κ = 0: S(T2) = S(∞)·exp(−T_E/T2) holds for the PDE; Crank–Nicolson keeps it to O(Δt²).

    (M/T2 commutes with M⁻¹A but the CN rational function does not factor as r(z + h/T2) = r(z)·e^(−h/T2), so the
    discrete identity is not exact: measured 1.9e-4 / 4.7e-5 / 1.2e-5 at Δt = 100 / 50 / 25 µs here.)
    """
    mesh = two_boxes(7, 4, 4)
    delta, big_delta = 5e-3, 10e-3
    seq = pgse(delta, big_delta)
    te = delta + big_delta
    q = q_of_b([1000.0, 3000.0], delta, big_delta)
    t2 = 0.03
    errors = []
    for dt in (1e-4, 5e-5):
        s_t2 = btpde_signal(assemble(mesh, compartments(2, t2=t2)), q, [1.0, 0.0, 0.0], *seq[:2], dt=dt)
        s_ref = btpde_signal(assemble(mesh, compartments(2)), q, [1.0, 0.0, 0.0], *seq[:2], dt=dt)
        errors.append(float((s_t2 - s_ref * math.exp(-te / t2)).abs().max() / s_ref.abs().max()))
    assert errors[1] < 1e-4
    assert 3.9 < errors[0] / errors[1] < 4.1  # second order in Δt
    # with no gradient the identity is exact: the relaxation is then a scalar factor per step
    s_t2 = btpde_signal(assemble(mesh, compartments(2, t2=t2)), 0.0, [1.0, 0.0, 0.0], *seq[:2], dt=1e-4)
    r = (1 - 0.5e-4 / t2) / (1 + 0.5e-4 / t2)  # CN factor of one step of dξ/dt = −ξ/T2
    s0 = float(assemble(mesh, compartments(2)).weights.sum())
    assert abs(float(s_t2.real[0]) / s0 - r ** round(te / 1e-4)) < 1e-13


def test_scaling_invariance_is_exact():
    """(x, D, κ, t, q) → (αx, α²D, ακ, t, q/α) leaves S/S0 unchanged on the scaled mesh (every matrix × α^dim)."""
    mesh = two_boxes(7, 4, 4)
    seq = pgse(5e-3, 10e-3)
    q = q_of_b([1000.0, 4000.0], 5e-3, 10e-3)
    out = []
    for alpha in (1.0, 2.7):
        m = mesh.with_points(mesh.points * alpha)
        fe = assemble(m, compartments(2, diffusivity=[2e-9 * alpha**2, 1e-9 * alpha**2], permeability=5e-5 * alpha))
        s = btpde_signal(fe, q / alpha, [0.0, 0.6, 0.8], *seq[:2], dt=1e-4)
        out.append(s / fe.weights.sum())
    assert float((out[0] - out[1]).abs().max()) < 1e-12
    assert float(out[0].abs().min()) < 0.9  # a real attenuation


def test_rotation_invariance_is_exact():
    """Rotating the mesh and the gradient direction together leaves S unchanged."""
    mesh = two_boxes(7, 4, 4)
    seq = pgse(5e-3, 10e-3)
    q = q_of_b([2000.0], 5e-3, 10e-3)
    rot = torch.tensor([[0.36, 0.48, -0.8], [-0.8, 0.6, 0.0], [0.48, 0.64, 0.6]], dtype=F64)  # orthogonal, det +1
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=F64))
    d = torch.tensor([0.6, 0.0, 0.8], dtype=F64)
    tissue = compartments(2, permeability=1e-4, t2=[0.05, 0.08])
    s1 = btpde_signal(assemble(mesh, tissue), q, d, *seq[:2], dt=1e-4)
    s2 = btpde_signal(assemble(mesh.with_points(mesh.points @ rot.T), tissue), q, rot @ d, *seq[:2], dt=1e-4)
    assert float((s1 - s2).abs().max() / s1.abs().max()) < 1e-12


# ---------------------------------------------------------------------------------------------------------------
# 1-D references (diffusion-reference.md §2 and §4)


@pytest.mark.parametrize(
    ("delta", "big_delta", "expected", "dt"),
    [
        # slab L = 10 µm, D = 2e-9 m²/s, b = 1000 / 3000 s/mm² (reference §2 table and FE cross-check)
        (5e-3, 10e-3, (0.546705, 0.151183), 1e-5),
        (30e-3, 40e-3, (0.926556, 0.793784), 2e-5),
    ],
)
def test_slab_reference(delta, big_delta, expected, dt):
    fe = assemble(interval_mesh(10 * UM, 400), compartments())
    seq = pgse(delta, big_delta)
    s = btpde_signal(fe, q_of_b([1000.0, 3000.0], delta, big_delta), [1.0], *seq[:2], dt=dt)
    e = s / fe.weights.sum()
    assert float(e.imag.abs().max()) < 1e-12  # symmetric domain: real signal
    np.testing.assert_allclose(e.real.numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kappa", "delta", "big_delta", "expected", "dt", "n_el"),
    [
        # two slabs 5 µm | 5 µm, κ in m/s (= µm/µs), b = 1000 / 3000 s/mm² (reference §4 table)
        (1e-4, 5e-3, 10e-3, (0.787814, 0.545956), 1e-5, 200),
        (1e-3, 5e-3, 10e-3, (0.587623, 0.220560), 1e-5, 200),
        (1e-4, 10e-3, 100e-3, (0.938371, 0.823643), 2e-5, 100),
    ],
)
def test_permeable_two_slab_reference(kappa, delta, big_delta, expected, dt, n_el):
    fe = assemble(interval_mesh(10 * UM, 2 * n_el, n_comp=2), compartments(2, permeability=kappa))
    seq = pgse(delta, big_delta)
    s = btpde_signal(fe, q_of_b([1000.0, 3000.0], delta, big_delta), [1.0], *seq[:2], dt=dt)
    np.testing.assert_allclose((s / fe.weights.sum()).real.numpy(), expected, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# bookkeeping and input validation


def test_factorisations_are_shared_and_steps_align():
    """PGSE with S encodings: one LU for the f = 0 gap shared by all, two per encoding for the lobes."""
    fe = assemble(interval_mesh(10 * UM, 50), compartments())
    stats = {}
    btpde_signal(fe, [1e5, 2e5, 3e5], [1.0], [5e-3, 5e-3, 5e-3], [1.0, 0.0, -1.0], dt=7e-4, stats=stats)
    assert stats["factorisations"] == 2 * 3 + 1
    assert stats["solver"] == "lu"


def test_progress_bar_runs(capsys):
    fe = assemble(interval_mesh(10 * UM, 20), compartments())
    s = btpde_signal(fe, 1e5, [1.0], [1e-3, 1e-3], [1.0, -1.0], dt=1e-4, progress=True)
    assert s.shape == (1,)
    assert "BTPDE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt": 0.0}, "dt"),
        ({"theta": 0.3}, "theta"),
        ({"solver": "cg"}, "solver"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"durations": [-1e-3, 1e-3]}, "durations"),
        ({"values": [1.0, np.nan]}, "values"),
        ({"direction": [1.0, 1.0]}, "direction"),
        ({"direction": [2.0]}, "direction"),
        ({"q": [[1e5]]}, "q"),
    ],
)
def test_bad_input_raises(kwargs, match):
    fe = assemble(interval_mesh(10 * UM, 10), compartments())
    args = {"q": [1e5], "direction": [1.0], "durations": [1e-3, 1e-3], "values": [1.0, -1.0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        btpde_signal(fe, **args)
