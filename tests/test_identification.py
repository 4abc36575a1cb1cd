"""Degradation identification: the metric, the saved probe, and the image-statistics baseline."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from ddr_eval.errors import DegenerateInputError, UserError
from ddr_eval.features import IMAGE_STATISTIC_NAMES, image_statistics
from ddr_eval.metrics import (
    METRICS,
    DegradationProbe,
    IdentificationResult,
    build_metric,
)

CLASSES = ["blur", "clean", "jpeg", "noise"]


def separable_split(seed: int, n_per_class: int = 60, dim: int = 24, spread: float = 4.0):
    """Four Gaussian classes in ``dim`` dimensions; returns (train_X, train_y, test_X, test_y)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), dim)) * spread

    def draw():
        labels = np.repeat(CLASSES, n_per_class)
        codes = np.repeat(np.arange(len(CLASSES)), n_per_class)
        return centres[codes] + rng.normal(size=(codes.size, dim)), labels

    return (*draw(), *draw())


# ----------------------------------------------------------------------------- the metric


@pytest.mark.parametrize("spec", [{"classifier": "logistic"}, {"classifier": "knn", "k": 5}])
def test_probe_beats_chance_widely_on_separable_features(spec):
    train_X, train_y, test_X, test_y = separable_split(seed=0)
    result = build_metric({"type": "identification", "bootstrap": 100, **spec}).compute(
        train_X, train_y, test_X, test_y, seed=0
    )
    assert isinstance(result, IdentificationResult)
    assert result.accuracy > 0.95  # chance is 0.25
    assert result.macro_f1 > 0.95
    assert result.classes == CLASSES
    assert result.confusion.shape == (4, 4)
    assert result.confusion.sum() == len(test_y)
    assert np.trace(result.confusion) == round(result.accuracy * len(test_y))
    assert result.ci_low <= result.accuracy <= result.ci_high
    assert result.value == result.accuracy
    assert result.extra["chance"] == 0.25


def test_probe_is_near_chance_on_random_labels():
    train_X, _, test_X, _ = separable_split(seed=1)
    rng = np.random.default_rng(1)
    shuffled_train, shuffled_test = rng.choice(CLASSES, len(train_X)), rng.choice(CLASSES, len(test_X))
    result = build_metric({"type": "identification"}).compute(train_X, shuffled_train, test_X, shuffled_test, seed=0)
    assert result.accuracy < 0.45


def test_unseen_test_classes_count_as_errors_and_are_reported():
    train_X, train_y, test_X, test_y = separable_split(seed=2)
    test_y = test_y.astype(object)
    test_y[:10] = "ringing"
    result = build_metric({"type": "identification"}).compute(train_X, train_y, test_X, test_y, seed=0)
    assert "ringing" in result.classes and result.confusion.shape == (5, 5)
    assert result.confusion[result.classes.index("ringing")].sum() == 10
    assert np.diag(result.confusion)[result.classes.index("ringing")] == 0
    assert any("ringing" in w for w in result.extra["warnings"])


def test_identification_degenerate_inputs_raise():
    train_X, train_y, test_X, test_y = separable_split(seed=3)
    metric = build_metric({"type": "identification"})
    with pytest.raises(DegenerateInputError, match="distinct labels"):
        metric.compute(train_X, np.full(len(train_y), "clean"), test_X, test_y, seed=0)
    bad = test_X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DegenerateInputError, match="NaN"):
        metric.compute(train_X, train_y, bad, test_y, seed=0)
    with pytest.raises(DegenerateInputError, match="constant"):
        metric.compute(np.zeros_like(train_X), train_y, test_X, test_y, seed=0)
    with pytest.raises(DegenerateInputError, match="k=500"):
        build_metric({"type": "identification", "classifier": "knn", "k": 500}).compute(
            train_X, train_y, test_X, test_y, seed=0
        )


def test_identification_names_and_direction():
    assert build_metric({"type": "identification"}).name == "identification[logistic,C1]"
    assert build_metric({"type": "identification", "classifier": "knn", "k": 3}).name == "identification[knn,k3]"
    assert METRICS.get("identification").higher_is_better
    assert METRICS.get("identification").kind == "identification"
    with pytest.raises(UserError):
        build_metric({"type": "identification", "classifier": "svm"})


# ----------------------------------------------------------------------------- the probe


@pytest.mark.parametrize("classifier", ["logistic", "knn"])
def test_probe_save_load_round_trip(tmp_path, classifier):
    train_X, train_y, test_X, _ = separable_split(seed=4)
    probe = DegradationProbe(classifier, k=3, meta={"model": "srresnet", "layer": "body.15"}).fit(train_X, train_y)
    path = tmp_path / "probe.npz"
    probe.save(path)
    loaded = DegradationProbe.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(test_X), probe.predict_proba(test_X))
    np.testing.assert_array_equal(loaded.predict(test_X), probe.predict(test_X))
    assert loaded.classes_ == CLASSES
    assert loaded.meta == {"model": "srresnet", "layer": "body.15"}
    with np.load(path, allow_pickle=False) as stored:  # plain arrays only
        assert "classes" in stored.files


def test_probe_predicts_class_names_and_probabilities():
    train_X, train_y, test_X, test_y = separable_split(seed=5)
    probe = DegradationProbe().fit(train_X, train_y)
    proba = probe.predict_proba(test_X[:7])
    assert proba.shape == (7, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predicted = probe.predict(test_X[:7])
    assert set(predicted) <= set(CLASSES)
    np.testing.assert_array_equal(predicted, np.asarray(CLASSES)[proba.argmax(axis=1)])
    assert probe.predict(test_X[:1]).shape == (1,)  # one image is fine


def test_probe_misuse_raises_user_errors(tmp_path):
    train_X, train_y, test_X, _ = separable_split(seed=6)
    with pytest.raises(UserError, match="not fitted"):
        DegradationProbe().predict(test_X)
    with pytest.raises(UserError, match="classifier"):
        DegradationProbe("forest")
    probe = DegradationProbe().fit(train_X, train_y)
    with pytest.raises(UserError, match="expects 24 features"):
        probe.predict(test_X[:, :10])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a probe")
    with pytest.raises(UserError, match="garbage.npz"):
        DegradationProbe.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.array('{"format": "something-else", "version": 1}'))
    with pytest.raises(UserError, match="other.npz"):
        DegradationProbe.load(other)
    with pytest.raises(UserError, match="missing.npz"):
        DegradationProbe.load(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------- image statistics


def smooth_images(n: int, size: int = 32, seed: int = 0, smoothness: float = 2.0) -> np.ndarray:
    """Smooth random textures in [0.2, 0.8] (room for noise without clipping)."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, size, size, 3)), sigma=(0, smoothness, smoothness, 0))
    base = (base - base.min()) / (base.max() - base.min())
    return (0.2 + 0.6 * base).astype(np.float32)


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer), dtype=np.float32) / 255)
    return np.stack(out)


def test_image_statistics_shape_and_names():
    stats = image_statistics(smooth_images(5))
    assert stats.shape == (5, len(IMAGE_STATISTIC_NAMES)) == (5, 12)
    assert np.isfinite(stats).all()
    assert image_statistics((smooth_images(2) * 255).round().astype(np.uint8)).shape == (2, 12)


def column(name: str) -> int:
    return IMAGE_STATISTIC_NAMES.index(name)


def test_image_statistics_respond_to_their_degradations():
    clean = smooth_images(8, seed=1)
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(scale=0.05, size=clean.shape).astype(np.float32)
    blurred = gaussian_filter(clean, sigma=(0, 1.5, 1.5, 0))
    compressed = jpeg(clean, quality=10)
    s_clean, s_noisy, s_blur, s_jpeg = map(image_statistics, (clean, noisy, blurred, compressed))
    assert (s_noisy[:, column("noise_sigma")] > 0.03).all() and (s_clean[:, column("noise_sigma")] < 0.01).all()
    assert (s_blur[:, column("laplacian_var")] < s_clean[:, column("laplacian_var")]).all()
    assert (s_noisy[:, column("high_frequency_energy")] > s_clean[:, column("high_frequency_energy")]).all()
    assert (s_jpeg[:, column("blockiness")] > 1.2).all()
    assert (np.abs(s_clean[:, column("blockiness")] - 1) < 0.15).all()
    np.testing.assert_allclose(s_clean[:, :3], clean.astype(np.float64).mean(axis=(1, 2)), rtol=1e-9)


def test_image_statistics_baseline_identifies_simple_degradations():
    def degrade(images, kind, rng):
        if kind == "noise":
            return images + rng.normal(scale=0.05, size=images.shape).astype(np.float32)
        if kind == "blur":
            return gaussian_filter(images, sigma=(0, 1.5, 1.5, 0))
        if kind == "jpeg":
            return jpeg(images, quality=10)
        return images

    rng = np.random.default_rng(2)
    splits = []
    for seed in (10, 11):
        images = smooth_images(12, seed=seed, smoothness=1.0)
        features = np.concatenate([image_statistics(degrade(images, kind, rng)) for kind in CLASSES])
        splits += [features, np.repeat(CLASSES, 12)]
    result = build_metric({"type": "identification"}).compute(*splits, seed=0)
    assert result.accuracy > 0.9


def test_image_statistics_rejects_bad_input():
    with pytest.raises(UserError, match="NHWC RGB"):
        image_statistics(np.zeros((2, 8, 8)))
    with pytest.raises(DegenerateInputError, match="3x3"):
        image_statistics(np.zeros((2, 2, 8, 3)))
    with pytest.raises(DegenerateInputError, match="NaN"):
        image_statistics(np.full((1, 8, 8, 3), np.nan))
