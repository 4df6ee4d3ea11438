"""The BMapEst baselines: fuzzy c-means (plain and bias-corrected) and the supervised U-Net protocol."""

import pytest
import torch

from gradmr.bmapest.baselines import (
    UNet,
    augment_subject,
    fuzzy_c_means,
    predict_unet,
    sample_training_maps,
    train_unet,
)
from gradmr.bmapest.metrics import dice_scores

#: Three well-separated classes (contrast 0.3, noise σ 0.06): only a handful of pixels can cross a boundary.
FCM_DICE = 0.95
#: The recovered bias field follows the true one to 1 % (noise σ 0.02 averaged by a 6-term fit over ~3000 pixels).
BIAS_FIELD_TOLERANCE = 0.01
#: A sample mean of 2000 normal draws lies within 5 standard errors (σ/√2000) of the mean; the sample
#: standard deviation within 5 of its standard errors (σ/√4000).
SAMPLES = 2000


def three_class_phantom(n: int = 64):
    """Labels (0 background, 1 CSF, 2 GM, 3 WM) of a disc: GM rim, WM core, CSF centre and a CSF stripe."""
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    r = ((yy - (n - 1) / 2) ** 2 + (xx - (n - 1) / 2) ** 2).sqrt()
    labels = torch.zeros(n, n, dtype=torch.int64)
    labels[r < 0.44 * n] = 2
    labels[r < 0.31 * n] = 3
    labels[r < 0.12 * n] = 1
    labels[(r < 0.31 * n) & ((xx - (n - 1) / 2).abs() < 2)] = 1
    return labels, labels > 0


T1W_LEVELS = torch.tensor([0.0, 0.3, 0.6, 0.9], dtype=torch.float64)  # background, CSF < GM < WM


def noisy_image(labels, sigma, seed, levels=T1W_LEVELS):
    g = torch.Generator().manual_seed(seed)
    return levels[labels] + sigma * torch.randn(labels.shape, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------------------- fuzzy c-means


def test_fcm_recovers_three_classes_t1w_and_t2w():
    labels, mask = three_class_phantom()
    image = noisy_image(labels, 0.06, seed=0)
    maps, info = fuzzy_c_means(image, mask=mask, return_info=True)
    assert maps.shape == (3, 64, 64) and maps.dtype == torch.float64
    assert all(v > FCM_DICE for v in dice_scores(maps, labels).values())
    assert bool((maps[:, ~mask] == 0).all())
    assert torch.allclose(maps[:, mask].sum(dim=0), torch.ones(int(mask.sum()), dtype=torch.float64))
    centres = info["centres"][:, 0]
    assert bool((centres[1:] > centres[:-1]).all())  # ascending, named CSF, GM, WM
    assert torch.allclose(centres, T1W_LEVELS[1:], atol=0.02)
    assert info["order"] == ("csf", "gm", "wm") and info["iterations"] >= 2
    # T2w contrast: WM darkest, CSF brightest; order="T2w" names the clusters accordingly
    t2w = noisy_image(labels, 0.06, seed=1, levels=torch.tensor([0.0, 0.9, 0.6, 0.3], dtype=torch.float64))
    assert all(v > FCM_DICE for v in dice_scores(fuzzy_c_means(t2w, mask=mask, order="T2w"), labels).values())
    # with the wrong order, CSF and WM swap
    swapped = dice_scores(fuzzy_c_means(t2w, mask=mask, order="T1w"), labels)
    assert swapped["CSF"] < 0.1 and swapped["WM"] < 0.1


def test_fcm_background_cluster_and_random_init():
    labels, _ = three_class_phantom(48)
    image = noisy_image(labels, 0.05, seed=2).to(torch.float32)
    maps = fuzzy_c_means(image, mask=None, n_clusters=4, order=("background", "csf", "gm", "wm"), init="random", seed=3)
    assert maps.dtype == torch.float32 and maps.shape == (3, 48, 48)
    assert all(v > FCM_DICE for v in dice_scores(maps, labels).values())


def test_fcm_two_contrasts():
    labels, mask = three_class_phantom(48)
    # channel 1 orders CSF < GM < WM but barely parts CSF from GM (3 σ); channel 0 parts CSF from the rest
    c0 = noisy_image(labels, 0.05, seed=4, levels=torch.tensor([0.0, 0.2, 0.8, 0.8], dtype=torch.float64))
    c1 = noisy_image(labels, 0.05, seed=5, levels=torch.tensor([0.0, 0.2, 0.35, 0.9], dtype=torch.float64))
    both = dice_scores(fuzzy_c_means(torch.stack([c0, c1]), mask=mask, order_channel=1), labels)
    alone = dice_scores(fuzzy_c_means(c1, mask=mask), labels)
    assert all(v > FCM_DICE for v in both.values())
    assert alone["CSF"] < both["CSF"] - 0.05


def test_bias_corrected_fcm_handles_a_smooth_bias():
    labels, mask = three_class_phantom()
    n = labels.shape[0]
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    bias = (1 + 0.35 * xx + 0.1 * yy - 0.1 * xx * yy).to(torch.float64)  # ±45 %: GM at one side ≈ WM at the other
    image = T1W_LEVELS[labels] * bias + 0.02 * torch.randn(
        labels.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    plain = dice_scores(fuzzy_c_means(image, mask=mask), labels)
    maps, info = fuzzy_c_means(image, mask=mask, bias_corrected=True, return_info=True)
    corrected = dice_scores(maps, labels)
    assert all(v > FCM_DICE for v in corrected.values())
    assert min(plain.values()) < 0.8  # the bias defeats plain FCM
    assert all(corrected[t] >= plain[t] for t in corrected)
    # the field is recovered up to the scale shared with the centres (both normalised to mean 1 in the mask)
    true_field = bias / bias[mask].mean()
    assert float((info["bias"][mask] - true_field[mask]).abs().max()) < BIAS_FIELD_TOLERANCE


def test_fcm_errors():
    labels, mask = three_class_phantom(16)
    image = T1W_LEVELS[labels]
    with pytest.raises(ValueError, match="one name per cluster"):
        fuzzy_c_means(image, mask=mask, n_clusters=4)
    with pytest.raises(ValueError, match="unknown order"):
        fuzzy_c_means(image, mask=mask, order="FLAIR")
    with pytest.raises(ValueError, match="not in the intensity order"):
        fuzzy_c_means(image, mask=mask, names=("csf", "gm", "fat"))
    with pytest.raises(ValueError, match="single-channel"):
        fuzzy_c_means(torch.stack([image, image]), mask=mask, bias_corrected=True)
    with pytest.raises(ValueError, match="mask must have shape"):
        fuzzy_c_means(image, mask=mask[:8])
    with pytest.raises(ValueError, match="m must be"):
        fuzzy_c_means(image, mask=mask, m=1.0)
    with pytest.raises(TypeError, match="real"):
        fuzzy_c_means(image.to(torch.complex128), mask=mask)


# ------------------------------------------------------------------------------------------------------ U-Net


def test_unet_shapes_and_activations():
    torch.manual_seed(0)
    x = torch.rand(2, 4, 13, 18)  # not a multiple of 2^depth: padded and cropped
    net = UNet(4, 3, base=4, depth=2)
    y = net(x)
    assert y.shape == (2, 3, 13, 18)
    assert bool(((y > 0) & (y < 1)).all())
    soft = UNet(4, 3, base=4, depth=3, activation="softmax")(x)
    assert torch.allclose(soft.sum(dim=1), torch.ones(2, 13, 18), atol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        UNet(4, 3, activation="relu")


def tiny_training_set(n: int = 20, size: int = 16, seed: int = 0):
    """Random smooth maps and two 'contrasts' that are fixed linear mixtures of them."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(n, 3, size // 4, size // 4, generator=g)
    maps = torch.nn.functional.interpolate(raw, size=(size, size), mode="bilinear", align_corners=False)
    maps = maps / maps.sum(dim=1, keepdim=True)
    weights = torch.tensor([[0.3, 0.6, 0.9], [1.0, 0.6, 0.3]])
    images = torch.einsum("ct,ntyx->ncyx", weights, maps)
    return images, maps


def test_unet_training_reduces_loss_and_is_reproducible():
    images, maps = tiny_training_set()
    state = torch.random.get_rng_state()
    model = train_unet(images, maps, epochs=25, batch_size=5, seed=1, base=8, depth=2)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    losses = model.train_losses
    assert len(losses) == 25
    assert losses[-1] < 0.5 * losses[0]
    assert not model.training
    pred = predict_unet(model, images)
    assert pred.shape == maps.shape
    assert float(((pred - maps) ** 2).mean()) < losses[0]
    assert predict_unet(model, images[0]).shape == (3, 16, 16)
    again = train_unet(images, maps, epochs=25, batch_size=5, seed=1, base=8, depth=2)
    assert again.train_losses == losses
    assert torch.equal(predict_unet(again, images), pred)
    other = train_unet(images, maps, epochs=2, batch_size=5, seed=2, base=8, depth=2)
    assert other.train_losses[0] != losses[0]


def test_unet_takes_complex_images_and_continues_training():
    images, maps = tiny_training_set(n=6)
    model = train_unet(images.to(torch.complex64), maps, epochs=2, batch_size=4, seed=0, base=4, depth=1)
    model.train()
    predict_unet(model, images)
    assert model.training  # predict_unet restores the mode
    train_unet(images, maps, epochs=1, batch_size=4, model=model)
    assert len(model.train_losses) == 3
    with pytest.raises(ValueError, match="do not match"):
        train_unet(images, maps[:3], epochs=1)
    with pytest.raises(ValueError, match="gives 3 maps"):
        train_unet(images, maps[:, :2], epochs=1, model=model)


# ---------------------------------------------------------------------------------------------- training data


def test_sample_training_maps_pixelwise_statistics():
    g = torch.Generator().manual_seed(0)
    subjects = 0.2 + 0.6 * torch.rand(5, 3, 4, 4, generator=g, dtype=torch.float64) / 3
    subjects[:, :, 0, 0] = 0.0  # background in every subject: no spread
    draws = sample_training_maps(subjects, n=SAMPLES, seed=1, clip=False)
    assert draws.shape == (SAMPLES, 3, 4, 4) and draws.dtype == torch.float64
    mean, std = subjects.mean(dim=0), subjects.std(dim=0, correction=0)
    assert bool((draws[:, :, 0, 0] == 0).all())
    assert bool(((draws.mean(dim=0) - mean).abs() <= 5 * std / SAMPLES**0.5 + 1e-12).all())
    assert bool(((draws.std(dim=0, correction=0) - std).abs() <= 5 * std / (2 * SAMPLES) ** 0.5 + 1e-12).all())
    # one subject with an explicit spread; std_scale shrinks it (the paper's area averaging)
    one = sample_training_maps(subjects[0], n=SAMPLES, sigma=0.1, std_scale=0.5, seed=2, clip=False)
    assert abs(float((one - subjects[0]).std()) / 0.05 - 1) < 5 / (2 * SAMPLES * 48) ** 0.5
    assert torch.equal(sample_training_maps(subjects, n=3, seed=9), sample_training_maps(subjects, n=3, seed=9))


def test_sample_training_maps_clip():
    mean = torch.full((3, 8, 8), 0.45, dtype=torch.float64)
    raw = sample_training_maps(mean, n=200, sigma=0.5, seed=0, clip=False)
    assert float(raw.min()) < 0 and float(raw.sum(dim=1).max()) > 1  # the paper's draws leave [0, 1]
    clipped = sample_training_maps(mean, n=200, sigma=0.5, seed=0)
    assert float(clipped.min()) >= 0 and float(clipped.max()) <= 1
    assert float(clipped.sum(dim=1).max()) <= 1 + 1e-12
    with pytest.raises(ValueError, match="needs sigma"):
        sample_training_maps(mean)


def test_augment_subject_pairs_maps_with_their_images():
    mean = torch.full((3, 8, 8), 0.3)
    weights = torch.tensor([[0.3, 0.6, 0.9], [1.0, 0.6, 0.3]])

    def simulate(maps):
        return torch.einsum("ct,tyx->cyx", weights, maps)

    images, maps = augment_subject(mean, simulate, n=7, sigma=0.05, seed=0)
    assert images.shape == (7, 2, 8, 8) and maps.shape == (7, 3, 8, 8)
    assert torch.allclose(images[3], simulate(maps[3]))
    with pytest.raises(ValueError, match=r"\(C, y, x\)"):
        augment_subject(mean, lambda m: m[0], n=2, sigma=0.05)
