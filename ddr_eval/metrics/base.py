"""Metric registry, result types and the input checks every metric shares.

A metric is a small frozen pydantic model built from a suite entry ``{"type": name, **params}``
by :func:`build_metric`. Its class declares, as class variables, what ranking, ``compare`` and
``check`` need to know without guessing:

* ``higher_is_better`` – the direction of "better";
* ``aggregation`` – a field (default ``"mean"``) naming the :data:`AGGREGATIONS` function that
  reduces a per-set metric's values over the non-reference sets to its leaderboard summary
  (the summary row's ``set`` is the function's name); pooled metrics take none;
* ``kind`` – which inputs its ``compute`` takes: ``"separability"`` (features, labels),
  ``"generalization"`` (reference and test features), ``"identification"`` (train/test split),
  ``"quality"`` (SR outputs and targets) or ``"efficiency"`` (the module and an LR patch shape);
* ``needs`` – the inputs ``compute`` reads (:data:`METRIC_INPUTS`), from which the planner, the
  result-cache keys and the run's training split are derived;
* ``cacheable`` – whether a stored result may stand in for running it (``pipeline/results_cache.py``).

Numbers a metric cannot be computed on (one class, non-finite or constant features, too few
samples) raise :class:`~ddr_eval.errors.DegenerateInputError` instead of producing NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from ddr_eval.errors import DegenerateInputError, UserError
from ddr_eval.registry import Registry
from ddr_eval.specs import build_typed

METRIC_KINDS = ("separability", "generalization", "identification", "quality", "efficiency")
# What a metric can need. ``features``: pooled deep features of the evaluated sets (in the
# metric's pooling); ``train_split``: the same on the training images; ``sr_outputs``: SR
# images and their HR targets; ``module``: the network itself; ``rows``: other metrics' rows.
METRIC_INPUTS = ("features", "train_split", "sr_outputs", "module", "rows")
CONFIDENCE_LEVEL = 0.95

# How per-set values become one summary number, by name (as lm-evaluation-harness's
# ``aggregation:`` keys). The median resists one outlying degradation set.
AGGREGATIONS: Registry[Callable[[Sequence[float]], float]] = Registry("aggregation")
AGGREGATIONS.register("mean")(lambda values: float(np.mean(values)))
AGGREGATIONS.register("median")(lambda values: float(np.median(values)))


class MetricUnavailableError(UserError, ImportError):
    """A metric whose optional dependency is missing or unusable here; the message says why.

    It is an ``ImportError`` so the reduce step, which turns ``ImportError`` and
    ``DegenerateInputError`` into an empty cell noted ``unavailable: <message>``, reports it
    there; uncaught, it is a one-line UserError.
    """


@dataclass(frozen=True)
class MetricResult:
    """One metric value with an optional 95% percentile-bootstrap interval.

    ``extra`` carries what a reader needs to interpret the number: sample counts, the
    projection actually used, and ``warnings`` for any documented fallback that was taken.
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentificationResult:
    """Degradation identification scores; ``ci_*`` is the bootstrap interval of ``accuracy``.

    ``confusion[i, j]`` counts test samples of class ``classes[i]`` predicted as ``classes[j]``.
    """

    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    classes: list[str]
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The headline number (accuracy), so ranking can treat every result alike."""
        return self.accuracy


class Metric(BaseModel):
    """Base class: parameters are validated fields; directions and kind are class variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric_type: ClassVar[str]
    higher_is_better: ClassVar[bool]
    kind: ClassVar[str]
    # True for metrics with one value per degradation set, summarised by ``aggregation``.
    per_set: ClassVar[bool] = False
    # What ``compute`` reads (names in METRIC_INPUTS): the planner extracts cells, the result
    # cache keys its entries and the run prepares a training split from these declarations.
    needs: ClassVar[frozenset[str]] = frozenset({"features"})
    # True for measurements of this machine, now (latency): shown, but never cached, never in a
    # leaderboard's rank, and checked against a baseline only when a tolerance names them.
    wall_clock: ClassVar[bool] = False
    # False for wall-clock metrics and for metrics computed from other metrics' rows (psnr_drop):
    # the result cache then never stands in for running them.
    cacheable: ClassVar[bool] = True
    # Whether the leaderboard ranks by it when a suite has no ``rank_by:``. False when "better"
    # depends on the question (separability by degradation or content) or when it is a cost
    # rather than a quality (efficiency): those are shown, and rank only when a suite names them.
    ranked_by_default: ClassVar[bool] = True
    # The unit shown in column headers; leaderboard values are ``value / unit_scale``.
    unit: ClassVar[str] = ""
    unit_scale: ClassVar[float] = 1.0

    pooling: Literal["gap", "gmp", "flatten"] | None = Field(
        None, description="feature pooling this metric needs; None = the suite's `pooling`"
    )
    models: tuple[str, ...] | None = Field(
        None, description="model labels this metric applies to; None = every model in the suite"
    )
    aggregation: str = Field("mean", description="how per-set values become the summary: a name in AGGREGATIONS")

    @pydantic.field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, value: str) -> str:
        if value not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {value!r}; known: {', '.join(AGGREGATIONS)}")
        if value != "mean" and not cls.per_set:
            raise ValueError(f"{cls.metric_type} is computed on all sets pooled; it takes no aggregation")
        return value

    def aggregate(self, values: Sequence[float]) -> float:
        """This metric's summary of its per-set ``values``."""
        return AGGREGATIONS.get(self.aggregation)(values)

    @classmethod
    def reads_cells(cls) -> bool:
        """Whether it reads extracted cells at all; a run whose other metrics are all cached
        then extracts nothing for it."""
        return bool(cls.needs & {"features", "train_split", "sr_outputs"})

    def applies_to(self, model_label: str) -> bool:
        return self.models is None or model_label in self.models

    def name_params(self) -> list[str]:
        """The parameters that distinguish two instances of this metric in a table."""
        return []

    @property
    def name(self) -> str:
        parts = self.name_params()
        if self.aggregation != "mean":
            parts = [*parts, self.aggregation]
        if self.pooling is not None and self.pooling != type(self).model_fields["pooling"].default:
            parts = [*parts, self.pooling]
        return f"{self.metric_type}[{','.join(parts)}]" if parts else self.metric_type

    def spec(self) -> dict[str, Any]:
        """The canonical ``{"type": ..., **params}`` this metric was (or could be) built from."""
        return {"type": self.metric_type, **self.model_dump()}


METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator: check the declared class variables and register under ``metric_type``."""
    for attribute in ("metric_type", "higher_is_better", "kind"):
        if not hasattr(cls, attribute):
            raise TypeError(f"metric class {cls.__name__} does not declare {attribute}")
    if cls.kind not in METRIC_KINDS:
        raise TypeError(f"metric class {cls.__name__} has unknown kind {cls.kind!r}")
    if not cls.needs or not cls.needs <= set(METRIC_INPUTS):
        raise TypeError(f"metric class {cls.__name__} needs unknown inputs {sorted(cls.needs)}")
    return METRICS.register(cls.metric_type)(cls)


def wall_clock_types() -> frozenset[str]:
    """The registered metric types that measure the machine rather than the model."""
    return frozenset(name for name, cls in METRICS.items() if cls.wall_clock)


def build_metric(spec: dict[str, Any]) -> Metric:
    """Build a metric from ``{"type": name, **params}``; bad specs raise one-line UserErrors."""
    return build_typed(METRICS, spec)


def single_threaded_blas() -> threadpool_limits:
    """Context manager: one BLAS thread for the small decompositions metrics do (PCA/SVD).

    At metric sizes (hundreds to thousands of rows, tens to hundreds of columns) a second
    thread gains nothing, and on a shared 2-core machine a busy core makes OpenBLAS's spinning
    threads slower by orders of magnitude (measured: 0.45 s instead of 0.7 ms for a 400 x 48 SVD).
    """
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------- input checks


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
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise DegenerateInputError(f"{what} contain {bad} NaN/Inf values")
    if not allow_constant and np.all(array.max(axis=0) == array.min(axis=0)):
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
