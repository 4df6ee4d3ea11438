"""Block shift-invert Lanczos (gradmr.diffusion.solvers.eigen) against dense eigh, ARPACK and Sylvester's inertia."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import torch

from gradmr.diffusion import PGSE, geometry
from gradmr.diffusion.assembly import assemble
from gradmr.diffusion.compartments import compartments
from gradmr.diffusion.simulate import simulate_rows
from gradmr.diffusion.solvers.eigen import _m_orthonormalise, factorize, lowest_eigenpairs
from gradmr.diffusion.solvers.mf import eigenbasis, length_to_eigenvalue

D = 2e-9
LAM_MAX = length_to_eigenvalue(1e-6, D)
LAM_COARSE = length_to_eigenvalue(1.5e-6, D)  # ≈ 70 modes of a 5 µm ball: a Krylov basis well below n = 1000


def _pencil(mesh, tissue=None):
    fe = assemble(mesh, tissue or compartments(mesh.n_compartments))
    return fe, fe.to_scipy(fe.stiffness + fe.flux).tocsc(), fe.to_scipy(fe.mass).tocsc()


@pytest.fixture(scope="module")
def ball_1000():
    return _pencil(geometry.ball(5e-6, 9))  # 1000 nodes: above the dense cut-off


def test_matches_dense_eigh(ball_1000):
    """Eigenvalues to 1e-10 λ_max, the same count, and the same eigenspaces as the dense generalised eigh."""
    _, k, m = ball_1000
    lam, x, info = lowest_eigenpairs(k, m, LAM_COARSE, block=16)
    w, v = scipy.linalg.eigh(k.toarray(), m.toarray())
    ref = w[w <= LAM_COARSE]
    assert len(lam) == len(ref) == info.inertia_count == info.wanted
    assert len(lam) > 50
    assert np.abs(lam - ref).max() < 1e-10 * LAM_COARSE
    # M-orthonormal, and each computed vector lies in the span of the dense eigenvectors below the cut
    assert np.abs(x.T @ (m @ x) - np.eye(len(lam))).max() < 1e-10
    v_in = v[:, w <= LAM_COARSE * (1 + 1e-9)]
    proj = v_in @ (v_in.T @ (m @ x))
    assert np.linalg.norm(x - proj) / np.linalg.norm(x) < 1e-7
    assert info.max_residual < 1e-8
    assert info.solves == info.basis < k.shape[0]
    # two worker threads (split solves, row-split products, side-by-side factorisations): the same result
    lam2, x2, info2 = lowest_eigenpairs(k, m, LAM_COARSE, block=16, threads=2)
    assert info2.solves == info.solves and np.abs(lam2 - lam).max() < 1e-12 * LAM_COARSE
    assert np.abs(x2 - x @ (x.T @ (m @ x2))).max() < 1e-7 * np.abs(x2).max()  # the same (degenerate) eigenspaces


def test_signals_match_arpack():
    """The MF signals from the Lanczos basis equal those from SciPy's eigsh basis (1331-node ball)."""
    mesh = geometry.ball(5e-6, 10)
    tissue = compartments(1)
    fe = assemble(mesh, tissue)
    ours = eigenbasis(fe, diffusivity=D, method="sparse")
    theirs = eigenbasis(fe, diffusivity=D, method="arpack")
    assert ours.n_modes == theirs.n_modes == 213
    assert torch.allclose(ours.eigenvalues, theirs.eigenvalues, rtol=0, atol=1e-9 * LAM_MAX)
    seqs = [PGSE(5e-3, 10e-3), PGSE(30e-3, 40e-3)]
    rows = dict(sequence_index=[0, 0, 1, 1], b=[1e9, 1e10, 1e9, 1e10], direction=[[1.0, 0, 0], [0, 0.6, 0.8]] * 2)
    with torch.no_grad():
        a = simulate_rows(mesh, tissue, seqs, rows["sequence_index"], rows["b"], rows["direction"], basis=ours)
        b = simulate_rows(mesh, tissue, seqs, rows["sequence_index"], rows["b"], rows["direction"], basis=theirs)
    assert torch.abs(a.signal - b.signal).max() < 1e-10


def test_repeated_eigenvalues_of_identical_compartments():
    """Two disconnected, identical balls: every eigenvalue is double (two zero modes too); all copies are found."""
    one = geometry.ball(5e-6, 7)
    k1 = assemble(one, compartments(1))
    k_one = k1.to_scipy(k1.stiffness).tocsc()
    m_one = k1.to_scipy(k1.mass).tocsc()
    k = sp.block_diag([k_one, k_one]).tocsc()
    m = sp.block_diag([m_one, m_one]).tocsc()
    lam, x, info = lowest_eigenpairs(k, m, LAM_COARSE, block=8)
    single = scipy.linalg.eigh(k_one.toarray(), m_one.toarray(), eigvals_only=True)
    single = single[single <= LAM_COARSE]
    assert info.solves > 0  # the Krylov path, not the dense fallback
    assert len(lam) == 2 * len(single) == info.inertia_count
    assert np.abs(lam - np.repeat(single, 2)).max() < 1e-9 * LAM_COARSE
    assert np.abs(lam[:2]).max() < 1e-9 * LAM_COARSE  # one constant mode per ball


def test_inertia_counts_eigenvalues_below_a_shift(ball_1000):
    """Sylvester: the negative pivots of K − s M count the eigenvalues below s."""
    _, k, m = ball_1000
    w = scipy.linalg.eigh(k.toarray(), m.toarray(), eigvals_only=True)
    for s in (0.1 * LAM_MAX, 0.55 * LAM_MAX, 1.3 * LAM_MAX, LAM_COARSE):
        factor = factorize(k - s * m)
        assert factor.symmetric_pivots
        assert factor.n_negative() == int((w < s).sum())
    # the factor solves the system it factorised, with one or many right-hand sides
    s_mat = (k + 1e-3 * LAM_MAX * m).tocsc()
    factor = factorize(s_mat)
    rhs = np.random.default_rng(1).standard_normal((k.shape[0], 3))
    assert np.abs(s_mat @ factor.solve(rhs) - rhs).max() < 1e-9 * np.abs(rhs).max()
    assert np.abs(s_mat @ factor.solve(rhs[:, 0]) - rhs[:, 0]).max() < 1e-9 * np.abs(rhs).max()


def test_m_orthonormalise_replaces_lost_directions():
    """A rank-deficient block keeps its span, gets fresh directions orthogonal to the basis, and W = Q R holds."""
    rng = np.random.default_rng(0)
    n = 50
    m = sp.diags(rng.uniform(1, 2, n)).tocsr()
    basis = np.linalg.qr(rng.standard_normal((n, 5)))[0] / np.sqrt(m.diagonal())[:, None]
    basis, _, _ = _m_orthonormalise(basis, m, rng, np.empty((n, 0)))
    w = rng.standard_normal((n, 2))
    w = np.concatenate([w, w @ [[1.0], [2.0]], np.zeros((n, 1))], axis=1)  # rank 2 of 4
    w -= basis @ (basis.T @ (m @ w))
    q, r, mq = _m_orthonormalise(w, m, rng, basis)
    assert np.abs(mq - m @ q).max() < 1e-12 * np.abs(mq).max()
    assert np.abs(q.T @ (m @ q) - np.eye(4)).max() < 1e-12
    assert np.abs(basis.T @ (m @ q)).max() < 1e-12
    assert np.abs(q @ r - w).max() < 1e-12 * np.abs(w).max()


def test_small_problems_are_solved_densely_and_bad_input_raises(ball_1000):
    fe, _, _ = _pencil(geometry.ball(5e-6, 5))  # 216 nodes
    k, m = fe.to_scipy(fe.stiffness), fe.to_scipy(fe.mass)
    lam, x, info = lowest_eigenpairs(k, m, LAM_MAX)
    w = scipy.linalg.eigh(k.toarray(), m.toarray(), eigvals_only=True)
    assert np.allclose(lam, w[w <= LAM_MAX], rtol=0, atol=1e-9 * LAM_MAX)
    _, k, m = ball_1000
    with pytest.raises(ValueError, match="eigenvalue_max"):
        lowest_eigenpairs(k, m, -1.0)
    lam, _, info = lowest_eigenpairs(k, m, LAM_MAX, block=64)  # 5·193 + 64 ≥ 1000: the basis would near n → dense
    assert info.solves == 0 and len(lam) == info.inertia_count == 193
    with pytest.raises(ValueError, match="max_count=10"):
        lowest_eigenpairs(k, m, LAM_MAX, max_count=10)
    with pytest.raises(ValueError, match="square"):
        lowest_eigenpairs(k, m[:-1, :-1], LAM_MAX)


def test_without_metis_superlu_orders_itself(ball_1000, monkeypatch):
    """Without pymetis the factorisation falls back to SuperLU's MMD ordering: same solves, same inertia."""
    import gradmr.diffusion.solvers.eigen as eigen

    _, k, m = ball_1000
    monkeypatch.setattr(eigen, "fill_reducing_order", lambda matrix: None)
    shifted = (k - 0.55 * LAM_MAX * m).tocsc()
    factor = eigen.factorize(shifted)
    assert factor.perm is None and factor.symmetric_pivots
    w = scipy.linalg.eigh(k.toarray(), m.toarray(), eigvals_only=True)
    assert factor.n_negative() == int((w < 0.55 * LAM_MAX).sum())
    rhs = np.random.default_rng(2).standard_normal(k.shape[0])
    assert np.abs(shifted @ factor.solve(rhs) - rhs).max() < 1e-8 * np.abs(rhs).max()


def test_scaled_basis_equals_the_recomputed_one():
    """A ball's basis solved at R = 5 µm and rescaled to 4 µm: the eigenvalues and signals of a fresh solve at 4 µm."""
    from gradmr.diffusion.solvers.mf import scaled_basis

    template = geometry.ball(1.0, 8)  # 729 nodes
    tissue = compartments(1)
    big = assemble(template.with_points(5e-6 * template.points), tissue)
    small_mesh = template.with_points(4e-6 * template.points)
    small = assemble(small_mesh, tissue)
    source = eigenbasis(big, diffusivity=D, length_scale=1.2e-6)
    mapped = scaled_basis(source, 0.8, 3)
    fresh = eigenbasis(small, diffusivity=D, length_scale=1.2e-6)
    assert mapped.n_modes == fresh.n_modes < source.n_modes
    assert torch.allclose(mapped.eigenvalues, fresh.eigenvalues, rtol=1e-9, atol=1e-9 * fresh.eigenvalue_max)
    phi = mapped.phi.numpy()
    gram = phi.T @ (small.to_scipy(small.mass) @ phi)
    assert np.abs(gram - np.eye(mapped.n_modes)).max() < 1e-9
    seqs = [PGSE(5e-3, 10e-3)]
    with torch.no_grad():
        a = simulate_rows(small_mesh, tissue, seqs, [0, 0], [1e9, 5e9], [[1.0, 0, 0]] * 2, basis=mapped).signal
        b = simulate_rows(small_mesh, tissue, seqs, [0, 0], [1e9, 5e9], [[1.0, 0, 0]] * 2, basis=fresh).signal
    assert torch.abs(a - b).max() < 1e-10
    with pytest.raises(ValueError, match="smaller scale|larger scale|covers|compute it"):
        scaled_basis(source, 1.3, 3)
