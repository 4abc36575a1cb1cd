"""Blur kernels of the real-world degradation models, and the resampling they use.

The formulas follow BasicSR's ``basicsr/data/degradations.py`` (used by Real-ESRGAN) and
BSRGAN's ``utils/utils_blindsr.py`` term by term, so a kernel drawn here for given parameters
equals theirs to float rounding (``tests/test_realworld_degradations.py`` checks 1e-6). Two
things differ on purpose: every random draw comes from the ``numpy.random.Generator`` passed in
(never the global ``random`` / ``np.random`` state), and OpenCV's resize is replaced by
PyTorch's ``F.interpolate`` (OpenCV is not a dependency; Real-ESRGAN itself resizes with it).

Kernels are indexed ``[row (y), column (x)]``; every kernel sums to 1.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "KERNEL_TYPES",
    "anisotropic_gaussian_bsrgan",
    "bivariate_gaussian",
    "bivariate_generalized_gaussian",
    "bivariate_plateau",
    "circular_lowpass_kernel",
    "fspecial_gaussian",
    "mesh_grid",
    "random_mixed_kernel",
    "resize",
    "shift_kernel",
    "sigma_matrix",
]

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
"""The kernel families of Real-ESRGAN's ``kernel_list``."""


# ---------------------------------------------------------------- BasicSR / Real-ESRGAN kernels


def mesh_grid(kernel_size: int) -> np.ndarray:
    """(K, K, 2) offsets from the centre, ``[..., 0]`` = x (column), ``[..., 1]`` = y (row)."""
    axis = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx, yy], axis=-1)


def sigma_matrix(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Covariance ``R(theta) diag(sigma_x², sigma_y²) R(theta)ᵀ`` of a rotated Gaussian."""
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T


def _mahalanobis(kernel_size: int, sigma_x: float, sigma_y: float, theta: float, isotropic: bool) -> np.ndarray:
    """``gᵀ Σ⁻¹ g`` on the kernel grid (the quadratic form all three families are built on)."""
    covariance = np.diag([sigma_x**2, sigma_x**2]) if isotropic else sigma_matrix(sigma_x, sigma_y, theta)
    grid = mesh_grid(kernel_size)
    return np.einsum("...i,ij,...j->...", grid, np.linalg.inv(covariance), grid)


def bivariate_gaussian(kernel_size, sigma_x, sigma_y=None, theta=0.0, isotropic=True) -> np.ndarray:
    """``exp(-q/2)`` normalised, q the Mahalanobis form (BasicSR ``bivariate_Gaussian``)."""
    kernel = np.exp(-0.5 * _mahalanobis(kernel_size, sigma_x, sigma_y or sigma_x, theta, isotropic))
    return kernel / kernel.sum()


def bivariate_generalized_gaussian(kernel_size, sigma_x, sigma_y, theta, beta, isotropic=True) -> np.ndarray:
    """``exp(-q^beta / 2)`` normalised: beta < 1 heavier tails, beta > 1 flatter top."""
    kernel = np.exp(-0.5 * np.power(_mahalanobis(kernel_size, sigma_x, sigma_y, theta, isotropic), beta))
    return kernel / kernel.sum()


def bivariate_plateau(kernel_size, sigma_x, sigma_y, theta, beta, isotropic=True) -> np.ndarray:
    """``1 / (1 + q^beta)`` normalised: a flat plateau with polynomial tails."""
    kernel = 1.0 / (np.power(_mahalanobis(kernel_size, sigma_x, sigma_y, theta, isotropic), beta) + 1.0)
    return kernel / kernel.sum()


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """The 2-D sinc (ideal circular low-pass) of Real-ESRGAN: ``ωc J1(ωc r) / (2π r)``.

    It reproduces ringing and overshoot artefacts; ``cutoff`` is in radians (π passes all).
    The centre takes the limit ``ωc² / (4π)``. ``pad_to`` zero-pads to a larger odd size.
    """
    centre = (kernel_size - 1) / 2
    rows, cols = np.meshgrid(np.arange(kernel_size), np.arange(kernel_size), indexing="ij")
    radius = np.hypot(rows - centre, cols - centre)
    from scipy import special

    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * special.j1(cutoff * radius) / (2 * np.pi * radius)
    kernel[kernel_size // 2, kernel_size // 2] = cutoff**2 / (4 * np.pi)
    kernel = kernel / kernel.sum()
    if pad_to > kernel_size:
        pad = (pad_to - kernel_size) // 2
        kernel = np.pad(kernel, pad)
    return kernel


def _beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    """BasicSR's shape draw: half the time below 1, half the time above (it assumes low < 1 < high)."""
    if rng.uniform() < 0.5:
        return float(rng.uniform(beta_range[0], 1))
    return float(rng.uniform(1, beta_range[1]))


def random_mixed_kernel(
    rng: np.random.Generator,
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    kernel_size: int,
    sigma_range: Sequence[float],
    betag_range: Sequence[float],
    betap_range: Sequence[float],
    rotation_range: Sequence[float] = (-math.pi, math.pi),
) -> np.ndarray:
    """One kernel of BasicSR's ``random_mixed_kernels`` (no multiplicative noise, as Real-ESRGAN).

    The family is drawn with ``kernel_prob``; then sigma_x (and for anisotropic kernels sigma_y
    and the rotation), then beta for the generalized and plateau families, in BasicSR's order.
    """
    kind = kernel_list[int(rng.choice(len(kernel_list), p=np.asarray(kernel_prob) / np.sum(kernel_prob)))]
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sigma_x = float(rng.uniform(*sigma_range))
    sigma_y, theta = sigma_x, 0.0
    if not isotropic:
        sigma_y = float(rng.uniform(*sigma_range))
        theta = float(rng.uniform(*rotation_range))
    if kind in ("iso", "aniso"):
        return bivariate_gaussian(kernel_size, sigma_x, sigma_y, theta, isotropic)
    if kind.startswith("generalized"):
        return bivariate_generalized_gaussian(kernel_size, sigma_x, sigma_y, theta, _beta(rng, betag_range), isotropic)
    return bivariate_plateau(kernel_size, sigma_x, sigma_y, theta, _beta(rng, betap_range), isotropic)


# ---------------------------------------------------------------- BSRGAN kernels


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)`` as BSRGAN writes it (tiny values zeroed)."""
    half = (size - 1) / 2
    x, y = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1))
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(float).eps * kernel.max()] = 0
    total = kernel.sum()
    return kernel / total if total != 0 else kernel


def anisotropic_gaussian_bsrgan(size: int, theta: float, l1: float, l2: float) -> np.ndarray:
    """BSRGAN's ``anisotropic_Gaussian``: covariance ``V diag(l1, l2) V⁻¹`` with V a reflection
    whose first axis points along ``theta``; the normal pdf on the grid, normalised."""
    v = np.array([math.cos(theta), math.sin(theta)])
    basis = np.array([[v[0], v[1]], [v[1], -v[0]]])
    covariance = basis @ np.diag([l1, l2]) @ np.linalg.inv(basis)
    grid = mesh_grid(size) if size % 2 else mesh_grid(size) + 0.5  # BSRGAN centres at size/2 - 0.5
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", grid, np.linalg.inv(covariance), grid))
    return kernel / kernel.sum()


def shift_kernel(kernel: np.ndarray, scale: int) -> np.ndarray:
    """BSRGAN's ``shift_pixel``: resample the kernel (bilinearly) ``(scale - 1) / 2`` px towards the
    upper left, so that nearest downsampling after it is centred like bicubic downsampling."""
    height, width = kernel.shape
    shift = (scale - 1) * 0.5
    ys = np.clip(np.arange(height) + shift, 0, height - 1)
    xs = np.clip(np.arange(width) + shift, 0, width - 1)
    return _bilinear(kernel, ys, xs)


def _bilinear(values: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``values`` sampled at the grid ``ys × xs`` (coordinates inside the array) by bilinear weights."""
    y0 = np.minimum(np.floor(ys).astype(int), values.shape[0] - 2)
    x0 = np.minimum(np.floor(xs).astype(int), values.shape[1] - 2)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = values[y0][:, x0] * (1 - wx) + values[y0][:, x0 + 1] * wx
    bottom = values[y0 + 1][:, x0] * (1 - wx) + values[y0 + 1][:, x0 + 1] * wx
    return top * (1 - wy) + bottom * wy


# ---------------------------------------------------------------- resampling

RESIZE_MODES = ("bicubic", "bilinear", "area", "nearest")


def resize(img: np.ndarray, size: tuple[int, int] | None = None, scale_factor: float | None = None,
           mode: str = "bicubic") -> np.ndarray:
    """Resize an HWC float image as PyTorch's ``F.interpolate`` does (not antialiased, not clipped).

    Exactly one of ``size`` (height, width) and ``scale_factor`` is given; with ``scale_factor``
    the output side is ``floor(side * scale_factor)`` and source coordinates use the factor
    itself, as ``F.interpolate`` computes them (``align_corners=False``). Every mode is
    separable, so it runs as two small matrix products: on a few-dozen-pixel patch that is
    much faster than a torch call, whose thread start-up dominates on a busy machine.
    """
    if size is not None:
        out_size = (max(1, int(size[0])), max(1, int(size[1])))
        ratios = (img.shape[0] / out_size[0], img.shape[1] / out_size[1])
    else:
        factor = max(float(scale_factor), 1.0 / min(img.shape[:2]))  # never below one pixel
        out_size = (int(img.shape[0] * factor), int(img.shape[1] * factor))
        ratios = (1.0 / factor, 1.0 / factor)
    rows = interpolation_matrix(img.shape[0], out_size[0], ratios[0], mode)
    cols = interpolation_matrix(img.shape[1], out_size[1], ratios[1], mode)
    # two plain einsums: for matrices this small, BLAS threads cost more than they save
    resized_rows = np.einsum("ij,jkc->ikc", rows, img.astype(np.float64))
    return np.einsum("lk,ikc->ilc", cols, resized_rows).astype(np.float32)


def interpolation_matrix(in_size: int, out_size: int, ratio: float, mode: str) -> np.ndarray:
    """The (out, in) matrix of 1-D resampling with PyTorch's conventions for ``mode``.

    ``ratio`` is input pixels per output pixel. ``area`` averages the bins
    ``[floor(i·n/m), ceil((i+1)·n/m))`` (adaptive average pooling); ``nearest`` takes
    ``floor(i·ratio)``; ``bilinear`` and ``bicubic`` (Keys, a = -0.75) sample at
    ``(i + 0.5)·ratio - 0.5``, bilinear clamping negative positions to 0, bicubic clamping
    its taps to the border.
    """
    matrix = np.zeros((out_size, in_size))
    if mode == "area":
        for i in range(out_size):
            start, stop = (i * in_size) // out_size, -((-(i + 1) * in_size) // out_size)
            matrix[i, start:stop] = 1.0 / (stop - start)
        return matrix
    if mode == "nearest":
        # in float32, as PyTorch computes it (the rounding decides ties such as 13 / 1.3)
        source = np.floor(np.arange(out_size, dtype=np.float32) * np.float32(ratio)).astype(int)
        matrix[np.arange(out_size), np.minimum(source, in_size - 1)] = 1.0
        return matrix
    source = (np.arange(out_size) + 0.5) * ratio - 0.5
    if mode == "bilinear":
        source = np.maximum(source, 0.0)
        low = np.minimum(np.floor(source).astype(int), in_size - 1)
        high = np.minimum(low + 1, in_size - 1)
        weight = source - low
        np.add.at(matrix, (np.arange(out_size), low), 1 - weight)
        np.add.at(matrix, (np.arange(out_size), high), weight)
        return matrix
    if mode == "bicubic":
        base = np.floor(source).astype(int)
        t = source - base
        for offset in (-1, 0, 1, 2):
            taps = np.clip(base + offset, 0, in_size - 1)
            np.add.at(matrix, (np.arange(out_size), taps), _cubic(np.abs(t - offset)))
        return matrix
    raise ValueError(f"unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}")


def _cubic(distance: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution weight at ``distance`` (PyTorch's and OpenCV's a = -0.75)."""
    near = ((a + 2) * distance - (a + 3)) * distance * distance + 1
    far = ((a * distance - 5 * a) * distance + 8 * a) * distance - 4 * a
    return np.where(distance <= 1, near, np.where(distance < 2, far, 0.0))
