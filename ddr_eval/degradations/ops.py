"""The degradation ops: validated, frozen pydantic models registered by their ``type`` name.

Each op turns one float32 HWC RGB image in [0, 1] into another (clipped to [0, 1]). The recipes
follow BasicSR (``basicsr/data/degradations.py``) so that the degradations DDR papers study are
the ones measured here, with two deliberate differences: randomness comes from the generator
passed to :meth:`Degradation.apply` (never global state), and images are RGB (BasicSR's
cv2 pipeline is BGR, which only matters for the luminance weights of gray Poisson noise).

Strength parameters take a number or a ``[low, high]`` pair. A pair means "draw uniformly per
patch from the patch's generator", which is how a suite describes a *range* of strengths for
distortion identification. Draws happen in field order, before any noise map is drawn.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, ClassVar, Literal, Optional, Sequence, Union

import numpy as np
from PIL import Image
from pydantic import AfterValidator, Field, field_validator, model_validator

from ddr_eval.degradations.resize import imresize
from ddr_eval.core.registry import Registry
from ddr_eval.core.specs import StrictModel

__all__ = [
    "DEGRADATIONS",
    "Bicubic",
    "Degradation",
    "GaussianBlur",
    "GaussianNoise",
    "Jpeg",
    "PoissonNoise",
    "correlate_2d",
    "correlate_separable",
    "gaussian_kernel",
    "gaussian_kernel_1d",
]

DEGRADATIONS: Registry[type["Degradation"]] = Registry("degradation")

# ITU-R BT.601 luma weights for RGB, as in cv2.COLOR_RGB2GRAY.
RGB_TO_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float64)


# --------------------------------------------------------------------------- strength types


def _strength_type(
    *, gt: float | None = None, ge: float | None = None, le: float | None = None, integer: bool = False
):
    """Annotated type for "a number, or a ``[low, high]`` range sampled per patch".

    Bounds apply to the number and to both ends of a range; a range must have low <= high.
    """
    number = int if integer else float

    def check(value):
        ends = value if isinstance(value, tuple) else (value,)
        for end in ends:
            if not math.isfinite(end):
                raise ValueError(f"must be a finite number, got {end}")
            if gt is not None and not end > gt:
                raise ValueError(f"must be > {gt}, got {end}")
            if ge is not None and not end >= ge:
                raise ValueError(f"must be >= {ge}, got {end}")
            if le is not None and not end <= le:
                raise ValueError(f"must be <= {le}, got {end}")
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"range [{value[0]}, {value[1]}] must have low <= high")
        return value

    return Annotated[Union[number, tuple[number, number]], AfterValidator(check)]


PositiveStrength = _strength_type(gt=0)
AngleStrength = _strength_type()
QualityStrength = _strength_type(ge=1, le=100, integer=True)


def sample(value: float | int | tuple, rng: np.random.Generator | None) -> float | int:
    """The value to use for one patch: the number itself, or a uniform draw from the range."""
    if not isinstance(value, tuple):
        return value
    low, high = value
    if isinstance(low, int) and isinstance(high, int):
        return int(rng.integers(low, high, endpoint=True))
    return float(rng.uniform(low, high))


# --------------------------------------------------------------------------- base class


class Degradation(StrictModel):
    """One degradation op, built from ``{"type": ..., **params}``.

    Subclasses define ``type: Literal[...]``, their parameters, and ``_apply`` on one image.
    Deterministic ops may override ``_apply_batch`` to process an NHWC batch at once.
    """

    #: Whether the op shrinks the image by a ``scale`` parameter, which a suite's top-level
    #: ``scale:`` fills in when a step omits it.
    downsamples: ClassVar[bool] = False

    type: str

    @property
    def scale_factor(self) -> int:
        """How much the op shrinks each side (1 except for downsampling ops)."""
        return 1

    @property
    def is_random(self) -> bool:
        """Whether ``apply`` draws from its generator (then patches cannot share one call)."""
        return any(isinstance(getattr(self, name), tuple) for name in type(self).model_fields)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Degrade one HWC image; returns float32 clipped to [0, 1]."""
        image = _as_float32(img, ndim=3, what="image (HWC)")
        return _clip01(self._apply(image, rng))

    def apply_batch(
        self, batch: np.ndarray, rngs: Sequence[np.random.Generator] | None = None
    ) -> np.ndarray:
        """Degrade an NHWC batch; ``rngs`` (one per image) is required when ``is_random``.

        Random ops run image by image with each image's own generator, so the result equals
        calling :meth:`apply` per image; deterministic ops may run on the whole batch.
        """
        images = _as_float32(batch, ndim=4, what="batch (NHWC)")
        if not self.is_random:
            return _clip01(self._apply_batch(images))
        if rngs is None or len(rngs) != len(images):
            got = "none" if rngs is None else len(rngs)
            raise ValueError(f"{self.type} is random: need one generator per image, got {got}")
        return np.stack([self.apply(image, rng) for image, rng in zip(images, rngs)])

    def spec(self) -> dict:
        """Canonical, JSON-ready ``{"type": ..., **params}`` (ranges as lists, unset fields omitted)."""
        params = self.model_dump(mode="json", exclude_none=True, exclude={"type"})
        return {"type": self.type, **dict(sorted(params.items()))}

    def _apply(self, img: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement _apply")

    def _apply_batch(self, batch: np.ndarray) -> np.ndarray:
        return np.stack([self._apply(image, None) for image in batch])


def _as_float32(arr: np.ndarray, *, ndim: int, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != ndim:
        raise ValueError(f"expected a {what} array with {ndim} dimensions, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"expected a float {what} array in [0, 1], got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _clip01(arr: np.ndarray) -> np.ndarray:
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- ops


@DEGRADATIONS.register("bicubic")
class Bicubic(Degradation):
    """MATLAB-compatible antialiased bicubic downsampling by an integer factor.

    The standard "bicubic" LR of SR benchmarks; see :mod:`ddr_eval.degradations.resize`.
    """

    downsamples: ClassVar[bool] = True

    type: Literal["bicubic"] = "bicubic"
    scale: Literal[2, 3, 4]

    @property
    def scale_factor(self) -> int:
        return self.scale

    def _apply(self, img, rng):
        return imresize(img, 1 / self.scale)

    def _apply_batch(self, batch):
        return imresize(batch, 1 / self.scale)


def gaussian_kernel(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0
) -> np.ndarray:
    """Normalised 2-D Gaussian kernel, BasicSR's ``bivariate_Gaussian``.

    Rows index y and columns x; the covariance is ``R(theta) diag(sigma_x², sigma_y²) R(theta)ᵀ``
    (isotropic when ``sigma_y`` is None).
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    covariance = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
    offsets = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    xx, yy = np.meshgrid(offsets, offsets)  # xx varies along columns, yy along rows
    grid = np.stack([xx, yy], axis=-1)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", grid, np.linalg.inv(covariance), grid))
    return kernel / kernel.sum()


def gaussian_kernel_1d(kernel_size: int, sigma: float) -> np.ndarray:
    """1-D factor of the isotropic kernel: ``outer(k, k) == gaussian_kernel(size, sigma)``."""
    offsets = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


@DEGRADATIONS.register("gaussian_blur")
class GaussianBlur(Degradation):
    """Gaussian blur: isotropic (``sigma``) or anisotropic (``sigma_x``, ``sigma_y``, ``theta``).

    Borders are reflected without repeating the edge pixel (``scipy.ndimage`` "mirror"), which
    is OpenCV's default BORDER_REFLECT_101 used by BasicSR's ``filter2D``. Results equal
    ``ndimage.correlate(channel, kernel, mode="mirror")``; for speed the isotropic kernel is
    applied as two 1-D passes (it is separable) and the anisotropic one by FFT.
    """

    type: Literal["gaussian_blur"] = "gaussian_blur"
    sigma: Optional[PositiveStrength] = None
    sigma_x: Optional[PositiveStrength] = None
    sigma_y: Optional[PositiveStrength] = None
    theta: Optional[AngleStrength] = Field(None, description="rotation in radians")
    kernel_size: int = Field(21, ge=3)

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError(f"must be odd so the kernel has a centre pixel, got {size}")
        return size

    @model_validator(mode="after")
    def _one_form(self) -> "GaussianBlur":
        anisotropic = [name for name in ("sigma_x", "sigma_y", "theta") if getattr(self, name) is not None]
        if self.sigma is not None and anisotropic:
            raise ValueError(
                f"give either sigma (isotropic) or sigma_x/sigma_y/theta (anisotropic), "
                f"not both (got sigma and {', '.join(anisotropic)})"
            )
        if self.sigma is None and (self.sigma_x is None or self.sigma_y is None):
            raise ValueError("needs sigma (isotropic) or both sigma_x and sigma_y (anisotropic)")
        return self

    def _apply(self, img, rng):
        if self.sigma is not None:
            kernel_1d = gaussian_kernel_1d(self.kernel_size, sample(self.sigma, rng))
            return correlate_separable(img, kernel_1d, (0, 1))
        kernel = gaussian_kernel(
            self.kernel_size,
            sample(self.sigma_x, rng),
            sample(self.sigma_y, rng),
            sample(self.theta if self.theta is not None else 0.0, rng),
        )
        return correlate_2d(img, kernel, spatial_axes=(0, 1))

    def _apply_batch(self, batch):
        if self.sigma is None:  # per-image FFTs beat one huge batched FFT
            return super()._apply_batch(batch)
        return correlate_separable(batch, gaussian_kernel_1d(self.kernel_size, self.sigma), (1, 2))


def correlate_2d(arr: np.ndarray, kernel: np.ndarray, spatial_axes: tuple[int, int]) -> np.ndarray:
    """``ndimage.correlate(arr, kernel, mode="mirror")`` per channel, computed by FFT.

    A 21x21 kernel costs 441 multiply-adds per pixel directly; mirror-padding and an FFT
    convolution with the flipped kernel give the same numbers (to float rounding) far faster.
    """
    kernel_nd = np.expand_dims(kernel, [axis for axis in range(arr.ndim) if axis not in spatial_axes])
    pad = kernel.shape[0] // 2
    if min(arr.shape[axis] for axis in spatial_axes) <= pad:  # reflection would wrap more than once
        from scipy import ndimage

        return ndimage.correlate(arr, kernel_nd, mode="mirror")
    widths = [(pad, pad) if axis in spatial_axes else (0, 0) for axis in range(arr.ndim)]
    padded = np.pad(arr.astype(np.float64), widths, mode="reflect")  # numpy "reflect" == scipy "mirror"
    flipped = np.flip(kernel_nd, axis=spatial_axes)
    from scipy import signal  # lazy: scipy.signal pulls in scipy.stats, a second of start-up

    return signal.fftconvolve(padded, flipped, mode="valid", axes=spatial_axes).astype(np.float32)


def correlate_separable(arr: np.ndarray, kernel_1d: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """``correlate_2d`` with the kernel ``outer(kernel_1d, kernel_1d)``, as two 1-D passes along ``axes``.

    A separable kernel (the isotropic Gaussian) costs 2k multiply-adds per pixel this way instead
    of k^2; borders are mirrored as in :func:`correlate_2d`.
    """
    from scipy import ndimage  # lazy: a quarter second of start-up for runs that blur nothing

    out = ndimage.correlate1d(arr, kernel_1d, axis=axes[0], mode="mirror")
    return ndimage.correlate1d(out, kernel_1d, axis=axes[1], mode="mirror")


@DEGRADATIONS.register("gaussian_noise")
class GaussianNoise(Degradation):
    """Additive white Gaussian noise; ``sigma`` is on the 0-255 scale (BasicSR convention).

    ``gray=True`` draws one noise map shared by all channels (luminance-like noise).
    """

    type: Literal["gaussian_noise"] = "gaussian_noise"
    sigma: PositiveStrength
    gray: bool = False

    @property
    def is_random(self) -> bool:
        return True

    def _apply(self, img, rng):
        sigma = sample(self.sigma, rng)
        shape = img.shape[:2] + (1,) if self.gray else img.shape
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
        return img + noise


@DEGRADATIONS.register("poisson_noise")
class PoissonNoise(Degradation):
    """Signal-dependent shot noise, BasicSR's ``add_poisson_noise`` recipe.

    The image is quantised to 8 bits, the number of distinct levels rounded up to a power of two
    sets the photon count, and the resulting noise, multiplied by ``scale``, is added to the
    original image. ``gray=True`` computes one noise map from luminance for all channels.
    """

    type: Literal["poisson_noise"] = "poisson_noise"
    scale: PositiveStrength
    gray: bool = False

    @property
    def is_random(self) -> bool:
        return True

    def _apply(self, img, rng):
        scale = sample(self.scale, rng)
        return img + poisson_noise(img, rng, self.gray) * np.float32(scale)


def poisson_noise(img: np.ndarray, rng: np.random.Generator, gray: bool) -> np.ndarray:
    """BasicSR's shot-noise map (before the ``scale`` multiplier), float32, broadcastable to ``img``."""
    source = (img @ RGB_TO_GRAY)[:, :, None] if gray else img.astype(np.float64)
    quantised = np.clip(np.round(source * 255.0), 0, 255) / 255.0
    levels = 2.0 ** np.ceil(np.log2(len(np.unique(quantised))))
    return (rng.poisson(quantised * levels) / levels - quantised).astype(np.float32)


@DEGRADATIONS.register("jpeg")
class Jpeg(Degradation):
    """JPEG compression artefacts: quantise to 8 bits, encode and decode in memory with Pillow."""

    type: Literal["jpeg"] = "jpeg"
    quality: QualityStrength

    def _apply(self, img, rng):
        return jpeg_compress(img, int(sample(self.quality, rng)))


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode an HWC image in [0, 1] as JPEG at ``quality`` and decode it (Pillow, in memory).

    Deterministic: the same pixels and quality always give the same bytes.
    """
    pixels = np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded, dtype=np.float32) / 255.0
    return out.reshape(img.shape)
