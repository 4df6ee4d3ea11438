"""BMapEst forward models and estimator: the fast multi-compartment model equals the full PDG, known maps are
recovered from exact data, every option runs, bad input errors."""

from __future__ import annotations

import math

import pytest
import torch

from gradmr.bmapest.estimate import _project, estimate_maps
from gradmr.bmapest.forward import Acquisition, images_mixed, images_multi, tissue_kernels
from gradmr.metrics import nrmse, psnr
from gradmr.phantom import TissueFractions, phantom_from_fractions, tissue_fractions, tissue_table
from gradmr.recon import reconstruct_cartesian
from gradmr.sequence import flash, ir_flash, spin_echo
from gradmr.sim.pdg import simulate_pdg

F64 = torch.float64
#: The kernel model is exact up to the PDG's pruning thresholds (min_emitted 1e-4 of M0).
KERNEL_NRMSE = 1e-3
#: The issue: exact data must give PSNR ≥ 40 dB.
EXACT_PSNR_DB = 40.0


def _acq(n: int) -> Acquisition:
    seqs = [
        flash(matrix=(n, n), fov=(0.2, 0.2), flip_angle=math.radians(5), order="centric"),
        ir_flash(matrix=(n, n), fov=(0.2, 0.2), ti=0.5),
        ir_flash(matrix=(n, n), fov=(0.2, 0.2), ti=1.0),
        spin_echo(matrix=(n, n), fov=(0.2, 0.2), te=0.09, tr=3.0),
    ]
    return Acquisition(seqs, (n, n), (0.2, 0.2), 8e-3)


@pytest.fixture(scope="module")
def small():
    n = 16
    acq = _acq(n)
    truth = tissue_fractions((n, n), (0.2, 0.2), supersampling=4, dtype=F64)
    kernels = tissue_kernels(acq)
    return acq, truth, kernels, images_multi(truth, kernels), truth.sum(0) > 0


def _psnrs(maps, truth):
    return [float(psnr(maps[i], truth[i], data_range=1.0)) for i in range(3)]


def test_kernel_model_equals_the_full_pdg_of_the_multi_pool_phantom(small):
    acq, truth, kernels, images, _ = small
    fr = TissueFractions.create(truth, ("csf", "gm", "wm"), voxel_size=acq.voxel_size)
    phantom = phantom_from_fractions(fr, tissues=tissue_table(preset="bmapest"), model="multi")
    for c, seq in enumerate(acq.sequences):
        full = reconstruct_cartesian(simulate_pdg(seq, phantom), seq.kspace(), **acq.grid())[0, 0]
        assert float(nrmse(images[c], full)) < KERNEL_NRMSE, c


def test_exact_data_recovers_the_maps(small):
    acq, truth, kernels, images, mask = small
    result = estimate_maps(images, acq, kernels=kernels, mask=mask)
    assert min(_psnrs(result.maps, truth)) >= EXACT_PSNR_DB
    assert result.config["optimizer"] == "direct" and result.seconds > 0


@pytest.mark.parametrize(
    "options",
    [
        dict(optimizer="adam", epochs=60, lr=0.05),
        dict(optimizer="adam", epochs=60, lr=0.02, constraint="clamp"),
        dict(optimizer="lbfgs", epochs=15, lr=1.0),
        dict(optimizer="adam", epochs=60, lr=0.05, loss="kspace"),
        dict(optimizer="direct", epochs=30, loss="kspace"),
    ],
)
def test_iterative_options_reduce_the_loss_and_keep_the_constraints(small, options):
    acq, truth, kernels, images, mask = small
    result = estimate_maps(images, acq, kernels=kernels, mask=mask, **options)
    h = result.loss_history
    assert h[-1] < h[0] or h[-1] < 1e-10
    m = result.maps
    assert (m >= -1e-12).all() and (m <= 1 + 1e-12).all() and (m.sum(0) <= 1 + 1e-9).all()
    assert (m[:, ~mask] == 0).all()


def test_one_map_with_the_others_fixed(small):
    acq, truth, kernels, images, mask = small
    result = estimate_maps(images, acq, kernels=kernels, mask=mask, estimate=("gm",), fixed=truth)
    assert torch.equal(result.maps[0], truth[0]) and torch.equal(result.maps[2], truth[2])
    assert _psnrs(result.maps, truth)[1] >= EXACT_PSNR_DB


@pytest.mark.parametrize("parameterisation", ["linear", "scalar"])
def test_coefficient_parameterisations_recover_a_map_in_their_span(small, parameterisation):
    acq, truth, kernels, _, mask = small
    basis = torch.stack([truth * 0.5, truth * 0.7])  # two "subjects"; 0.6·truth is in their span
    target = truth * 0.6
    images = images_multi(target, kernels)
    result = estimate_maps(
        images,
        acq,
        kernels=kernels,
        mask=mask,
        basis=basis,
        parameterisation=parameterisation,
        optimizer="adam",
        epochs=300,
        lr=0.05,
    )
    assert min(_psnrs(result.maps, target)) > 30.0


def test_mixed_model_runs_and_fits_its_own_data():
    n = 6
    seqs = [flash(matrix=(n, n), fov=(0.2, 0.2), flip_angle=math.radians(5), order="centric")]
    acq = Acquisition(seqs, (n, n), (0.2, 0.2), 8e-3)
    truth = tissue_fractions((n, n), (0.2, 0.2), dtype=F64)
    observed = images_mixed(truth, acq)
    result = estimate_maps(observed, acq, model="mixed", optimizer="adam", epochs=8, lr=0.05, mask=truth.sum(0) > 0)
    assert result.loss_history[-1] < result.loss_history[0]


def test_magnitude_data_with_adam(small):
    acq, truth, kernels, images, mask = small
    result = estimate_maps(images.abs(), acq, kernels=kernels, mask=mask, optimizer="adam", epochs=40, lr=0.05)
    assert result.config["magnitude_data"] and result.loss_history[-1] < result.loss_history[0]


def test_projection_is_onto_the_capped_simplex():
    x = torch.tensor([[[0.9]], [[0.8]], [[-0.2]]], dtype=F64)
    p = _project(x, torch.ones(1, 1, dtype=torch.bool))
    assert torch.allclose(p[:, 0, 0], torch.tensor([0.55, 0.45, 0.0], dtype=F64))  # (x − θ)₊ with θ = 0.35
    inside = torch.tensor([[[0.2]], [[0.3]], [[0.1]]], dtype=F64)
    assert torch.equal(_project(inside, torch.ones(1, 1, dtype=torch.bool)), inside)


def test_bad_input(small):
    acq, truth, kernels, images, mask = small
    with pytest.raises(ValueError, match="4 sequences"):
        estimate_maps(images[:3], acq, kernels=kernels)
    with pytest.raises(ValueError, match="mask is empty"):
        estimate_maps(images, acq, kernels=kernels, mask=torch.zeros_like(mask))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        estimate_maps(images, acq, kernels=kernels, optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer='direct' needs model='multi'"):
        estimate_maps(images, acq, model="mixed")
    with pytest.raises(ValueError, match="fixed maps"):
        estimate_maps(images, acq, kernels=kernels, estimate=("gm",))
    with pytest.raises(ValueError, match="basis"):
        estimate_maps(images, acq, kernels=kernels, parameterisation="scalar", optimizer="adam")
    with pytest.raises(ValueError, match="needs complex observations"):
        estimate_maps(images.abs(), acq, kernels=kernels, loss="kspace", optimizer="adam")
    with pytest.raises(ValueError, match="estimate must name"):
        estimate_maps(images, acq, kernels=kernels, estimate=("bone",))
