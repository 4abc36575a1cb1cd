"""Bootstrap intervals: percentile intervals re-centred on the estimate, resampling rows within
classes, and the cluster bootstrap over source images.

**Intervals over patches or over images.** Patches cut from one photograph are not
independent samples: they share its content, texture and noise. A bootstrap that resamples
patches treats 128 patches of 4 photographs as 128 independent draws and understates the
uncertainty. :func:`cluster_bootstrap_indices` / :func:`cluster_bootstrap_weights` resample
whole source images instead (within each degradation set, so every set keeps its number of
images), and metrics deriving from :class:`~ddr_eval.metrics.base.ImageIntervalMetric` take
``interval: patches | images | both`` to choose which interval they report (see there).
:class:`ImageGroups` says which photograph and which set (stratum) every row comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE_LEVEL = 0.95
IMAGE_BOOTSTRAP_STREAM = 1
"""Spawn key of the image-cluster bootstrap's generator (see :func:`image_bootstrap_rng`)."""


@dataclass(frozen=True)
class ImageGroups:
    """The source photograph of every row and the stratum (degradation set) it belongs to.

    ``image`` and ``stratum`` are (N,) arrays of labels of any type (the pipeline gives
    photograph names and set names). A cluster bootstrap resamples (stratum, image) pairs:
    within each stratum, that stratum's images with replacement, each with all its rows.
    """

    image: np.ndarray
    stratum: np.ndarray

    def __post_init__(self) -> None:
        image, stratum = np.asarray(self.image), np.asarray(self.stratum)
        if image.ndim != 1 or image.shape != stratum.shape:
            raise ValueError(f"image groups need two 1-D arrays of one length, got {image.shape} and {stratum.shape}")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "stratum", stratum)

    def __len__(self) -> int:
        return self.image.shape[0]

    @property
    def n_images(self) -> int:
        """Distinct source photographs (one photograph seen under five degradations counts once)."""
        return int(np.unique(self.image).size)

    def subset(self, rows: np.ndarray) -> ImageGroups:
        return ImageGroups(self.image[rows], self.stratum[rows])

    @classmethod
    def of_sets(cls, images_by_set: dict[str, np.ndarray]) -> ImageGroups:
        """Rows of several sets stacked in the given order, each set its own stratum."""
        images = [np.asarray(images) for images in images_by_set.values()]
        strata = [np.full(len(ids), name, dtype=object) for name, ids in zip(images_by_set, images)]
        return cls(np.concatenate(images), np.concatenate(strata).astype(str))

    @classmethod
    def pair(cls, reference_images: np.ndarray, test_images: np.ndarray) -> ImageGroups:
        """Rows of a reference set then of a test set (what two-set metrics such as SRGA take)."""
        return cls.of_sets({"reference": reference_images, "test": test_images})



def percentile_interval(
    replicates: np.ndarray, estimate: float, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float | None, float | None, float | None]:
    """95% percentile interval of bootstrap ``replicates``, re-centred on ``estimate``.

    Returns ``(low, high, bias)`` with ``bias = mean(replicates) - estimate``; the interval is
    the replicates' 2.5/97.5 percentiles minus ``bias``, clipped to the statistic's ``bounds``.

    Why re-centre: cluster indices are biased under resampling. Near "no separation" a
    resample adds spurious between-class differences (the CHI of a resample is about 1
    higher), and duplicated rows narrow PCA sample sizes (SRGA's fitted shape drops), so the
    plain percentile interval can lie entirely beside the estimate. Shifting by the bootstrap
    bias keeps the width (the sampling spread) and centres it where the estimate is; for
    unbiased statistics such as a mean the shift is ~0 and this is the plain percentile
    interval. Returns ``(None, None, None)`` when there are no finite replicates.
    """
    replicates = np.asarray(replicates, dtype=np.float64)
    replicates = replicates[np.isfinite(replicates)]
    if replicates.size == 0 or not np.isfinite(estimate):
        return None, None, None
    tail = 100 * (1 - CONFIDENCE_LEVEL) / 2
    bias = float(replicates.mean() - estimate)
    low, high = np.percentile(replicates, [tail, 100 - tail]) - bias
    return float(max(low, bounds[0])), float(min(high, bounds[1])), bias


def stratified_bootstrap_indices(codes: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, N) row indices, resampled with replacement *within* each class.

    Keeping every class at its size means no replicate loses a class, so a cluster index is
    always defined and the interval reflects sampling noise, not changes in class balance.
    """
    indices = np.empty((n_resamples, codes.shape[0]), dtype=np.int64)
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        indices[:, members] = rng.choice(members, size=(n_resamples, members.size), replace=True)
    return indices


def bootstrap_mean_interval(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """95% percentile interval of the mean of ``values`` over ``n_resamples`` resamples."""
    values = np.asarray(values, dtype=np.float64)
    if n_resamples == 0 or values.size < 2 or not np.isfinite(values).all():
        return None, None
    draws = rng.integers(0, values.size, size=(n_resamples, values.size))
    low, high, _ = percentile_interval(values[draws].mean(axis=1), float(values.mean()))
    return low, high



# --------------------------------------------------------------------------- cluster bootstrap


def image_bootstrap_rng(seed: int) -> np.random.Generator:
    """The image-cluster bootstrap's generator: the suite seed's child stream
    :data:`IMAGE_BOOTSTRAP_STREAM`, independent of the patch bootstrap's ``default_rng(seed)``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(IMAGE_BOOTSTRAP_STREAM,)))


def _clusters(groups: np.ndarray, strata: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stratum (sorted): its rows and each row's cluster code 0..k-1 within the stratum."""
    groups = np.asarray(groups)
    strata = np.zeros(groups.shape[0], dtype=np.int64) if strata is None else np.asarray(strata)
    if groups.ndim != 1 or strata.shape != groups.shape:
        raise ValueError(f"groups and strata must be 1-D of one length, got {groups.shape} and {strata.shape}")
    out = []
    for stratum in np.unique(strata):
        rows = np.flatnonzero(strata == stratum)
        out.append((rows, np.unique(groups[rows], return_inverse=True)[1].ravel()))
    return out


def cluster_bootstrap_indices(groups: np.ndarray, strata: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Row indices of one cluster-bootstrap resample: within each stratum, that stratum's
    clusters (``groups``, e.g. source images) drawn with replacement, each with all its rows.

    Why clusters: patches of one photograph share content and noise, so resampling patches
    pretends to more independent samples than there are. Why strata: every degradation set
    keeps its number of images, so no resample loses a set (a class of a separability index)
    and the spread is sampling noise, not changes in the design. With ``strata=None`` all rows
    are one stratum. The resample's length varies when clusters differ in size.
    """
    picked = []
    for rows, codes in _clusters(groups, strata):
        members = [rows[codes == code] for code in range(int(codes.max()) + 1)]
        picked += [members[code] for code in rng.integers(0, len(members), len(members))]
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)


def cluster_bootstrap_weights(groups: np.ndarray, strata: np.ndarray | None, n_resamples: int,
                              rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, N) per-row counts of :func:`cluster_bootstrap_indices` resamples: a row's
    weight is how often its cluster was drawn. The form the vectorised weighted indices
    (separability) and weighted means (quality) take."""
    n_rows = np.asarray(groups).shape[0]
    weights = np.zeros((n_resamples, n_rows), dtype=np.int64)
    for rows, codes in _clusters(groups, strata):
        k = int(codes.max()) + 1
        draws = rng.integers(0, k, size=(n_resamples, k))
        offsets = (np.arange(n_resamples) * k)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * k).reshape(n_resamples, k)
        weights[:, rows] = counts[:, codes]
    return weights


def resamplable_clusters(groups: np.ndarray, strata: np.ndarray | None) -> bool:
    """Whether some stratum has two clusters: otherwise every resample is the data itself and
    a cluster interval would be a point, which would look like certainty."""
    return any(int(codes.max()) >= 1 for _, codes in _clusters(groups, strata))


def cluster_bootstrap_mean_interval(
    values: np.ndarray, groups: np.ndarray, strata: np.ndarray | None, n_resamples: int, rng: np.random.Generator
) -> tuple[float | None, float | None]:
    """95% percentile interval of the mean of ``values`` over cluster-bootstrap resamples
    (``(None, None)`` when there is nothing to resample: no replicates, one value, non-finite
    values, or a single cluster per stratum)."""
    values = np.asarray(values, dtype=np.float64)
    if n_resamples == 0 or values.size < 2 or not np.isfinite(values).all():
        return None, None
    if not resamplable_clusters(groups, strata):
        return None, None
    weights = cluster_bootstrap_weights(groups, strata, n_resamples, rng)
    low, high, _ = percentile_interval(weights @ values / weights.sum(axis=1), float(values.mean()))
    return low, high
