"""Full-reference image quality of SR outputs, with BasicSR's conventions.

``psnr`` and ``ssim`` reproduce BasicSR's ``calculate_psnr`` / ``calculate_ssim``
(``basicsr/metrics/psnr_ssim.py``) on uint8 images, so numbers are comparable with papers:

* both images are cropped by ``crop_border`` pixels on every side first;
* ``test_y_channel`` evaluates the luma of ITU-R BT.601 "studio swing" YCbCr (Y in [16, 235]),
  as MATLAB's ``rgb2ycbcr``, computed with BasicSR's ``to_y_channel`` float32/float64 steps;
  BasicSR's images are BGR (OpenCV) and ours are RGB, so the channels are reversed and
  BasicSR's BGR coefficients are used, which makes the result bit-identical to BasicSR on the
  BGR version of the same image;
* PSNR is ``10 log10(255^2 / MSE)`` in float64 (``inf`` for identical images);
* SSIM uses an 11x11 Gaussian window with sigma 1.5 (OpenCV's ``getGaussianKernel``), "valid"
  filtering (OpenCV's ``filter2D`` cropped by 5 pixels, i.e. only positions where the window
  fits), ``C1 = (0.01*255)^2``, ``C2 = (0.03*255)^2``, averaged over channels. The window is
  separable, so it is applied as two 1-D correlations with scipy (no OpenCV dependency).

LPIPS needs the optional ``lpips`` package, which imports torchvision; where that cannot be
imported the ``lpips`` metric raises :class:`MetricUnavailableError`, whose message the runner
shows in the table cell as "unavailable: <reason>".
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ddr_eval.core.errors import DegenerateInputError, UserError
from ddr_eval.metrics.base import ImageIntervalMetric, Metric, MetricInputs, MetricUnavailableError, register_metric
from ddr_eval.metrics.bootstrap import (
    ImageGroups,
    bootstrap_mean_interval,
    cluster_bootstrap_mean_interval,
    image_bootstrap_rng,
)
from ddr_eval.metrics.results import OUTPUT_LAYER, MetricOutput, MetricResult

BGR_TO_Y = [24.966, 128.553, 65.481]
"""BT.601 luma weights (B, G, R) of BasicSR's ``bgr2ycbcr(y_only=True)`` for [0, 1] input; Y = 16 + w·bgr."""
SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A [0, 1] float image as uint8, rounded like BasicSR's ``tensor2img``."""
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _check_pair(img1: np.ndarray, img2: np.ndarray) -> None:
    for which, img in (("first", img1), ("second", img2)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise UserError(f"{which} image must be a uint8 numpy array, got {getattr(img, 'dtype', type(img))}")
        if img.ndim not in (2, 3):
            raise UserError(f"{which} image must be HW or HWC, got shape {img.shape}")
    if img1.shape != img2.shape:
        raise UserError(f"image shapes differ: {img1.shape} vs {img2.shape}")


def _prepare(img: np.ndarray, crop_border: int, test_y_channel: bool) -> np.ndarray:
    """Crop, optionally take Y, and return HWC float64, following BasicSR step by step."""
    if crop_border < 0:
        raise UserError(f"crop_border must be >= 0, got {crop_border}")
    if img.ndim == 2:
        img = img[..., None]
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise DegenerateInputError(f"crop_border={crop_border} leaves an empty image")
    if test_y_channel and img.shape[2] == 3:
        img = rgb_to_y(img)
    return img.astype(np.float64)


def _prepare_batch(images: np.ndarray, crop_border: int, test_y_channel: bool) -> np.ndarray:
    """:func:`_prepare` of every image of an NHWC batch at once."""
    if crop_border:
        images = images[:, crop_border:-crop_border, crop_border:-crop_border, :]
    if images.shape[1] == 0 or images.shape[2] == 0:
        raise DegenerateInputError(f"crop_border={crop_border} leaves an empty image")
    if test_y_channel and images.shape[3] == 3:
        images = rgb_to_y(images)
    return images.astype(np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y in [16, 235] (float32, HW1) of a uint8 RGB image, as BasicSR's ``to_y_channel``."""
    unit = img.astype(np.float32) / 255.0  # float32 in [0, 1], as to_y_channel passes it on
    bgr = np.ascontiguousarray(unit[..., ::-1])
    luma = np.dot(bgr, BGR_TO_Y) + 16.0  # float64 in [16, 235]
    luma /= 255.0
    return luma.astype(np.float32)[..., None] * 255.0


def psnr(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """PSNR in dB of two uint8 HWC RGB images (BasicSR ``calculate_psnr``); ``inf`` if identical."""
    _check_pair(img1, img2)
    a = _prepare(img1, crop_border, test_y_channel)
    b = _prepare(img2, crop_border, test_y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


@lru_cache(maxsize=1)
def _gaussian_kernel() -> np.ndarray:
    """OpenCV ``getGaussianKernel(11, 1.5)``: sampled Gaussian normalised to sum 1."""
    offsets = np.arange(SSIM_WINDOW_SIZE) - (SSIM_WINDOW_SIZE - 1) / 2
    kernel = np.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


def _filter_valid(channel: np.ndarray) -> np.ndarray:
    """Gaussian-window average at every position where the whole window fits."""
    kernel = _gaussian_kernel()
    from scipy.ndimage import correlate1d  # lazy: scipy.ndimage is a quarter second of start-up

    filtered = correlate1d(correlate1d(channel, kernel, axis=0), kernel, axis=1)
    margin = SSIM_WINDOW_SIZE // 2
    return filtered[margin:-margin, margin:-margin]


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a**2
    var_b = _filter_valid(b * b) - mu_b**2
    cov = _filter_valid(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    )
    return float(ssim_map.mean())


def ssim(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """SSIM of two uint8 HWC RGB images (BasicSR ``calculate_ssim``), mean over channels."""
    _check_pair(img1, img2)
    a = _prepare(img1, crop_border, test_y_channel)
    b = _prepare(img2, crop_border, test_y_channel)
    if min(a.shape[:2]) < SSIM_WINDOW_SIZE:
        raise DegenerateInputError(
            f"SSIM needs at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} pixels after cropping, got {a.shape[:2]}"
        )
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def psnr_drop(reference_psnr: float, test_psnr: float) -> float:
    """How many dB a model loses on the test degradation relative to the reference (clean) set."""
    reference_psnr, test_psnr = float(reference_psnr), float(test_psnr)
    if not (np.isfinite(reference_psnr) and np.isfinite(test_psnr)):
        raise DegenerateInputError(f"PSNR drop needs finite PSNRs, got {reference_psnr} and {test_psnr}")
    return reference_psnr - test_psnr


@lru_cache(maxsize=1)
def lpips_available() -> tuple[bool, str]:
    """Whether the optional ``lpips`` package imports here, and if not, why (one line)."""
    try:
        import lpips  # noqa: F401  (imports torchvision)
    except Exception as err:  # torchvision can fail with ImportError, RuntimeError, AttributeError...
        reason = str(err).splitlines()[0] if str(err) else ""
        return False, f"lpips cannot be imported ({type(err).__name__}: {reason})"[:200]
    return True, ""


# --------------------------------------------------------------------------- metrics


def _check_batches(outputs: np.ndarray, targets: np.ndarray) -> None:
    for which, batch in (("outputs", outputs), ("targets", targets)):
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4:
            raise UserError(
                f"{which} must be a uint8 NHWC array, got {getattr(batch, 'dtype', type(batch))} "
                f"{getattr(batch, 'shape', '')}"
            )
    if outputs.shape != targets.shape:
        raise UserError(f"outputs and targets differ in shape: {outputs.shape} vs {targets.shape}")
    if outputs.shape[0] == 0:
        raise DegenerateInputError("no images to score")


def outputs_as_uint8(outputs: np.ndarray | None) -> np.ndarray:
    """SR outputs as the uint8 images quality metrics score; NaN/Inf would be cast to arbitrary bytes."""
    if outputs is None:
        raise DegenerateInputError("the model produced no SR outputs")
    if not np.isfinite(outputs).all():
        raise DegenerateInputError(f"SR outputs contain {int(np.size(outputs) - np.isfinite(outputs).sum())} NaN/Inf values")
    return to_uint8(outputs)


def no_hr(set_name: str) -> str:
    """Why a metric that needs HR (PSNR, SSIM, PSNR drop, LPIPS) has no value on an LR-only set:
    such a cell is "unavailable", never NaN or an error."""
    return f"no HR for set {set_name}"


class QualityMetric(ImageIntervalMetric):
    """Mean over images of a per-image score, with a bootstrap interval over images.

    "Images" here are the SR outputs, one per LR patch; ``interval: images`` resamples the
    source photographs those patches were cut from instead (all of a photograph's patches at
    once), which is the honest interval when patches of one photograph are alike. The kind
    scores each evaluated set's SR outputs against its HR patches (``crop_border`` = the
    scale, Y channel), one row per set at layer ``output``, and summarises the non-reference
    sets. Feature sources that are not SR networks get no rows.
    """

    kind: ClassVar[str] = "quality"
    needs: ClassVar[frozenset[str]] = frozenset({"sr_outputs", "image_groups"})
    per_set: ClassVar[bool] = True

    bootstrap: int = Field(200, ge=0)

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        output = MetricOutput()
        if not inputs.is_sr:
            return output
        values = []
        for name in inputs.sets:
            if not inputs.has_hr(name):
                output.unavailable(OUTPUT_LAYER, name, no_hr(name))
                continue
            result = output.guarded(OUTPUT_LAYER, name, self._score_set, inputs, name)
            if result is None:
                continue
            value = output.result(OUTPUT_LAYER, name, result).usable_value
            if name != inputs.reference and value is not None:
                values.append(value)
        self.summarise(output, inputs, OUTPUT_LAYER, values)
        return output

    def _score_set(self, inputs: MetricInputs, name: str) -> MetricResult:
        """One set as the published protocol scores it: uint8, ``crop_border`` = scale, Y channel."""
        targets = to_uint8(inputs.hr_targets(name))
        images = inputs.image_groups(name)
        return self.compute(outputs_as_uint8(inputs.sr_outputs(name)), targets, crop_border=inputs.scale,
                            test_y_channel=True, seed=inputs.seed,
                            groups=ImageGroups(images, np.full(len(images), name)))

    def score_image(self, output: np.ndarray, target: np.ndarray, crop_border: int, test_y_channel: bool) -> float:
        raise NotImplementedError

    def score_images(self, outputs: np.ndarray, targets: np.ndarray, crop_border: int,
                     test_y_channel: bool) -> np.ndarray:
        """:meth:`score_image` of each pair (a metric may do the whole batch at once)."""
        return np.array([self.score_image(o, t, crop_border, test_y_channel) for o, t in zip(outputs, targets)])

    def compute(
        self,
        outputs: np.ndarray,
        targets: np.ndarray,
        crop_border: int = 0,
        test_y_channel: bool = False,
        seed: int = 0,
        *,
        groups: ImageGroups | None = None,
    ) -> MetricResult:
        """Score SR ``outputs`` against ``targets`` (both uint8 NHWC RGB); ``groups`` (each
        output's source photograph) is needed for ``interval: images`` or ``both`` only."""
        _check_batches(outputs, targets)
        groups = self.require_groups(groups, outputs.shape[0])
        per_image = self.score_images(outputs, targets, crop_border, test_y_channel)
        warnings = []
        if np.isinf(per_image).any():
            warnings.append(f"{int(np.isinf(per_image).sum())} image(s) identical to the target (infinite score)")
        patches = images = None
        if self.wants_patches:
            patches = bootstrap_mean_interval(per_image, self.bootstrap, np.random.default_rng(seed))
        if groups is not None:
            images = cluster_bootstrap_mean_interval(per_image, groups.image, groups.stratum, self.bootstrap,
                                                     image_bootstrap_rng(seed))
        extra = {
            "n_images": int(per_image.size),
            "per_image": per_image.tolist(),
            "crop_border": crop_border,
            "test_y_channel": test_y_channel,
            "warnings": warnings,
        }
        return self.interval_result(float(per_image.mean()), patches, images, groups, extra)


@register_metric
class PsnrMetric(QualityMetric):
    """PSNR (dB), BasicSR conventions. Higher = better."""

    metric_type: ClassVar[str] = "psnr"
    unit: ClassVar[str] = "dB"
    higher_is_better: ClassVar[bool] = True

    def score_image(self, output: np.ndarray, target: np.ndarray, crop_border: int, test_y_channel: bool) -> float:
        return psnr(output, target, crop_border, test_y_channel)

    def score_images(self, outputs: np.ndarray, targets: np.ndarray, crop_border: int,
                     test_y_channel: bool) -> np.ndarray:
        """:func:`psnr` of every pair in one pass over the batch (NHWC uint8), same numbers."""
        if outputs.ndim != 4 or crop_border < 0:
            return super().score_images(outputs, targets, crop_border, test_y_channel)
        a, b = (_prepare_batch(x, crop_border, test_y_channel) for x in (outputs, targets))
        mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
        with np.errstate(divide="ignore"):
            return np.where(mse == 0, np.inf, 10.0 * np.log10(255.0 * 255.0 / np.where(mse == 0, 1.0, mse)))


@register_metric
class SsimMetric(QualityMetric):
    """SSIM, BasicSR conventions. Higher = better."""

    metric_type: ClassVar[str] = "ssim"
    higher_is_better: ClassVar[bool] = True

    def score_image(self, output: np.ndarray, target: np.ndarray, crop_border: int, test_y_channel: bool) -> float:
        return ssim(output, target, crop_border, test_y_channel)


@register_metric
class LpipsMetric(QualityMetric):
    """LPIPS perceptual distance on RGB (``test_y_channel`` does not apply). Lower = better.

    Needs the optional ``lpips`` package and its backbone weights installed locally; otherwise
    ``compute`` raises :class:`MetricUnavailableError` saying why.
    """

    metric_type: ClassVar[str] = "lpips"
    higher_is_better: ClassVar[bool] = False

    net: Literal["alex", "vgg", "squeeze"] = "alex"

    def name_params(self) -> list[str]:
        return [self.net] if self.net != "alex" else []

    def compute(
        self,
        outputs: np.ndarray,
        targets: np.ndarray,
        crop_border: int = 0,
        test_y_channel: bool = False,
        seed: int = 0,
        *,
        groups: ImageGroups | None = None,
    ) -> MetricResult:
        available, reason = lpips_available()
        if not available:
            raise MetricUnavailableError(f"LPIPS needs the optional lpips package: {reason}")
        self._model()  # fail early, once, if the weights cannot be loaded
        return super().compute(outputs, targets, crop_border, False, seed, groups=groups)

    def _model(self):
        return _lpips_model(self.net)

    def score_image(self, output: np.ndarray, target: np.ndarray, crop_border: int, test_y_channel: bool) -> float:
        import torch

        def to_tensor(img: np.ndarray) -> torch.Tensor:
            if crop_border:
                img = img[crop_border:-crop_border, crop_border:-crop_border]
            return torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]

        with torch.no_grad():
            return float(self._model()(to_tensor(output), to_tensor(target)).item())


@lru_cache(maxsize=3)
def _lpips_model(net: str):
    import lpips

    try:
        return lpips.LPIPS(net=net, verbose=False).eval()
    except Exception as err:  # missing backbone weights and no network, typically
        reason = str(err).splitlines()[0] if str(err) else ""
        raise MetricUnavailableError(f"LPIPS({net}) cannot be built ({type(err).__name__}: {reason})"[:200]) from None


@register_metric
class PsnrDropMetric(Metric):
    """Reference-set PSNR minus test-set PSNR (dB). Lower = better (less quality lost).

    The runner computes it from ``psnr`` results: with paired per-image PSNRs (same images
    under both degradations) the value is the mean per-image drop with a bootstrap interval;
    with two scalars it is their difference.
    """

    metric_type: ClassVar[str] = "psnr_drop"
    unit: ClassVar[str] = "dB"
    higher_is_better: ClassVar[bool] = False
    kind: ClassVar[str] = "quality"
    cacheable: ClassVar[bool] = False  # computed from the psnr rows, which are cached themselves
    needs: ClassVar[frozenset[str]] = frozenset({"rows"})
    per_set: ClassVar[bool] = True

    bootstrap: int = Field(200, ge=0)

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        """One row per test set from this model's ``psnr`` rows (the earlier metric's values)."""
        output = MetricOutput()
        if not inputs.is_sr:
            return output
        summary = self.summary_ref
        psnr = inputs.rows("psnr")
        if inputs.reference not in psnr:
            output.unavailable(OUTPUT_LAYER, summary, "list a `psnr` metric before `psnr_drop`")
            return output
        if psnr[inputs.reference] is None:
            output.unavailable(OUTPUT_LAYER, summary, f"no psnr on the reference `{inputs.reference}`")
            return output
        drops = []
        for name in inputs.test_sets:
            if not inputs.has_hr(name):
                output.unavailable(OUTPUT_LAYER, name, no_hr(name))
            elif psnr.get(name) is None:
                output.unavailable(OUTPUT_LAYER, name, f"no psnr on `{name}`")
            else:
                drops.append(psnr[inputs.reference] - psnr[name])
                output.add(OUTPUT_LAYER, name, drops[-1])
        self.summarise(output, inputs, OUTPUT_LAYER, drops)
        return output

    def compute(self, reference_psnr, test_psnr, seed: int = 0) -> MetricResult:
        reference = np.atleast_1d(np.asarray(reference_psnr, dtype=np.float64))
        test = np.atleast_1d(np.asarray(test_psnr, dtype=np.float64))
        if reference.shape != test.shape or reference.ndim != 1:
            raise DegenerateInputError(f"PSNR drop needs paired PSNRs, got shapes {reference.shape} and {test.shape}")
        drops = np.array([psnr_drop(r, t) for r, t in zip(reference, test)])
        ci_low, ci_high = bootstrap_mean_interval(drops, self.bootstrap, np.random.default_rng(seed))
        return MetricResult(float(drops.mean()), ci_low, ci_high, {"n_images": int(drops.size)})
