"""PSNR / SSIM with BasicSR conventions, the uint8 helper, quality metrics, LPIPS availability."""

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from ddr_eval.core.errors import DegenerateInputError, UserError
from ddr_eval.metrics import (
    METRICS,
    MetricUnavailableError,
    build_metric,
    lpips_available,
    psnr,
    psnr_drop,
    ssim,
    to_uint8,
)
from ddr_eval.metrics.quality import rgb_to_y


def random_pair(seed: int, shape=(40, 36, 3), noise: int = 12):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, shape, dtype=np.uint8)
    output = np.clip(target.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return output, target


def bt601_luma(rgb_uint8: np.ndarray) -> np.ndarray:
    """Studio-swing BT.601 luma in [16, 235], written from the standard (float64, no rounding)."""
    r, g, b = (rgb_uint8[..., i].astype(np.float64) / 255 for i in range(3))
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


# ----------------------------------------------------------------------------- PSNR


def test_psnr_of_constant_images_differing_by_one():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert psnr(a, a + 1) == pytest.approx(10 * math.log10(255**2 / 1), abs=1e-12)


def test_psnr_of_identical_images_is_infinite():
    a, _ = random_pair(0)
    assert psnr(a, a) == math.inf


def test_psnr_matches_direct_formula():
    output, target = random_pair(1)
    mse = np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2)
    assert psnr(output, target) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-10)


def test_crop_border_ignores_the_border():
    a = np.full((20, 20, 3), 50, np.uint8)
    b = a.copy()
    b[:2] = 0
    b[:, -2:] = 255
    assert psnr(a, b) < 20
    assert psnr(a, b, crop_border=2) == math.inf
    assert ssim(a, b, crop_border=2) == 1.0


def test_y_channel_matches_independent_bt601_formula():
    output, target = random_pair(2)
    np.testing.assert_allclose(rgb_to_y(output)[..., 0], bt601_luma(output), atol=1e-4)
    mse = np.mean((bt601_luma(output) - bt601_luma(target)) ** 2)
    assert psnr(output, target, test_y_channel=True) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-4)


def basicsr_psnr_y_on_bgr(bgr1: np.ndarray, bgr2: np.ndarray) -> float:
    """BasicSR's calculate_psnr(test_y_channel=True) steps, on BGR images as BasicSR reads them."""

    def to_y_channel(img):
        unit = img.astype(np.float32) / 255.0
        y = (np.dot(unit, [24.966, 128.553, 65.481]) + 16.0) / 255.0
        return y.astype(np.float32)[..., None] * 255.0

    mse = np.mean((to_y_channel(bgr1).astype(np.float64) - to_y_channel(bgr2).astype(np.float64)) ** 2)
    return 10.0 * np.log10(255.0 * 255.0 / mse)


def test_y_channel_psnr_equals_basicsr_on_the_bgr_image():
    output, target = random_pair(8, shape=(64, 48, 3), noise=3)
    expected = basicsr_psnr_y_on_bgr(output[..., ::-1], target[..., ::-1])
    assert psnr(output, target, test_y_channel=True) == pytest.approx(expected, abs=1e-6)


def test_y_channel_uses_rgb_order():
    """Red and blue weigh differently in luma, so swapping them must change Y."""
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 200  # pure red
    assert rgb_to_y(image)[0, 0, 0] == pytest.approx(16 + 65.481 * 200 / 255, abs=1e-4)


# ----------------------------------------------------------------------------- SSIM


def test_ssim_of_identical_images_is_one():
    a, _ = random_pair(3)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_ssim_matches_scikit_image_with_the_same_conventions(seed):
    """skimage with an 11x11 (truncate 3.5 * sigma 1.5 = radius 5) Gaussian, population
    covariances and valid-region averaging is the MATLAB/BasicSR SSIM."""
    output, target = random_pair(seed, noise=30)
    expected = structural_similarity(
        output.astype(np.float64),
        target.astype(np.float64),
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(output, target) == pytest.approx(expected, abs=1e-9)


def test_ssim_on_y_channel_matches_scikit_image_on_luma():
    output, target = random_pair(6, noise=30)
    expected = structural_similarity(
        rgb_to_y(output)[..., 0].astype(np.float64),
        rgb_to_y(target)[..., 0].astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(output, target, test_y_channel=True) == pytest.approx(expected, abs=1e-9)


def test_ssim_needs_an_11_pixel_window():
    a = np.zeros((14, 14, 3), np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(DegenerateInputError, match="11x11"):
        ssim(a, a, crop_border=2)


def test_bad_image_inputs_raise_user_errors():
    a, b = random_pair(7)
    with pytest.raises(UserError, match="uint8"):
        psnr(a.astype(np.float32), b)
    with pytest.raises(UserError, match="shapes differ"):
        ssim(a, b[:-1])


# ----------------------------------------------------------------------------- helpers


def test_to_uint8_clips_and_rounds_like_tensor2img():
    image = np.array([-0.1, 0.0, 0.25, 0.5, 1.0, 1.3], dtype=np.float32)
    assert to_uint8(image).dtype == np.uint8
    np.testing.assert_array_equal(to_uint8(image), [0, 0, 64, 128, 255, 255])  # 63.75 -> 64, 127.5 -> 128


def test_psnr_drop_helper():
    assert psnr_drop(30.5, 28.0) == pytest.approx(2.5)
    with pytest.raises(DegenerateInputError):
        psnr_drop(math.inf, 28.0)


# ----------------------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def batch():
    pairs = [random_pair(10 + i, noise=5 + 4 * i) for i in range(6)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.mark.parametrize("name, function", [("psnr", psnr), ("ssim", ssim)])
def test_quality_metric_is_the_mean_over_images(batch, name, function):
    outputs, targets = batch
    metric = build_metric({"type": name, "bootstrap": 100})
    result = metric.compute(outputs, targets, crop_border=2, test_y_channel=True)
    per_image = [function(o, t, crop_border=2, test_y_channel=True) for o, t in zip(outputs, targets)]
    assert result.value == pytest.approx(np.mean(per_image), rel=1e-12)
    assert result.extra["per_image"] == pytest.approx(per_image)
    assert result.ci_low <= result.value <= result.ci_high


def test_quality_metric_rejects_float_batches(batch):
    outputs, targets = batch
    with pytest.raises(UserError, match="uint8 NHWC"):
        build_metric({"type": "psnr"}).compute(outputs / 255.0, targets)


def test_psnr_drop_metric_pairs_images():
    metric = build_metric({"type": "psnr_drop", "bootstrap": 50})
    result = metric.compute(np.array([30.0, 32.0, 31.0]), np.array([28.0, 29.0, 30.5]), seed=0)
    assert result.value == pytest.approx(np.mean([2.0, 3.0, 0.5]))
    assert result.ci_low <= result.value <= result.ci_high
    assert metric.compute(30.0, 27.5).value == pytest.approx(2.5)
    with pytest.raises(DegenerateInputError, match="paired"):
        metric.compute(np.array([30.0, 31.0]), np.array([29.0]))


def test_quality_directions_and_kinds():
    directions = {"psnr": True, "ssim": True, "lpips": False, "psnr_drop": False}
    for name, higher in directions.items():
        assert METRICS.get(name).kind == "quality"
        assert METRICS.get(name).higher_is_better is higher


def test_lpips_reports_unavailability_clearly(batch):
    available, reason = lpips_available()
    assert isinstance(available, bool) and isinstance(reason, str)
    if available:
        pytest.skip("lpips imports here; the unavailable path cannot be exercised")
    assert reason and "\n" not in reason
    with pytest.raises(MetricUnavailableError, match="optional lpips package") as err:
        build_metric({"type": "lpips"}).compute(*batch)
    assert reason in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ImportError) and isinstance(err.value, UserError)  # the reducer notes ImportErrors


def test_batch_psnr_equals_psnr_of_each_image():
    from ddr_eval.metrics import METRICS

    rng = np.random.default_rng(7)
    outputs = rng.integers(0, 256, (6, 20, 20, 3), dtype=np.uint8)
    targets = rng.integers(0, 256, (6, 20, 20, 3), dtype=np.uint8)
    targets[2] = outputs[2]  # identical pair: infinite PSNR, as psnr() says
    metric = METRICS.get("psnr")()
    for crop, y in ((0, False), (2, True), (4, False)):
        batch = metric.score_images(outputs, targets, crop, y)
        single = [psnr(o, t, crop, y) for o, t in zip(outputs, targets)]
        np.testing.assert_array_equal(batch, single)
    assert np.isinf(metric.score_images(outputs, targets, 2, True)[2])
