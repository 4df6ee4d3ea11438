"""The three solvers on the same mesh: matrix formalism, BTPDE (Crank–Nicolson) and the dense oracle agree."""

import numpy as np

from gradmr.diffusion import PGSE, DoublePGSE, compartments, geometry, simulate


def test_mf_and_btpde_agree_on_a_ball():
    """1331-node ball, PGSE 5/10 and double PGSE: |MF − BTPDE| < 1e-4 (measured ≈ 6e-6 at dt = 50 µs)."""
    mesh = geometry.ball(5e-6, nodes=1500)
    seqs = [PGSE(5e-3, 10e-3), DoublePGSE(5e-3, 10e-3)]
    kwargs = dict(bvalues=[1000e6, 3000e6], directions=[[1.0, 0, 0], [0.0, 0.6, 0.8]])
    mf = simulate(mesh, compartments(1), seqs, **kwargs).signal.numpy()
    bt = simulate(mesh, compartments(1), seqs, method="btpde", **kwargs).signal.numpy()
    assert np.abs(mf - bt).max() < 1e-4


def test_three_methods_agree_permeable_and_t2():
    """Two compartments with exchange and different T2 (2-D cylinder in a box, ~250 nodes), PGSE and double PGSE."""
    mesh = geometry.cylinder_in_box(3e-6, 4e-6, nodes=250)
    tissue = compartments(2, diffusivity=[2e-9, 1.5e-9], t2=[0.08, 0.05], permeability=1e-5)
    seqs = [PGSE(5e-3, 10e-3), DoublePGSE(3e-3, 6e-3)]
    kwargs = dict(bvalues=[1000e6, 3000e6], directions=[0.6, 0.8])
    dense = simulate(mesh, tissue, seqs, method="dense", **kwargs).signal.numpy()
    mf = simulate(mesh, tissue, seqs, length_scale=0.5e-6, **kwargs).signal.numpy()
    bt = simulate(mesh, tissue, seqs, method="btpde", dt=2.5e-5, **kwargs).signal.numpy()
    assert np.abs(mf - dense).max() < 1e-4
    assert np.abs(bt - dense).max() < 1e-4
