"""Whole real-world degradation models as chain steps: ``resize``, ``realesrgan`` and ``bsrgan``.

Each of these *is* a chain: it includes the downsampling to the suite's scale (``downsamples``
is True, so a step without ``scale`` takes the suite's). ``realesrgan`` and ``bsrgan`` are
random pipelines: every choice (kernel family, resize mode, noise kind, JPEG quality, the order
of steps) is drawn from the per-(seed, image, patch, set) generator a chain step receives, so an
LR patch is bit-identical across runs, batch sizes and workers.

They run on HR *patches* (e.g. 64 px at x2), not on the 256-px crops the papers train on:
filters reflect the borders like BasicSR's ``filter2D`` and keep reflecting when a kernel is
wider than a heavily downsized patch (where PyTorch's reflect padding would refuse), and every
resize keeps at least one pixel.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ddr_eval.degradations import kernels
from ddr_eval.degradations.ops import (
    DEGRADATIONS,
    Degradation,
    correlate_2d,
    correlate_separable,
    gaussian_kernel_1d,
    jpeg_compress,
    poisson_noise,
)
from ddr_eval.degradations.resize import imresize

__all__ = ["BSRGAN", "RealESRGAN", "Resize", "filter2d", "usm_sharpen"]

Range = tuple[float, float]
Probabilities3 = tuple[float, float, float]
_INTERPOLATIONS = ("area", "bilinear", "bicubic")


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """BasicSR's ``filter2D``: reflect-pad by half the kernel, then correlate (per channel)."""
    return correlate_2d(img, kernel, spatial_axes=(0, 1))


def usm_sharpen(img: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> np.ndarray:
    """Real-ESRGAN's unsharp masking of the HR image (its LR inputs are made from the sharpened HR).

    ``img + weight * (img - blur)`` where the residual exceeds ``threshold`` (0-255 scale), blended
    by a blurred mask so no hard edge appears; the blur is OpenCV's default Gaussian of odd size
    ``radius`` (+1 if even), ``sigma = 0.3 ((size - 1) / 2 - 1) + 0.8``.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    kernel_1d = gaussian_kernel_1d(size, 0.3 * ((size - 1) * 0.5 - 1) + 0.8)
    blur = correlate_separable(img, kernel_1d, (0, 1))
    residual = img - blur
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft_mask = correlate_separable(mask, kernel_1d, (0, 1))
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img


def _probabilities(value: tuple[float, ...]) -> tuple[float, ...]:
    if any(p < 0 for p in value) or not math.isclose(sum(value), 1.0, abs_tol=1e-6):
        raise ValueError(f"probabilities must be >= 0 and sum to 1, got {list(value)}")
    return value


def _ordered(value: Range) -> Range:
    if value[0] > value[1]:
        raise ValueError(f"range [{value[0]}, {value[1]}] must have low <= high")
    return value


class _WholeChain(Degradation):
    """A downsampling op whose ``scale`` is the suite's SR factor."""

    downsamples: ClassVar[bool] = True
    scale: Literal[2, 3, 4]

    @property
    def scale_factor(self) -> int:
        return self.scale

    def _final_size(self, img: np.ndarray) -> tuple[int, int]:
        return img.shape[0] // self.scale, img.shape[1] // self.scale


@DEGRADATIONS.register("resize")
class Resize(_WholeChain):
    """Plain downsampling by PyTorch's ``F.interpolate``: ``bicubic``, ``bilinear``, ``area``, ``nearest``.

    Unlike the ``bicubic`` op (MATLAB's antialiased imresize, the SR benchmark convention) these
    do not low-pass before sampling (``antialias: true`` asks PyTorch to, for bilinear and
    bicubic): the aliasing of a naive resize is itself a degradation real images carry.
    """

    type: Literal["resize"] = "resize"
    method: Literal["bicubic", "bilinear", "area", "nearest"] = "bicubic"
    antialias: bool = False

    @model_validator(mode="after")
    def _antialias_mode(self) -> "Resize":
        if self.antialias and self.method not in ("bilinear", "bicubic"):
            raise ValueError(f"antialias applies to bilinear and bicubic only, not {self.method}")
        return self

    def _apply(self, img, rng):
        return self._apply_batch(img[None])[0]

    def _apply_batch(self, batch):
        import torch
        import torch.nn.functional as F

        tensor = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        size = (batch.shape[1] // self.scale, batch.shape[2] // self.scale)
        kwargs = {"align_corners": False, "antialias": self.antialias} if self.method in ("bilinear", "bicubic") else {}
        out = F.interpolate(tensor, size=size, mode=self.method, **kwargs)
        return out.numpy().transpose(0, 2, 3, 1)


@DEGRADATIONS.register("realesrgan")
class RealESRGAN(_WholeChain):
    """The high-order degradation of Real-ESRGAN (Wang et al., ICCVW 2021), published defaults.

    From the HR (unsharp-masked first, as Real-ESRGAN makes its LR from ``gt_usm``):
    stage 1 blur (a kernel of the 6 families, or a sinc with ``sinc_prob``) -> random resize
    (up / down / keep with ``resize_prob``; area, bilinear or bicubic) -> Gaussian noise (with
    ``gaussian_noise_prob``) or Poisson noise, grey with ``gray_noise_prob`` -> JPEG; stage 2 the
    same with its own ranges (blur only with ``second_blur_prob``; the resize is relative to the
    LR size); then, in random order, [resize to HR / scale + final sinc (with ``final_sinc_prob``,
    else identity)] and JPEG; finally rounding to 8 bits. Kernel sizes are drawn from 7..21 (odd)
    and zero-padded to ``blur_kernel_size``, as in ``RealESRGANDataset``.

    Differences, each forced by running here: JPEG is Pillow's at the drawn quality rounded to
    an integer (Real-ESRGAN uses a differentiable JPEG); kernels reflect beyond one border width
    on tiny intermediate images.
    """

    type: Literal["realesrgan"] = "realesrgan"
    usm_sharpen: bool = True
    blur_kernel_size: int = Field(21, ge=7)
    kernel_list: tuple[Literal[kernels.KERNEL_TYPES], ...] = kernels.KERNEL_TYPES  # type: ignore[valid-type]
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = Field(0.1, ge=0, le=1)
    blur_sigma: Range = (0.2, 3.0)
    betag_range: Range = (0.5, 4.0)
    betap_range: Range = (1.0, 2.0)
    resize_prob: Probabilities3 = (0.2, 0.7, 0.1)
    resize_range: Range = (0.15, 1.5)
    gaussian_noise_prob: float = Field(0.5, ge=0, le=1)
    noise_range: Range = (1.0, 30.0)
    poisson_scale_range: Range = (0.05, 3.0)
    gray_noise_prob: float = Field(0.4, ge=0, le=1)
    jpeg_range: Range = (30.0, 95.0)
    second_blur_prob: float = Field(0.8, ge=0, le=1)
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = Field(0.1, ge=0, le=1)
    blur_sigma2: Range = (0.2, 1.5)
    betag_range2: Range = (0.5, 4.0)
    betap_range2: Range = (1.0, 2.0)
    resize_prob2: Probabilities3 = (0.3, 0.4, 0.3)
    resize_range2: Range = (0.3, 1.2)
    gaussian_noise_prob2: float = Field(0.5, ge=0, le=1)
    noise_range2: Range = (1.0, 25.0)
    poisson_scale_range2: Range = (0.05, 2.5)
    gray_noise_prob2: float = Field(0.4, ge=0, le=1)
    jpeg_range2: Range = (30.0, 95.0)
    final_sinc_prob: float = Field(0.8, ge=0, le=1)

    @field_validator("blur_kernel_size")
    @classmethod
    def _odd(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError(f"must be odd so kernels have a centre pixel, got {size}")
        return size

    @field_validator("kernel_prob", "kernel_prob2", "resize_prob", "resize_prob2")
    @classmethod
    def _sums_to_one(cls, value):
        return _probabilities(value)

    @field_validator("blur_sigma", "betag_range", "betap_range", "resize_range", "noise_range", "poisson_scale_range",
                     "jpeg_range", "blur_sigma2", "betag_range2", "betap_range2", "resize_range2", "noise_range2",
                     "poisson_scale_range2", "jpeg_range2")
    @classmethod
    def _low_high(cls, value):
        if min(value) <= 0:
            raise ValueError(f"must be > 0, got {list(value)}")
        return _ordered(value)

    @field_validator("jpeg_range", "jpeg_range2")
    @classmethod
    def _quality(cls, value):
        if not 1 <= value[0] <= value[1] <= 100:
            raise ValueError(f"JPEG qualities must lie in [1, 100], got {list(value)}")
        return value

    @model_validator(mode="after")
    def _matching_lengths(self) -> "RealESRGAN":
        for name in ("kernel_prob", "kernel_prob2"):
            if len(getattr(self, name)) != len(self.kernel_list):
                raise ValueError(f"{name} needs one probability per kernel_list entry ({len(self.kernel_list)})")
        return self

    @property
    def is_random(self) -> bool:
        return True

    def _apply(self, img, rng):
        lr_size = self._final_size(img)
        out = usm_sharpen(img) if self.usm_sharpen else img
        # stage 1
        out = filter2d(out, self._blur_kernel(rng, self.sinc_prob, self.blur_sigma, self.betag_range, self.betap_range,
                                              self.kernel_prob))
        factor = self._resize_factor(rng, self.resize_prob, self.resize_range)
        out = kernels.resize(out, scale_factor=factor, mode=_choice(rng, _INTERPOLATIONS))
        out = self._noise(out, rng, self.gaussian_noise_prob, self.noise_range, self.poisson_scale_range,
                          self.gray_noise_prob)
        out = jpeg_compress(np.clip(out, 0, 1), _quality(rng, self.jpeg_range))
        # stage 2
        kernel2 = self._blur_kernel(rng, self.sinc_prob2, self.blur_sigma2, self.betag_range2, self.betap_range2,
                                    self.kernel_prob2)
        if rng.uniform() < self.second_blur_prob:
            out = filter2d(out, kernel2)
        factor = self._resize_factor(rng, self.resize_prob2, self.resize_range2)
        size = (int(img.shape[0] / self.scale * factor), int(img.shape[1] / self.scale * factor))
        out = kernels.resize(out, size=size, mode=_choice(rng, _INTERPOLATIONS))
        out = self._noise(out, rng, self.gaussian_noise_prob2, self.noise_range2, self.poisson_scale_range2,
                          self.gray_noise_prob2)
        # final: [resize back + sinc] and JPEG, in random order
        sinc = self._final_sinc(rng)
        if rng.uniform() < 0.5:
            out = filter2d(kernels.resize(out, size=lr_size, mode=_choice(rng, _INTERPOLATIONS)), sinc)
            out = jpeg_compress(np.clip(out, 0, 1), _quality(rng, self.jpeg_range2))
        else:
            out = jpeg_compress(np.clip(out, 0, 1), _quality(rng, self.jpeg_range2))
            out = filter2d(kernels.resize(out, size=lr_size, mode=_choice(rng, _INTERPOLATIONS)), sinc)
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.float32) / np.float32(255)

    # -- the draws of RealESRGANDataset / RealESRGANModel ------------------------------------
    def _kernel_sizes(self) -> list[int]:
        return [size for size in range(7, self.blur_kernel_size + 1, 2)]

    def _blur_kernel(self, rng, sinc_prob, sigma, betag, betap, kernel_prob) -> np.ndarray:
        size = _choice(rng, self._kernel_sizes())
        if rng.uniform() < sinc_prob:
            cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
            kernel = kernels.circular_lowpass_kernel(cutoff, size)
        else:
            kernel = kernels.random_mixed_kernel(rng, self.kernel_list, kernel_prob, size, sigma, betag, betap)
        pad = (self.blur_kernel_size - size) // 2
        return np.pad(kernel, pad)

    def _final_sinc(self, rng) -> np.ndarray:
        if rng.uniform() < self.final_sinc_prob:
            size = _choice(rng, self._kernel_sizes())
            return kernels.circular_lowpass_kernel(rng.uniform(np.pi / 3, np.pi), size, pad_to=self.blur_kernel_size)
        pulse = np.zeros((self.blur_kernel_size, self.blur_kernel_size))
        pulse[self.blur_kernel_size // 2, self.blur_kernel_size // 2] = 1
        return pulse

    @staticmethod
    def _resize_factor(rng, probabilities, factor_range) -> float:
        direction = int(rng.choice(3, p=np.asarray(probabilities) / np.sum(probabilities)))
        if direction == 0:
            return float(rng.uniform(1, factor_range[1]))
        if direction == 1:
            return float(rng.uniform(factor_range[0], 1))
        return 1.0

    @staticmethod
    def _noise(img, rng, gaussian_prob, sigma_range, poisson_range, gray_prob) -> np.ndarray:
        if rng.uniform() < gaussian_prob:
            sigma = rng.uniform(*sigma_range)
            gray = rng.uniform() < gray_prob
            shape = img.shape[:2] + (1,) if gray else img.shape
            noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
        else:
            scale = rng.uniform(*poisson_range)
            gray = rng.uniform() < gray_prob
            noise = poisson_noise(img, rng, gray) * np.float32(scale)
        return np.clip(img + noise, 0, 1)


@DEGRADATIONS.register("bsrgan")
class BSRGAN(_WholeChain):
    """The shuffled degradation of BSRGAN (Zhang et al., ICCV 2021), published defaults.

    Seven steps in random order: two blurs (isotropic ``fspecial`` Gaussian or anisotropic
    Gaussian, sizes 7..25), a first downsampling (``downsample2_prob``: by a random factor in
    [1, 2·scale] with bilinear / bicubic / area, else a shifted Gaussian blur plus nearest
    sampling at the scale), a second one back to HR / scale (always after the first), Gaussian
    noise (level 2-25; colour, grey or channel-correlated), JPEG with ``jpeg_prob`` (quality
    30-95), and the camera-ISP noise step, which needs BSRGAN's ISP model and is skipped; then
    a final JPEG. At x4 a preliminary halving (``scale2_prob``) makes the rest work at x2.

    OpenCV's resize is PyTorch's ``F.interpolate`` here (INTER_AREA maps to ``area``), and JPEG
    is Pillow's; noise draws, kernel formulas and the step order are BSRGAN's.
    """

    type: Literal["bsrgan"] = "bsrgan"
    jpeg_prob: float = Field(0.9, ge=0, le=1)
    scale2_prob: float = Field(0.25, ge=0, le=1)
    downsample2_prob: float = Field(0.75, ge=0, le=1, description="resize (vs shifted blur + nearest) in downsample2")
    noise_range: tuple[int, int] = (2, 25)
    jpeg_range: tuple[int, int] = (30, 95)

    @field_validator("noise_range", "jpeg_range")
    @classmethod
    def _low_high(cls, value):
        return _ordered(value)

    @field_validator("jpeg_range")
    @classmethod
    def _quality(cls, value):
        if not 1 <= value[0] <= value[1] <= 100:
            raise ValueError(f"JPEG qualities must lie in [1, 100], got {list(value)}")
        return value

    @field_validator("noise_range")
    @classmethod
    def _noise_level(cls, value):
        if value[0] < 0:
            raise ValueError(f"noise levels must be >= 0, got {list(value)}")
        return value

    @property
    def is_random(self) -> bool:
        return True

    def _apply(self, img, rng):
        lr_size = self._final_size(img)
        out, sf = img.astype(np.float32), self.scale
        if sf == 4 and rng.uniform() < self.scale2_prob:  # downsample1
            if rng.uniform() < 0.5:
                half = (img.shape[0] // 2, img.shape[1] // 2)
                out = kernels.resize(out, size=half, mode=_choice(rng, _INTERPOLATIONS[::-1]))
            else:
                out = imresize(out, 0.5)
            out, sf = np.clip(out, 0, 1), 2
        order = list(rng.permutation(7))
        first, second = order.index(2), order.index(3)
        if first > second:  # the resize back to HR / scale stays after the first downsampling
            order[first], order[second] = order[second], order[first]
        for step in order:
            if step in (0, 1):
                out = filter2d(out, self._blur_kernel(rng, sf))
            elif step == 2:
                out = np.clip(self._downsample(out, rng, sf), 0, 1)
            elif step == 3:
                out = np.clip(kernels.resize(out, size=lr_size, mode=_choice(rng, _INTERPOLATIONS[::-1])), 0, 1)
            elif step == 4:
                out = self._noise(out, rng)
            elif step == 5 and rng.uniform() < self.jpeg_prob:
                out = jpeg_compress(out, int(rng.integers(*self.jpeg_range, endpoint=True)))
            # step 6: camera ISP noise needs BSRGAN's ISP model; skipped as when it is absent there
        return jpeg_compress(out, int(rng.integers(*self.jpeg_range, endpoint=True)))

    @staticmethod
    def _blur_kernel(rng, sf: int) -> np.ndarray:
        """``add_blur``: anisotropic (eigenvalues up to 4 + sf) or isotropic (sigma up to 2 + 0.2 sf)."""
        if rng.uniform() < 0.5:
            l1, l2 = (4.0 + sf) * rng.uniform(), (4.0 + sf) * rng.uniform()
            size = 2 * int(rng.integers(2, 11, endpoint=True)) + 3
            theta = rng.uniform() * np.pi
            return kernels.anisotropic_gaussian_bsrgan(size, theta, max(l1, 1e-6), max(l2, 1e-6))
        size = 2 * int(rng.integers(2, 11, endpoint=True)) + 3
        return kernels.fspecial_gaussian(size, max((2.0 + 0.2 * sf) * rng.uniform(), 1e-6))

    def _downsample(self, img, rng, sf: int) -> np.ndarray:
        if rng.uniform() < self.downsample2_prob:
            factor = rng.uniform(1, 2 * sf)
            size = (int(img.shape[0] / factor), int(img.shape[1] / factor))
            return kernels.resize(img, size=size, mode=_choice(rng, _INTERPOLATIONS[::-1]))
        kernel = kernels.shift_kernel(kernels.fspecial_gaussian(25, rng.uniform(0.1, 0.6 * sf)), sf)
        kernel = kernel / kernel.sum()
        blurred = correlate_2d(img, kernel[::-1, ::-1], spatial_axes=(0, 1))  # == ndimage.convolve, mirror
        return blurred[::sf, ::sf]

    def _noise(self, img, rng) -> np.ndarray:
        """``add_Gaussian_noise``: colour (p 0.4), grey (p 0.4) or channel-correlated (p 0.2)."""
        level = int(rng.integers(*self.noise_range, endpoint=True)) / 255.0
        pick = rng.uniform()
        if pick > 0.6:
            noise = rng.normal(0, level, img.shape)
        elif pick < 0.4:
            noise = rng.normal(0, level, (*img.shape[:2], 1))
        else:
            top = self.noise_range[1] / 255.0
            from scipy import linalg

            basis = linalg.orth(rng.uniform(size=(3, 3)))
            covariance = np.abs(top**2 * (basis.T @ np.diag(rng.uniform(size=3)) @ basis))
            noise = rng.multivariate_normal(np.zeros(3), covariance, img.shape[:2])
        return np.clip(img + noise.astype(np.float32), 0, 1)


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _quality(rng: np.random.Generator, quality_range) -> int:
    return int(round(rng.uniform(*quality_range)))
