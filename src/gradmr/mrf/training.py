"""Training and evaluating the learned MRF models (:mod:`gradmr.mrf.models`) on synthetic fingerprints.

Training set (:func:`synthetic_training_set`)
    (T1, T2) pairs drawn **log-uniformly** over the issue's ranges, T1 ≤ 5 s and T2 ≤ 2.5 s, keeping T2 < T1
    (rejection sampling: the pairs are uniform over that region of the (ln T1, ln T2) plane). Zero cannot be
    simulated (a zero relaxation time has no fingerprint), so the ranges start at the dictionary grid's lower
    bounds, T1 ≥ 10 ms and T2 ≥ 5 ms (:data:`~gradmr.mrf.dictionary.DEFAULT_T1_RANGE`, ``…T2_RANGE``): the
    networks and dictionary matching cover the same (T1, T2) region. Log-uniform rather than uniform because the
    error measure is in log scale (equal weight to equal *relative* errors) and because uniform sampling leaves
    the short T2 of brain tissue nearly empty (T2 < 100 ms is < 4 % of a uniform draw over 0–2.5 s; WM and GM
    have T2 ≈ 80 ms). ``distribution="uniform"`` gives the uniform alternative. Fingerprints are the real
    amplitudes of the fast EPG kernel (:func:`~gradmr.mrf.simulate_fingerprints`, float32), truncated to
    ``frames`` samples (:func:`~gradmr.mrf.models.fit_length`) and normalised. Samples cycle through the trains
    (sample i uses train ``i mod len(train_names)``).

Noise
    With ``snr`` set, training adds **fresh** noise to every batch of every epoch (``add_noise`` of
    :mod:`gradmr.mrf.fingerprints`: σ = rms/snr of the noise-free, truncated fingerprint, then renormalised);
    validation/test sets get one fixed, seeded draw (:meth:`MRFData.inputs`). The decoders' reconstruction target
    is the noise-free fingerprint.

Training (:func:`train_model`)
    Adam, learning rate ``lr · lr_decay**epoch`` (per-epoch exponential decay: it does not depend on the total
    number of epochs, so a run can be extended), mini-batches of a seeded permutation per epoch. A checkpoint (model,
    optimiser, epoch, both generators' states, history, settings) is written atomically after every epoch; with
    ``resume=True`` training continues from it. Per-model defaults: :data:`TRAINING_DEFAULTS`.

Metric
    :func:`log_mse` — the paper's "MSE in log scale", mean over voxels and over the two parameters of
    ``(ln T̂ − ln T)²`` — is the one defined next to dictionary matching (:func:`gradmr.mrf.dictionary.log_mse`),
    re-exported here so that networks and dictionaries are scored by the same code.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..sim.epg import DEFAULT_STATES
from .dictionary import DEFAULT_T1_RANGE, DEFAULT_T2_RANGE, log_mse
from .fingerprints import add_noise, normalise, simulate_fingerprints
from .models import BlochNet, MRFModel, fit_length
from .trains import mrf_train

__all__ = [
    "DEFAULT_FRAMES",
    "DISTRIBUTIONS",
    "T1_RANGE",
    "T2_RANGE",
    "TRAINING_DEFAULTS",
    "MRFData",
    "evaluate",
    "load_checkpoint",
    "log_mse",
    "predict",
    "sample_t1_t2",
    "synthetic_training_set",
    "train_model",
]

#: Training range of T1 [s] (the issue: 0–5000 ms; 10 ms lower bound as the dictionary grid).
T1_RANGE = DEFAULT_T1_RANGE
#: Training range of T2 [s] (the issue: 0–2500 ms; 5 ms lower bound as the dictionary grid).
T2_RANGE = DEFAULT_T2_RANGE
#: Fingerprint samples the models take (FISP's 1000 TRs; the spline trains are truncated to these).
DEFAULT_FRAMES = 1000
#: Sampling distributions of :func:`sample_t1_t2`.
DISTRIBUTIONS = ("log", "uniform")

#: Defaults of :func:`train_model` per model (epochs, batch size, learning rate, per-epoch decay). Measured on 65,536
#: noise-free FISP fingerprints (1000 frames, log-uniform T1/T2), 2 CPU threads: every model has converged by these
#: epochs (held-out synthetic log-MSE: fc 1.0e-3, rnn 6e-4, hydra 4e-3, fc-fc 1e-3, rnn-rnn 6e-4, blochnet 1.1e-3).
#: Seconds per epoch of 65,536 at batch 256 on the shared 2-core machine (load ≈ 8, so upper bounds): fc 3.5–6,
#: rnn 6–7, hydra 15–16, fc-fc 6–7, rnn-rnn 12–14, blochnet 14 (``decoder_fraction`` 1/8; 70–85 with 1).
TRAINING_DEFAULTS: dict[str, dict] = {
    "fc": {"epochs": 15, "batch_size": 256, "lr": 1e-3, "lr_decay": 0.8},
    "rnn": {"epochs": 15, "batch_size": 256, "lr": 2e-3, "lr_decay": 0.8},
    "hydra": {"epochs": 10, "batch_size": 256, "lr": 1e-3, "lr_decay": 0.7},
    "fc-fc": {"epochs": 15, "batch_size": 256, "lr": 1e-3, "lr_decay": 0.8},
    "rnn-rnn": {"epochs": 15, "batch_size": 256, "lr": 2e-3, "lr_decay": 0.8},
    "blochnet": {"epochs": 15, "batch_size": 256, "lr": 1e-3, "lr_decay": 0.8},
}
_FALLBACK = {"epochs": 15, "batch_size": 256, "lr": 1e-3, "lr_decay": 0.8}
_CHECKPOINT_FORMAT = 1


# --------------------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class MRFData:
    """Fingerprints with their targets.

    Attributes
    ----------
    x : Tensor (M, frames)
        Noise-free normalised fingerprints (float32).
    theta : Tensor (M, 2)
        Targets (ln T1, ln T2) [ln s].
    index : Tensor (M,) int64
        Train of each sample (an index into ``train_names``).
    train_names : tuple of str
        Names of :func:`~gradmr.mrf.mrf_train` in index order.
    snr : float or None
        Noise level of the inputs (see the module docs); ``None``: noise-free.
    """

    x: torch.Tensor
    theta: torch.Tensor
    index: torch.Tensor
    train_names: tuple[str, ...] = ("fisp",)
    snr: float | None = None

    def __post_init__(self) -> None:
        m = self.x.shape[0] if self.x.ndim == 2 else -1
        if self.x.ndim != 2:
            raise ValueError(f"x must have shape (M, frames), got {tuple(self.x.shape)}")
        if self.theta.shape != (m, 2):
            raise ValueError(f"theta must have shape ({m}, 2), got {tuple(self.theta.shape)}")
        if self.index.shape != (m,) or self.index.dtype != torch.int64:
            raise ValueError(f"index must be an int64 tensor of shape ({m},)")
        if not bool(torch.isfinite(self.x).all()) or not bool(torch.isfinite(self.theta).all()):
            raise ValueError("fingerprints or targets contain NaN or infinite values")
        if m and (int(self.index.min()) < 0 or int(self.index.max()) >= len(self.train_names)):
            raise ValueError(f"index must be in 0 … {len(self.train_names) - 1} (one per train name)")
        if self.snr is not None and not self.snr > 0:
            raise ValueError(f"snr must be > 0 or None, got {self.snr}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def frames(self) -> int:
        return self.x.shape[1]

    def subset(self, rows) -> MRFData:
        """The samples ``rows`` (an index tensor, a slice or a boolean mask)."""
        return dataclasses.replace(self, x=self.x[rows], theta=self.theta[rows], index=self.index[rows])

    def t1_t2(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The true (T1, T2) [s]."""
        return self.theta[:, 0].exp(), self.theta[:, 1].exp()

    def inputs(self, *, seed: int = 0) -> torch.Tensor:
        """The network inputs: ``x`` itself, or (``snr`` set) one seeded noisy draw of it, renormalised."""
        if self.snr is None:
            return self.x
        gen = torch.Generator().manual_seed(seed)
        return normalise(add_noise(self.x, self.snr, generator=gen))[0]


def _check_range(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a (low, high) pair in seconds, got {value!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi)) or not 0 < lo < hi:
        raise ValueError(f"{name} must satisfy 0 < low < high (seconds), got ({lo:g}, {hi:g})")
    if hi > 100:
        raise ValueError(f"{name} must be in seconds, got up to {hi:g}: milliseconds?")
    return lo, hi


def sample_t1_t2(
    n: int,
    *,
    t1_range=T1_RANGE,
    t2_range=T2_RANGE,
    distribution: str = "log",
    generator: torch.Generator | None = None,
    dtype=torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs (T1, T2) [s] with T2 < T1, uniform over the region in (ln T1, ln T2) (``"log"``) or in
    (T1, T2) (``"uniform"``) by rejection sampling."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
    t1_lo, t1_hi = _check_range("t1_range", t1_range)
    t2_lo, t2_hi = _check_range("t2_range", t2_range)
    if t2_lo >= t1_hi:
        raise ValueError(
            f"no (T1, T2) pair with T2 < T1: t2_range ({t2_lo:g}, {t2_hi:g}) s starts at or above the end of "
            f"t1_range ({t1_lo:g}, {t1_hi:g}) s"
        )
    if distribution == "log":
        a1, b1, a2, b2 = math.log(t1_lo), math.log(t1_hi), math.log(t2_lo), math.log(t2_hi)
    else:
        a1, b1, a2, b2 = t1_lo, t1_hi, t2_lo, t2_hi
    t1s, t2s, have = [], [], 0
    while have < n:
        want = max(1024, 2 * (n - have))
        u1 = a1 + (b1 - a1) * torch.rand(want, generator=generator, dtype=torch.float64)
        u2 = a2 + (b2 - a2) * torch.rand(want, generator=generator, dtype=torch.float64)
        if distribution == "log":
            u1, u2 = u1.exp(), u2.exp()
        keep = u2 < u1
        t1s.append(u1[keep])
        t2s.append(u2[keep])
        have += int(keep.sum())
    return torch.cat(t1s)[:n].to(dtype), torch.cat(t2s)[:n].to(dtype)


def synthetic_training_set(
    train_names: str | Sequence[str],
    n: int,
    *,
    t1_range=T1_RANGE,
    t2_range=T2_RANGE,
    distribution: str = "log",
    seed: int = 0,
    snr: float | None = None,
    frames: int = DEFAULT_FRAMES,
    train_seed: int = 0,
    n_states: int = DEFAULT_STATES,
    chunk: int = 16384,
    progress: bool = False,
) -> MRFData:
    """``n`` synthetic fingerprints of the named trains (see the module docs).

    ``seed`` draws the (T1, T2) pairs, ``train_seed`` builds the trains (:func:`~gradmr.mrf.mrf_train`), ``snr``
    is stored for training (noise is added per batch, not here). Fingerprints are simulated ``chunk`` at a time.
    """
    names = (train_names,) if isinstance(train_names, str) else tuple(train_names)
    if not names:
        raise ValueError("train_names must name at least one train")
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be > 0 or None, got {snr}")
    trains = [fit_length(mrf_train(name, seed=train_seed), frames) for name in names]
    gen = torch.Generator().manual_seed(seed)
    t1, t2 = sample_t1_t2(n, t1_range=t1_range, t2_range=t2_range, distribution=distribution, generator=gen)
    index = torch.arange(n) % len(names)
    x = torch.empty(n, frames, dtype=torch.float32)
    jobs = [(k, s) for k in range(len(names)) for s in range(0, int((index == k).sum()), chunk)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="fingerprints", unit="fp")
    for k, start in jobs:
        rows = torch.nonzero(index == k).squeeze(-1)[start : start + chunk]
        amp = simulate_fingerprints(trains[k], t1[rows].float(), t2[rows].float(), n_states=n_states, method="kernel")
        x[rows] = normalise(amp)[0]
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    theta = torch.stack([t1.log(), t2.log()], -1).float()
    return MRFData(x=x, theta=theta, index=index, train_names=names, snr=snr)


# ----------------------------------------------------------------------------------------------------------- training


def _settings(data: MRFData, batch_size: int, lr: float, lr_decay: float, seed: int) -> dict:
    return {
        "batch_size": batch_size,
        "lr": lr,
        "lr_decay": lr_decay,
        "seed": seed,
        "samples": len(data),
        "frames": data.frames,
        "snr": data.snr,
        "train_names": list(data.train_names),
        "theta_sum": float(data.theta.double().sum()),
    }


def _check_compatible(model: MRFModel, data: MRFData) -> None:
    if not isinstance(model, MRFModel):
        raise TypeError(f"model must be an MRFModel, got {type(model).__name__}")
    if data.frames != model.frames:
        raise ValueError(f"data have {data.frames} samples per fingerprint, the model takes {model.frames}")
    n_trains = len(data.train_names)
    if n_trains > model.n_trains:
        raise ValueError(
            f"data come from {n_trains} trains but the model knows {model.n_trains}: build it with "
            f"trains={data.train_names}"
        )
    if isinstance(model, BlochNet) and any(n is not None for n in model.train_names):
        names = tuple(model.train_names[:n_trains])
        if names != tuple(data.train_names):
            raise ValueError(f"BlochNet decodes with trains {model.train_names}, the data come from {data.train_names}")


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_model(
    model: MRFModel,
    data: MRFData,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    lr_decay: float | None = None,
    seed: int = 0,
    checkpoint=None,
    resume: bool = True,
    progress: bool = True,
    val: MRFData | None = None,
) -> list[dict]:
    """Train ``model`` on ``data``; returns the history, one dict per epoch (``epoch``, ``loss``, ``loss_theta``,
    [``loss_x``], ``lr``, ``seconds``, [``val_log_mse``, ``val_log_mse_t1``, ``val_log_mse_t2``]).

    Parameters
    ----------
    epochs, batch_size, lr, lr_decay
        ``None``: the model's :data:`TRAINING_DEFAULTS`. The learning rate of epoch e (from 0) is
        ``lr · lr_decay**e``.
    seed
        Seeds the batch order and the training noise (two generators, saved in the checkpoint).
    checkpoint : path, optional
        Written after every epoch. With ``resume=True`` an existing checkpoint of the same model and settings
        (everything but ``epochs``) is continued — a run of 2 epochs resumed to 4 equals 4 epochs in one go; one
        made with other settings raises. ``resume=False`` starts afresh (and overwrites it).
    progress
        tqdm bars: one over the epochs, one over the batches of the current epoch.
    val : MRFData, optional
        Scored with :func:`log_mse` after every epoch (noisy if ``val.snr`` is set: one fixed draw, seed 0).

    On a fresh start the output affine is set from the training targets (:meth:`MRFModel.set_target_stats`).
    Threads: torch's (``torch.get_num_threads()``; the EPG follows it too).
    """
    _check_compatible(model, data)
    defaults = TRAINING_DEFAULTS.get(model.name, _FALLBACK)
    epochs = defaults["epochs"] if epochs is None else epochs
    batch_size = defaults["batch_size"] if batch_size is None else batch_size
    lr = defaults["lr"] if lr is None else lr
    lr_decay = defaults["lr_decay"] if lr_decay is None else lr_decay
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an integer ≥ 0, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
    if not lr > 0 or not 0 < lr_decay <= 1:
        raise ValueError(f"need lr > 0 and 0 < lr_decay ≤ 1, got lr={lr}, lr_decay={lr_decay}")
    if len(data) == 0:
        raise ValueError("no training data")
    if val is not None:
        _check_compatible(model, val)
    settings = _settings(data, batch_size, lr, lr_decay, seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    order_gen = torch.Generator().manual_seed(2 * seed)
    noise_gen = torch.Generator().manual_seed(2 * seed + 1)
    history: list[dict] = []
    start = 0
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and resume and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a training checkpoint of this version")
        if state["model_config"] != _jsonable(model.config):
            raise ValueError(f"{path} holds model {state['model_config']}, not {_jsonable(model.config)}")
        if state["settings"] != settings:
            raise ValueError(
                f"{path} was made with other settings ({state['settings']}); delete it or pass resume=False"
            )
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        order_gen.set_state(state["rng"]["order"])
        noise_gen.set_state(state["rng"]["noise"])
        history = list(state["history"])
        start = int(state["epoch"])
    else:
        model.set_target_stats(data.theta)
    val_inputs = None if val is None else val.inputs(seed=0)

    epoch_bar = None
    if progress and start < epochs:
        from tqdm.auto import tqdm

        epoch_bar = tqdm(total=epochs, initial=start, desc=f"train {model.name}", unit="epoch")
    m = len(data)
    n_batches = math.ceil(m / batch_size)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        rate = lr * lr_decay**epoch
        for group in optimiser.param_groups:
            group["lr"] = rate
        perm = torch.randperm(m, generator=order_gen)
        model.train()
        sums: dict[str, float] = {}
        batches = range(n_batches)
        if epoch_bar is not None:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", leave=False)
        for b in batches:
            rows = perm[b * batch_size : (b + 1) * batch_size]
            clean = data.x[rows]
            inputs = clean if data.snr is None else normalise(add_noise(clean, data.snr, generator=noise_gen))[0]
            loss, parts = model.loss(inputs, data.theta[rows], data.index[rows], target=clean)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            w = len(rows)
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * w
            for key, value in parts.items():
                sums[f"loss_{key}"] = sums.get(f"loss_{key}", 0.0) + float(value) * w
            if epoch_bar is not None:
                batches.set_postfix(loss=f"{float(loss.detach()):.4g}")
        record = {"epoch": epoch + 1, "lr": rate, **{k: v / m for k, v in sums.items()}}
        if val is not None:
            t1, t2 = predict(model, val_inputs)
            per = log_mse((t1, t2), val.t1_t2(), per_parameter=True)
            record.update(val_log_mse=float(per.mean()), val_log_mse_t1=float(per[0]), val_log_mse_t2=float(per[1]))
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        if path is not None:
            _save(
                path,
                {
                    "format": _CHECKPOINT_FORMAT,
                    "model": model.state_dict(),
                    "model_config": _jsonable(model.config),
                    "optimizer": optimiser.state_dict(),
                    "epoch": epoch + 1,
                    "rng": {"order": order_gen.get_state(), "noise": noise_gen.get_state()},
                    "history": history,
                    "settings": settings,
                },
            )
        if epoch_bar is not None:
            post = {"loss": f"{record['loss']:.4g}"}
            if "val_log_mse" in record:
                post["val"] = f"{record['val_log_mse']:.4g}"
            epoch_bar.set_postfix(post)
            epoch_bar.update(1)
    if epoch_bar is not None:
        epoch_bar.close()
    model.eval()
    return history


def _jsonable(value):
    """Tuples → lists (what a checkpoint round trip gives back), recursively."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def load_checkpoint(path) -> dict:
    """A checkpoint of :func:`train_model` (``model``, ``model_config``, ``history``, … see there)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: MRFModel, x: torch.Tensor, batch_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """(T1, T2) [s] of fingerprints ``x`` (..., N ≥ frames): truncated to the model's ``frames``
    (:func:`~gradmr.mrf.models.fit_length`), normalised (so PD-scaled data work too), run in batches.
    Outputs have ``x``'s leading shape; an all-zero fingerprint gives the prediction of a zero input."""
    x = fit_length(torch.as_tensor(x), model.frames)
    lead = x.shape[:-1]
    flat = normalise(x.reshape(-1, model.frames))[0]
    was_training = model.training
    model.eval()
    try:
        out = [model(flat[i : i + batch_size]) for i in range(0, flat.shape[0], batch_size)]
    finally:
        model.train(was_training)
    theta = torch.cat(out) if out else flat.new_zeros(0, 2)
    t = theta.exp().reshape(*lead, 2)
    return t[..., 0], t[..., 1]


def evaluate(model: MRFModel, data: MRFData, *, seed: int = 0, batch_size: int = 8192) -> dict:
    """``{"log_mse", "log_mse_t1", "log_mse_t2"}`` of ``model`` on ``data`` (noisy inputs with ``seed`` if
    ``data.snr`` is set)."""
    t1, t2 = predict(model, data.inputs(seed=seed), batch_size)
    per = log_mse((t1, t2), data.t1_t2(), per_parameter=True)
    return {"log_mse": float(per.mean()), "log_mse_t1": float(per[0]), "log_mse_t2": float(per[1])}
