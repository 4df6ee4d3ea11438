"""Learned MRF models: encoders from a fingerprint to (log T1, log T2), learned decoders, and BlochNet.

Every model maps a **normalised real fingerprint** ``x`` (B, ``frames``) (:func:`~gradmr.mrf.normalise`, unit L2
norm, the real amplitude of :func:`~gradmr.mrf.simulate_fingerprints`) to ``Θ̂ = (ln T1, ln T2)`` with T in seconds,
shape (B, 2). The models with a decoder also map Θ back to a normalised fingerprint (:meth:`MRFModel.decode`).

Scaling (the same for every model)
    Inputs are multiplied by ``√frames`` (a unit-norm fingerprint then has an RMS of 1 per sample). The networks
    predict *standardised* targets ``z``; a fixed affine ``Θ̂ = μ + σ·z`` (buffers ``theta_mean``,
    ``theta_std``, set from the training targets by :meth:`MRFModel.set_target_stats`, saved in the state dict)
    maps them to log seconds, so a network at initialisation already predicts the middle of the training range,
    and the last linear layer learns the rest of the affine. Decoders see ``z`` (and a one-hot train code) as input.

Input length (:func:`fit_length`)
    A model takes exactly ``frames`` samples. A longer fingerprint (the spline trains have 1120 TRs, FISP 1000) is
    truncated to its *first* ``frames`` samples and then normalised; a shorter one is an error. BlochNet's physics
    decoder simulates the train truncated the same way: the EPG is causal (the sample of TR n depends on TRs ≤ n
    only), so simulating the first ``frames`` TRs equals simulating all and truncating, at ``frames/N`` of the cost.

Models (:data:`MODELS`, the ``--model`` names)
    ``fc``
        DRONE-like (Cohen et al., MRM 80:885, 2018): two hidden layers of 300 and a linear output. ReLU by default
        (DRONE used tanh; on 64k noise-free FISP fingerprints, 20 epochs, ReLU reached a held-out log-MSE of 8e-4,
        tanh 3e-3); ``activation="tanh"`` gives DRONE's.
    ``rnn``
        A GRU (after the recurrent MRF networks of Hoppe et al. 2019 / Oksuz et al. 2019) over the fingerprint cut
        into ``steps`` chunks of ``ceil(frames/steps)`` samples (the last zero-padded); the final hidden state
        gives Θ̂. A short sequence keeps it fast on a CPU.
    ``hydra``
        HYDRA-like (Song et al., Med Phys 46:4951, 2019): a small 1-D residual CNN (a stride-8 stem of 16 channels,
        a residual block, a stride-4 stage of 32 channels, a residual block, adaptive average pooling to 8
        positions, a two-layer head); about 0.6 M multiply-adds per fingerprint of 1000 samples (1.5× the
        ``fc``), yet ≈ 3–5× slower to train on a CPU (small 1-D convolutions run far below peak).
    ``fc-fc``, ``rnn-rnn``
        Autoencoders: the ``fc`` / ``rnn`` encoder, and a learned decoder of the same kind from Θ̂ (and the train
        code) back to the normalised fingerprint.
    ``blochnet``
        A 3-layer FC encoder (two hidden layers of 300, ReLU, and the output layer: the ``fc`` encoder, so that the
        decoder is the only difference) and the *fixed* EPG decoder
        ``normalise(simulate_fingerprints(train, exp(ln T1), exp(ln T2)))`` (:class:`BlochNet`; by default its loss
        term is estimated on 1/8 of each batch, ``decoder_fraction``).

Loss (:meth:`MRFModel.loss`; the issue's formula)
    ``mean over the batch of ½‖Θ̂ − Θ‖² (+ ½‖X̂ − X‖² for the models with a decoder)``, Θ in ln seconds and X the
    normalised fingerprint. With noisy inputs, X is the *noise-free* normalised fingerprint when the caller has it
    (``target=``): the decoder then learns the signal, not the noise.

Several trains
    Samples carry a train index (``index``, (B,) int). The learned decoders are conditioned on a one-hot code of
    it (``n_trains`` of them), BlochNet simulates each sample with its own train (grouped by train). With one
    train (``index=None``) every sample uses train 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..sim.epg import DEFAULT_STATES, FispTrain
from .fingerprints import normalise, simulate_fingerprints
from .trains import mrf_train

__all__ = [
    "BLOCHNET_DECODER_FRACTION",
    "BLOCHNET_STATES",
    "LOG_T_CLAMP",
    "MODELS",
    "BlochNet",
    "FCAutoencoder",
    "FCEncoder",
    "Hydra",
    "MRFModel",
    "RNNAutoencoder",
    "RNNEncoder",
    "build_model",
    "fit_length",
]

#: ln T [s] is clamped to this range before the physics decoder exponentiates it (0.1 ms … 100 s): keeps the EPG
#: finite early in training; the Θ term of the loss pulls predictions back into range (no gradient through the clamp).
LOG_T_CLAMP = (math.log(1e-4), math.log(100.0))

#: Fraction of each (shuffled) batch whose X term BlochNet evaluates (see :class:`BlochNet`): 1/8, so that the
#: EPG decoder costs about as much as the encoder's training step instead of ≈ 8× more.
BLOCHNET_DECODER_FRACTION = 0.125

#: EPG states of BlochNet's decoder (truncation error of the normalised FISP fingerprint ≈ 5e-4 at 64 states, see
#: :data:`gradmr.sim.epg.DEFAULT_STATES`).
BLOCHNET_STATES = DEFAULT_STATES


def fit_length(x, frames: int):
    """Truncate a fingerprint tensor ``(..., N)`` or a :class:`~gradmr.sim.epg.FispTrain` to its first ``frames``
    samples/TRs (see the module docs). ``N < frames`` raises ``ValueError``; ``N == frames`` returns ``x`` itself."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be an integer ≥ 1, got {frames!r}")
    if isinstance(x, FispTrain):
        n = x.frames
        if n < frames:
            raise ValueError(f"the train has {n} TRs, the model needs {frames}")
        if n == frames:
            return x

        def cut(t: torch.Tensor) -> torch.Tensor:
            return t[..., :frames] if t.ndim and t.shape[-1] == n else t

        return dataclasses.replace(x, flip=cut(x.flip), tr=cut(x.tr), te=cut(x.te))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor or a FispTrain, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError("a fingerprint must have shape (..., N)")
    n = x.shape[-1]
    if n < frames:
        raise ValueError(f"fingerprints have {n} samples, the model needs {frames}")
    return x if n == frames else x[..., :frames]


def _activation(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
    if name not in acts:
        raise ValueError(f"activation must be one of {tuple(acts)}, got {name!r}")
    return acts[name]()


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    return nn.Sequential(*layers)


class MRFModel(nn.Module):
    """Base class: input checks, scaling, the target affine, the loss. Subclasses implement :meth:`encode` (and
    :meth:`decode_standardised` for a learned decoder)."""

    #: the ``--model`` name
    name = ""
    #: whether :meth:`decode` exists
    has_decoder = False

    def __init__(self, frames: int, *, n_trains: int = 1, **config):
        super().__init__()
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ValueError(f"frames must be an integer ≥ 1, got {frames!r}")
        if isinstance(n_trains, bool) or not isinstance(n_trains, int) or n_trains < 1:
            raise ValueError(f"n_trains must be an integer ≥ 1, got {n_trains!r}")
        self.frames = frames
        self.n_trains = n_trains
        self._config = {"n_trains": n_trains, **config}
        self.register_buffer("theta_mean", torch.zeros(2))
        self.register_buffer("theta_std", torch.ones(2))

    @property
    def config(self) -> dict:
        """``build_model(**model.config)`` rebuilds the architecture (weights: ``load_state_dict``)."""
        return {"name": self.name, "frames": self.frames, **self._config}

    def set_target_stats(self, theta: torch.Tensor) -> None:
        """Set the output affine from training targets ``theta`` (M, 2) [ln s]: their mean and standard deviation."""
        theta = torch.as_tensor(theta).detach()
        if theta.ndim != 2 or theta.shape[-1] != 2 or theta.shape[0] < 2:
            raise ValueError(f"theta must have shape (M ≥ 2, 2), got {tuple(theta.shape)}")
        if not bool(torch.isfinite(theta).all()):
            raise ValueError("theta contains NaN or infinite values")
        self.theta_mean.copy_(theta.mean(0))
        self.theta_std.copy_(theta.std(0).clamp_min(1e-3))

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[-1] != self.frames:
            raise ValueError(
                f"x must have shape (B, {self.frames}) (normalised fingerprints; see fit_length for longer ones), "
                f"got {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x.detach()).all()):
            raise ValueError("fingerprints contain NaN or infinite values")
        dtype = self.theta_mean.dtype
        return x.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Θ̂ = (ln T1, ln T2) [ln s], shape (B, 2), of normalised fingerprints ``x`` (B, frames)."""
        x = self.check_input(x)
        z = self.encode(x * math.sqrt(self.frames))
        return self.theta_mean + self.theta_std * z

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Standardised targets (B, 2) from scaled fingerprints (B, frames)."""
        raise NotImplementedError

    def standardise(self, theta: torch.Tensor) -> torch.Tensor:
        return (theta - self.theta_mean) / self.theta_std

    def _index(self, index, batch: int, device) -> torch.Tensor:
        if index is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        index = torch.as_tensor(index, device=device)
        if index.shape != (batch,) or index.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"index must be an integer tensor of shape ({batch},), got {tuple(index.shape)}")
        index = index.long()
        if batch and (int(index.min()) < 0 or int(index.max()) >= self.n_trains):
            raise ValueError(f"train index out of range: the model knows {self.n_trains} train(s)")
        return index

    def _train_code(self, theta: torch.Tensor, index) -> torch.Tensor:
        """Decoder input: standardised Θ and, with several trains, the one-hot train code."""
        z = self.standardise(theta)
        if self.n_trains == 1:
            return z
        idx = self._index(index, theta.shape[0], theta.device)
        return torch.cat([z, F.one_hot(idx, self.n_trains).to(z.dtype)], -1)

    def decode(self, theta: torch.Tensor, index=None) -> torch.Tensor:
        """Normalised fingerprints (B, frames) of Θ (B, 2) [ln s]; ``index`` (B,): the train of each sample."""
        if not self.has_decoder:
            raise TypeError(f"model {self.name!r} has no decoder")
        if theta.ndim != 2 or theta.shape[-1] != 2:
            raise ValueError(f"theta must have shape (B, 2), got {tuple(theta.shape)}")
        out = self.decode_standardised(self._train_code(theta, index))[..., : self.frames]
        return normalise(out)[0]

    def decode_standardised(self, code: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, x: torch.Tensor, theta: torch.Tensor, index=None, target=None):
        """``(loss, {"theta": …, "x": …})``: mean over the batch of ½‖Θ̂−Θ‖² (+ ½‖X̂−X‖² with a decoder).

        ``x`` is the (possibly noisy) normalised input, ``theta`` the true (ln T1, ln T2), ``target`` the
        normalised fingerprint the decoder should reproduce (default ``x``)."""
        theta_hat = self(x)
        theta = theta.to(theta_hat.dtype)
        loss_theta = 0.5 * ((theta_hat - theta) ** 2).sum(-1).mean()
        parts = {"theta": loss_theta.detach()}
        if not self.has_decoder:
            return loss_theta, parts
        target = x if target is None else target
        k = x.shape[0]
        fraction = getattr(self, "decoder_fraction", 1.0)
        if fraction < 1.0:
            # the X term on the first ⌈fraction·B⌉ samples of the (shuffled) batch: an unbiased estimate of its mean
            k = max(1, math.ceil(fraction * k))
            theta_hat, target = theta_hat[:k], target[:k]
            index = None if index is None else index[:k]
        x_hat = self.decode(theta_hat, index)
        loss_x = 0.5 * ((x_hat - target.to(x_hat.dtype)) ** 2).sum(-1).mean()
        parts["x"] = loss_x.detach()
        return loss_theta + loss_x, parts


# ----------------------------------------------------------------------------------------------------------- models


class FCEncoder(MRFModel):
    """``fc``: DRONE-like fully connected encoder (hidden layers ``hidden``, activation ``activation``)."""

    name = "fc"

    def __init__(self, frames: int, *, hidden: Sequence[int] = (300, 300), activation: str = "relu", n_trains=1):
        super().__init__(frames, n_trains=n_trains, hidden=tuple(hidden), activation=activation)
        self.encoder = _mlp([frames, *hidden, 2], activation)

    def encode(self, x):
        return self.encoder(x)


class _GRUEncoder(nn.Module):
    def __init__(self, frames: int, steps: int, hidden: int, layers: int):
        super().__init__()
        if not 1 <= steps <= frames:
            raise ValueError(f"steps must be in 1 … frames ({frames}), got {steps}")
        self.steps = steps
        self.chunk = math.ceil(frames / steps)
        self.gru = nn.GRU(self.chunk, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x):
        pad = self.steps * self.chunk - x.shape[-1]
        if pad:
            x = F.pad(x, (0, pad))
        _, h = self.gru(x.reshape(x.shape[0], self.steps, self.chunk))
        return self.head(h[-1])


class RNNEncoder(MRFModel):
    """``rnn``: a GRU over ``steps`` chunks of the fingerprint (see the module docs)."""

    name = "rnn"

    def __init__(self, frames: int, *, steps: int = 10, hidden: int = 128, layers: int = 1, n_trains=1):
        super().__init__(frames, n_trains=n_trains, steps=steps, hidden=hidden, layers=layers)
        self.encoder = _GRUEncoder(frames, steps, hidden, layers)

    def encode(self, x):
        return self.encoder(x)


class _ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class Hydra(MRFModel):
    """``hydra``: a small 1-D residual CNN (HYDRA-like; see the module docs)."""

    name = "hydra"

    def __init__(self, frames: int, *, channels: Sequence[int] = (16, 32), pooled: int = 8, n_trains=1):
        super().__init__(frames, n_trains=n_trains, channels=tuple(channels), pooled=pooled)
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv1d(1, c1, 16, stride=8, padding=4),  # 1000 → 125 positions
            nn.ReLU(),
            _ResBlock(c1, 5),
            nn.Conv1d(c1, c2, 4, stride=4),  # → 31
            nn.ReLU(),
            _ResBlock(c2, 3),
            nn.AdaptiveAvgPool1d(pooled),
        )
        self.head = _mlp([c2 * pooled, 128, 2], "relu")

    def encode(self, x):
        return self.head(self.features(x.unsqueeze(1)).flatten(1))


class FCAutoencoder(FCEncoder):
    """``fc-fc``: the ``fc`` encoder and a learned FC decoder (mirror of the encoder) to the fingerprint."""

    name = "fc-fc"
    has_decoder = True

    def __init__(self, frames: int, *, hidden: Sequence[int] = (300, 300), activation: str = "relu", n_trains=1):
        super().__init__(frames, hidden=hidden, activation=activation, n_trains=n_trains)
        self.decoder = _mlp([2 + (n_trains if n_trains > 1 else 0), *reversed(tuple(hidden)), frames], activation)

    def decode_standardised(self, code):
        return self.decoder(code)


class RNNAutoencoder(RNNEncoder):
    """``rnn-rnn``: the ``rnn`` encoder and a GRU decoder that emits one chunk of the fingerprint per step, driven
    by the (standardised Θ, train code) input at every step."""

    name = "rnn-rnn"
    has_decoder = True

    def __init__(self, frames: int, *, steps: int = 10, hidden: int = 128, layers: int = 1, n_trains=1):
        super().__init__(frames, steps=steps, hidden=hidden, layers=layers, n_trains=n_trains)
        width = 2 + (n_trains if n_trains > 1 else 0)
        self.decoder_gru = nn.GRU(width, hidden, num_layers=layers, batch_first=True)
        self.decoder_out = nn.Linear(hidden, self.encoder.chunk)

    def decode_standardised(self, code):
        steps = self.encoder.steps
        seq, _ = self.decoder_gru(code.unsqueeze(1).expand(-1, steps, -1).contiguous())
        return self.decoder_out(seq).reshape(code.shape[0], steps * self.encoder.chunk)


class BlochNet(MRFModel):
    """``blochnet``: a 3-layer FC encoder and the fixed EPG decoder.

    ``trains``: the trains the samples come from, in train-index order — names of :func:`~gradmr.mrf.mrf_train`
    (built with ``train_seed``) or :class:`~gradmr.sim.epg.FispTrain` objects; they are truncated to ``frames``
    TRs (:func:`fit_length`). ``n_states``: EPG states of the decoder. The decoder's gradient with respect to Θ̂
    comes from the EPG's forward sensitivities (``method="sensitivities"``); without a gradient it runs the plain
    kernel.

    ``decoder_fraction``: the loss's X term is averaged over the first ``⌈fraction · B⌉`` samples of each batch
    (the Θ term over all B). Batches are random permutations, so this is an unbiased estimate of the issue's
    mean ½‖X̂ − X‖² (more variance, same expectation); the default :data:`BLOCHNET_DECODER_FRACTION` keeps the EPG
    affordable on a CPU (the sensitivities cost ≈ 1–3 µs per sample and TR at 64 states); 1.0 evaluates it on
    every sample.
    """

    name = "blochnet"
    has_decoder = True

    def __init__(
        self,
        frames: int,
        *,
        trains: Sequence[str | FispTrain] = ("fisp",),
        train_seed: int = 0,
        hidden: Sequence[int] = (300, 300),
        activation: str = "relu",
        n_states: int = BLOCHNET_STATES,
        decoder_fraction: float = BLOCHNET_DECODER_FRACTION,
        n_trains: int | None = None,
    ):
        if isinstance(trains, (str, FispTrain)):
            trains = (trains,)
        trains = tuple(trains)
        if not trains:
            raise ValueError("BlochNet needs at least one train")
        if n_trains is not None and n_trains != len(trains):
            raise ValueError(f"n_trains ({n_trains}) must equal the number of trains ({len(trains)})")
        names = tuple(t if isinstance(t, str) else None for t in trains)
        if not 0 < decoder_fraction <= 1:
            raise ValueError(f"decoder_fraction must be in (0, 1], got {decoder_fraction}")
        config = dict(
            hidden=tuple(hidden),
            activation=activation,
            n_states=n_states,
            decoder_fraction=decoder_fraction,
            train_seed=train_seed,
        )
        if all(n is not None for n in names):
            config["trains"] = names  # rebuildable from the config; FispTrain objects are not stored
        super().__init__(frames, n_trains=len(trains), **config)
        built = [mrf_train(t, seed=train_seed) if isinstance(t, str) else t for t in trains]
        self.trains = tuple(fit_length(t, frames).to(dtype=torch.float32) for t in built)
        self.train_names = names
        self.n_states = n_states
        self.decoder_fraction = float(decoder_fraction)
        self.encoder = _mlp([frames, *hidden, 2], activation)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, theta: torch.Tensor, index=None) -> torch.Tensor:
        if theta.ndim != 2 or theta.shape[-1] != 2:
            raise ValueError(f"theta must have shape (B, 2), got {tuple(theta.shape)}")
        batch = theta.shape[0]
        idx = self._index(index, batch, theta.device)
        times = torch.exp(theta.clamp(*LOG_T_CLAMP))
        grad = torch.is_grad_enabled() and times.requires_grad
        method = "sensitivities" if grad else "kernel"
        out = times.new_zeros(batch, self.frames)
        for i in torch.unique(idx).tolist():
            rows = torch.nonzero(idx == i).squeeze(-1)
            t = times.index_select(0, rows)
            train = self.trains[i].to(dtype=t.dtype)
            x = simulate_fingerprints(train, t[:, 0], t[:, 1], n_states=self.n_states, method=method)
            out = out.index_copy(0, rows, x.to(out.dtype))
        return normalise(out)[0]


#: The ``--model`` names and their classes.
MODELS: dict[str, type[MRFModel]] = {
    "fc": FCEncoder,
    "rnn": RNNEncoder,
    "hydra": Hydra,
    "fc-fc": FCAutoencoder,
    "rnn-rnn": RNNAutoencoder,
    "blochnet": BlochNet,
}


def build_model(name: str, frames: int = 1000, *, seed: int | None = None, trains=None, **kw) -> MRFModel:
    """The model ``name`` of :data:`MODELS` for fingerprints of ``frames`` samples.

    ``trains`` (names or :class:`~gradmr.sim.epg.FispTrain`, in train-index order): BlochNet's decoder trains;
    for the learned decoders only their number counts (the one-hot code); encoders ignore it. ``seed`` makes the
    initial weights reproducible without touching the global RNG. Other keywords go to the model's class.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {tuple(MODELS)}")
    cls = MODELS[name]
    if trains is not None:
        trains = (trains,) if isinstance(trains, (str, FispTrain)) else tuple(trains)
        if cls is BlochNet:
            kw["trains"] = trains
        elif "n_trains" not in kw:
            kw["n_trains"] = len(trains)
    if seed is None:
        return cls(frames, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(frames, **kw)
