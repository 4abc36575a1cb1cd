"""Generalization of an SR network to a degradation, measured on its deep features.

SRGA ("SR Generalization Assessment") is from Liu, Zhao, Gu, Dong et al., *Evaluating the
Generalization Ability of Super-Resolution Networks*, TPAMI 2023 (arXiv:2205.07019); this is
a re-implementation of the authors' ``calculate_SRGA_ref.py`` (github.com/lyh-18/SRGA):

1. for each image set separately, PCA (``pca_dim`` = 300 components, ``random_state=0``) of
   the flattened deep features, samples x features (see *PCA solver* below);
2. all PCA coefficients of the set as one vector; values ``<= mean - 5 std`` or
   ``>= mean + 5 std`` are dropped (one pass, statistics of the full vector);
3. a zero-mean generalized Gaussian (GGD) is fitted by moment matching, as in the
   BRISQUE/NIQE ``estimate_ggd_param`` of BasicSR/pyiqa: ``sigma = sqrt(mean(x^2))`` and the
   shape is the grid value ``gamma`` in ``arange(0.2, 10, 0.001)`` whose
   ``Γ(1/γ)Γ(3/γ)/Γ(2/γ)^2`` is nearest to ``mean(x^2) / mean(|x - mean(x)|)^2``;
4. the closed-form KL divergence ``KL(reference || test)`` between the two GGDs, reported as
   ``log10(KL + 1e-5) + 5`` (0 for identical distributions; lower = generalizes better).

The GGD density is ``p(x) = γ / (2 α Γ(1/γ)) exp(-(|x|/α)^γ)`` with scale
``α = sigma * sqrt(Γ(1/γ) / Γ(3/γ))``; with it the reference code's ``KL_GGD3`` is the textbook
closed form ``ln(γ1 α2 Γ(1/γ2) / (γ2 α1 Γ(1/γ1))) + (α1/α2)^γ2 Γ((γ2+1)/γ1) / Γ(1/γ1) - 1/γ1``.

PCA solver: the script calls ``sklearn.decomposition.PCA(n_components, random_state=0)`` with
sklearn's default ``svd_solver="auto"``, which picks a *randomized* SVD when the data is large
(more than 500 rows or columns) and ``n_components < 0.8 * min(n_samples, n_features)`` — the
PIES protocol (800 patches, 300 components) is such a case — and an exact one otherwise. The
randomized scores differ from the exact ones (by up to 1.4e-2 in the SRGA index on 400 x 2000
features with 100 components), so the default ``pca_solver="auto"`` makes that very call, with
the same seed, and reproduces the published numbers (the features are handed to sklearn in
float64, as every metric here validates them; the script fed float32 features computes its PCA
in float32 and differs at that rounding level). ``pca_solver="exact"`` computes the exact PCA
instead (a Gram-matrix eigendecomposition for wide features, sklearn's full SVD otherwise); the
default uses that exact path too where sklearn's choice would be an exact solver (same numbers
to round-off, a fraction of the time on wide flattened features). The metric records the solver
per set in ``extra["pca_solver"]`` (sklearn's choice, e.g. ``randomized`` or ``full``, or
``exact``) and in the result row.

Fallback: PCA cannot have more components than ``min(n_samples, n_features)``; ``pca_dim`` is
clipped to that per set (pooled features often have fewer than 300 channels), and the metric
records the clip in ``extra["warnings"]``.

``ddr_chi_to_reference`` is a DDR-side companion: the CHI between reference and test features
as two clusters; a model that maps the degraded input onto the same features as clean input
scores near 0.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import lru_cache
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ddr_eval.core.errors import DegenerateInputError
from ddr_eval.metrics.base import ImageIntervalMetric, MetricInputs, register_metric
from ddr_eval.metrics.bootstrap import ImageGroups, cluster_bootstrap_indices, image_bootstrap_rng, percentile_interval
from ddr_eval.metrics.checks import check_features
from ddr_eval.metrics.results import MetricOutput, MetricResult
from ddr_eval.metrics.threads import single_threaded_blas
from ddr_eval.metrics.separability import ChiMetric, effective_pca_dim, pca_clip_warning
from ddr_eval.core.specs import Pooling

SHAPE_GRID = np.arange(0.2, 10.0, 0.001)
"""Candidate GGD shapes, exactly the reference grid (``np.arange`` excludes 10.0)."""


@lru_cache(maxsize=1)
def shape_grid_ratio() -> np.ndarray:
    """``Γ(1/γ)Γ(3/γ)/Γ(2/γ)^2`` on :data:`SHAPE_GRID`, computed once, on first use (decreasing in γ)."""
    from scipy.special import gamma

    return gamma(1 / SHAPE_GRID) * gamma(3 / SHAPE_GRID) / gamma(2 / SHAPE_GRID) ** 2

KL_FLOOR = 1e-5
SRGA_PCA_RANDOM_STATE = 0


def fit_ggd(values: np.ndarray) -> tuple[float, float]:
    """Moment-matching fit of a zero-mean GGD: returns ``(shape, sigma)`` (see module docstring)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2 or not np.isfinite(x).all():
        raise DegenerateInputError(f"GGD fit needs at least 2 finite values, got {x.size}")
    second_moment = float(np.mean(x * x))
    mean_abs_deviation = float(np.mean(np.abs(x - x.mean())))
    if mean_abs_deviation == 0.0:
        raise DegenerateInputError("GGD fit is undefined: all values are equal")
    ratio = second_moment / mean_abs_deviation**2
    shape = float(SHAPE_GRID[np.argmin(np.abs(ratio - shape_grid_ratio()))])
    return shape, float(np.sqrt(second_moment))


def ggd_alpha(shape: float, sigma: float) -> float:
    """GGD scale ``α`` for standard deviation ``sigma`` and shape ``γ``."""
    from scipy.special import gamma

    return float(sigma * np.sqrt(gamma(1 / shape) / gamma(3 / shape)))


def ggd_kl(shape1: float, alpha1: float, shape2: float, alpha2: float) -> float:
    """Closed-form ``KL(p1 || p2)`` between zero-mean GGDs given shapes and scales ``α``."""
    from scipy.special import gammaln

    log_ratio = (
        np.log(shape1) - np.log(shape2) + np.log(alpha2) - np.log(alpha1) + gammaln(1 / shape2) - gammaln(1 / shape1)
    )
    log_scale_ratio = np.log(alpha1) - np.log(alpha2)
    moment_term = np.exp(shape2 * log_scale_ratio + gammaln((shape2 + 1) / shape1) - gammaln(1 / shape1))
    return float(log_ratio + moment_term - 1 / shape1)


PCA_SOLVERS = ("auto", "exact")
"""``auto``: sklearn's default solver exactly as the reference script calls it; ``exact``: exact PCA."""


@dataclass(frozen=True)
class SetFit:
    """The GGD fitted to one image set's PCA coefficients (``solver``: the PCA solver that ran)."""

    shape: float
    sigma: float
    pca_dim: int
    n_coefficients: int
    n_outliers: int
    solver: str = "exact"

    @property
    def alpha(self) -> float:
        return ggd_alpha(self.shape, self.sigma)


def sklearn_auto_solver(n_samples: int, n_features: int, n_components: int) -> str:
    """The solver ``PCA(n_components, svd_solver="auto")`` picks for dense data of this shape.

    sklearn's own rule (``PCA._fit``, sklearn >= 1.5), restated so that the exact cases need no
    sklearn fit; ``tests/test_srga.py`` checks it against sklearn's ``_fit_svd_solver``.
    """
    if n_features <= 1_000 and n_samples >= 10 * n_features:
        return "covariance_eigh"
    if max(n_samples, n_features) <= 500:
        return "full"
    if 1 <= n_components < 0.8 * min(n_samples, n_features):
        return "randomized"
    return "full"


def pca_coefficients(features: np.ndarray, pca_dim: int, solver: str = "auto") -> tuple[np.ndarray, str]:
    """All PCA coefficients of one set (PCA fitted on that set), flattened, and the solver used.

    ``solver="auto"`` gives the reference script's numbers, ``PCA(n_components, random_state=0)``
    with sklearn's default solver: where sklearn would go randomized that very call runs (the
    returned name is ``randomized``); where it would pick an exact solver (``full``,
    ``covariance_eigh``: the default suite's 128 flattened maps, clipped to 128 components) the
    exact scores are computed here, the same numbers to round-off, and the name is sklearn's
    choice. ``solver="exact"`` always computes exact scores. Flattened feature maps are much
    wider than a set is long, so exact scores come from the n x n Gram matrix of the centred
    features — sklearn's full SVD to round-off (signs fixed by sklearn's rule: the largest
    |loading| of each component is positive) at a small fraction of its cost.
    """
    if solver not in PCA_SOLVERS:
        raise ValueError(f"unknown PCA solver {solver!r}; use one of {', '.join(PCA_SOLVERS)}")
    n_components = effective_pca_dim(*features.shape, pca_dim)
    n_samples, n_features = features.shape
    chosen = sklearn_auto_solver(n_samples, n_features, n_components) if solver == "auto" else "exact"
    from sklearn.decomposition import PCA  # lazy: sklearn costs a second of start-up

    with single_threaded_blas():
        if chosen == "randomized":
            pca = PCA(n_components=n_components, random_state=SRGA_PCA_RANDOM_STATE)
            scores = pca.fit_transform(features).ravel()
            return scores, str(getattr(pca, "_fit_svd_solver", pca.svd_solver))
        if n_features <= 2 * n_samples:
            pca = PCA(n_components=n_components, svd_solver="full")
            return pca.fit_transform(features).ravel(), chosen
        return _gram_pca_scores(features, n_components).ravel(), chosen


def _gram_pca_scores(features: np.ndarray, n_components: int) -> np.ndarray:
    centred = features.astype(np.float64) - features.mean(axis=0, dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(eigenvalues)[::-1][:n_components]
    singular = np.sqrt(np.clip(eigenvalues[order], 0, None))
    scores = eigenvectors[:, order] * singular
    loadings = scores.T @ centred  # unnormalised components: only their signs are used
    signs = np.sign(loadings[np.arange(n_components), np.abs(loadings).argmax(axis=1)])
    return scores * np.where(signs == 0, 1.0, signs)


def drop_outliers(values: np.ndarray, outlier_sigma: float) -> np.ndarray:
    """Values strictly inside ``mean ± outlier_sigma * std`` of the full vector."""
    center, spread = values.mean(), values.std()
    keep = (values > center - outlier_sigma * spread) & (values < center + outlier_sigma * spread)
    return values[keep]


def fit_set(features: np.ndarray, pca_dim: int = 300, outlier_sigma: float = 5.0, what: str = "features",
            pca_solver: str = "auto") -> SetFit:
    """Steps 1–3 of SRGA for one set of features (samples x features)."""
    features = check_features(features, what)
    coefficients, solver = pca_coefficients(features, pca_dim, pca_solver)
    kept = drop_outliers(coefficients, outlier_sigma)
    shape, sigma = fit_ggd(kept)
    used_dim = effective_pca_dim(*features.shape, pca_dim)
    return SetFit(shape, sigma, used_dim, coefficients.size, coefficients.size - kept.size, solver)


class _FitMemo:
    """The last few :func:`fit_set` results, keyed by the features' bytes.

    A suite scores every degradation set against the same reference set, so without this the
    reference PCA (the costly step: a 128 x 32768 PCA per set in the default suite) is
    refitted once per test set. Hashing the bytes costs a few percent of a fit and cannot go
    stale the way a key on the array object could.
    """

    def __init__(self, size: int = 8):
        self.size = size
        self.fits: OrderedDict[tuple, SetFit] = OrderedDict()

    def fit(self, features: np.ndarray, pca_dim: int, outlier_sigma: float, what: str,
            pca_solver: str = "auto") -> SetFit:
        features = np.ascontiguousarray(features)
        if features.dtype.hasobject:  # not hashable as bytes; fit_set's checks say what is wrong
            return fit_set(features, pca_dim, outlier_sigma, what, pca_solver)
        digest = hashlib.sha256(features.view(np.uint8)).hexdigest()  # hardware-accelerated: ~1.7 GB/s here
        key = (digest, features.shape, features.dtype.str, pca_dim, outlier_sigma, pca_solver)
        if key in self.fits:
            self.fits.move_to_end(key)
            return self.fits[key]
        fit = self.fits[key] = fit_set(features, pca_dim, outlier_sigma, what, pca_solver)
        while len(self.fits) > self.size:
            self.fits.popitem(last=False)
        return fit


_FITS = _FitMemo()


def solver_note(reference_solver: str, test_solver: str) -> str:
    """The row note naming the PCA solver that ran, e.g. ``pca solver: randomized``."""
    if reference_solver == test_solver:
        return f"pca solver: {reference_solver}"
    return f"pca solver: {reference_solver} (reference), {test_solver} (test)"


def srga_index(kl: float) -> float:
    """The published log scale: ``log10(KL + 1e-5) + 5`` (KL clipped at 0 against round-off)."""
    return float(np.log10(max(kl, 0.0) + KL_FLOOR) + 5)


def srga(
    reference_features: np.ndarray, test_features: np.ndarray, pca_dim: int = 300, outlier_sigma: float = 5.0,
    pca_solver: str = "auto",
) -> float:
    """SRGA of ``test_features`` against ``reference_features`` (both samples x features)."""
    reference = fit_set(reference_features, pca_dim, outlier_sigma, "reference features", pca_solver)
    test = fit_set(test_features, pca_dim, outlier_sigma, "test features", pca_solver)
    return srga_index(ggd_kl(reference.shape, reference.alpha, test.shape, test.alpha))


class GeneralizationMetric(ImageIntervalMetric):
    """A test set's features against the reference set's: one row per (layer, test set), and
    the summary over the test sets (``aggregation``).

    ``compute(reference, test, seed, groups=...)`` scores one pair; ``groups`` (built with
    :meth:`ImageGroups.pair`: reference rows, then test rows) carries each row's source image,
    for ``interval: images`` or ``both``.
    """

    kind: ClassVar[str] = "generalization"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "image_groups"})
    per_set: ClassVar[bool] = True
    better_means: ClassVar[str] = "generalizes better"

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        output = MetricOutput()
        reference_images = inputs.image_groups(inputs.reference)
        for layer in inputs.layers:
            reference = inputs.features(layer, inputs.reference)
            values = []
            for name in inputs.test_sets:
                groups = ImageGroups.pair(reference_images, inputs.image_groups(name))
                result = output.guarded(layer, name, self.compute, reference, inputs.features(layer, name),
                                        inputs.seed, groups=groups)
                if result is not None and (value := output.result(layer, name, result).usable_value) is not None:
                    values.append(value)
            self.summarise(output, inputs, layer, values)
        return output

    def compute(self, reference: np.ndarray, test: np.ndarray, seed: int, *,
                groups: ImageGroups | None = None) -> MetricResult:
        raise NotImplementedError


@register_metric
class SrgaMetric(GeneralizationMetric):
    """SRGA index (lower = the degradation moves the deep features less = better generalization).

    With ``bootstrap > 0`` the interval is a percentile bootstrap over samples of *both* sets,
    resampled with replacement independently and re-centred on the estimate (duplicated rows
    widen the PCA eigenvalue spread, which lowers the fitted shape: measured 1.84 -> ~1.65 on
    800 x 64 Gaussian features, so uncorrected replicates sit below the estimate). Each
    replicate refits two PCAs (sklearn: ~50 ms for 800 x 64, seconds for 800 x 512 with 300
    components), so the default is ``bootstrap=0``: no interval unless asked for. With
    ``interval: images`` a replicate draws each set's source images with replacement instead
    (bias in ``extra["bootstrap_bias_images"]``).
    """

    metric_type: ClassVar[str] = "srga"
    higher_is_better: ClassVar[bool] = False

    pca_dim: int = Field(300, ge=1)
    outlier_sigma: float = Field(5.0, gt=0)
    bootstrap: int = Field(0, ge=0)
    pooling: Pooling | None = Field(
        "flatten", description="the published recipe flattens the feature maps"
    )
    pca_solver: Literal["auto", "exact"] = Field(
        "auto", description="auto: the reference script's sklearn PCA (randomized on large sets); exact: exact PCA"
    )

    def name_params(self) -> list[str]:
        params = [f"pca{self.pca_dim}"]
        if self.outlier_sigma != 5.0:
            params.append(f"sigma{self.outlier_sigma:g}")
        if self.pca_solver != "auto":
            params.append(self.pca_solver)
        return params

    def compute(self, reference: np.ndarray, test: np.ndarray, seed: int, *,
                groups: ImageGroups | None = None) -> MetricResult:
        # the fits check both sets and see them as given (float32 from extraction: half the bytes
        # to hash); the replicates resample them as they are, and srga() checks each resample
        groups = self.require_groups(groups, len(reference) + len(test))
        reference_fit = _FITS.fit(reference, self.pca_dim, self.outlier_sigma, "reference features", self.pca_solver)
        test_fit = _FITS.fit(test, self.pca_dim, self.outlier_sigma, "test features", self.pca_solver)
        reference, test = np.asarray(reference), np.asarray(test)
        kl = ggd_kl(reference_fit.shape, reference_fit.alpha, test_fit.shape, test_fit.alpha)
        value = srga_index(kl)
        patches = images = None
        bias = bias_images = None
        if self.wants_patches:
            replicates = self._replicates(reference, test, self._row_resampler(reference, test, seed))
            low, high, bias = percentile_interval(replicates, value, (0.0, np.inf))
            patches = (low, high)
        if groups is not None:
            replicates = self._replicates(reference, test, self._image_resampler(reference, groups, seed))
            low, high, bias_images = percentile_interval(replicates, value, (0.0, np.inf))
            images = (low, high)
        warnings = [
            f"{what}: {clip}"
            for what, features in (("reference", reference), ("test", test))
            if (clip := pca_clip_warning(*features.shape, self.pca_dim))
        ]
        warnings.append(solver_note(reference_fit.solver, test_fit.solver))
        extra = {
            "kl": kl,
            "reference_ggd": {"shape": reference_fit.shape, "sigma": reference_fit.sigma},
            "test_ggd": {"shape": test_fit.shape, "sigma": test_fit.sigma},
            "pca_dim": {"reference": reference_fit.pca_dim, "test": test_fit.pca_dim},
            "pca_solver": {"reference": reference_fit.solver, "test": test_fit.solver},
            "outliers_dropped": {"reference": reference_fit.n_outliers, "test": test_fit.n_outliers},
            "n_samples": {"reference": int(reference.shape[0]), "test": int(test.shape[0])},
            "bootstrap": self.bootstrap,
            "bootstrap_bias": bias,
            "warnings": warnings,
        }
        if groups is not None:
            extra["bootstrap_bias_images"] = bias_images
        return self.interval_result(value, patches, images, groups, extra)

    @staticmethod
    def _row_resampler(reference: np.ndarray, test: np.ndarray, seed: int):
        """Replicate rows: each set's rows drawn with replacement, independently."""
        rng = np.random.default_rng(seed)
        return lambda: (rng.integers(0, reference.shape[0], reference.shape[0]),
                        rng.integers(0, test.shape[0], test.shape[0]))

    @staticmethod
    def _image_resampler(reference: np.ndarray, groups: ImageGroups, seed: int):
        """Replicate rows: each set's source images drawn with replacement, with all their patches."""
        rng, n_reference = image_bootstrap_rng(seed), reference.shape[0]

        def draw():
            rows = cluster_bootstrap_indices(groups.image, groups.stratum, rng)
            return rows[rows < n_reference], rows[rows >= n_reference] - n_reference
        return draw

    def _replicates(self, reference: np.ndarray, test: np.ndarray, draw) -> np.ndarray:
        replicates = []
        for _ in range(self.bootstrap):
            reference_rows, test_rows = draw()
            try:
                replicates.append(
                    srga(reference[reference_rows], test[test_rows], self.pca_dim, self.outlier_sigma,
                         self.pca_solver)
                )
            except DegenerateInputError:
                continue  # a resample can be constant for tiny sets; the interval uses the rest
        return np.array(replicates)


@register_metric
class DdrChiToReference(GeneralizationMetric):
    """CHI between reference and test features as two clusters (standardized + PCA).

    Lower = the model represents the degraded input like the reference (clean) input, i.e. the
    degradation leaves no separate cluster in its deep features.
    """

    metric_type: ClassVar[str] = "ddr_chi_to_reference"
    higher_is_better: ClassVar[bool] = False

    pca_dim: int = Field(50, ge=1)
    bootstrap: int = Field(200, ge=0)

    def name_params(self) -> list[str]:
        return [f"pca{self.pca_dim}"]

    def compute(self, reference: np.ndarray, test: np.ndarray, seed: int, *,
                groups: ImageGroups | None = None) -> MetricResult:
        reference = check_features(reference, "reference features")
        test = check_features(test, "test features")
        if reference.shape[1] != test.shape[1]:
            raise DegenerateInputError(
                f"reference and test features differ in width: {reference.shape[1]} vs {test.shape[1]}"
            )
        pooled = np.concatenate([reference, test])
        labels = np.array(["reference"] * reference.shape[0] + ["test"] * test.shape[0])
        chi = ChiMetric(projection="pca", pca_dim=self.pca_dim, bootstrap=self.bootstrap, interval=self.interval)
        result = chi.compute(pooled, labels, seed, groups=self.require_groups(groups, pooled.shape[0]))
        extra = {key: value for key, value in result.extra.items() if key not in ("label", "classes")}
        extra["n_samples"] = {"reference": int(reference.shape[0]), "test": int(test.shape[0])}
        return MetricResult(result.value, result.ci_low, result.ci_high, extra, result.ci_images,
                            result.n_source_images)
