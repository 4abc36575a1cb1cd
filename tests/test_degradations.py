"""Degradation ops, validation, chains, seeding and degrade_patches."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from dataclasses import dataclass

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from ddr_eval.degradations import (
    DEGRADATIONS,
    Degradation,
    DegradationChain,
    InvalidDegradationError,
    build_chain,
    build_step,
    degrade_patches,
    imresize,
    rng_for,
    stable_hash,
)
from ddr_eval.degradations.ops import GaussianBlur, gaussian_kernel, sample
from ddr_eval.core.errors import UserError

SPECS = [
    {"type": "bicubic", "scale": 2},
    {"type": "bicubic", "scale": 3},
    {"type": "bicubic", "scale": 4},
    {"type": "gaussian_blur", "sigma": 2.0},
    {"type": "gaussian_blur", "sigma": [0.5, 3.0], "kernel_size": 11},
    {"type": "gaussian_blur", "sigma_x": 3.0, "sigma_y": 1.0, "theta": 0.5},
    {"type": "gaussian_blur", "sigma_x": [1, 4], "sigma_y": [1, 4], "theta": [-3.14, 3.14]},
    {"type": "gaussian_noise", "sigma": 15},
    {"type": "gaussian_noise", "sigma": [5, 50], "gray": True},
    {"type": "poisson_noise", "scale": 2.0},
    {"type": "poisson_noise", "scale": [0.5, 3], "gray": True},
    {"type": "jpeg", "quality": 30},
    {"type": "jpeg", "quality": [10, 95]},
]
RANDOM_SPECS = [spec for spec in SPECS if build_step(spec).is_random]


def _image(seed: int = 0, size: int = 24) -> np.ndarray:
    """Smooth-ish random image: noise averaged over 3x3 so JPEG and blur have work to do."""
    noise = np.random.default_rng(seed).random((size, size, 3))
    return ndimage.uniform_filter(noise, size=(3, 3, 1)).astype(np.float32)


# --------------------------------------------------------------------------- every op


def test_registry_names_match_each_ops_type_literal():
    assert set(DEGRADATIONS) == {"bicubic", "gaussian_blur", "gaussian_noise", "poisson_noise", "jpeg",
                                 "resize", "realesrgan", "bsrgan"}
    for name, op_class in DEGRADATIONS.items():
        assert typing.get_args(op_class.model_fields["type"].annotation) == (name,)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: f"{spec['type']}-{sorted(spec.items())}")
def test_op_output_shape_dtype_range_and_determinism(spec):
    op = build_step(spec)
    img = _image()
    out = op.apply(img, np.random.default_rng(5))
    side = 24 // op.scale_factor
    assert out.shape == (side, side, 3)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    again = op.apply(img, np.random.default_rng(5))
    np.testing.assert_array_equal(out, again)
    if op.scale_factor == 1:
        assert not np.array_equal(out, img)


@pytest.mark.parametrize("spec", RANDOM_SPECS, ids=lambda spec: f"{spec['type']}-{sorted(spec.items())}")
def test_random_ops_differ_between_set_names(spec):
    op = build_step(spec)
    img = _image()
    first = op.apply(img, rng_for(0, 3, 1, "noise_a"))
    second = op.apply(img, rng_for(0, 3, 1, "noise_b"))
    assert not np.array_equal(first, second)


def test_scale_factor_is_one_except_for_bicubic():
    for spec in SPECS:
        op = build_step(spec)
        assert op.scale_factor == (spec["scale"] if spec["type"] == "bicubic" else 1)


def test_bicubic_op_is_clipped_imresize():
    img = np.zeros((16, 16, 3), dtype=np.float32)
    img[:, 8:] = 1.0  # hard edge: imresize overshoots, the op must clip
    raw = imresize(img, 1 / 2)
    assert raw.min() < 0 or raw.max() > 1
    out = build_step({"type": "bicubic", "scale": 2}).apply(img, np.random.default_rng(0))
    np.testing.assert_allclose(out, np.clip(raw, 0, 1), atol=1e-7)


# --------------------------------------------------------------------------- blur


def test_isotropic_kernel_is_normalised_outer_product_of_1d_gaussians():
    offsets = np.arange(-3, 4)
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    np.testing.assert_allclose(gaussian_kernel(7, 1.5), np.outer(g, g) / np.outer(g, g).sum(), atol=1e-15)


def test_anisotropic_kernel_orientation():
    # theta = 0: sigma_x spreads along columns (x), sigma_y along rows (y).
    offsets = np.arange(-4, 5)
    gx, gy = np.exp(-(offsets**2) / (2 * 3.0**2)), np.exp(-(offsets**2) / (2 * 1.0**2))
    expected = np.outer(gy, gx) / np.outer(gy, gx).sum()
    np.testing.assert_allclose(gaussian_kernel(9, 3.0, 1.0, 0.0), expected, atol=1e-15)
    # A quarter turn swaps the axes.
    np.testing.assert_allclose(gaussian_kernel(9, 3.0, 1.0, np.pi / 2), expected.T, atol=1e-12)


@pytest.mark.parametrize(
    ("params", "kernel_args"),
    [
        ({"sigma": 2.0, "kernel_size": 9}, (9, 2.0)),
        ({"sigma_x": 2.5, "sigma_y": 0.8, "theta": 0.7}, (21, 2.5, 0.8, 0.7)),
    ],
)
def test_blur_is_mirror_correlation_per_channel(params, kernel_args):
    img = _image(1, size=32)
    kernel = gaussian_kernel(*kernel_args)
    channels = [ndimage.correlate(img[:, :, c].astype(np.float64), kernel, mode="mirror") for c in range(3)]
    expected = np.stack(channels, axis=2)
    op = GaussianBlur(**params)
    np.testing.assert_allclose(op.apply(img, np.random.default_rng(0)), expected, atol=1e-6)
    batch = np.stack([img, img[::-1]])
    np.testing.assert_allclose(op.apply_batch(batch)[0], expected, atol=1e-6)


def test_blur_keeps_constant_image():
    img = np.full((20, 20, 3), 0.6, dtype=np.float32)
    out = GaussianBlur(sigma_x=3, sigma_y=1, theta=1.0).apply(img, np.random.default_rng(0))
    np.testing.assert_allclose(out, 0.6, atol=1e-6)


# --------------------------------------------------------------------------- noise and jpeg


def test_gaussian_noise_has_requested_sigma_on_255_scale():
    img = np.full((128, 128, 3), 0.5, dtype=np.float32)
    out = build_step({"type": "gaussian_noise", "sigma": 10}).apply(img, np.random.default_rng(1))
    assert abs((out - img).std() * 255 - 10) < 0.3
    assert abs((out - img).mean() * 255) < 0.3


@pytest.mark.parametrize(
    "spec", [{"type": "gaussian_noise", "sigma": 20, "gray": True}, {"type": "poisson_noise", "scale": 2, "gray": True}]
)
def test_gray_noise_is_shared_by_channels(spec):
    img = np.full((32, 32, 3), 0.5, dtype=np.float32)
    noise = build_step(spec).apply(img, np.random.default_rng(2)) - img
    assert np.abs(noise).max() > 0
    np.testing.assert_array_equal(noise[:, :, 0], noise[:, :, 1])
    np.testing.assert_array_equal(noise[:, :, 0], noise[:, :, 2])


def test_poisson_noise_scales_linearly_with_scale_and_depends_on_signal():
    # Mid-range image: no clipping, so the added noise is exactly scale * the same draw.
    img = 0.3 + 0.4 * _image(3, size=32)
    quantised = np.round(img.astype(np.float64) * 255) / 255
    once = build_step({"type": "poisson_noise", "scale": 1}).apply(img, np.random.default_rng(4)) - img
    twice = build_step({"type": "poisson_noise", "scale": 2}).apply(img, np.random.default_rng(4)) - img
    np.testing.assert_allclose(twice, 2 * once, atol=1e-6)
    # Noise = Poisson(q * levels) / levels - q: its multiples of 1/levels are integers.
    levels = 2.0 ** np.ceil(np.log2(len(np.unique(quantised))))
    counts = (once + quantised) * levels
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)


def test_jpeg_quality_orders_error_and_output_is_8_bit():
    img = _image(5, size=48)
    errors = {}
    for quality in (10, 95):
        out = build_step({"type": "jpeg", "quality": quality}).apply(img, np.random.default_rng(0))
        np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)
        errors[quality] = np.abs(out - img).mean()
    assert errors[10] > 2 * errors[95]


def test_ranges_are_sampled_within_bounds_per_generator():
    draws = [sample((2.0, 3.0), np.random.default_rng(seed)) for seed in range(50)]
    assert all(2.0 <= d <= 3.0 for d in draws) and len(set(draws)) == 50
    qualities = {sample((10, 12), np.random.default_rng(seed)) for seed in range(50)}
    assert qualities == {10, 11, 12}
    assert sample(7.5, None) == 7.5


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "gaussian_blur", "sigma": 0}, "sigma: must be > 0"),
        ({"type": "gaussian_blur", "sigma": -1.5}, "sigma: must be > 0"),
        ({"type": "gaussian_blur", "sigma": 1, "sigma_x": 2, "sigma_y": 2}, "not both"),
        ({"type": "gaussian_blur", "sigma_x": 2}, "sigma_x and sigma_y"),
        ({"type": "gaussian_blur", "sigma": 1, "kernel_size": 20}, "kernel_size: must be odd"),
        ({"type": "gaussian_noise", "sigma": [30, 5]}, "low <= high"),
        ({"type": "gaussian_noise", "sigma": [0, 5]}, "must be > 0"),
        ({"type": "gaussian_noise", "sigma": float("nan")}, "finite"),
        ({"type": "poisson_noise", "scale": 0}, "scale: must be > 0"),
        ({"type": "jpeg", "quality": 0}, "quality: must be >= 1"),
        ({"type": "jpeg", "quality": [50, 101]}, "must be <= 100"),
        ({"type": "jpeg", "quality": 50, "qualty": 40}, "qualty"),
        ({"type": "bicubic", "scale": 5}, "scale"),
        ({"type": "sharpen", "amount": 1}, "unknown degradation 'sharpen'"),
        ({"sigma": 2}, "needs a 'type'"),
    ],
)
def test_invalid_specs_raise_user_errors_naming_the_field(spec, message):
    with pytest.raises(InvalidDegradationError, match=message) as info:
        build_step(spec)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_direct_construction_raises_pydantic_errors_and_models_are_frozen():
    with pytest.raises(ValidationError):
        GaussianBlur(sigma=-1)
    op = GaussianBlur(sigma=1)
    with pytest.raises(ValidationError):
        op.sigma = 2


def test_chain_errors_name_the_step():
    with pytest.raises(InvalidDegradationError, match=r"chain\[1\]: degradation 'jpeg': quality"):
        build_chain([{"type": "bicubic", "scale": 2}, {"type": "jpeg", "quality": 0}])
    with pytest.raises(InvalidDegradationError, match="downsample only once"):
        build_chain([{"type": "bicubic", "scale": 2}, {"type": "bicubic", "scale": 2}])
    with pytest.raises(InvalidDegradationError, match="list of steps"):
        build_chain({"type": "bicubic", "scale": 2})


# --------------------------------------------------------------------------- chains


def test_chain_scale_spec_and_apply():
    chain = build_chain(
        [{"type": "gaussian_blur", "sigma": 1}, {"type": "bicubic", "scale": 3}, {"type": "jpeg", "quality": 60}]
    )
    assert chain.scale == 3 and len(chain) == 3 and not chain.is_random
    assert chain.spec() == [
        {"type": "gaussian_blur", "kernel_size": 21, "sigma": 1.0},
        {"type": "bicubic", "scale": 3},
        {"type": "jpeg", "quality": 60},
    ]
    img = _image(size=30)
    expected = img
    for step in chain:
        expected = step.apply(expected, np.random.default_rng(0))
    np.testing.assert_array_equal(chain.apply(img, np.random.default_rng(0)), expected)
    assert build_chain([]).scale == 1


def test_spec_is_canonical_and_round_trips():
    a = build_chain([{"sigma": 2, "type": "gaussian_noise"}, {"quality": [20, 40], "type": "jpeg"}])
    b = build_chain(
        [{"type": "gaussian_noise", "sigma": 2.0, "gray": False}, {"type": "jpeg", "quality": (20, 40)}]
    )
    assert a.spec() == b.spec() and a == b and hash(a) == hash(b)
    assert build_chain(a.spec()) == a
    assert isinstance(build_step(a.steps[0]), Degradation)


# --------------------------------------------------------------------------- seeding


def test_rng_for_depends_on_every_key_entry():
    base = rng_for(1, 2, 3, "blur").random(4)
    np.testing.assert_array_equal(base, rng_for(1, 2, 3, "blur").random(4))
    for key in [(2, 2, 3, "blur"), (1, 3, 3, "blur"), (1, 2, 4, "blur"), (1, 2, 3, "noise")]:
        assert not np.array_equal(base, rng_for(*key).random(4))
    with pytest.raises(ValueError):
        rng_for(-1, 0, 0, "x")


def test_stable_hash_is_the_same_in_another_process_with_another_hash_seed():
    code = "from ddr_eval.degradations import stable_hash; print(stable_hash('gaussian σ set'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(result.stdout) == stable_hash("gaussian σ set")
    assert stable_hash("a") != stable_hash("b") and 0 <= stable_hash("a") < 2**64


# --------------------------------------------------------------------------- degrade_patches

NOISY_CHAIN = [
    {"type": "gaussian_blur", "sigma": [0.5, 2.0], "kernel_size": 7},
    {"type": "bicubic", "scale": 2},
    {"type": "gaussian_noise", "sigma": [5, 20]},
    {"type": "jpeg", "quality": [40, 90]},
]


def _patches(n: int = 12, size: int = 16):
    hr = np.stack([_image(seed, size) for seed in range(n)])
    return hr, np.arange(n) // 4, np.arange(n) % 4


def test_degrade_patches_is_bit_identical_and_matches_per_patch_application():
    hr, image_index, patch_index = _patches()
    chain = build_chain(NOISY_CHAIN)
    first = degrade_patches(chain, hr, image_index, patch_index, 7, "mixed")
    second = degrade_patches(chain, hr, image_index, patch_index, 7, "mixed")
    assert first.shape == (12, 8, 8, 3) and first.dtype == np.float32
    assert first.tobytes() == second.tobytes()
    for i in range(len(hr)):
        expected = chain.apply(hr[i], rng_for(7, image_index[i], patch_index[i], "mixed"))
        np.testing.assert_allclose(first[i], expected, atol=1e-6)
    other_set = degrade_patches(chain, hr, image_index, patch_index, 7, "mixed2")
    assert not np.array_equal(first, other_set)


def test_degrade_patches_does_not_depend_on_patch_order():
    hr, image_index, patch_index = _patches()
    order = np.random.default_rng(0).permutation(len(hr))
    full = degrade_patches(NOISY_CHAIN, hr, image_index, patch_index, 3, "s")
    shuffled = degrade_patches(NOISY_CHAIN, hr[order], image_index[order], patch_index[order], 3, "s")
    np.testing.assert_array_equal(shuffled, full[order])


def test_degrade_patches_batches_deterministic_chains_like_single_images():
    hr, image_index, patch_index = _patches(n=6, size=24)
    chain = build_chain([{"type": "gaussian_blur", "sigma": 1.2}, {"type": "bicubic", "scale": 4}])
    lr = degrade_patches(chain, hr, image_index, patch_index, 0, "clean")
    assert lr.shape == (6, 6, 6, 3)
    for patch, out in zip(hr, lr):
        np.testing.assert_allclose(out, chain.apply(patch, np.random.default_rng(0)), atol=1e-6)


def test_degrade_patches_accepts_a_patch_set():
    @dataclass(frozen=True)
    class FakePatchSet:
        hr: np.ndarray
        image_index: np.ndarray
        patch_index: np.ndarray

    hr, image_index, patch_index = _patches()
    expected = degrade_patches(NOISY_CHAIN, hr, image_index, patch_index, 1, "s")
    patches = FakePatchSet(hr, image_index, patch_index)
    np.testing.assert_array_equal(degrade_patches(NOISY_CHAIN, patches, 1, "s"), expected)
    np.testing.assert_array_equal(degrade_patches(NOISY_CHAIN, patches, seed=1, set_name="s"), expected)


def test_degrade_patches_rejects_bad_inputs():
    hr, image_index, patch_index = _patches(n=4, size=18)
    with pytest.raises(UserError, match="not divisible"):
        degrade_patches([{"type": "bicubic", "scale": 4}], hr, image_index, patch_index, 0, "s")
    with pytest.raises(ValueError, match="image_index"):
        degrade_patches([{"type": "bicubic", "scale": 2}], hr, image_index[:2], patch_index, 0, "s")
    empty = degrade_patches([{"type": "bicubic", "scale": 2}], hr[:0], image_index[:0], patch_index[:0], 0, "s")
    assert empty.shape == (0, 9, 9, 3)


def test_chain_type_is_exported():
    assert isinstance(build_chain([]), DegradationChain)
