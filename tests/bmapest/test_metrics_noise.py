"""BMapEst evaluation metrics against hand-computed values, and measurement noise against its statistics."""

import math

import numpy as np
import pytest
import torch

from gradmr.bmapest.metrics import (
    DICE_THRESHOLD,
    dice_scores,
    evaluate,
    hard_labels,
    psnr_scores,
    soft_dice,
    ssim_scores,
    table_markdown,
)
from gradmr.bmapest.noise import add_noise, noise_sigma

#: Sums and ratios of a few float64 numbers.
EXACT = 1e-12
#: The Dice of gradmr.metrics.dice is computed in float32 for boolean masks.
FLOAT32 = 1e-6


def one_hot(labels: torch.Tensor, n: int = 3) -> torch.Tensor:
    """Maps (n, y, x) that are 1 for tissue k where labels == k + 1."""
    return torch.stack([(labels == k + 1).to(torch.float64) for k in range(n)])


# ---------------------------------------------------------------------------------------------- hard labels


def test_hard_labels_threshold_and_ties():
    maps = torch.zeros(3, 1, 5, dtype=torch.float64)
    maps[:, 0, 0] = torch.tensor([0.34, 0.33, 0.33])  # every map below 0.35: background
    maps[:, 0, 1] = torch.tensor([0.2, 0.36, 0.3])  # GM
    maps[:, 0, 2] = torch.tensor([0.0, 0.0, DICE_THRESHOLD], dtype=torch.float64)  # at the threshold counts: WM
    maps[:, 0, 3] = torch.tensor([0.5, 0.5, 0.0])  # tie: the first tissue
    # column 4: all zero, background
    assert hard_labels(maps).tolist() == [[0, 2, 3, 1, 0]]
    # threshold 0: background only where every map is zero (the paper's labels of its training maps)
    assert hard_labels(maps, threshold=0.0).tolist() == [[1, 2, 3, 1, 0]]
    assert hard_labels(maps, threshold=0.6).tolist() == [[0, 0, 0, 0, 0]]
    assert hard_labels(maps).dtype == torch.int64


# --------------------------------------------------------------------------------------------------- Dice


def test_dice_two_thirds_by_construction():
    # truth: CSF in the top two rows (8 pixels), GM in row 2, WM in row 3
    truth = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]])
    # estimate: CSF in 4 of the 8 truth CSF pixels; those 4 others become GM
    est_labels = torch.tensor([[1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2], [3, 3, 3, 3]])
    est = one_hot(est_labels) * 0.9
    scores = dice_scores(est, truth)
    assert set(scores) == {"CSF", "GM", "WM"}
    assert abs(scores["CSF"] - 2 * 4 / (8 + 4)) < FLOAT32  # 2/3
    assert abs(scores["GM"] - 2 * 4 / (4 + 8)) < FLOAT32  # 2/3
    assert abs(scores["WM"] - 1.0) < FLOAT32
    # truth given as maps instead of labels: same result
    assert dice_scores(est, one_hot(truth)) == scores


def test_dice_threshold_turns_weak_pixels_to_background():
    truth = torch.tensor([[1, 1], [2, 3]])
    est = one_hot(truth)
    est[:, 0, 1] = torch.tensor([0.3, 0.2, 0.1])  # a weak CSF pixel: background at 0.35, CSF at 0.25
    strict = dice_scores(est, truth)
    assert abs(strict["CSF"] - 2 * 1 / (2 + 1)) < FLOAT32
    assert abs(dice_scores(est, truth, threshold=0.25)["CSF"] - 1.0) < FLOAT32


def test_dice_mask_ignores_outside():
    truth = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [3, 3, 3, 3]])
    est_labels = truth.clone()
    est_labels[3] = 1  # wrong only in the last row
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[3] = False
    masked = dice_scores(one_hot(est_labels), truth, mask=mask)
    assert all(abs(v - 1.0) < FLOAT32 for v in masked.values())
    full = dice_scores(one_hot(est_labels), truth)
    assert abs(full["CSF"] - 2 * 4 / (4 + 8)) < FLOAT32
    assert abs(full["WM"] - 2 * 4 / (4 + 8)) < FLOAT32


def test_dice_absent_tissue_scores_one():
    truth = torch.ones(3, 3, dtype=torch.int64)  # CSF only
    scores = dice_scores(one_hot(truth), truth)
    assert scores == {"CSF": 1.0, "GM": 1.0, "WM": 1.0}


def test_soft_dice_hand_computed():
    a = torch.zeros(3, 1, 2, dtype=torch.float64)
    b = torch.zeros(3, 1, 2, dtype=torch.float64)
    a[0, 0] = torch.tensor([1.0, 0.5])
    b[0, 0] = torch.tensor([1.0, 1.0])
    a[1, 0] = torch.tensor([0.25, 0.0])
    b[1, 0] = torch.tensor([0.0, 0.75])
    s = soft_dice(a, b)
    assert abs(s["CSF"] - 2 * 1.5 / (1.5 + 2.0)) < EXACT
    assert abs(s["GM"] - 0.0) < EXACT
    assert abs(s["WM"] - 1.0) < EXACT  # both empty
    # masking out the second pixel leaves CSF identical
    assert abs(soft_dice(a, b, mask=torch.tensor([[True, False]]))["CSF"] - 1.0) < EXACT


# ------------------------------------------------------------------------------------------------ PSNR, SSIM


def test_psnr_of_known_mse_and_mask():
    truth = torch.zeros(3, 4, 4, dtype=torch.float64)
    est = torch.full((3, 4, 4), 0.1, dtype=torch.float64)  # MSE 0.01 → 20 dB with data range 1
    assert all(abs(v - 20.0) < EXACT for v in psnr_scores(est, truth).values())
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True
    est[:, 2:] = 0.3  # outside the mask: error 0.3
    masked = psnr_scores(est, truth, mask=mask)
    assert all(abs(v - 20.0) < EXACT for v in masked.values())
    mse_all = (8 * 0.01 + 8 * 0.09) / 16
    assert abs(psnr_scores(est, truth)["GM"] - 10 * math.log10(1 / mse_all)) < EXACT
    assert math.isinf(psnr_scores(truth, truth)["WM"])


def test_ssim_identical_and_masked():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(3, 24, 24, generator=g, dtype=torch.float64)
    assert all(abs(v - 1.0) < EXACT for v in ssim_scores(truth, truth).values())
    mask = torch.zeros(24, 24, dtype=torch.bool)
    mask[6:18, 5:20] = True
    est = truth.clone()
    est[:, ~mask] = torch.rand(int((~mask).sum()), generator=g, dtype=torch.float64)  # differ only outside
    assert all(v < 0.9 for v in ssim_scores(est, truth).values())
    assert all(abs(v - 1.0) < EXACT for v in ssim_scores(est, truth, mask=mask).values())
    # a mask smaller than the window still gives a valid (≥ 11 × 11) box, also in a corner
    corner = torch.zeros(24, 24, dtype=torch.bool)
    corner[0:2, 22:24] = True
    assert all(abs(v - 1.0) < EXACT for v in ssim_scores(truth, truth, mask=corner).values())
    # …and sees the 4 differing corner pixels (their share of an 11 × 11 box lowers SSIM by ~1e-3 to 1e-2)
    assert all(v < 0.9995 for v in ssim_scores(est, truth, mask=corner).values())
    worse = truth.clone()
    worse[:, mask] = 0.0
    assert all(v < 0.9 for v in ssim_scores(worse, truth, mask=mask).values())


# -------------------------------------------------------------------------------------------- evaluate, table


def test_evaluate_structure_and_truth_labels():
    truth_labels = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3], [0, 0, 0, 0]]).repeat(3, 3)
    truth = one_hot(truth_labels)
    result = evaluate(truth, truth)
    assert list(result) == ["CSF", "GM", "WM"]
    for tissue in result.values():
        assert list(tissue) == ["dice", "soft_dice", "psnr", "ssim"]
        assert abs(tissue["dice"] - 1.0) < FLOAT32
        assert abs(tissue["soft_dice"] - 1.0) < EXACT
        assert math.isinf(tissue["psnr"])
        assert abs(tissue["ssim"] - 1.0) < EXACT
    # Dice against other crisp labels: GM labels moved to WM → GM Dice 0
    other = truth_labels.clone()
    other[other == 2] = 3
    assert evaluate(truth, truth, truth_labels=other)["GM"]["dice"] == 0.0
    # a singleton z axis (TissueFractions layout) is accepted
    assert evaluate(truth[:, None], truth[:, None])["WM"]["soft_dice"] == result["WM"]["soft_dice"]


def _result(dice, psnr, ssim):
    return {t: {"dice": dice, "soft_dice": dice, "psnr": psnr, "ssim": ssim} for t in ("CSF", "GM", "WM")}


def test_table_markdown_mean_and_std():
    table = table_markdown(
        {"U-Net": [_result(0.8, 20.0, 0.9), _result(0.9, 22.0, 0.7)], "FCM": _result(0.5, 15.0, 0.6)}
    )
    lines = table.strip().split("\n")
    assert lines[0] == (
        "| Configuration | Dice CSF | Dice GM | Dice WM | PSNR [dB] CSF | PSNR [dB] GM | PSNR [dB] WM"
        " | SSIM CSF | SSIM GM | SSIM WM |"
    )
    assert lines[1].startswith("|---|:---:|")
    # mean ± population std: (0.8, 0.9) → 0.85 ± 0.05; (20, 22) → 21 ± 1; (0.9, 0.7) → 0.8 ± 0.1
    assert lines[2] == (
        "| U-Net | 0.850 ± 0.050 | 0.850 ± 0.050 | 0.850 ± 0.050 | 21.00 ± 1.00 | 21.00 ± 1.00 | 21.00 ± 1.00"
        " | 0.800 ± 0.100 | 0.800 ± 0.100 | 0.800 ± 0.100 |"
    )
    assert lines[3].startswith("| FCM | 0.500 | 0.500 | 0.500 | 15.00 |")
    assert len(lines) == 4
    # one result or a plain list make one row
    assert table_markdown(_result(1.0, math.inf, 1.0)).split("\n")[2].startswith("| all | 1.000 | 1.000 | 1.000 | inf")
    assert "soft Dice CSF" in table_markdown([_result(0.5, 1.0, 0.5)], metrics=("soft_dice",))
    with pytest.raises(ValueError, match="at least one"):
        table_markdown({"empty": []})
    with pytest.raises(ValueError, match="unknown metrics"):
        table_markdown(_result(0.5, 1.0, 0.5), metrics=("nrmse",))


# ----------------------------------------------------------------------------------------------------- errors


def test_metric_shape_errors():
    maps = torch.zeros(3, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        psnr_scores(maps, torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"\(tissues, y, x\)"):
        hard_labels(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="names"):
        soft_dice(maps, maps, names=("csf", "gm"))
    with pytest.raises(ValueError, match="mask"):
        psnr_scores(maps, maps, mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty"):
        psnr_scores(maps, maps, mask=torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="0..3"):
        dice_scores(maps, torch.full((4, 4), 4))
    with pytest.raises(ValueError, match="integer label"):
        dice_scores(maps, torch.full((4, 4), 0.5))
    with pytest.raises(TypeError, match="complex"):
        soft_dice(maps.to(torch.complex64), maps.to(torch.complex64))
    with pytest.raises(ValueError, match="at least 11"):
        ssim_scores(maps, maps)


# ------------------------------------------------------------------------------------------------------ noise

#: Relative standard error of a standard deviation from N samples is 1/√(2N) (≈ 0.3 % for N = 49 152);
#: the tolerances below are about 6 such errors.
SIGMA_TOLERANCE = 0.02
#: Relative standard error of the mean of N = 32 768 Rayleigh samples: √(4/π − 1) / √N ≈ 0.3 %; six of them.
RICIAN_TOLERANCE = 0.02


def test_complex_gaussian_sigma_matches_snr():
    images = torch.ones(3, 128, 128, dtype=torch.complex128) * (0.6 + 0.8j)  # |image| = 1
    noisy = add_noise(images, snr_db=20.0, seed=0)  # σ = 1 · 10^(−20/20) = 0.1
    assert noisy.dtype == torch.complex128 and noisy.shape == images.shape
    noise = noisy - images
    for part in (noise.real, noise.imag):
        assert abs(float(part.std()) / 0.1 - 1) < SIGMA_TOLERANCE
        assert abs(float(part.mean())) < 0.1 * 6 / math.sqrt(part.numel())
    assert abs(float(noise_sigma(images, snr_db=20.0)) - 0.1) < EXACT


def test_real_gaussian_reference_and_mask():
    images = torch.zeros(2, 128, 128, dtype=torch.float64)
    mask = torch.zeros(128, 128, dtype=torch.bool)
    mask[:, :64] = True
    images[0][mask] = 2.0
    images[1][mask] = 4.0
    images[1, 0, 100] = 10.0  # a bright pixel outside the mask
    # mean in mask over both contrasts: 3 → σ = 0.3 at 20 dB; the max: 10 → σ = 1; per contrast: 2, 4 → 0.2, 0.4
    assert abs(float(noise_sigma(images, snr_db=20.0, mask=mask)) - 0.3) < EXACT
    assert abs(float(noise_sigma(images, snr_db=20.0, reference="max")) - 1.0) < EXACT
    assert abs(float(noise_sigma(images, snr_db=20.0, reference="max", mask=mask)) - 0.4) < EXACT
    per = noise_sigma(images, snr_db=20.0, mask=mask, per_contrast=True)
    assert torch.allclose(per, torch.tensor([0.2, 0.4], dtype=torch.float64), atol=EXACT)
    noisy = add_noise(images, snr_db=20.0, mask=mask, per_contrast=True, seed=1)
    assert noisy.dtype == torch.float64
    for k, sigma in enumerate((0.2, 0.4)):
        assert abs(float((noisy[k] - images[k]).std()) / sigma - 1) < SIGMA_TOLERANCE
    # no mask: the mean over the whole image
    whole = float(images.abs().mean())
    assert abs(float(noise_sigma(images, snr_db=0.0)) - whole) < EXACT


def test_noise_is_reproducible_with_a_seed():
    images = torch.ones(2, 16, 16, dtype=torch.complex64)
    a = add_noise(images, snr_db=10.0, seed=7)
    b = add_noise(images, snr_db=10.0, seed=7)
    c = add_noise(images, snr_db=10.0, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)
    first = add_noise(images, snr_db=10.0, seed=g)
    second = add_noise(images, snr_db=10.0, seed=g)
    assert torch.equal(first, a) and not torch.equal(first, second)
    assert add_noise(np.ones((1, 4, 4)), snr_db=10.0, seed=0).shape == (1, 4, 4)


def test_rician_statistics():
    images = torch.zeros(1, 256, 256, dtype=torch.float64)
    mask = torch.zeros(256, 256, dtype=torch.bool)
    mask[:128] = True
    images[0][mask] = 1.0
    sigma = 10 ** (-6.0 / 20)  # 6 dB: σ ≈ 0.5
    noisy = add_noise(images, snr_db=6.0, kind="rician", mask=mask, seed=3)
    assert not noisy.is_complex() and bool((noisy >= 0).all())
    background = noisy[0][~mask]
    # zero signal: Rayleigh, mean σ·√(π/2), not 0
    assert abs(float(background.mean()) / (sigma * math.sqrt(math.pi / 2)) - 1) < RICIAN_TOLERANCE
    # with signal ν: E[M²] = ν² + 2σ² exactly (Gudbjartsson & Patz 1995)
    signal = noisy[0][mask]
    assert abs(float((signal**2).mean()) / (1 + 2 * sigma**2) - 1) < RICIAN_TOLERANCE
    assert float(signal.mean()) > 1.0  # biased upwards


def test_noise_errors():
    images = torch.ones(1, 4, 4)
    with pytest.raises(ValueError, match="kind"):
        add_noise(images, snr_db=10.0, kind="poisson")
    with pytest.raises(ValueError, match="reference"):
        add_noise(images, snr_db=10.0, reference="median")
    with pytest.raises(ValueError, match="empty"):
        add_noise(images, snr_db=10.0, mask=torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="signal level is zero"):
        add_noise(torch.zeros(1, 4, 4), snr_db=10.0)
    with pytest.raises(ValueError, match="mask must have shape"):
        add_noise(images, snr_db=10.0, mask=torch.ones(3, 3, dtype=torch.bool))
