"""Gradients of the EPG: ``torch.autograd.gradcheck`` (float64, finite differences) of every differentiable path.

* ``fisp_signal(method="autograd")`` with respect to T1, T2, B1, off-resonance and the train (flip angles, TRs, TEs,
  RF phase);
* ``fisp_signal(method="sensitivities")`` — the custom ``autograd.Function`` whose backward is the forward
  sensitivities of the compiled kernel — with respect to T1, T2 and B1, real and complex output;
* the sensitivities' Jacobian against the autograd Jacobian (both having passed gradcheck);
* ``simulate_epg`` on a small core sequence with respect to the flip angles and T2.

Sizes are small (≤ 20 TRs, ≤ 8 states) so that the finite differences stay cheap.
"""

from __future__ import annotations

import math

import pytest
import torch

from gradmr.phantom import VoxelPhantom
from gradmr.sequence.mrf import fisp_mrf
from gradmr.sim.epg import FispTrain, fisp_signal, simulate_epg

F64 = torch.float64
#: Jacobians of the sensitivities and of autograd: both are exact derivatives of the same float64 recursion, only
#: summed in a different order (measured ≤ 5e-16 relative); 1e-10 leaves room for other BLAS/compilers.
JACOBIAN_RTOL = 1e-10
#: gradcheck defaults (eps 1e-6, atol 1e-5, rtol 1e-3) are for O(1) outputs; our signals are O(0.1), so the default
#: absolute tolerance is kept and the relative one tightened to what central differences of these smooth functions
#: give in float64 (truncation error eps² · f''' ≈ 1e-12, round-off 1e-16 / eps ≈ 1e-10).
GRADCHECK = {"eps": 1e-6, "atol": 1e-7, "rtol": 1e-5}

N_TR = 20
STATES = 8


def _train_values(n: int = N_TR):
    """A short, irregular train: varying flip angles (rad), TRs (s) and TEs (s) — nothing constant to hide behind."""
    gen = torch.Generator().manual_seed(3)
    flip = torch.deg2rad(10 + 50 * torch.rand(n, generator=gen, dtype=F64))
    tr = 10e-3 + 4e-3 * torch.rand(n, generator=gen, dtype=F64)
    te = 2e-3 + 1e-3 * torch.rand(n, generator=gen, dtype=F64)
    return flip, tr, te


def _tissue():
    t1 = torch.tensor([0.8, 1.6, 3.0], dtype=F64)
    t2 = torch.tensor([0.06, 0.3, 1.5], dtype=F64)
    b1 = torch.tensor([1.0, 0.85, 1.15], dtype=F64)
    return t1, t2, b1


# ------------------------------------------------------------------------------------------------ autograd path


def test_gradcheck_autograd_wrt_tissue():
    flip, tr, te = _train_values(12)
    train = FispTrain.create(flip, tr, te, phase=0.3, inversion_time=0.02, inversion_efficiency=0.95)
    t1, t2, b1 = (x.clone().requires_grad_() for x in _tissue())
    df = torch.tensor([0.0, 7.0, -20.0], dtype=F64, requires_grad=True)

    def f(t1, t2, b1, df):
        return fisp_signal(train, t1, t2, b1=b1, off_resonance=df, n_states=STATES, method="autograd")

    assert torch.autograd.gradcheck(f, (t1, t2, b1, df), **GRADCHECK)


def test_gradcheck_autograd_wrt_train():
    """Flip angles, TRs, TEs and the RF phase, for two sequences at once (a batch of trains)."""
    flip, tr, te = _train_values(10)
    flip = torch.stack([flip, flip.flip(0)]).requires_grad_()  # (2, N): two sequences
    tr = tr.clone().requires_grad_()
    te = te.clone().requires_grad_()
    phase = torch.tensor(0.4, dtype=F64, requires_grad=True)
    t1, t2, b1 = (x[1:] for x in _tissue())

    def f(flip, tr, te, phase):
        train = FispTrain.create(flip, tr, te, phase=phase, inversion_time=0.018)
        return fisp_signal(train, t1, t2, b1=b1, n_states=STATES, method="autograd")

    assert torch.autograd.gradcheck(f, (flip, tr, te, phase), **GRADCHECK)


# ------------------------------------------------------------------------------------------------ sensitivities


@pytest.mark.parametrize("real", [True, False], ids=["real", "complex"])
def test_gradcheck_sensitivities(real):
    flip, tr, te = _train_values()
    train = FispTrain.create(flip, tr, te, phase=0.3, inversion_time=0.02, inversion_efficiency=0.9)
    t1, t2, b1 = (x.clone().requires_grad_() for x in _tissue())

    def f(t1, t2, b1):
        return fisp_signal(train, t1, t2, b1=b1, n_states=STATES, method="sensitivities", real=real)

    assert torch.autograd.gradcheck(f, (t1, t2, b1), **GRADCHECK)


def test_gradcheck_sensitivities_with_a_batch_of_trains_and_broadcast_b1():
    """Several sequences (their gradients sum over the sequence dims) and a scalar B1 broadcast to the tissues."""
    flip, tr, te = _train_values(12)
    train = FispTrain.create(torch.stack([flip, 0.5 * flip]), tr, te, inversion_time=0.02)
    t1, t2, _ = (x.clone().requires_grad_() for x in _tissue())
    b1 = torch.tensor(0.9, dtype=F64, requires_grad=True)

    def f(t1, t2, b1):
        return fisp_signal(train, t1, t2, b1=b1, n_states=STATES, method="sensitivities", real=True)

    assert torch.autograd.gradcheck(f, (t1, t2, b1), **GRADCHECK)


@pytest.mark.parametrize("n_states", [STATES, 13], ids=["truncated", "exact"])
def test_sensitivity_jacobian_equals_autograd_jacobian(n_states):
    """The forward sensitivities carried through the kernel and the tape of the torch EPG: one Jacobian."""
    flip, tr, te = _train_values(12)
    train = FispTrain.create(flip, tr, te, inversion_time=0.02, inversion_efficiency=0.9)
    t1, t2, b1 = _tissue()

    def by(method):
        return torch.autograd.functional.jacobian(
            lambda a, b, c: fisp_signal(train, a, b, b1=c, n_states=n_states, method=method, real=True), (t1, t2, b1)
        )

    for sens, auto in zip(by("sensitivities"), by("autograd"), strict=True):
        scale = float(auto.abs().max())
        assert scale > 0
        torch.testing.assert_close(sens, auto, rtol=0, atol=JACOBIAN_RTOL * scale)


def test_auto_method_gives_the_autograd_gradient():
    """``method="auto"`` (sensitivities when only tissue needs a gradient) and ``"autograd"``: the same gradient."""
    flip, tr, te = _train_values()
    train = FispTrain.create(flip, tr, te, inversion_time=0.02)
    grads = []
    for method in ("auto", "autograd"):
        t1, t2, b1 = (x.clone().requires_grad_() for x in _tissue())
        sig = fisp_signal(train, t1, t2, b1=b1, n_states=STATES, method=method)
        (sig.abs() ** 2).sum().backward()
        grads.append(torch.stack([t1.grad, t2.grad, b1.grad]))
    torch.testing.assert_close(grads[0], grads[1], rtol=JACOBIAN_RTOL, atol=0)


# ------------------------------------------------------------------------------------------------ core sequences


def test_gradcheck_simulate_epg_wrt_flip_angles_and_t2():
    """A short FISP train built by the core builder (inversion + 10 TRs), flip angles and T2 requiring grad."""
    base = fisp_mrf(n_frames=10, trs=[12e-3] * 10, flip_angles=torch.deg2rad(torch.linspace(10, 60, 10)).tolist())
    flips = torch.stack([rep.pulse_angle for rep in base][1:]).clone().requires_grad_()
    t2 = torch.full((1, 1), 0.15, dtype=F64, requires_grad=True)

    def f(flips, t2):
        reps = [base[0]] + [rep.replace(pulse_angle=a) for rep, a in zip(list(base)[1:], flips, strict=True)]
        phantom = VoxelPhantom.create(
            pd=torch.ones(1, 1, dtype=F64),
            t1=torch.full((1, 1), 1.2, dtype=F64),
            t2=t2,
            voxel_size=(1e-3, 1e-3, 5e-3),
            dtype=F64,
        )
        return simulate_epg(type(base)(reps), phantom, n_states=6)

    assert torch.autograd.gradcheck(f, (flips, t2), **GRADCHECK)


def test_gradcheck_simulate_epg_with_rf_phase_and_off_resonance():
    """Spoiled gradient echo with quadratic RF phase: gradients w.r.t. the RF phases, B0 and B1 of two voxels."""
    from gradmr.sequence import Repetition, Sequence

    n = 8
    phases = torch.tensor([math.radians(117) * i * (i + 1) / 2 for i in range(n)], dtype=F64).requires_grad_()
    b0 = torch.tensor([[3.0, -11.0]], dtype=F64, requires_grad=True)
    b1 = torch.tensor([[1.0, 0.8]], dtype=F64, requires_grad=True)

    def f(phases, b0, b1):
        reps = []
        for i in range(n):
            rep = Repetition.create(2, pulse_angle=math.radians(30), event_time=torch.tensor([3e-3, 7e-3]), dtype=F64)
            gradm = torch.zeros(2, 3, dtype=F64)
            gradm[1, 0] = 1 / 1e-3
            adc = torch.tensor([True, False])
            reps.append(rep.replace(pulse_phase=phases[i], gradm=gradm, adc_usage=adc, adc_phase=phases[i].expand(2)))
        phantom = VoxelPhantom.create(
            pd=torch.ones(1, 2, dtype=F64),
            t1=torch.full((1, 2), 0.9, dtype=F64),
            t2=torch.full((1, 2), 0.08, dtype=F64),
            b0=b0,
            b1=b1,
            dtype=F64,
        )
        return simulate_epg(Sequence(reps), phantom, n_states=5)

    assert torch.autograd.gradcheck(f, (phases, b0, b1), **GRADCHECK)
