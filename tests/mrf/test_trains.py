"""The MRF trains as EPG trains, the fingerprint helpers, and the FispTrain checks."""

import math

import pytest
import torch

from gradmr.mrf import TRAINS, add_noise, mrf_train, normalise, simulate_fingerprints
from gradmr.sequence import mrf as seq_mrf
from gradmr.sequence.mrf import fisp_mrf
from gradmr.sim.epg import FispTrain, fisp_signal, fisp_train_from_sequence, phase_factor

#: float32 kernel against the float64 one: single-precision round-off accumulated over a few hundred TRs.
FLOAT32_ATOL = 1e-5


def test_trains_have_the_issue_timing():
    fisp = mrf_train("fisp", dtype=torch.float64)
    assert fisp.frames == 1000
    assert fisp.inversion_time == pytest.approx(18e-3)
    assert torch.allclose(fisp.te, torch.tensor(1.908e-3, dtype=torch.float64))
    assert 11.67e-3 - 1e-9 <= float(fisp.tr.min()) and float(fisp.tr.max()) <= 14.33e-3 + 1e-9
    for name in ("spline5", "spline11noisy"):
        t = mrf_train(name, dtype=torch.float64)
        assert t.frames == 1120
        assert torch.allclose(t.tr, torch.tensor(8.7552e-3, dtype=torch.float64))
        assert torch.allclose(t.te, torch.tensor(4.9226e-3, dtype=torch.float64))
        assert float(t.flip.max()) <= math.radians(120) + 1e-12
    assert set(TRAINS) == {"fisp", "spline5", "spline11noisy"}
    with pytest.raises(ValueError, match="train must be one of"):
        mrf_train("fisp2")


def test_train_equals_the_core_builders_sequence():
    """The FISP train read off the core builder's event sequence is the same train the dictionary uses."""
    from_seq = fisp_train_from_sequence(fisp_mrf(n_frames=50))
    direct = mrf_train("fisp", frames=50, dtype=torch.float64)
    assert torch.allclose(from_seq.flip, direct.flip)
    assert torch.allclose(from_seq.tr, direct.tr, atol=1e-12)
    assert torch.allclose(from_seq.te, direct.te, atol=1e-12)
    assert from_seq.inversion_time == pytest.approx(direct.inversion_time)
    spline = fisp_train_from_sequence(seq_mrf.spline_mrf(variant="spline5", n_frames=40))
    assert torch.allclose(spline.flip, mrf_train("spline5", frames=40, dtype=torch.float64).flip)


def test_real_amplitude_and_phase_factor_rebuild_the_signal():
    train = mrf_train("fisp", frames=120, dtype=torch.float64)
    t1 = torch.tensor([0.8, 1.4, 4.0], dtype=torch.float64)
    t2 = torch.tensor([0.06, 0.1, 1.5], dtype=torch.float64)
    amplitude = simulate_fingerprints(train, t1, t2)
    signal = fisp_signal(train, t1, t2)
    assert torch.allclose(phase_factor(train) * amplitude, signal, atol=1e-14)
    # after the inversion Z is negative, so the first non-zero samples have a negative imaginary part's opposite sign
    assert amplitude.shape == (3, 120)
    single = simulate_fingerprints(train.to(dtype=torch.float32), t1.float(), t2.float())
    assert single.dtype == torch.float32
    assert float((single.double() - amplitude).abs().max()) < FLOAT32_ATOL


def test_several_sequences_at_once_equal_one_at_a_time():
    a = mrf_train("spline5", frames=80, dtype=torch.float64)
    b = mrf_train("spline11noisy", frames=80, dtype=torch.float64)
    both = FispTrain.create(torch.stack([a.flip, b.flip]), a.tr, a.te, inversion_time=a.inversion_time)
    t1 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    t2 = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    out = fisp_signal(both, t1, t2)
    assert out.shape == (2, 1, 2, 80)
    assert torch.allclose(out[0], fisp_signal(a, t1, t2), atol=1e-15)
    assert torch.allclose(out[1], fisp_signal(b, t1, t2), atol=1e-15)
    auto = fisp_signal(both, t1, t2, method="autograd")
    assert torch.allclose(out, auto, atol=1e-12)


def test_normalise_and_noise():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    unit, norm = normalise(x)
    assert torch.allclose(unit[0], torch.tensor([0.6, 0.8])) and float(norm[0]) == 5.0
    assert torch.equal(unit[1], torch.zeros(2)) and float(norm[1]) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        normalise(torch.tensor([[float("nan"), 1.0]]))
    g = torch.Generator().manual_seed(0)
    big = torch.ones(1, 200_000)
    noisy = add_noise(big, 10.0, generator=g)
    assert float((noisy - big).std()) == pytest.approx(0.1, rel=0.01)  # σ = rms/snr = 1/10; 2e5 draws: 0.2 % sd
    assert add_noise(big, None) is big
    with pytest.raises(ValueError, match="snr"):
        add_noise(big, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flip": [10.0, 20.0, 90.0]}, "radians"),
        ({"flip": [0.1, float("nan")]}, "NaN"),
        ({"flip": [-0.1, 0.2]}, "≥ 0"),
        ({"tr": [500.0, 500.0]}, "milliseconds"),
        ({"tr": [0.0, 0.01]}, "tr must be > 0"),
        ({"te": [0.02, 0.02]}, "te must not exceed tr"),
        ({"tr": [0.01, 0.01, 0.01]}, "must broadcast"),
        ({"inversion_efficiency": 1.5}, "inversion_efficiency"),
    ],
)
def test_bad_trains_raise(kwargs, match):
    args = {"flip": [0.1, 0.2], "tr": [0.01, 0.01], "te": [0.002, 0.002]}
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in args}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FispTrain.create(args["flip"], args["tr"], args["te"], **extra)


@pytest.mark.parametrize(
    ("t1", "t2", "extra", "match"),
    [
        (-1.0, 0.1, {}, "t1 must be > 0"),
        (1.0, float("nan"), {}, "t2 contains NaN"),
        (1000.0 * 1.2, 0.1, {}, "milliseconds"),
        (1.0, 0.1, {"n_states": 0}, "n_states"),
        (1.0, 0.1, {"method": "fast"}, "method must be one of"),
        (1.0, 0.1, {"method": "kernel", "off_resonance": 10.0}, "off-resonance"),
    ],
)
def test_bad_tissue_raises(t1, t2, extra, match):
    train = mrf_train("fisp", frames=10, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        fisp_signal(train, torch.tensor([t1], dtype=torch.float64), torch.tensor([t2], dtype=torch.float64), **extra)


def test_sequences_that_do_not_fit_the_fisp_model_are_refused():
    seq = fisp_mrf(n_frames=5, readout="spiral", matrix=16, n_interleaves=4)
    with pytest.raises(ValueError, match="ADC samples"):
        fisp_train_from_sequence(seq)
