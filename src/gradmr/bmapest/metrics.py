"""Evaluation of estimated tissue probability maps, as in BMapEst (Gupta et al. 2024, Table 1).

Definitions follow the paper's code (github.com/BioMedAI-UCSC/BMapEst, ``utils/get_dice_psnr.py``,
``utils/util.py``, ``utils/metrics.py``, ``train_baseline.py``):

* **Dice** of hard labels. The estimate is labelled by the arg-max tissue, and a pixel is background when every
  map is below :data:`DICE_THRESHOLD` (0.35; the paper zeroes values ``< 0.35`` and calls a pixel background
  when all maps are then zero). The reference is a crisp label image (BrainWeb's ``crisp`` volume in the paper:
  0 background, 1 CSF, 2 GM, 3 WM) or, given maps, their arg-max where any map is non-zero — how the paper
  labels its sampled training maps (``utils/generate_training_data.py``).
* **PSNR** ``10·log10(1 / MSE)`` per tissue map: the paper's ``20·log10(max_pixel / √MSE)`` with
  ``max_pixel = 1`` (:data:`DATA_RANGE`, the range of a probability).
* **SSIM** per tissue map with data range 1 (the paper uses torchmetrics' Gaussian 11 × 11, σ = 1.5 SSIM with
  ``data_range=1.0``); here :func:`gradmr.metrics.ssim`, the scikit-image definition with the same window.
* **Soft Dice** ``2 Σ a·b / (Σ a + Σ b)`` per tissue, on the maps themselves (not in the paper; threshold free).

The paper evaluates on the whole 64 × 64 slice. With ``mask=None`` this module does the same. With a brain
mask, only the brain counts:

* Dice — labels outside the mask are ignored (set to background in both);
* soft Dice — both maps are multiplied by the mask;
* PSNR — the mean squared error is the mean over the pixels of the mask;
* SSIM — both maps are multiplied by the mask and SSIM is taken over the mask's bounding box widened by the
  window radius (5 pixels, clipped to the image, at least 11 × 11), so that the SSIM average — which
  :func:`gradmr.metrics.ssim` takes over the box minus that radius — covers exactly the bounding box and no
  more of the empty background than the box holds.

All per-tissue results are dictionaries keyed by the upper-case tissue name (``"CSF"``, ``"GM"``, ``"WM"``),
values Python floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from gradmr.metrics import SSIM_SIGMA, SSIM_TRUNCATE, dice, psnr, ssim

#: Tissue order of BMapEst's maps.
TISSUES = ("csf", "gm", "wm")

#: Maps below this value do not count for the hard labels (the paper's ``pred_bkg[pred_bkg < 0.35] = 0``).
DICE_THRESHOLD = 0.35

#: Data range of a probability map, used for PSNR and SSIM (the paper's ``max_pixel = 1``, ``data_range=1.0``).
DATA_RANGE = 1.0

#: Metrics that :func:`evaluate` computes, per tissue.
METRICS = ("dice", "soft_dice", "psnr", "ssim")

#: Column titles of :func:`table_markdown`.
METRIC_TITLES = {"dice": "Dice", "soft_dice": "soft Dice", "psnr": "PSNR [dB]", "ssim": "SSIM"}

#: Decimals that :func:`table_markdown` prints per metric.
TABLE_DIGITS = {"dice": 3, "soft_dice": 3, "psnr": 2, "ssim": 3}

_SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
_SSIM_WINDOW = 2 * _SSIM_RADIUS + 1


def _maps(x, what: str) -> torch.Tensor:
    """``(tissues, y, x)`` float64 tensor; a singleton z axis ``(tissues, 1, y, x)`` is dropped."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_complex():
        raise TypeError(f"{what} must be real maps, got a complex tensor")
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 3:
        raise ValueError(f"{what} must have shape (tissues, y, x), got {tuple(t.shape)}")
    return t.detach().to(torch.float64)


def _mask(mask, shape: tuple[int, int]) -> torch.Tensor | None:
    if mask is None:
        return None
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"mask must have shape {tuple(shape)}, got {tuple(m.shape)}")
    return m.detach().to(torch.bool)


def _names(names: Sequence[str], n: int) -> tuple[str, ...]:
    names = tuple(names)
    if len(names) != n:
        raise ValueError(f"{n} maps but {len(names)} names {names}")
    return names


def _pair(estimate, truth, names) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    est, ref = _maps(estimate, "estimate"), _maps(truth, "truth")
    if est.shape != ref.shape:
        raise ValueError(f"estimate and truth must have the same shape, got {tuple(est.shape)} and {tuple(ref.shape)}")
    return est, ref, _names(names, est.shape[0])


def hard_labels(maps, *, threshold: float = DICE_THRESHOLD) -> torch.Tensor:
    """Crisp labels ``(y, x)`` (int64) of maps ``(tissues, y, x)``: ``k + 1`` for the arg-max tissue ``k``, 0 for
    background.

    A pixel is background when every map is below ``threshold`` — the paper's rule (``utils/get_dice_psnr.py``:
    values ``< 0.35`` are zeroed and a pixel whose maps are then all zero is background). ``threshold=0`` gives
    the paper's labels of its (sampled) ground-truth maps: background only where all maps are ≤ 0. Ties go to
    the first tissue. With the BMapEst order ``(csf, gm, wm)`` the labels are BrainWeb's crisp ones: 1 CSF,
    2 GM, 3 WM.
    """
    m = _maps(maps, "maps")
    peak, arg = m.amax(dim=0), m.argmax(dim=0)
    background = peak < threshold if threshold > 0 else peak <= 0
    return torch.where(background, torch.zeros_like(arg), arg + 1)


def _truth_labels(truth, shape: tuple[int, int], n: int, truth_threshold: float) -> torch.Tensor:
    t = truth if isinstance(truth, torch.Tensor) else torch.as_tensor(np.asarray(truth))
    if t.ndim == 3 and t.shape[0] == 1 and tuple(t.shape[1:]) == tuple(shape):
        t = t[0]
    if t.ndim == 2:
        if t.is_complex() or (t.is_floating_point() and not torch.equal(t, t.round())):
            raise ValueError("a 2D truth must be an integer label image (0 background, k + 1 tissue k)")
        t = t.to(torch.int64)
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"truth labels must have shape {tuple(shape)}, got {tuple(t.shape)}")
        if int(t.min()) < 0 or int(t.max()) > n:
            raise ValueError(f"truth labels must lie in 0..{n}, got {int(t.min())}..{int(t.max())}")
        return t
    ref = _maps(t, "truth")
    if ref.shape != (n, *shape):
        raise ValueError(f"truth maps must have shape {(n, *shape)}, got {tuple(ref.shape)}")
    return hard_labels(ref, threshold=truth_threshold)


def dice_scores(
    estimate,
    truth,
    *,
    threshold: float = DICE_THRESHOLD,
    truth_threshold: float = 0.0,
    mask=None,
    names: Sequence[str] = TISSUES,
) -> dict[str, float]:
    """Dice of the hard labels per tissue, ``{"CSF": …, "GM": …, "WM": …}``.

    ``estimate`` are maps ``(tissues, y, x)``, labelled by :func:`hard_labels` with ``threshold``. ``truth`` is
    either a crisp label image ``(y, x)`` (0 background, ``k + 1`` tissue ``k``: BrainWeb's crisp labels for
    ``(csf, gm, wm)``) or maps, labelled with ``truth_threshold`` (default 0: arg-max wherever any map is
    non-zero, as the paper labels its training maps). With ``mask`` only pixels inside it count. A tissue absent
    from both labellings scores 1 (:func:`gradmr.metrics.dice`; the paper's ``+1e-6`` in the denominator would
    give 0).
    """
    est = _maps(estimate, "estimate")
    n, shape = est.shape[0], tuple(est.shape[1:])
    names = _names(names, n)
    a = hard_labels(est, threshold=threshold)
    b = _truth_labels(truth, shape, n, truth_threshold)
    m = _mask(mask, shape)
    if m is not None:
        a, b = a[m], b[m]
    return {name.upper(): float(dice(a == k + 1, b == k + 1)) for k, name in enumerate(names)}


def soft_dice(estimate, truth, *, mask=None, names: Sequence[str] = TISSUES) -> dict[str, float]:
    """Soft Dice ``2 Σ a·b / (Σ a + Σ b)`` of each map with its reference (maps multiplied by ``mask`` if given)."""
    est, ref, names = _pair(estimate, truth, names)
    m = _mask(mask, tuple(est.shape[1:]))
    if m is not None:
        est, ref = est * m, ref * m
    return {name.upper(): float(dice(est[k], ref[k])) for k, name in enumerate(names)}


def psnr_scores(
    estimate, truth, *, mask=None, data_range: float = DATA_RANGE, names: Sequence[str] = TISSUES
) -> dict[str, float]:
    """PSNR ``10·log10(R² / MSE)`` [dB] of each map, R = ``data_range`` (1 for probabilities, as the paper).

    With ``mask`` the MSE is the mean over the mask's pixels. Identical maps give ``inf``.
    """
    est, ref, names = _pair(estimate, truth, names)
    m = _mask(mask, tuple(est.shape[1:]))
    if m is not None:
        if not bool(m.any()):
            raise ValueError("mask is empty")
        est, ref = est[:, m], ref[:, m]
    return {name.upper(): float(psnr(est[k], ref[k], data_range=data_range)) for k, name in enumerate(names)}


def _ssim_range(idx: torch.Tensor, n: int) -> slice:
    """Rows (or columns) ``idx`` widened by the SSIM radius, clipped to ``0..n``, at least one window wide."""
    lo = max(0, int(idx.min()) - _SSIM_RADIUS)
    hi = min(n, int(idx.max()) + 1 + _SSIM_RADIUS)
    if hi - lo < _SSIM_WINDOW:
        grow = _SSIM_WINDOW - (hi - lo)
        lo = max(0, lo - (grow + 1) // 2)
        hi = min(n, lo + _SSIM_WINDOW)
        lo = max(0, hi - _SSIM_WINDOW)
    return slice(lo, hi)


def ssim_scores(
    estimate, truth, *, mask=None, data_range: float = DATA_RANGE, names: Sequence[str] = TISSUES
) -> dict[str, float]:
    """SSIM of each map (:func:`gradmr.metrics.ssim`, data range 1 as the paper).

    With ``mask`` both maps are multiplied by the mask and cropped to its bounding box widened by the window
    radius (see the module's docstring). Maps must be at least 11 × 11.
    """
    est, ref, names = _pair(estimate, truth, names)
    ny, nx = est.shape[1:]
    m = _mask(mask, (ny, nx))
    if m is not None:
        rows, cols = torch.nonzero(m, as_tuple=True)
        if rows.numel() == 0:
            raise ValueError("mask is empty")
        box = (slice(None), _ssim_range(rows, ny), _ssim_range(cols, nx))
        est, ref = (est * m)[box], (ref * m)[box]
    values = ssim(est, ref, data_range=data_range)
    return {name.upper(): float(values[k]) for k, name in enumerate(names)}


def evaluate(
    estimate,
    truth,
    *,
    names: Sequence[str] = TISSUES,
    mask=None,
    truth_labels=None,
    threshold: float = DICE_THRESHOLD,
) -> dict[str, dict[str, float]]:
    """All metrics of an estimate ``(tissues, y, x)`` against reference maps ``truth`` (same shape).

    Returns ``{"CSF": {"dice": …, "soft_dice": …, "psnr": …, "ssim": …}, "GM": …, "WM": …}``. Dice uses the
    crisp ``truth_labels`` ``(y, x)`` when given (as the paper, which scores against BrainWeb's crisp volume),
    otherwise the labels of ``truth`` (:func:`dice_scores`). ``mask`` restricts every metric to the brain (see
    the module's docstring); ``None`` scores the whole slice, as the paper.
    """
    est, ref, names = _pair(estimate, truth, names)
    per_metric = {
        "dice": dice_scores(
            est, ref if truth_labels is None else truth_labels, threshold=threshold, mask=mask, names=names
        ),
        "soft_dice": soft_dice(est, ref, mask=mask, names=names),
        "psnr": psnr_scores(est, ref, mask=mask, names=names),
        "ssim": ssim_scores(est, ref, mask=mask, names=names),
    }
    return {name.upper(): {metric: per_metric[metric][name.upper()] for metric in METRICS} for name in names}


def _is_result(x) -> bool:
    return isinstance(x, Mapping) and len(x) > 0 and all(isinstance(v, Mapping) and "dice" in v for v in x.values())


def _format(values: list[float], digits: int) -> str:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        return "inf" if np.isposinf(arr).all() else "n/a"
    mean = float(arr.mean())
    if arr.size == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(arr.std()):.{digits}f}"


def table_markdown(
    results,
    *,
    metrics: Sequence[str] = ("dice", "psnr", "ssim"),
    digits: Mapping[str, int] | None = None,
    label: str = "Configuration",
) -> str:
    """Markdown table in the shape of the paper's Table 1: one row per configuration, columns metric × tissue.

    ``results`` is ``{configuration: result or [result, …]}`` with ``result`` what :func:`evaluate` returns
    (a list holds one result per subject), a list of results (one row, ``"all"``), or one result. Cells are
    ``mean ± std`` over the list (population standard deviation, ``np.std``, as ``train_baseline.py``), or the
    value alone for a single result; a metric that is infinite for every entry (PSNR of identical maps) prints
    ``inf``, one infinite for only some ``n/a``. Tissues are those of the first result, in its order.
    """
    if _is_result(results):
        rows: dict[str, list] = {"all": [results]}
    elif isinstance(results, Mapping):
        rows = {str(k): [v] if _is_result(v) else list(v) for k, v in results.items()}
    else:
        rows = {"all": list(results)}
    if not rows or any(len(v) == 0 for v in rows.values()):
        raise ValueError("table_markdown needs at least one result per configuration")
    for key, entries in rows.items():
        for entry in entries:
            if not _is_result(entry):
                raise TypeError(f"configuration {key!r}: entries must be results of evaluate(), got {type(entry)}")
    digits = {**TABLE_DIGITS, **(digits or {})}
    tissues = list(next(iter(rows.values()))[0])
    unknown = [m for m in metrics if m not in METRIC_TITLES]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRIC_TITLES)}")
    header = [label] + [f"{METRIC_TITLES[m]} {t}" for m in metrics for t in tissues]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    for key, entries in rows.items():
        cells = [key]
        for m in metrics:
            for t in tissues:
                try:
                    values = [float(entry[t][m]) for entry in entries]
                except KeyError as err:
                    raise KeyError(f"configuration {key!r} lacks {t}/{m}") from err
                cells.append(_format(values, digits[m]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "DATA_RANGE",
    "DICE_THRESHOLD",
    "METRICS",
    "TISSUES",
    "dice_scores",
    "evaluate",
    "hard_labels",
    "psnr_scores",
    "soft_dice",
    "ssim_scores",
    "table_markdown",
]
