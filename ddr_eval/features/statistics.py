"""Hand-made statistics of LR images: the feature baseline deep degradation representations must beat.

A suite model ``{baseline: image_statistics}`` replaces a network's deep features by these
12 numbers per patch (noise level, blockiness, high-frequency energy…), which target the
usual degradations directly; the identification probe reads them like any other features.
"""

from __future__ import annotations

import numpy as np

from ddr_eval.core.errors import DegenerateInputError, UserError

IMAGE_STATISTIC_NAMES = (
    "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b",
    "gradient_mean", "gradient_std", "laplacian_var", "high_frequency_energy",
    "blockiness", "noise_sigma",
)  # fmt: skip
JPEG_BLOCK = 8


def _luma(images: np.ndarray) -> np.ndarray:
    return images @ np.array([0.299, 0.587, 0.114])


def _high_frequency_energy(luma: np.ndarray) -> np.ndarray:
    """Share of spectral energy above half the Nyquist frequency (blur lowers it, noise raises it)."""
    spectrum = np.abs(np.fft.fft2(luma - luma.mean(axis=(1, 2), keepdims=True))) ** 2
    fy = np.fft.fftfreq(luma.shape[1])[:, None]
    fx = np.fft.fftfreq(luma.shape[2])[None, :]
    high = np.hypot(fy, fx) > 0.25
    total = spectrum.sum(axis=(1, 2))
    return np.divide(spectrum[:, high].sum(axis=1), total, out=np.zeros_like(total), where=total > 0)


def _blockiness(luma: np.ndarray) -> np.ndarray:
    """JPEG blockiness: mean |step| across 8-pixel block boundaries over the mean |step| one
    pixel either side of them (1 = no blocks; local neighbours cancel most of the content).

    Averaged over horizontal and vertical boundaries; 1 when the image is too small to have a
    boundary with neighbours on both sides.
    """
    ratios = []
    for steps in (np.abs(np.diff(luma, axis=2)), np.abs(np.diff(luma, axis=1)).transpose(0, 2, 1)):
        boundaries = np.arange(JPEG_BLOCK - 1, steps.shape[2] - 1, JPEG_BLOCK)
        if boundaries.size == 0:
            ratios.append(np.ones(luma.shape[0]))
            continue
        across = steps[:, :, boundaries].mean(axis=(1, 2))
        beside = (steps[:, :, boundaries - 1].mean(axis=(1, 2)) + steps[:, :, boundaries + 1].mean(axis=(1, 2))) / 2
        ratios.append(np.divide(across, beside, out=np.ones_like(beside), where=beside > 0))
    return np.mean(ratios, axis=0)


def _noise_sigma(luma: np.ndarray) -> np.ndarray:
    """Immerkær's (1996) fast noise estimate: a Laplacian-difference mask cancels smooth content."""
    c = luma[:, 1:-1, 1:-1]
    edges = luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:]
    corners = luma[:, :-2, :-2] + luma[:, :-2, 2:] + luma[:, 2:, :-2] + luma[:, 2:, 2:]
    response = 4 * c - 2 * edges + corners
    return np.sqrt(np.pi / 2) * np.abs(response).mean(axis=(1, 2)) / 6


def image_statistics(lr: np.ndarray) -> np.ndarray:
    """(N, 12) simple statistics of LR images (NHWC RGB, float in [0, 1] or uint8).

    Columns are :data:`IMAGE_STATISTIC_NAMES`: per-channel mean and std; mean and std of the
    luma gradient magnitude; variance of the 4-neighbour Laplacian; high-frequency energy
    share; JPEG blockiness; Immerkær noise sigma.
    """
    images = np.asarray(lr)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"image_statistics needs NHWC RGB images, got shape {images.shape}")
    if images.shape[0] == 0 or min(images.shape[1:3]) < 3:
        raise DegenerateInputError(f"image_statistics needs images of at least 3x3 pixels, got shape {images.shape}")
    images = images.astype(np.float64) / 255.0 if images.dtype == np.uint8 else images.astype(np.float64)
    if not np.isfinite(images).all():
        raise DegenerateInputError("image_statistics: images contain NaN/Inf")
    luma = _luma(images)
    gx = luma[:, :-1, 1:] - luma[:, :-1, :-1]
    gy = luma[:, 1:, :-1] - luma[:, :-1, :-1]
    gradient = np.hypot(gx, gy)
    laplacian = (
        luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2] + luma[:, 1:-1, 2:] - 4 * luma[:, 1:-1, 1:-1]
    )
    columns = [
        images.mean(axis=(1, 2)),
        images.std(axis=(1, 2)),
        gradient.mean(axis=(1, 2))[:, None],
        gradient.std(axis=(1, 2))[:, None],
        laplacian.var(axis=(1, 2))[:, None],
        _high_frequency_energy(luma)[:, None],
        _blockiness(luma)[:, None],
        _noise_sigma(luma)[:, None],
    ]
    return np.concatenate(columns, axis=1)
