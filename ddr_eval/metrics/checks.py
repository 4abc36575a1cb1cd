"""The input checks every metric shares: features as a finite (samples x features) array,
labels as integer codes with enough classes. A check that fails raises
:class:`~ddr_eval.core.errors.DegenerateInputError`, which the reduce step turns into an
``unavailable: why`` row (:meth:`~ddr_eval.metrics.results.MetricOutput.guarded`).
"""

from __future__ import annotations

import numpy as np

from ddr_eval.core.errors import DegenerateInputError


def check_features(
    features: np.ndarray, what: str = "features", min_samples: int = 2, allow_constant: bool = False
) -> np.ndarray:
    """Return ``features`` as a finite float64 (N, D) array with N >= ``min_samples``, or raise.

    Single constant columns are fine (dead ReLU channels are common); features whose *every*
    column is constant carry no information and raise unless ``allow_constant``.
    """
    array = np.asarray(features)
    if array.ndim != 2:
        raise DegenerateInputError(f"{what} must be a 2-D (samples x features) array, got shape {array.shape}")
    if array.shape[0] < min_samples or array.shape[1] < 1:
        raise DegenerateInputError(
            f"{what} needs at least {min_samples} samples and 1 feature, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise DegenerateInputError(f"{what} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    # one pass without a mask for the common case: a sum of finite float64 values is finite
    # unless it overflows, and only then (or for a real NaN/Inf) is every value looked at
    if not np.isfinite(array.sum()) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise DegenerateInputError(f"{what} contain {bad} NaN/Inf values")
    if not allow_constant and not (array != array[0]).any():  # every row equals the first
        raise DegenerateInputError(f"{what} are constant: every feature has zero variance")
    return array


def encode_labels(labels: np.ndarray, n_samples: int, min_classes: int = 2) -> tuple[np.ndarray, list[str]]:
    """Integer codes 0..K-1 and sorted class names for ``labels``; checks length and class count."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise DegenerateInputError(f"labels must be a 1-D array of {n_samples} entries, got shape {array.shape}")
    classes, codes = np.unique(array, return_inverse=True)
    if len(classes) < min_classes:
        raise DegenerateInputError(
            f"need at least {min_classes} distinct labels, got {len(classes)} ({[str(c) for c in classes]})"
        )
    return codes.astype(np.int64), [str(c) for c in classes]
