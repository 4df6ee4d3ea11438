"""Synthetic training sets, training with checkpoints that resume, prediction and the log-scale metric."""

import math

import pytest
import torch

from gradmr.mrf import mrf_train, normalise, simulate_fingerprints
from gradmr.mrf.models import build_model
from gradmr.mrf.training import (
    T1_RANGE,
    T2_RANGE,
    MRFData,
    evaluate,
    load_checkpoint,
    log_mse,
    predict,
    sample_t1_t2,
    synthetic_training_set,
    train_model,
)

FRAMES = 100
#: float32 fingerprints normalised in float32.
NORM_ATOL = 1e-5


@pytest.fixture(scope="module")
def data():
    return synthetic_training_set("fisp", 192, frames=FRAMES, seed=0, snr=20.0)


def test_training_set_is_normalised_and_in_range():
    d = synthetic_training_set(("spline5", "fisp"), 300, frames=FRAMES, seed=1)
    assert d.x.shape == (300, FRAMES) and d.theta.shape == (300, 2)
    assert torch.allclose(d.x.norm(dim=-1), torch.ones(300), atol=NORM_ATOL)
    t1, t2 = d.t1_t2()
    assert bool((t2 < t1).all())
    assert T1_RANGE[0] * (1 - 1e-6) <= float(t1.min()) and float(t1.max()) <= T1_RANGE[1] * (1 + 1e-6)
    assert T2_RANGE[0] * (1 - 1e-6) <= float(t2.min()) and float(t2.max()) <= T2_RANGE[1] * (1 + 1e-6)
    assert torch.equal(d.index, torch.arange(300) % 2)
    # sample 1 is a FISP fingerprint (truncated to FRAMES TRs, normalised)
    ref = normalise(simulate_fingerprints(mrf_train("fisp"), t1[1:2], t2[1:2], method="kernel")[..., :FRAMES])[0]
    assert torch.allclose(d.x[1:2], ref, atol=NORM_ATOL)
    again = synthetic_training_set(("spline5", "fisp"), 300, frames=FRAMES, seed=1)
    assert torch.equal(again.x, d.x) and torch.equal(again.theta, d.theta)


def test_log_uniform_sampling_covers_the_log_range():
    """Uniform over the (ln T1, ln T2) region with T2 < T1: ln T1 is then skewed to long T1 (more T2 values fit
    below it), ln T2 to short T2 — check the quartiles of the accepted pairs against that region's, by integration
    of the region's density (numerically, on a fine grid)."""
    gen = torch.Generator().manual_seed(0)
    t1, t2 = sample_t1_t2(200_000, generator=gen)
    a = torch.linspace(math.log(T1_RANGE[0]), math.log(T1_RANGE[1]), 2001, dtype=torch.float64)
    b = torch.linspace(math.log(T2_RANGE[0]), math.log(T2_RANGE[1]), 2001, dtype=torch.float64)
    inside = (b[None, :] < a[:, None]).double()
    cdf1 = inside.sum(1).cumsum(0) / inside.sum()
    median1 = float(a[int(torch.searchsorted(cdf1, torch.tensor(0.5, dtype=torch.float64)))])
    #: 200k samples: the sample median's standard error is ≈ 0.004 in ln T; the grid step is 0.003.
    assert float(t1.log().median()) == pytest.approx(median1, abs=0.02)
    uni1, _ = sample_t1_t2(50_000, generator=gen, distribution="uniform")
    assert float((uni1 < 1.0).double().mean()) < float((t1 < 1.0).double().mean())


def test_bad_ranges_raise():
    with pytest.raises(ValueError, match="T2 < T1"):
        synthetic_training_set("fisp", 10, t1_range=(0.01, 0.1), t2_range=(0.2, 2.5), frames=FRAMES)
    with pytest.raises(ValueError, match="milliseconds"):
        sample_t1_t2(10, t1_range=(10, 5000))
    with pytest.raises(ValueError, match="0 < low < high"):
        sample_t1_t2(10, t2_range=(0.0, 2.5))
    with pytest.raises(ValueError, match="distribution"):
        sample_t1_t2(10, distribution="normal")
    with pytest.raises(ValueError, match="at least one train"):
        synthetic_training_set([], 10)
    with pytest.raises(ValueError, match="snr"):
        synthetic_training_set("fisp", 10, snr=0.0, frames=FRAMES)
    with pytest.raises(ValueError, match="train must be one of"):
        synthetic_training_set("fisp5", 10, frames=FRAMES)
    with pytest.raises(ValueError, match="needs"):
        synthetic_training_set("fisp", 10, frames=1001)


def test_checkpoint_resume_equals_a_straight_run(tmp_path, data):
    """2 epochs, stop, resume to 4 == 4 epochs in one go, bit for bit: the checkpoint holds the weights, Adam's
    moments and step counts, both generators (batch order and the fresh per-batch noise) and the epoch; on a CPU
    with a fixed thread count the same operations in the same order give the same floats."""
    kw = dict(batch_size=64, lr=1e-3, lr_decay=0.9, seed=7, progress=False)
    straight = build_model("fc-fc", FRAMES, seed=0)
    h_straight = train_model(straight, data, epochs=4, **kw)

    resumed = build_model("fc-fc", FRAMES, seed=0)
    path = tmp_path / "ckpt.pt"
    train_model(resumed, data, epochs=2, checkpoint=path, **kw)
    assert load_checkpoint(path)["epoch"] == 2
    fresh = build_model("fc-fc", FRAMES, seed=123)  # weights come from the checkpoint, not the initialisation
    h_resumed = train_model(fresh, data, epochs=4, checkpoint=path, **kw)

    assert [r["epoch"] for r in h_resumed] == [1, 2, 3, 4]
    for a, b in zip(h_straight, h_resumed, strict=True):
        assert a["loss"] == b["loss"]
    for (ka, va), (kb, vb) in zip(straight.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    # finished: calling again trains nothing and returns the history
    assert len(train_model(fresh, data, epochs=4, checkpoint=path, **kw)) == 4


def test_resume_with_other_settings_raises(tmp_path, data):
    path = tmp_path / "ckpt.pt"
    model = build_model("fc", FRAMES, seed=0)
    train_model(model, data, epochs=1, batch_size=64, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_model(model, data, epochs=2, batch_size=32, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match="holds model"):
        train_model(build_model("rnn", FRAMES), data, epochs=2, batch_size=64, checkpoint=path, progress=False)
    train_model(model, data, epochs=1, batch_size=32, checkpoint=path, resume=False, progress=False)
    assert load_checkpoint(path)["settings"]["batch_size"] == 32


def test_training_noise_is_fresh_every_epoch(data):
    """The inputs of a sample differ between epochs (and from the clean fingerprint); the target stays clean."""
    small = data.subset(slice(0, 4))
    model = build_model("fc", FRAMES, seed=0)
    seen = []
    original = model.loss

    def spy(x, theta, index=None, target=None):
        seen.append((x.detach().clone(), target.detach().clone()))
        return original(x, theta, index, target)

    model.loss = spy
    train_model(model, small, epochs=2, batch_size=4, progress=False)
    (x1, c1), (x2, c2) = seen
    x1 = x1[torch.argsort((c1 @ small.x.T).argmax(1))]  # back to the data's order
    x2 = x2[torch.argsort((c2 @ small.x.T).argmax(1))]
    assert not torch.allclose(x1, x2) and not torch.allclose(x1, small.x)
    assert torch.allclose(x1.norm(dim=-1), torch.ones(4), atol=NORM_ATOL)


def test_validation_history_and_mismatched_data(data):
    model = build_model("fc", FRAMES, seed=0)
    val = synthetic_training_set("fisp", 64, frames=FRAMES, seed=9)
    hist = train_model(model, data, epochs=2, batch_size=64, val=val, progress=False)
    assert {"loss", "loss_theta", "val_log_mse", "val_log_mse_t1", "val_log_mse_t2", "seconds"} <= set(hist[0])
    assert hist[-1]["val_log_mse"] == pytest.approx(evaluate(model, val)["log_mse"])
    two = synthetic_training_set(("spline5", "spline11noisy"), 8, frames=FRAMES)
    with pytest.raises(ValueError, match="2 trains"):
        train_model(build_model("fc-fc", FRAMES), two, epochs=1, progress=False)
    with pytest.raises(ValueError, match="BlochNet decodes"):
        train_model(build_model("blochnet", FRAMES, trains="spline5"), data.subset(slice(0, 8)), epochs=1)
    with pytest.raises(ValueError, match="takes 50"):
        train_model(build_model("fc", 50), data, epochs=1, progress=False)


def test_predict_truncates_normalises_and_keeps_shape(data):
    model = build_model("rnn", FRAMES, seed=0)
    model.set_target_stats(data.theta)
    t1, t2 = predict(model, data.x[:6])
    # PD-scaled, longer (the model takes the first FRAMES samples), map-shaped input: the same predictions
    longer = torch.cat([data.x[:6] * 3.5, torch.randn(6, 20)], -1).reshape(2, 3, FRAMES + 20)
    s1, s2 = predict(model, longer, batch_size=4)
    assert s1.shape == (2, 3)
    assert torch.allclose(s1.reshape(-1), t1, rtol=1e-5) and torch.allclose(s2.reshape(-1), t2, rtol=1e-5)
    bad = data.x[:2].clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict(model, bad)


def test_log_mse_is_the_mean_squared_log_error():
    true = (torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2]))
    pred = (true[0] * math.e, true[1])  # T1 off by a factor e (ln error 1), T2 exact
    assert float(log_mse(pred, true)) == pytest.approx(0.5)
    assert log_mse(pred, true, per_parameter=True).tolist() == pytest.approx([1.0, 0.0])


def test_mrfdata_checks():
    x = torch.zeros(3, 5)
    with pytest.raises(ValueError, match="theta"):
        MRFData(x=x, theta=torch.zeros(2, 2), index=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="index"):
        MRFData(x=x, theta=torch.zeros(3, 2), index=torch.ones(3, dtype=torch.long))
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        MRFData(x=x, theta=torch.zeros(3, 2), index=torch.zeros(3, dtype=torch.long))
