"""The learned MRF models: every model trains on a tiny problem, BlochNet's physics decoder, input checks."""

import pytest
import torch

from gradmr.mrf import mrf_train, normalise, simulate_fingerprints
from gradmr.mrf.models import MODELS, BlochNet, build_model, fit_length
from gradmr.mrf.training import synthetic_training_set

FRAMES = 100
SAMPLES = 256
STEPS = 25
#: Full-batch Adam (lr 1e-3) for STEPS steps from a seeded initialisation: every model at least halves its loss on
#: these 256 noise-free fingerprints (the slowest, the GRU models, reach ≈ 0.4 of the initial loss; measured).
LOSS_RATIO = 0.7
#: The decoder runs the same float32 EPG kernel as the reference; the truncated train and the truncated fingerprint
#: differ only by float32 round-off of the normalisation.
DECODER_ATOL = 1e-6
#: float32 decoder (sensitivities) against the float64 autograd EPG: single-precision round-off.
GRAD_RTOL = 1e-3


@pytest.fixture(scope="module")
def tiny():
    return synthetic_training_set("fisp", SAMPLES, frames=FRAMES, seed=3)


@pytest.fixture(scope="module")
def tiny_two():
    return synthetic_training_set(("spline5", "spline11noisy"), SAMPLES, frames=FRAMES, seed=4)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_training_step_reduces_the_loss(name, tiny_two):
    data = tiny_two
    model = build_model(name, FRAMES, seed=0, trains=data.train_names)
    model.set_target_stats(data.theta)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with torch.no_grad():
        first = float(model.loss(data.x, data.theta, data.index)[0])
    for _ in range(STEPS):
        loss, parts = model.loss(data.x, data.theta, data.index)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        last, parts = model.loss(data.x, data.theta, data.index)
    assert float(last) < LOSS_RATIO * first, (name, first, float(last))
    assert ("x" in parts) == model.has_decoder
    theta = model(data.x[:5])
    assert theta.shape == (5, 2) and bool(torch.isfinite(theta).all())


def test_blochnet_decoder_is_the_normalised_epg(tiny_two):
    """decode(Θ) = normalise(first FRAMES samples of the full train's fingerprint), per sample's own train."""
    data = tiny_two
    model = BlochNet(FRAMES, trains=data.train_names)
    theta = data.theta[:12]
    index = torch.tensor([0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1])
    t1, t2 = theta[:, 0].exp(), theta[:, 1].exp()
    expected = torch.empty(12, FRAMES)
    for k, name in enumerate(data.train_names):
        full = simulate_fingerprints(mrf_train(name), t1, t2, method="kernel")  # all 1120 TRs
        expected[index == k] = normalise(full[..., :FRAMES])[0][index == k]
    with torch.no_grad():
        got = model.decode(theta, index)
    assert torch.allclose(got, expected, atol=DECODER_ATOL, rtol=0)
    with_grad = model.decode(theta.clone().requires_grad_(), index)  # the sensitivities path
    assert torch.allclose(with_grad.detach(), expected, atol=DECODER_ATOL, rtol=0)


def test_blochnet_gradient_reaches_the_encoder(tiny):
    model = build_model("blochnet", FRAMES, seed=1, trains="fisp")
    model.set_target_stats(tiny.theta)
    x = tiny.x[:32]
    x_hat = model.decode(model(x))
    (0.5 * ((x_hat - x) ** 2).sum(-1).mean()).backward()  # the X term alone
    for pname, p in model.encoder.named_parameters():
        assert p.grad is not None and float(p.grad.abs().max()) > 0, pname


def test_blochnet_decoder_gradient_matches_autograd_epg(tiny):
    """Gradient of a weighted sum of decode(Θ) w.r.t. Θ against the same expression through the float64 autograd
    EPG (checks the clamp/exp/normalise/grouping chain around the sensitivities)."""
    model = BlochNet(FRAMES, trains="fisp")
    theta = tiny.theta[:6].clone().requires_grad_()
    w = torch.linspace(-1, 1, FRAMES)
    (model.decode(theta) * w).sum().backward()
    theta64 = tiny.theta[:6].double().requires_grad_()
    train = fit_length(mrf_train("fisp", dtype=torch.float64), FRAMES)  # the model's train: the first TRs
    t = theta64.exp()
    ref = normalise(simulate_fingerprints(train, t[:, 0], t[:, 1], method="autograd"))[0]
    (ref * w.double()).sum().backward()
    assert torch.allclose(theta.grad.double(), theta64.grad, rtol=GRAD_RTOL, atol=GRAD_RTOL * 1e-2)


@pytest.mark.parametrize("name", ["fc-fc", "blochnet"])
def test_loss_is_the_issues_formula(name, tiny):
    """mean(½‖Θ̂−Θ‖² + ½‖X̂−X‖²), X̂ = decode(Θ̂) of the whole batch when decoder_fraction = 1."""
    kw = {"decoder_fraction": 1.0} if name == "blochnet" else {}
    model = build_model(name, FRAMES, seed=2, **kw)
    model.set_target_stats(tiny.theta)
    x, theta = tiny.x[:16], tiny.theta[:16]
    with torch.no_grad():
        loss, parts = model.loss(x, theta)
        theta_hat = model(x)
        x_hat = model.decode(theta_hat)
    expected = (0.5 * ((theta_hat - theta) ** 2).sum(-1) + 0.5 * ((x_hat - x) ** 2).sum(-1)).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(parts["x"]) > 0


def test_fit_length_truncates_fingerprints_and_trains():
    train = mrf_train("spline5")
    cut = fit_length(train, 40)
    assert cut.frames == 40 and torch.equal(cut.flip, train.flip[:40])
    x = torch.randn(3, 1120)
    assert fit_length(x, 1000).shape == (3, 1000)
    assert fit_length(x, 1120) is x
    with pytest.raises(ValueError, match="needs 1200"):
        fit_length(x, 1200)
    with pytest.raises(ValueError, match="needs 1200"):
        fit_length(train, 1200)


def test_config_rebuilds_the_model():
    for name in MODELS:
        model = build_model(name, FRAMES, seed=0, trains=("spline5", "spline11noisy"))
        again = build_model(**model.config)
        again.load_state_dict(model.state_dict())
        assert again.config == model.config


def test_seed_makes_initial_weights_reproducible():
    a = build_model("hydra", FRAMES, seed=5)
    state = torch.random.get_rng_state()
    b = build_model("hydra", FRAMES, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_bad_inputs_raise(tiny):
    model = build_model("fc", FRAMES)
    x = tiny.x[:4].clone()
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)
    with pytest.raises(ValueError, match="shape"):
        model(tiny.x[:4, :50])
    with pytest.raises(ValueError, match="unknown model"):
        build_model("lstm", FRAMES)
    with pytest.raises(TypeError, match="no decoder"):
        model.decode(torch.zeros(2, 2))
    bloch = BlochNet(FRAMES, trains=("spline5", "spline11noisy"))
    with pytest.raises(ValueError, match="out of range"):
        bloch.decode(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="frames"):
        build_model("fc", 0)
