"""The two baselines BMapEst is compared with: fuzzy c-means clustering and a supervised U-Net.

Fuzzy c-means (Bezdek 1981)
    :func:`fuzzy_c_means` clusters the intensities (or intensity vectors of several contrasts) of the pixels in a
    brain mask and returns the memberships as tissue maps, the clusters named by the order of their centres'
    intensities in a given contrast (T1w: CSF < GM < WM; T2w and PDw: WM < GM < CSF). ``bias_corrected=True``
    adds a smooth multiplicative bias field ``b`` to the model, ``y_i ≈ b_i · v_k`` — the objective of the
    bias-corrected FCM of Ahmed et al. (IEEE TMI 21:193, 2002) without its neighbourhood term, with the field
    constrained to a low-order polynomial in place of the smoothness penalty of Pham & Prince (IEEE TMI 18:737,
    1999). The objective ``J = Σ_i Σ_k u_ik^m (y_i − b_i v_k)²`` is minimised by alternating the closed-form
    updates of memberships, centres (``v_k = Σ u^m b y / Σ u^m b²``) and field; for the field, ``J`` is, per
    pixel, ``w_i (b_i − b̂_i)² + const`` with ``w_i = Σ_k u_ik^m v_k²`` and ``b̂_i = y_i Σ_k u_ik^m v_k / w_i``,
    so the best polynomial field is the weighted least-squares fit of ``b̂`` with weights ``w`` — exact, no step
    size. The field is scaled to mean 1 in the mask (the centres take the inverse scale).

Supervised U-Net (the paper's protocol: ``train_baseline.py``, ``src/archs/unet.py``, ``src/dataset.py``,
``utils/generate_training_data.py`` of github.com/BioMedAI-UCSC/BMapEst)
    * Network: the U-Net of Buda et al. (two 3 × 3 convolutions without bias + batch norm + ReLU per level, max
      pooling, transposed-convolution upsampling, skip connections, 1 × 1 output convolution) with a sigmoid per
      output map. The paper's has 4 levels and 32 base features; :class:`UNet` defaults to a smaller 3 levels and
      16 features (64 × 64 images, CPU). ``activation="softmax"`` makes the maps sum to 1 instead (not the
      paper's: it cannot leave background pixels empty — with the paper's 0.35 threshold they come out as
      background only because the 1/3 each that the MSE drives them to is below it).
    * Input: the magnitude images of all contrasts stacked as channels (the paper: 4 contrasts × number of
      sequences), unnormalised.
    * Loss: the mean squared error between predicted and true maps; Adam with PyTorch's defaults (lr 1e-3);
      batch size 32; the paper trains 500 epochs and keeps the epoch with the best test PSNR.
    * Training data: the paper takes the ten odd-numbered BrainWeb subjects of its list, computes the pixel-wise
      mean and standard deviation of each tissue map over them, and draws 500 sets of maps from the independent
      pixel-wise normal distributions ``N(mean, std)`` (each tissue separately, no clipping, no renormalisation),
      then simulates the images of each set with the same sequences. :func:`sample_training_maps` draws the maps,
      :func:`augment_subject` also simulates them with a caller's function. The paper draws at BrainWeb's
      0.5 mm grid (432 × 432) and area-averages to 64 × 64, which divides the per-pixel standard deviation by
      about 432/64 = 6.75 (a mean of ~45 independent draws); ``std_scale=64/432`` mimics that when the statistics
      come from maps at the working resolution. ``clip=True`` (default) clips draws to [0, 1] and rescales voxels
      whose sum exceeds 1, so that they are valid :class:`~gradmr.phantom.TissueFractions`; ``clip=False`` is the
      paper's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .metrics import TISSUES

#: Tissue names in ascending order of intensity, per contrast.
INTENSITY_ORDERS = {
    "T1w": ("csf", "gm", "wm"),
    "T2w": ("wm", "gm", "csf"),
    "PDw": ("wm", "gm", "csf"),
}

#: Smallest squared distance in the membership update (a pixel exactly on a centre).
_TINY = 1e-300

#: Lower bound of the bias field (the polynomial may dip towards 0 where the mask has few pixels).
BIAS_FLOOR = 0.05


# ----------------------------------------------------------------------------------------------- fuzzy c-means


def _as_float64(x, what: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex():
        raise TypeError(f"{what} must be real (take .abs() of complex images)")
    return t.detach().to(torch.float64)


def _float_dtype(x, default: torch.dtype) -> torch.dtype:
    """The floating dtype of a tensor or array (float16 → float32), ``default`` for integer input."""
    dt = x.dtype if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)[..., :0]).dtype
    if not dt.is_floating_point:
        return default
    return torch.float32 if dt in (torch.float16, torch.bfloat16) else dt


def _poly_basis(ny: int, nx: int, degree: int) -> torch.Tensor:
    """Monomials ``x^i y^j`` (``i + j ≤ degree``) on ``[-1, 1]²``, shape ``(terms, ny, nx)``."""
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, ny, dtype=torch.float64), torch.linspace(-1, 1, nx, dtype=torch.float64), indexing="ij"
    )
    return torch.stack([xx**i * yy**j for i in range(degree + 1) for j in range(degree + 1 - i)])


def _memberships(d2: torch.Tensor, m: float) -> torch.Tensor:
    """``u_ik = 1 / Σ_j (d_ik² / d_jk²)^(1/(m−1))``, computed as a softmax of ``−log(d²)/(m−1)``."""
    return torch.softmax(-torch.log(d2.clamp_min(_TINY)) / (m - 1.0), dim=1)


def fuzzy_c_means(
    image,
    *,
    mask,
    n_clusters: int = 3,
    m: float = 2.0,
    iterations: int = 300,
    tol: float = 1e-6,
    seed: int | None = None,
    order: str | Sequence[str] = "T1w",
    names: Sequence[str] = TISSUES,
    init: str = "quantile",
    order_channel: int = 0,
    bias_corrected: bool = False,
    bias_degree: int = 2,
    return_info: bool = False,
):
    """Fuzzy c-means tissue maps ``(len(names), y, x)`` of ``image`` ``(y, x)`` (or ``(contrasts, y, x)``).

    Parameters
    ----------
    image : real array ``(y, x)`` or ``(contrasts, y, x)`` (several contrasts: Euclidean distance of vectors).
    mask : bool ``(y, x)`` — pixels to cluster (the brain); ``None`` clusters every pixel. Outside it maps are 0.
    n_clusters, m : number of clusters and fuzziness exponent (> 1).
    iterations, tol : at most ``iterations`` updates; stop when no membership changes by more than ``tol``.
    seed : seed of the random initial memberships (``init="random"``); unused by ``init="quantile"``, which
        starts from the means of ``n_clusters`` equally populated intensity bins (deterministic).
    order : ``"T1w"``, ``"T2w"``, ``"PDw"`` (:data:`INTENSITY_ORDERS`) or tissue names in ascending order of the
        centres' intensity in channel ``order_channel``; one name per cluster.
    names : tissues to return, in this order (each must be in ``order``; a cluster named otherwise, e.g.
        ``"background"``, is dropped).
    bias_corrected, bias_degree : fit a multiplicative polynomial bias field of this total degree alongside
        (single-channel images only; see the module).
    return_info : also return a dict with ``centres`` ``(n_clusters, contrasts)`` in ascending order,
        ``order`` (their names), ``bias`` ``(y, x)`` (ones without correction), ``iterations``, ``objective``.

    The maps are in the input's floating dtype (float64 for integer input); in the mask they sum to 1 when
    ``names`` covers every cluster.
    """
    x = _as_float64(image, "image")
    out_dtype = _float_dtype(image, torch.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"image must have shape (y, x) or (contrasts, y, x), got {tuple(x.shape)}")
    n_ch, ny, nx = x.shape
    if mask is None:
        msk = torch.ones(ny, nx, dtype=torch.bool)
    else:
        msk = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
        if tuple(msk.shape) != (ny, nx):
            raise ValueError(f"mask must have shape {(ny, nx)}, got {tuple(msk.shape)}")
        msk = msk.detach().to(torch.bool)
    order_names = INTENSITY_ORDERS[order] if isinstance(order, str) and order in INTENSITY_ORDERS else order
    if isinstance(order_names, str):
        raise ValueError(f"unknown order {order!r}; known: {list(INTENSITY_ORDERS)} or a sequence of names")
    order_names = tuple(order_names)
    if n_clusters < 2 or len(order_names) != n_clusters:
        raise ValueError(f"need n_clusters ≥ 2 and one name per cluster, got {n_clusters} and {order_names}")
    names = tuple(names)
    missing = [n for n in names if n not in order_names]
    if missing:
        raise ValueError(f"names {missing} are not in the intensity order {order_names}")
    if not m > 1:
        raise ValueError(f"m must be > 1, got {m}")
    if not 0 <= order_channel < n_ch:
        raise ValueError(f"order_channel {order_channel} out of range for {n_ch} channels")
    if bias_corrected and n_ch != 1:
        raise ValueError("bias correction is implemented for single-channel images only")
    if init not in ("quantile", "random"):
        raise ValueError(f"init must be 'quantile' or 'random', got {init!r}")

    X = x[:, msk].T  # (P, C)
    P = X.shape[0]
    if P < n_clusters:
        raise ValueError(f"the mask holds {P} pixels, fewer than {n_clusters} clusters")

    if init == "quantile":
        sorted_idx = torch.argsort(X[:, order_channel])
        v = torch.stack([X[chunk].mean(dim=0) for chunk in torch.tensor_split(sorted_idx, n_clusters)])
    else:
        g = torch.Generator().manual_seed(0 if seed is None else int(seed))
        u0 = -torch.log(torch.rand(P, n_clusters, generator=g, dtype=torch.float64))
        u0 = u0 / u0.sum(dim=1, keepdim=True)
        um0 = u0**m
        v = um0.T @ X / um0.sum(dim=0)[:, None]

    b = torch.ones(P, dtype=torch.float64)
    if bias_corrected:
        basis_img = _poly_basis(ny, nx, bias_degree)
        basis = basis_img[:, msk].T  # (P, terms)
    y = X[:, 0]

    def sq_dist(v: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((X[:, None, :] - b[:, None, None] * v[None]) ** 2).sum(dim=-1)

    u = None
    done = 0
    for step in range(1, iterations + 1):
        done = step
        u_new = _memberships(sq_dist(v, b), m)
        um = u_new**m
        if bias_corrected:
            v = (um * b[:, None]).T @ X / (um * b[:, None] ** 2).sum(dim=0)[:, None]
            vk = v[:, 0]
            w = um @ vk**2
            b_hat = y * (um @ vk) / w.clamp_min(_TINY)
            sw = w.sqrt()[:, None]
            coef = torch.linalg.lstsq(sw * basis, sw[:, 0:1] * b_hat[:, None]).solution
            b = (basis @ coef)[:, 0]
            scale = b.mean()
            b = (b / scale).clamp_min(BIAS_FLOOR)
            v = v * scale
        else:
            v = um.T @ X / um.sum(dim=0)[:, None]
        converged = u is not None and float((u_new - u).abs().max()) < tol
        u = u_new
        if converged:
            break
    d2 = sq_dist(v, b)
    u = _memberships(d2, m)
    objective = float((u**m * d2).sum())

    rank = torch.argsort(v[:, order_channel])  # rank[r] = cluster with the r-th lowest centre
    maps = torch.zeros(len(names), ny, nx, dtype=torch.float64)
    for i, name in enumerate(names):
        maps[i, msk] = u[:, rank[order_names.index(name)]]
    maps = maps.to(out_dtype)
    if not return_info:
        return maps
    if bias_corrected:
        bias = torch.einsum("t,tyx->yx", coef[:, 0], basis_img) / scale
        bias = bias.clamp_min(BIAS_FLOOR)
    else:
        bias = torch.ones(ny, nx, dtype=torch.float64)
    info = {
        "centres": v[rank].to(out_dtype),
        "order": order_names,
        "bias": bias.to(out_dtype),
        "iterations": done,
        "objective": objective,
    }
    return maps, info


# ------------------------------------------------------------------------------------------------------ U-Net


def _block(in_channels: int, features: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, features, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(features),
        nn.ReLU(inplace=True),
        nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(features),
        nn.ReLU(inplace=True),
    )


ACTIVATIONS = ("sigmoid", "softmax")


class UNet(nn.Module):
    """Small U-Net (Buda et al. layout, as the paper's ``src/archs/unet.py``) from images to tissue maps.

    ``depth`` poolings, ``base · 2^level`` features per level, bottleneck ``base · 2^depth``. Input
    ``(batch, in_channels, y, x)`` of any size (zero-padded to a multiple of ``2^depth`` and cropped back), output
    ``(batch, out_channels, y, x)`` through a sigmoid (the paper's) or a softmax over the maps.
    ``train_losses`` holds the mean training loss per epoch after :func:`train_unet`.
    """

    def __init__(
        self, in_channels: int, out_channels: int = 3, base: int = 16, depth: int = 3, activation: str = "sigmoid"
    ):
        super().__init__()
        if depth < 1 or base < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError("in_channels, out_channels, base and depth must be ≥ 1")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.depth = depth
        self.activation = activation
        feats = [base * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList(
            [_block(in_channels if lv == 0 else feats[lv - 1], feats[lv]) for lv in range(depth)]
        )
        self.bottleneck = _block(feats[depth - 1], feats[depth])
        self.upconvs = nn.ModuleList(
            [nn.ConvTranspose2d(feats[lv + 1], feats[lv], kernel_size=2, stride=2) for lv in reversed(range(depth))]
        )
        self.decoders = nn.ModuleList([_block(2 * feats[lv], feats[lv]) for lv in reversed(range(depth))])
        self.head = nn.Conv2d(feats[0], out_channels, kernel_size=1)
        self.train_losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ny, nx = x.shape[-2:]
        mult = 2**self.depth
        pad_y, pad_x = (-ny) % mult, (-nx) % mult
        if pad_y or pad_x:
            x = F.pad(x, (0, pad_x, 0, pad_y))
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.upconvs, self.decoders, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        x = self.head(x)[..., :ny, :nx]
        return torch.sigmoid(x) if self.activation == "sigmoid" else torch.softmax(x, dim=1)


def _stack(images, what: str) -> torch.Tensor:
    t = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    t = t.detach()
    if t.is_complex():
        t = t.abs()
    if t.ndim != 4:
        raise ValueError(f"{what} must have shape (N, channels, y, x), got {tuple(t.shape)}")
    return t.to(torch.float32)


def train_unet(
    train_images,
    train_maps,
    *,
    epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
    base: int = 16,
    depth: int = 3,
    activation: str = "sigmoid",
    model: UNet | None = None,
) -> UNet:
    """Train a :class:`UNet` on ``train_images`` ``(N, C, y, x)`` (magnitudes taken if complex) against
    ``train_maps`` ``(N, tissues, y, x)`` with the paper's MSE loss and Adam (``lr``), shuffled mini-batches of
    ``batch_size`` (the last one may be smaller). ``seed`` fixes the initial weights (unless ``model`` is given:
    training continues from it) and the shuffling, without touching the global RNG. Returns the model in eval
    mode; its ``train_losses`` gain one mean loss per epoch.
    """
    xs, ys = _stack(train_images, "train_images"), _stack(train_maps, "train_maps")
    if xs.shape[0] != ys.shape[0] or xs.shape[-2:] != ys.shape[-2:]:
        raise ValueError(f"images {tuple(xs.shape)} and maps {tuple(ys.shape)} do not match")
    if epochs < 0 or batch_size < 1:
        raise ValueError("epochs must be ≥ 0 and batch_size ≥ 1")
    n = xs.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model is None:
            model = UNet(xs.shape[1], ys.shape[1], base=base, depth=depth, activation=activation)
        elif model.head.out_channels != ys.shape[1]:
            raise ValueError(f"model gives {model.head.out_channels} maps, the targets have {ys.shape[1]}")
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        steps = range(epochs)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(steps, desc="U-Net", unit="epoch")
            steps = bar
        for _ in steps:
            perm = torch.randperm(n, generator=g)
            total = 0.0
            for idx in torch.split(perm, batch_size):
                opt.zero_grad()
                loss = torch.mean((model(xs[idx]) - ys[idx]) ** 2)
                loss.backward()
                opt.step()
                total += loss.item() * idx.numel()
            model.train_losses.append(total / n)
            if bar is not None:
                bar.set_postfix(loss=f"{total / n:.3g}")
    model.eval()
    return model


def predict_unet(model: UNet, images, *, batch_size: int = 64) -> torch.Tensor:
    """Maps ``(N, tissues, y, x)`` predicted from ``images`` ``(N, C, y, x)``, or ``(tissues, y, x)`` from one
    image stack ``(C, y, x)`` (magnitudes of complex images; eval mode, no gradient)."""
    t = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    single = t.ndim == 3
    xs = _stack(t[None] if single else t, "images")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = torch.cat([model(chunk) for chunk in torch.split(xs, batch_size)])
    finally:
        model.train(was_training)
    return out[0] if single else out


# ------------------------------------------------------------------------------------------ training data


def sample_training_maps(
    fractions,
    *,
    n: int = 500,
    sigma=None,
    std_scale: float = 1.0,
    seed: int | torch.Generator | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """Tissue maps ``(n, tissues, y, x)`` drawn from pixel-wise normal distributions, as the paper's training set.

    ``fractions`` ``(subjects, tissues, y, x)`` with at least two subjects: mean and standard deviation
    (population, ``np.std``) per pixel and tissue over the subjects — the paper's recipe. Or one subject
    ``(tissues, y, x)`` as the mean with ``sigma`` (a number or an array broadcastable to it) as the standard
    deviation; ``sigma`` also overrides the subjects' spread. The deviation is multiplied by ``std_scale`` (see
    the module on the paper's 432 → 64 area averaging). Every pixel and tissue is drawn independently. ``clip``
    clips to [0, 1] and rescales pixels whose sum exceeds 1 (``False``: the paper's raw draws).
    """
    f = _as_float64(fractions, "fractions")
    if f.ndim == 4:
        if f.shape[0] < 2 and sigma is None:
            raise ValueError("one subject needs sigma; give several subjects for the pixel-wise spread")
        mean = f.mean(dim=0)
        std = f.std(dim=0, correction=0)
    elif f.ndim == 3:
        if sigma is None:
            raise ValueError("one subject (tissues, y, x) needs sigma")
        mean, std = f, None
    else:
        raise ValueError(
            f"fractions must have shape (subjects, tissues, y, x) or (tissues, y, x), got {tuple(f.shape)}"
        )
    if sigma is not None:
        std = torch.broadcast_to(_as_float64(sigma, "sigma"), mean.shape)
    if bool((std < 0).any()) or std_scale < 0:
        raise ValueError("standard deviations must be ≥ 0")
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    g = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(0 if seed is None else int(seed))
    draws = mean + std_scale * std * torch.randn((n, *mean.shape), generator=g, dtype=torch.float64)
    if clip:
        draws = draws.clamp(0.0, 1.0)
        total = draws.sum(dim=1, keepdim=True)
        draws = torch.where(total > 1, draws / total.clamp_min(1.0), draws)
    return draws.to(_float_dtype(fractions, torch.float32))


def augment_subject(
    fractions,
    simulate: Callable[[torch.Tensor], torch.Tensor],
    *,
    n: int = 500,
    sigma=None,
    std_scale: float = 1.0,
    seed: int | torch.Generator | None = None,
    clip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pairs for the U-Net: ``(images (n, C, y, x), maps (n, tissues, y, x))``.

    The maps come from :func:`sample_training_maps` (same arguments); ``simulate`` turns one set of maps
    ``(tissues, y, x)`` into the image stack ``(C, y, x)`` of the protocol (the caller's simulator and
    reconstruction; the paper simulates the 4 contrasts of each sequence with MR-zero and keeps magnitudes).
    Simulated without gradient; complex images are returned as they come.
    """
    maps = sample_training_maps(fractions, n=n, sigma=sigma, std_scale=std_scale, seed=seed, clip=clip)
    with torch.no_grad():
        images = torch.stack([torch.as_tensor(simulate(mp)) for mp in maps])
    if images.ndim != 4 or images.shape[0] != n:
        raise ValueError(f"simulate must return (C, y, x) per map set, got a stack of {tuple(images.shape)}")
    return images, maps


__all__ = [
    "INTENSITY_ORDERS",
    "UNet",
    "augment_subject",
    "fuzzy_c_means",
    "predict_unet",
    "sample_training_maps",
    "train_unet",
]
