"""The real-world degradation models: kernels agree with BasicSR / BSRGAN formulas, ops are sane.

The reference kernels here are re-derived pixel by pixel from the published formulas (loops,
no shared code with ``ddr_eval.degradations.kernels``), so an indexing or axis mistake in the
vectorised versions shows up as a mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import special, stats
from scipy.interpolate import RegularGridInterpolator

from ddr_eval.degradations import build_chain, degrade_patches, kernels
from ddr_eval.degradations.ops import gaussian_kernel
from ddr_eval.degradations.realworld import filter2d
from ddr_eval.core.errors import UserError
from ddr_eval.config.loader import compile_suite

ATOL = 1e-6


def _covariance(sigma_x, sigma_y, theta):
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.array([[sigma_x**2, 0.0], [0.0, sigma_y**2]]) @ rot.T


def _reference(size, sigma_x, sigma_y, theta, profile):
    """``profile(q)`` at every pixel, q = [x, y] Σ⁻¹ [x, y]ᵀ, x the column offset from the centre."""
    inverse = np.linalg.inv(_covariance(sigma_x, sigma_y, theta))
    kernel = np.zeros((size, size))
    for row in range(size):
        for col in range(size):
            offset = np.array([col - size // 2, row - size // 2], dtype=float)
            kernel[row, col] = profile(offset @ inverse @ offset)
    return kernel / kernel.sum()


@pytest.mark.parametrize("size,sx,sy,theta", [(21, 2.0, 2.0, 0.0), (21, 3.0, 0.7, 0.6), (7, 0.4, 1.9, -2.5),
                                              (13, 1.2, 2.6, math.pi / 2)])
def test_gaussian_family_kernels_match_their_formulas(size, sx, sy, theta):
    iso = sx == sy and theta == 0.0
    np.testing.assert_allclose(kernels.bivariate_gaussian(size, sx, sy, theta, isotropic=iso),
                               _reference(size, sx, sy, theta, lambda q: math.exp(-0.5 * q)), atol=ATOL)
    for beta in (0.5, 1.0, 3.7):
        np.testing.assert_allclose(
            kernels.bivariate_generalized_gaussian(size, sx, sy, theta, beta, isotropic=iso),
            _reference(size, sx, sy, theta, lambda q, b=beta: math.exp(-0.5 * q**b)), atol=ATOL)
        np.testing.assert_allclose(
            kernels.bivariate_plateau(size, sx, sy, theta, beta, isotropic=iso),
            _reference(size, sx, sy, theta, lambda q, b=beta: 1.0 / (1.0 + q**b)), atol=ATOL)
    # the existing gaussian_blur op uses the same (BasicSR) kernel
    np.testing.assert_allclose(gaussian_kernel(size, sx, sy, theta),
                               kernels.bivariate_gaussian(size, sx, sy, theta, isotropic=False), atol=ATOL)


def test_isotropic_kernels_ignore_sigma_y_and_theta():
    np.testing.assert_allclose(kernels.bivariate_plateau(11, 1.5, 4.0, 1.0, 1.5, isotropic=True),
                               _reference(11, 1.5, 1.5, 0.0, lambda q: 1.0 / (1.0 + q**1.5)), atol=ATOL)


@pytest.mark.parametrize("cutoff,size,pad_to", [(math.pi / 3, 7, 0), (2.0, 13, 21), (math.pi, 21, 0)])
def test_sinc_kernel_matches_the_circular_lowpass_formula(cutoff, size, pad_to):
    reference = np.zeros((size, size))
    centre = (size - 1) / 2
    for row in range(size):
        for col in range(size):
            r = math.hypot(row - centre, col - centre)
            reference[row, col] = cutoff**2 / (4 * math.pi) if r == 0 else cutoff * special.j1(cutoff * r) / (2 * math.pi * r)
    reference /= reference.sum()
    if pad_to:
        reference = np.pad(reference, (pad_to - size) // 2)
    np.testing.assert_allclose(kernels.circular_lowpass_kernel(cutoff, size, pad_to), reference, atol=ATOL)


@pytest.mark.parametrize("size,theta,l1,l2", [(15, 0.3, 6.0, 1.2), (7, 2.9, 0.5, 3.0), (25, 1.0, 8.0, 8.0)])
def test_bsrgan_anisotropic_kernel_matches_the_normal_pdf(size, theta, l1, l2):
    v = np.array([math.cos(theta), math.sin(theta)])
    basis = np.array([[v[0], v[1]], [v[1], -v[0]]])
    covariance = basis @ np.diag([l1, l2]) @ np.linalg.inv(basis)
    reference = np.zeros((size, size))
    centre = size / 2.0 + 0.5
    for y in range(size):
        for x in range(size):
            reference[y, x] = stats.multivariate_normal.pdf([x - centre + 1, y - centre + 1], mean=[0, 0], cov=covariance)
    reference /= reference.sum()
    np.testing.assert_allclose(kernels.anisotropic_gaussian_bsrgan(size, theta, l1, l2), reference, atol=ATOL)


@pytest.mark.parametrize("size,sigma", [(7, 1.1), (25, 0.3), (13, 4.0)])
def test_fspecial_gaussian_matches_matlab_formula(size, sigma):
    half = (size - 1) / 2
    reference = np.array([[math.exp(-((x - half) ** 2 + (y - half) ** 2) / (2 * sigma**2)) for x in range(size)]
                          for y in range(size)])
    reference[reference < np.finfo(float).eps * reference.max()] = 0
    np.testing.assert_allclose(kernels.fspecial_gaussian(size, sigma), reference / reference.sum(), atol=ATOL)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shifted_kernel_is_the_bilinear_resampling_of_bsrgan(scale):
    kernel = kernels.fspecial_gaussian(25, 1.3)
    grid = np.arange(25.0)
    shifted = np.clip(grid + (scale - 1) * 0.5, 0, 24)
    interpolate = RegularGridInterpolator((grid, grid), kernel, method="linear")
    reference = interpolate(np.stack(np.meshgrid(shifted, shifted, indexing="ij"), axis=-1))
    np.testing.assert_allclose(kernels.shift_kernel(kernel, scale), reference, atol=ATOL)


def test_random_mixed_kernel_draws_in_basicsr_order():
    """For a forced family the kernel equals the formula at the parameters drawn from the same stream."""
    rng, replay = np.random.default_rng(3), np.random.default_rng(3)
    kernel = kernels.random_mixed_kernel(rng, ["generalized_aniso"], [1.0], 15, (0.2, 3), (0.5, 4), (1, 2))
    replay.choice(1, p=[1.0])
    sx, sy, theta = replay.uniform(0.2, 3), replay.uniform(0.2, 3), replay.uniform(-math.pi, math.pi)
    beta = replay.uniform(0.5, 1) if replay.uniform() < 0.5 else replay.uniform(1, 4)
    np.testing.assert_allclose(kernel, _reference(15, sx, sy, theta, lambda q: math.exp(-0.5 * q**beta)), atol=ATOL)


@pytest.mark.parametrize("mode", kernels.RESIZE_MODES)
@pytest.mark.parametrize("shape,kwargs", [((64, 64, 3), {"scale_factor": 0.15}), ((64, 64, 3), {"scale_factor": 1.3}),
                                          ((21, 33, 3), {"size": (32, 32)}), ((64, 48, 3), {"size": (9, 11)})])
def test_resize_matches_torch_interpolate(mode, shape, kwargs):
    image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    extra = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    expected = F.interpolate(tensor, mode=mode, **kwargs, **extra)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(kernels.resize(image, mode=mode, **kwargs), expected, atol=1e-5)


def test_filter2d_is_basicsr_reflect_pad_then_correlate():
    image = np.random.default_rng(1).uniform(size=(40, 36, 3)).astype(np.float32)
    kernel = kernels.bivariate_gaussian(21, 2.0, 0.8, 0.4, isotropic=False)
    tensor = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    padded = F.pad(tensor, (10, 10, 10, 10), mode="reflect")
    weight = torch.from_numpy(kernel.astype(np.float32))[None, None].repeat(3, 1, 1, 1)
    expected = F.conv2d(padded, weight, groups=3)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(filter2d(image, kernel), expected, atol=ATOL)


# ------------------------------------------------------------------------------- the ops


def _patches(n=6, size=48):
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255
    return np.stack([photo[40 * i:40 * i + size, 60 * i:60 * i + size] for i in range(n)])


OPS = [
    [{"type": "realesrgan", "scale": 2}],
    [{"type": "realesrgan", "scale": 4, "second_blur_prob": 0.0, "final_sinc_prob": 1.0, "usm_sharpen": False}],
    [{"type": "bsrgan", "scale": 2}],
    [{"type": "bsrgan", "scale": 4, "scale2_prob": 1.0}],
    [{"type": "bsrgan", "scale": 3}],
    [{"type": "resize", "scale": 2, "method": "bicubic"}],
    [{"type": "resize", "scale": 4, "method": "area"}],
    [{"type": "resize", "scale": 3, "method": "nearest"}],
    [{"type": "resize", "scale": 2, "method": "bilinear", "antialias": True}],
]


@pytest.mark.parametrize("spec", OPS, ids=lambda spec: "-".join(f"{v}" for v in spec[0].values()))
def test_op_shape_range_and_determinism(spec):
    chain = build_chain(spec)
    scale = spec[0]["scale"]
    hr = _patches()
    index, patch = np.arange(len(hr)), np.zeros(len(hr), dtype=np.int64)
    lr = degrade_patches(chain, hr, index, patch, seed=0, set_name="test/x")
    assert chain.scale == scale
    assert lr.shape == (len(hr), 48 // scale, 48 // scale, 3) and lr.dtype == np.float32
    assert lr.min() >= 0.0 and lr.max() <= 1.0 and np.isfinite(lr).all()
    np.testing.assert_array_equal(lr, degrade_patches(chain, hr, index, patch, seed=0, set_name="test/x"))
    # a patch's LR depends on its own key only, not on the other patches
    np.testing.assert_array_equal(lr[2:3], degrade_patches(chain, hr[2:3], index[2:3], patch[2:3], 0, "test/x"))
    if chain.is_random:
        other = degrade_patches(chain, hr, index, patch, seed=1, set_name="test/x")
        assert not np.array_equal(lr, other)


def test_resize_matches_torch_and_is_deterministic_batchwise():
    hr = _patches()
    lr = degrade_patches(build_chain([{"type": "resize", "scale": 2, "method": "area"}]), hr,
                         np.arange(6), np.zeros(6, dtype=np.int64), 0, "x")
    expected = F.avg_pool2d(torch.from_numpy(hr.transpose(0, 3, 1, 2).copy()), 2).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(lr, expected, atol=1e-6)


def test_realworld_ops_degrade_more_than_bicubic():
    """A sanity check of strength: the LR of both pipelines is further from the bicubic LR than
    rounding, and noisier (more high-frequency energy relative to bicubic) on average."""
    hr = _patches(8)
    keys = np.arange(8), np.zeros(8, dtype=np.int64)
    clean = degrade_patches(build_chain([{"type": "bicubic", "scale": 2}]), hr, *keys, 0, "x")
    for op in ("realesrgan", "bsrgan"):
        lr = degrade_patches(build_chain([{"type": op, "scale": 2}]), hr, *keys, 0, "x")
        assert np.abs(lr - clean).mean() > 0.01, op


def test_whole_chain_ops_take_the_suites_scale():
    raw = {"name": "s", "scale": 4, "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                                                     {"name": "real", "chain": [{"type": "realesrgan"}]},
                                                     {"name": "bsr", "chain": [{"type": "bsrgan"}]},
                                                     {"name": "naive", "chain": [{"type": "resize", "method": "area"}]}],
           "models": ["m"], "metrics": [{"type": "chi"}]}
    loaded = compile_suite(raw, "s.yaml")
    assert {name: chain.scale for name, chain in loaded.chains.items()} == {"clean": 4, "real": 4, "bsr": 4, "naive": 4}
    raw["degradations"][1]["chain"][0]["scale"] = 2
    with pytest.raises(UserError, match=r"s.yaml: degradations\[1\].chain: set 'real' downsamples x2"):
        compile_suite(raw, "s.yaml")


@pytest.mark.parametrize("params,culprit", [
    ({"type": "realesrgan", "scale": 2, "resize_prob": [0.5, 0.5, 0.5]}, "resize_prob"),
    ({"type": "realesrgan", "scale": 2, "kernel_prob": [1.0]}, "kernel_prob"),
    ({"type": "realesrgan", "scale": 2, "jpeg_range": [95, 30]}, "jpeg_range"),
    ({"type": "realesrgan", "scale": 2, "blur_kernel_size": 20}, "blur_kernel_size"),
    ({"type": "bsrgan", "scale": 2, "jpeg_prob": 1.5}, "jpeg_prob"),
    ({"type": "resize", "scale": 2, "method": "lanczos"}, "method"),
    ({"type": "resize", "scale": 2, "method": "area", "antialias": True}, "antialias"),
])
def test_bad_parameters_name_the_field(params, culprit):
    with pytest.raises(UserError, match=culprit):
        build_chain([params])
