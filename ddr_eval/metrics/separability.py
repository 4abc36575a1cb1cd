"""How well pooled deep features cluster by degradation type (or by image content).

The DDR observation is that an SR network's deep features, pooled per patch, form clusters by
the *degradation* of the input rather than by its content. The metrics here quantify that on
labelled features:

* ``chi`` – Calinski–Harabasz index (between- over within-class dispersion; higher = better
  separated);
* ``silhouette`` – mean silhouette coefficient in [-1, 1] (higher = better separated);
* ``davies_bouldin`` – Davies–Bouldin index (lower = better separated).

Each is computed after a ``projection`` of the features:

* ``raw`` – standardized features (scikit-learn ``StandardScaler``), so no channel dominates
  the Euclidean geometry just because its activations are large;
* ``pca`` – standardized, then PCA to ``pca_dim`` components (``random_state`` = seed). The
  number of components is clipped to ``min(n_samples, n_features)`` (PCA cannot give more);
  the clip is recorded as a warning in ``extra`` when it happens;
* ``tsne`` – the seeded 2-D t-SNE embedding of :func:`tsne_embedding`, as in the DDR paper's
  figures. The embedding is computed *once* and returned as ``extra["embedding"]`` (N, 2) for
  plots; the bootstrap resamples points of that fixed embedding (re-running t-SNE per
  replicate would cost minutes), so the interval reflects sampling of patches given the
  embedding, not the embedding's own randomness.

Confidence intervals are 95% percentile-bootstrap intervals over patches, resampled with
replacement *within each class* so every replicate keeps all classes at their sizes, and
re-centred on the estimate by the bootstrap bias (recorded as ``extra["bootstrap_bias"]``; see
:func:`ddr_eval.metrics.bootstrap.percentile_interval` for why: near "no separation" a resample adds
spurious separation and the plain interval lies beside the estimate). Point estimates come
from scikit-learn; the replicates use the vectorised weighted numpy forms below (a resample is
a vector of per-patch counts), which agree with scikit-learn on unit weights.

``interval: images`` (or ``both``) resamples source images instead, within each degradation set
(:func:`~ddr_eval.metrics.bootstrap.cluster_bootstrap_weights`; bias in
``extra["bootstrap_bias_images"]``): patches of one photograph are correlated, so the patch
interval is too narrow. By ``degradation`` every class keeps its size; by ``content`` a
resample can miss a photograph in every set, and that replicate (an index with an empty class)
is left out of the interval before any index is computed (no NaN replicate); the row's extra
``bootstrap_dropped_images`` counts them (with two sets of 8 photographs, about half the resamples).
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ddr_eval.core.errors import DegenerateInputError
from ddr_eval.metrics.base import ImageIntervalMetric, MetricInputs, register_metric
from ddr_eval.metrics.bootstrap import (
    ImageGroups,
    cluster_bootstrap_weights,
    image_bootstrap_rng,
    percentile_interval,
    stratified_bootstrap_indices,
)
from ddr_eval.metrics.checks import check_features, encode_labels
from ddr_eval.metrics.results import POOLED, MetricOutput, MetricResult
from ddr_eval.metrics.threads import limited_threads, single_threaded_blas

Projection = Literal["raw", "pca", "tsne"]

TSNE_PCA_DIM = 50
TSNE_MAX_ITER = 500
"""t-SNE iterations (sklearn's minimum is 250, its default 1000).

Measured on this project's 2-core machine (sklearn 1.9, Barnes–Hut, ``n_jobs=2``, PCA-50 input,
8 Gaussian clusters): 800 points 0.8 s, 2000 points 2.6 s, 4000 points 7 s at 500 iterations,
against 1.5 s / 4.7 s / 11 s at 1000. Cluster structure is settled well before 500 iterations
(the first 250 are early exaggeration), so 500 halves the cost without changing the picture.
With the cores busy (other jobs on the machine) the same runs take several times longer.
"""
TSNE_THREADS = 1
"""t-SNE runs on one thread (``n_jobs=1`` and OpenMP/BLAS pools limited to 1 for the call).

sklearn's Barnes–Hut gradient is an OpenMP loop with a barrier every iteration; when another
process holds a core, each barrier waits for the descheduled thread. Measured on this
project's shared 2-core machine (load ~6–10; 640 points = the default suite's 5 sets x 128
patches, 32-d features, 500 iterations): 21–22 s with 2 threads, 1.15 s with one. Idle, the
second thread can gain at most 2x; busy (CI, other jobs, the suite's own parallel cells) it
costs ~20x, and t-SNE then dominated a default suite's metric phase. openTSNE (1.0.4) was
measured too and was not faster at suite sizes (640 points: 1.8 s Barnes–Hut vs sklearn's
2.2 s in the same conditions; only its FFT method pulls ahead, from ~4000 points), so
scikit-learn stays, with no extra dependency.
"""


# --------------------------------------------------------------------------- projections


def standardize(features: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance columns (constant columns become 0, as in ``StandardScaler``)."""
    from sklearn.preprocessing import StandardScaler  # lazy: keeps sklearn out of start-up
    return StandardScaler().fit_transform(check_features(features))


def effective_pca_dim(n_samples: int, n_features: int, requested: int) -> int:
    """PCA components actually used: ``requested`` clipped to ``min(n_samples, n_features)``."""
    return int(min(requested, n_samples, n_features))


def pca_clip_warning(n_samples: int, n_features: int, requested: int) -> str | None:
    """The warning recorded in ``extra`` when :func:`effective_pca_dim` clips, else ``None``."""
    used = effective_pca_dim(n_samples, n_features, requested)
    if used == requested:
        return None
    return (
        f"PCA dim clipped from {requested} to {used} = min(n_samples={n_samples}, "
        f"n_features={n_features})"
    )


def pca_project(standardized: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """PCA of already-standardized features to ``effective_pca_dim`` components."""
    n_samples, n_features = standardized.shape
    n_components = effective_pca_dim(n_samples, n_features, dim)
    with single_threaded_blas():
        from sklearn.decomposition import PCA  # lazy: keeps sklearn out of start-up
        return PCA(n_components=n_components, random_state=seed).fit_transform(standardized)


def tsne_embedding(
    features: np.ndarray, seed: int, perplexity: float = 30.0, max_iter: int = TSNE_MAX_ITER
) -> np.ndarray:
    """Seeded 2-D t-SNE of standardized features, reduced to 50 PCA components first.

    PCA first is the usual recipe (and sklearn's advice): it removes noise dimensions and makes
    the neighbour search cheap. ``init="pca"`` and Barnes–Hut keep it deterministic for a seed
    and O(N log N); it runs on one thread (see :data:`TSNE_THREADS`). ``perplexity`` is clipped
    to ``(n_samples - 1) / 3`` for small inputs, since sklearn requires it to be well below the
    number of points. See :data:`TSNE_MAX_ITER` for the measured cost.
    """
    reduced = pca_project(standardize(features), TSNE_PCA_DIM, seed)
    n_samples = reduced.shape[0]
    if n_samples < 4:
        raise DegenerateInputError(f"t-SNE needs at least 4 samples, got {n_samples}")
    from sklearn.manifold import TSNE  # lazy: keeps sklearn out of start-up
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (n_samples - 1) / 3),
        init="pca",
        method="barnes_hut",
        max_iter=max_iter,
        random_state=seed,
        n_jobs=TSNE_THREADS,
    )
    with limited_threads(TSNE_THREADS):
        return tsne.fit_transform(reduced).astype(np.float64)


def project(features: np.ndarray, projection: Projection, dim: int = 50, seed: int = 0) -> np.ndarray:
    """Features in the space a separability metric is computed in (see the module docstring)."""
    if projection == "raw":
        return standardize(features)
    if projection == "pca":
        return pca_project(standardize(features), dim, seed)
    if projection == "tsne":
        return tsne_embedding(features, seed)
    raise ValueError(f"unknown projection {projection!r}; expected raw, pca or tsne")


# --------------------------------------------------------------------------- weighted scores
# A bootstrap replicate is a vector ``weights`` of per-sample counts; these compute the index
# of the multiset it describes without materialising duplicated rows.


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[codes]


def weighted_calinski_harabasz(features: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """CHI for each row of ``weights`` (R, N); ``features`` (N, D). Returns (R,)."""
    n_classes = int(codes.max()) + 1
    weights = np.atleast_2d(weights).astype(np.float64)
    centered = features - features.mean(axis=0)
    n_total = weights.sum(axis=1)
    class_counts = weights @ _one_hot(codes, n_classes)  # (R, K)
    sum_squares = weights @ np.einsum("nd,nd->n", centered, centered)  # (R,)
    class_sum_norms = np.zeros_like(class_counts)
    grand_sum = np.zeros((weights.shape[0], features.shape[1]))
    for code in range(n_classes):
        members = codes == code
        class_sums = weights[:, members] @ centered[members]  # (R, D)
        class_sum_norms[:, code] = np.einsum("rd,rd->r", class_sums, class_sums)
        grand_sum += class_sums
    grand_term = np.einsum("rd,rd->r", grand_sum, grand_sum) / n_total
    between = (class_sum_norms / class_counts).sum(axis=1) - grand_term
    within = sum_squares - (class_sum_norms / class_counts).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return between * (n_total - n_classes) / (within * (n_classes - 1))


def weighted_davies_bouldin(features: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Davies–Bouldin index for each row of ``weights`` (R, N). Returns (R,)."""
    n_classes = int(codes.max()) + 1
    one_hot = _one_hot(codes, n_classes)
    scores = np.empty(np.atleast_2d(weights).shape[0])
    for row, w in enumerate(np.atleast_2d(weights).astype(np.float64)):
        counts = w @ one_hot
        centroids = ((one_hot * w[:, None]).T @ features) / counts[:, None]
        distances = np.linalg.norm(features - centroids[codes], axis=1)
        scatter = (w * distances) @ one_hot / counts
        gaps = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=2)
        np.fill_diagonal(gaps, np.inf)
        with np.errstate(divide="ignore"):
            ratios = (scatter[:, None] + scatter[None, :]) / gaps
        scores[row] = ratios.max(axis=1).mean()
    return scores


def weighted_silhouette(distances: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean silhouette for each row of ``weights`` (R, M) given the (M, M) distance matrix.

    With unit weights this is scikit-learn's silhouette. For a resample, copies of the same
    patch are *not* counted as each other's neighbours: ``a(i)`` averages over the
    ``n_class - w_i`` members that are other patches. Counting copies (at distance 0) would
    shrink ``a(i)`` and bias every replicate upwards, so the interval would miss the estimate.
    Singleton classes score 0 as in scikit-learn.
    """
    n_classes = int(codes.max()) + 1
    n_points = codes.size
    one_hot = _one_hot(codes, n_classes)
    weights = np.atleast_2d(weights).astype(np.float64)
    n_resamples = weights.shape[0]
    weighted_one_hot = (weights[:, :, None] * one_hot[None]).transpose(1, 0, 2).reshape(n_points, -1)
    class_distance_sums = (distances @ weighted_one_hot).reshape(n_points, n_resamples, n_classes)
    counts = weights @ one_hot  # (R, K)
    rows = np.arange(n_points)
    others_in_own_class = counts[:, codes].T - weights.T  # (M, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = class_distance_sums[rows, :, codes] / others_in_own_class
        mean_to_class = np.where(counts[None] > 0, class_distance_sums / counts[None], np.inf)
        mean_to_class[rows, :, codes] = np.inf
        nearest = mean_to_class.min(axis=2)
        silhouette = np.nan_to_num((nearest - intra) / np.maximum(intra, nearest))
    silhouette[others_in_own_class <= 0] = 0.0
    return (weights.T * silhouette).sum(axis=0) / weights.sum(axis=1)


def bootstrap_weights(codes: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, N) per-sample counts of a within-class bootstrap (see ``stratified_bootstrap_indices``)."""
    indices = stratified_bootstrap_indices(codes, n_resamples, rng)
    n = codes.size
    offsets = (np.arange(n_resamples) * n)[:, None]
    return np.bincount((indices + offsets).ravel(), minlength=n_resamples * n).reshape(n_resamples, n)


# --------------------------------------------------------------------------- metrics


class SeparabilityMetric(ImageIntervalMetric):
    """Common parameters and the compute pipeline: check, project, score, bootstrap.

    Its kind reads every evaluated set of a layer stacked (``Stacked``) and gives one row per
    layer, over all sets (``set: all``).
    """

    kind: ClassVar[str] = "separability"
    needs: ClassVar[frozenset[str]] = frozenset({"features", "image_groups"})
    ranked_by_default: ClassVar[bool] = False  # high CHI by degradation is DDR; whether that is good is the question
    bounds: ClassVar[tuple[float, float]] = (0.0, np.inf)

    label: Literal["degradation", "content"] = "degradation"
    # raw: what every shipped suite, the monitor and the Python API use, so `{type: chi}` means one thing
    projection: Projection = "raw"
    pca_dim: int = Field(50, ge=1)
    perplexity: float = Field(30.0, gt=0)
    bootstrap: int = Field(200, ge=0)

    def name_params(self) -> list[str]:
        projection = f"pca{self.pca_dim}" if self.projection == "pca" else self.projection
        return [self.label, projection]

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        """One row per layer on all evaluated sets stacked; t-SNE projections keep their embedding."""
        output = MetricOutput()
        for layer in inputs.layers:
            stacked = inputs.stack(layer)
            result = output.guarded(layer, POOLED, self.compute, stacked.features, stacked.labels[self.label],
                                    inputs.seed, groups=stacked.groups)
            if result is None:
                continue
            output.result(layer, POOLED, result, label=self.label, projection=self.projection)
            embedding = result.extra.get("embedding")
            if embedding is not None:
                output.embeddings.setdefault(layer, {"xy": embedding, **stacked.labels})
        return output

    def compute(self, features: np.ndarray, labels: np.ndarray, seed: int, *,
                groups: ImageGroups | None = None) -> MetricResult:
        """Score ``features`` (N, D) grouped by ``labels`` (N,); ``seed`` drives PCA/t-SNE/bootstrap.

        ``groups`` (each row's source image and degradation set) is needed for ``interval:
        images`` or ``both`` only.
        """
        features = check_features(features)
        codes, classes = encode_labels(labels, features.shape[0])
        self._check_counts(codes, classes)
        groups = self.require_groups(groups, features.shape[0])
        warnings: list[str] = []
        dropped: list[int] = []  # image-bootstrap resamples left out for an empty class (see _complete)
        started = time.perf_counter()
        if self.projection == "tsne":
            projected = tsne_embedding(features, seed, perplexity=self.perplexity)
        else:
            projected = project(features, self.projection, self.pca_dim, seed)
            if self.projection == "pca":
                clip = pca_clip_warning(*features.shape, self.pca_dim)
                if clip:
                    warnings.append(clip)
        projection_seconds = time.perf_counter() - started
        # one BLAS thread: the bootstrap's (replicates x N) products are small, and a second thread
        # on a busy core is slower by far (CHI, 2000 patches, 200 replicates: 85 ms vs 1.9 ms)
        with single_threaded_blas():
            value = float(self._score(projected, codes))
            if not np.isfinite(value):
                raise DegenerateInputError(f"{self.name} is not finite ({value}) for these features")
            patches = images = None
            bias = bias_images = None
            if self.wants_patches:
                replicates = self._replicates(projected, codes, np.random.default_rng(seed), warnings)
                low, high, bias = percentile_interval(replicates, value, self.bounds)
                patches = (low, high)
            if groups is not None:
                replicates = self._replicates(projected, codes, image_bootstrap_rng(seed), warnings, groups,
                                              dropped=dropped)
                low, high, bias_images = percentile_interval(replicates, value, self.bounds)
                images = (low, high)
        extra = {
            "label": self.label,
            "projection": self.projection,
            "dim": int(projected.shape[1]),
            "n_samples": int(features.shape[0]),
            "n_classes": len(classes),
            "classes": classes,
            "bootstrap": self.bootstrap,
            "bootstrap_bias": bias,
            "projection_seconds": round(projection_seconds, 3),
            "warnings": warnings,
        }
        if groups is not None:
            extra["bootstrap_bias_images"] = bias_images
            extra["bootstrap_dropped_images"] = sum(dropped)
        if self.projection == "tsne":
            extra["embedding"] = projected  # (N, 2), for the report's t-SNE plots
        return self.interval_result(value, patches, images, groups, extra)

    def _check_counts(self, codes: np.ndarray, classes: list[str]) -> None:
        if codes.size <= len(classes):
            raise DegenerateInputError(
                f"{self.metric_type} needs more samples ({codes.size}) than classes ({len(classes)})"
            )

    def _score(self, projected: np.ndarray, codes: np.ndarray) -> float:
        raise NotImplementedError

    def _weighted_scores(self, projected: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _replicates(
        self, projected: np.ndarray, codes: np.ndarray, rng: np.random.Generator, warnings: list[str],
        groups: ImageGroups | None = None, dropped: list[int] | None = None,
    ) -> np.ndarray:
        """The index on ``self.bootstrap`` resamples (empty when disabled): within-class patch
        resamples, or with ``groups`` image-cluster resamples."""
        if self.bootstrap == 0:
            return np.empty(0)
        weights = self._weights(codes, rng, groups, dropped)
        return self._weighted_scores(projected, codes, weights) if len(weights) else np.empty(0)

    @staticmethod
    def _complete(weights: np.ndarray, codes: np.ndarray, dropped: list[int]) -> np.ndarray:
        """The resamples that keep every class; how many were left out is appended to ``dropped``
        (the row records it as ``bootstrap_dropped_images``: the value itself is not a fallback).

        A within-class patch resample always keeps every class. An image-cluster resample by
        ``content`` (classes are photographs) leaves a class empty when it misses that photograph
        in every set; its index would divide by an empty class (NaN for CHI and Davies–Bouldin, a
        silhouette over fewer classes): a replicate of another design, so it is dropped, counted.
        """
        present = (weights @ _one_hot(codes, int(codes.max()) + 1)) > 0
        complete = present.all(axis=1)
        dropped.append(int((~complete).sum()))
        return weights[complete]

    def _weights(self, codes: np.ndarray, rng: np.random.Generator, groups: ImageGroups | None,
                 dropped: list[int] | None = None) -> np.ndarray:
        """Resample weights: within-class patch resamples (they keep every class), or image-cluster
        resamples with those that leave a class empty left out (:meth:`_complete`, counted in ``dropped``)."""
        if groups is None:
            return bootstrap_weights(codes, self.bootstrap, rng)
        weights = cluster_bootstrap_weights(groups.image, groups.stratum, self.bootstrap, rng)
        return self._complete(weights, codes, [] if dropped is None else dropped)


@register_metric
class ChiMetric(SeparabilityMetric):
    """Calinski–Harabasz index: (between-class / (K-1)) / (within-class / (N-K)). Higher = better."""

    metric_type: ClassVar[str] = "chi"
    higher_is_better: ClassVar[bool] = True

    def _score(self, projected: np.ndarray, codes: np.ndarray) -> float:
        within = sum(
            float(((projected[codes == c] - projected[codes == c].mean(axis=0)) ** 2).sum())
            for c in np.unique(codes)
        )
        if within == 0.0:
            raise DegenerateInputError("chi is undefined: every class collapses to a single point")
        from sklearn.metrics import calinski_harabasz_score  # lazy: keeps sklearn out of start-up
        return calinski_harabasz_score(projected, codes)

    def _weighted_scores(self, projected: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return weighted_calinski_harabasz(projected, codes, weights)


@register_metric
class SilhouetteMetric(SeparabilityMetric):
    """Mean silhouette coefficient (Euclidean). Higher = better separated.

    The point estimate uses all samples. Silhouette needs all pairwise distances, so the
    bootstrap runs on a seeded random subset of at most ``bootstrap_max_points`` samples (one
    distance matrix, reused by every replicate); the extra records when that happens.
    """

    metric_type: ClassVar[str] = "silhouette"
    higher_is_better: ClassVar[bool] = True
    bounds: ClassVar[tuple[float, float]] = (-1.0, 1.0)

    bootstrap_max_points: int = Field(2000, ge=10)

    def _check_counts(self, codes: np.ndarray, classes: list[str]) -> None:
        if not 2 <= len(classes) <= codes.size - 1:
            raise DegenerateInputError(
                f"silhouette needs 2 <= classes ({len(classes)}) <= samples - 1 ({codes.size - 1})"
            )

    def _score(self, projected: np.ndarray, codes: np.ndarray) -> float:
        from sklearn.metrics import silhouette_score  # lazy: keeps sklearn out of start-up
        return silhouette_score(projected, codes)

    def _replicates(
        self, projected: np.ndarray, codes: np.ndarray, rng: np.random.Generator, warnings: list[str],
        groups: ImageGroups | None = None, dropped: list[int] | None = None,
    ) -> np.ndarray:
        if self.bootstrap == 0:
            return np.empty(0)
        if codes.size > self.bootstrap_max_points:
            subset = np.sort(rng.choice(codes.size, self.bootstrap_max_points, replace=False))
            projected, codes = projected[subset], np.unique(codes[subset], return_inverse=True)[1]
            groups = None if groups is None else groups.subset(subset)
            note = f"silhouette bootstrap on a random subset of {self.bootstrap_max_points} samples"
            if note not in warnings:
                warnings.append(note)
        squared = np.einsum("nd,nd->n", projected, projected)
        distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * projected @ projected.T, 0))
        np.fill_diagonal(distances, 0.0)
        weights = self._weights(codes, rng, groups, dropped)
        return weighted_silhouette(distances, codes, weights) if len(weights) else np.empty(0)


@register_metric
class DaviesBouldinMetric(SeparabilityMetric):
    """Davies–Bouldin index: mean over classes of the worst (scatter sum / centroid gap). Lower = better."""

    metric_type: ClassVar[str] = "davies_bouldin"
    higher_is_better: ClassVar[bool] = False

    def _score(self, projected: np.ndarray, codes: np.ndarray) -> float:
        centroids = np.stack([projected[codes == c].mean(axis=0) for c in np.unique(codes)])
        gaps = np.linalg.norm(centroids[:, None] - centroids[None, :], axis=2)
        if np.any(gaps[~np.eye(len(centroids), dtype=bool)] == 0):
            raise DegenerateInputError("davies_bouldin is undefined: two class centroids coincide")
        from sklearn.metrics import davies_bouldin_score  # lazy: keeps sklearn out of start-up
        return davies_bouldin_score(projected, codes)

    def _weighted_scores(self, projected: np.ndarray, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return weighted_davies_bouldin(projected, codes, weights)


def layer_sweep(
    features_by_layer: dict[str, np.ndarray],
    labels: np.ndarray,
    metric: SeparabilityMetric,
    seed: int,
) -> dict[str, MetricResult]:
    """``metric`` on the features of each layer (same labels), in the given layer order."""
    return {layer: metric.compute(features, labels, seed) for layer, features in features_by_layer.items()}

