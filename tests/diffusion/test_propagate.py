"""Propagation of the reduced system: the Krylov action against one matrix exponential per interval."""

import sys

import numpy as np
import pytest
import torch

from gradmr.diffusion import PGSE, DoublePGSE, assemble, compartments, geometry, simulate
from gradmr.diffusion.solvers import eigenbasis
from gradmr.diffusion.solvers.propagate import ReducedSystem, propagate, reduce

P = sys.modules["gradmr.diffusion.solvers.propagate"]  # the package re-exports the function under the module's name

R = 5e-6  # m
LAMBDA_MAX = 2e4  # 1/s, the truncation π²D/ℓ² of D = 2e-9 m²/s, ℓ = 1 µm


def synthetic(p: int, seed: int = 0, exact_diagonal: bool = False) -> ReducedSystem:
    """A reduced system shaped like a Laplace eigenbasis of a 5 µm domain.

    a = diag(λ), λ from 0 to 2e4 1/s (Weyl-like λ_k ∝ k^(2/3)), plus a positive semidefinite coupling of norm ≈ 20 1/s
    (as from compartment-dependent T2); j (3, p, p) symmetric, banded (moments couple modes of nearby wavelength),
    spectral norm 3R (band entries ≲ R). y0 = e_1 (the constant mode), c = e_1 plus a small random part.
    """
    g = torch.Generator().manual_seed(seed)
    lam = LAMBDA_MAX * (torch.arange(p, dtype=torch.float64) / (p - 1)) ** (2 / 3)
    a = torch.diag(lam)
    if not exact_diagonal:
        b = torch.randn(p, p, generator=g, dtype=torch.float64)
        a = a + 20.0 * (b @ b.T) / torch.linalg.matrix_norm(b @ b.T, 2)
    idx = torch.arange(p, dtype=torch.float64)
    band = torch.exp(-(idx[:, None] - idx[None, :]).abs() / 4.0)
    j = torch.randn(3, p, p, generator=g, dtype=torch.float64) * band
    j = 0.5 * (j + j.transpose(1, 2))
    j = 3 * R * j / torch.linalg.matrix_norm(j, 2)[:, None, None]
    y0 = torch.zeros(p, dtype=torch.float64)
    y0[0] = 1.0
    c = y0 + 1e-2 * torch.randn(p, generator=g, dtype=torch.float64)
    return ReducedSystem(a=a, j=j, y0=y0, c=c)


def encodings(seq, n_b: int = 6, seed: int = 1):
    """q (rad/(s·m)) for b in 0 … 1e10 s/m² and random unit directions (S = n_b)."""
    g = torch.Generator().manual_seed(seed)
    b = torch.linspace(0.0, 1e10, n_b, dtype=torch.float64)
    d = torch.randn(n_b, 3, generator=g, dtype=torch.float64)
    return seq.q_from_b(b), d / d.norm(dim=1, keepdim=True)


SEQS = [PGSE(5e-3, 10e-3), PGSE(30e-3, 40e-3), DoublePGSE(5e-3, 10e-3)]


@pytest.mark.parametrize("seq", SEQS, ids=["pgse5/10", "pgse30/40", "dpgse5/10"])
def test_krylov_matches_expm(seq):
    """Krylov action vs one matrix_exp per interval, 120 modes: every signal within 1e-10 relative."""
    system = synthetic(120)
    q, d = encodings(seq)
    dur, val = seq.intervals()
    ref = propagate(system, q, d, dur, val, method="expm")
    kry = propagate(system, q, d, dur, val, method="krylov")
    assert float(ref.abs().min() / ref.abs().max()) > 1e-3  # the comparison is relative to non-negligible signals
    assert float(((kry - ref).abs() / ref.abs()).max()) < 1e-10


def test_b0_happy_breakdown_exact_and_finite_gradient():
    """a exactly diagonal, y0 = e_1 with λ = 0, q = 0: the Krylov space is invariant at once (h_21 = 0).

    S = cᵀ y0 = c_0 exactly (no decay of the constant mode) and the gradients are finite and equal the expm path's.
    """
    system = synthetic(40, exact_diagonal=True)
    seq = PGSE(30e-3, 40e-3)
    dur, val = seq.intervals()
    out = {}
    for method in ("expm", "krylov"):
        a = system.a.clone().requires_grad_()
        j = system.j.clone().requires_grad_()
        q = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # requires_grad keeps the gradient pulses
        d = torch.eye(3, dtype=torch.float64)
        sig = propagate(ReducedSystem(a, j, system.y0, system.c), q, d, dur, val, method=method)
        sig.real.sum().backward()
        out[method] = (sig.detach(), a.grad, j.grad, q.grad)
    sig, ga, gj, gq = out["krylov"]
    assert torch.allclose(sig, system.c[0].to(sig.dtype).expand(3), rtol=0, atol=1e-15)
    for got, ref in zip(out["krylov"][1:], out["expm"][1:], strict=True):
        assert torch.isfinite(got).all()
        assert float((got - ref).abs().max()) <= 1e-12 * max(float(ref.abs().max()), 1.0)


def test_krylov_gradcheck():
    """torch.autograd.gradcheck (fast mode) of the Krylov action in a, j, s, direction and y.

    p = 8 with Krylov dimension 10 < 2p, so the interval takes several substeps (6) and the adjoint several pieces.
    Dimensionless scales (a ~ 0 … 20, j ~ 1, s ≤ 5, τ = 0.1) so that finite differences of 1e-6 are meaningful.
    """
    g = torch.Generator().manual_seed(3)
    p = 8
    a = torch.diag(torch.linspace(0, 20, p, dtype=torch.float64)) + 0.5 * torch.randn(p, p, generator=g).double()
    a = (0.5 * (a + a.T)).requires_grad_()
    j = torch.randn(2, p, p, generator=g, dtype=torch.float64)
    j = (0.5 * (j + j.transpose(1, 2))).requires_grad_()
    s = torch.tensor([0.0, 2.5, 5.0], dtype=torch.float64, requires_grad=True)
    d = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, p, generator=g, dtype=torch.complex128, requires_grad=True)

    def f(a, j, s, d, y):
        return P._krylov_apply(a, j, d, s, 0.1, y, m=10)

    assert torch.autograd.gradcheck(f, (a, j, s, d, y), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("seq", [PGSE(30e-3, 40e-3), DoublePGSE(5e-3, 10e-3)], ids=["pgse30/40", "dpgse5/10"])
def test_krylov_gradient_matches_expm(seq):
    """Gradients of Σ Re S in a, j, q and direction: Krylov adjoint vs autograd through matrix_exp, 80 modes, 1e-8."""
    system = synthetic(80, seed=2)
    q0, d0 = encodings(seq, n_b=4, seed=4)
    dur, val = seq.intervals()
    grads = {}
    for method in ("expm", "krylov"):
        leaves = [t.clone().requires_grad_() for t in (system.a, system.j, q0, d0)]
        a, j, q, d = leaves
        sig = propagate(ReducedSystem(a, j, system.y0, system.c), q, d, dur, val, method=method)
        (sig.real.sum() + 0.3 * sig.imag.sum()).backward()
        grads[method] = [t.grad for t in leaves]
    for got, ref in zip(grads["krylov"], grads["expm"], strict=True):
        assert float((got - ref).norm() / ref.norm()) < 1e-8


def test_ball_mesh_krylov_matches_expm(monkeypatch):
    """1331-node ball, 213 Laplace modes (ℓ = 1 µm): matrix-formalism signals by Krylov and expm within 1e-10, the
    gradient of simulate(...) in the mesh points (through a and j) within 1e-8, and method="auto" picks the Krylov
    action there (60 encodings)."""
    mesh = geometry.ball(5e-6, nodes=1500)
    fe = assemble(mesh, compartments(1, diffusivity=2e-9))
    basis = eigenbasis(fe, diffusivity=2e-9, length_scale=1e-6)
    assert 200 <= basis.n_modes <= 230
    system = reduce(fe, basis.phi)
    for seq in (PGSE(10e-3, 100e-3), DoublePGSE(5e-3, 10e-3)):
        q, d = encodings(seq, n_b=5, seed=5)
        dur, val = seq.intervals()
        ref = propagate(system, q, d, dur, val, method="expm")
        kry = propagate(system, q, d, dur, val, method="krylov")
        assert float(((kry - ref).abs() / ref.abs()).max()) < 1e-10
    assert P._auto(system.a, 3, 60, 1, 2, 5e-3, grad=False) == "krylov"
    grads = {}
    for method in ("expm", "krylov"):
        monkeypatch.setattr(P, "_auto", lambda *args, method=method, **kw: method)
        points = mesh.points.clone().requires_grad_()
        out = simulate(
            mesh.with_points(points),
            compartments(1),
            [PGSE(5e-3, 10e-3), DoublePGSE(5e-3, 10e-3)],
            [1e9, 1e10],
            [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]],
            basis=basis,
        )
        out.signal.sum().backward()
        grads[method] = (out.signal.detach(), points.grad)
    assert float((grads["krylov"][0] - grads["expm"][0]).abs().max()) < 1e-10
    assert float((grads["krylov"][1] - grads["expm"][1]).norm() / grads["expm"][1].norm()) < 1e-8


def test_auto_prefers_expm_for_few_modes_or_encodings():
    """The cost model keeps one exponential per interval for tiny bases and single encodings."""
    small = synthetic(17)
    assert P._auto(small.a, 3, 60, 1, 2, 5e-3, grad=False) == "expm"
    assert P._auto(synthetic(120).a, 3, 1, 1, 2, 5e-3, grad=False) == "expm"
    dense_like = synthetic(120).a + 1e4 * torch.ones(120, 120, dtype=torch.float64)  # far from diagonal: stiff
    assert P._auto(dense_like, 3, 4, 1, 2, 30e-3, grad=False) == "expm"


def test_methods_agree_and_bad_method():
    """ "auto", "expm", "krylov" and "taylor" agree to 1e-10 on a 30-mode system; an unknown method raises."""
    system = synthetic(30)
    seq = PGSE(5e-3, 10e-3)
    q, d = encodings(seq, n_b=3)
    dur, val = seq.intervals()
    out = {m: propagate(system, q, d, dur, val, method=m) for m in ("auto", "expm", "krylov", "taylor")}
    for m in ("auto", "krylov", "taylor"):
        assert float(((out[m] - out["expm"]).abs() / out["expm"].abs()).max()) < 1e-10
    with pytest.raises(ValueError, match="method"):
        propagate(system, q, d, dur, val, method="pade")
    assert np.isfinite(out["auto"].numpy()).all()


def test_many_intervals_use_krylov_in_an_eigenbasis(monkeypatch):
    """cos-OGSE (n = 2, 40 intervals per lobe) on 120 modes: auto takes the Krylov action, equal to Taylor to 1e-10."""
    from gradmr.diffusion import CosOGSE

    system = synthetic(120)
    seq = CosOGSE(10e-3, 11e-3, 2)
    q, d = encodings(seq, n_b=4)
    dur, val = seq.intervals(40)
    assert len({(t, abs(f)) for t, f in zip(dur, val, strict=True) if f != 0}) > P.MAX_EXPONENTIALS
    calls = []
    original = P._krylov_apply
    monkeypatch.setattr(P, "_krylov_apply", lambda *a, **k: calls.append(1) or original(*a, **k))
    auto = propagate(system, q, d, dur, val)
    assert calls
    ref = propagate(system, q, d, dur, val, method="taylor")
    assert torch.abs(auto - ref).max() < 1e-10 * torch.abs(ref).max()


@pytest.mark.parametrize("order", ["csr", "shuffled"])
def test_gradcheck_projection(order):
    """gradcheck of Φᵀ A Φ in A's values: the sampled-product backward (row-major pattern) and the gather fallback."""
    fe = assemble(geometry.ball(1.0, 2), compartments(1))  # 27 nodes
    rows, cols = fe.rows, fe.cols
    if order == "shuffled":
        perm = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))
        rows, cols = rows[perm], cols[perm]
    assert (P._csr_rows(rows, cols, fe.n) is None) == (order == "shuffled")
    phi = torch.randn(fe.n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    values = torch.randn(2, rows.shape[0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: P._Project.apply(v, rows, cols, fe.n, phi), (values,))
    dense = torch.zeros(2, fe.n, fe.n, dtype=torch.float64)
    dense[:, rows, cols] = values.detach()
    assert torch.allclose(P._Project.apply(values, rows, cols, fe.n, phi), phi.T @ dense @ phi, atol=1e-12)


def test_krylov_runs_on_one_thread_and_restores_the_setting():
    """The Krylov rounds run on one intra-op thread (faster here); the caller's thread count is restored after."""
    system = synthetic(60)
    seq = PGSE(5e-3, 10e-3)
    q, d = encodings(seq)
    dur, val = seq.intervals()
    ref = propagate(system, q, d, dur, val, method="krylov")
    torch.set_num_threads(2)  # the autouse fixture restores the original count afterwards
    seen = []
    original = P._krylov_rounds
    P._krylov_rounds = lambda *a, **k: seen.append(torch.get_num_threads()) or original(*a, **k)
    try:
        out = propagate(system, q, d, dur, val, method="krylov")
    finally:
        P._krylov_rounds = original
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2
    assert torch.abs(out - ref).max() < 1e-13 * torch.abs(ref).max()
