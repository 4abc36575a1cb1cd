"""Metric registry, result types, the reduce protocol and the input checks every metric shares.

A metric is a small frozen pydantic model built from a suite entry ``{"type": name, **params}``
by :func:`build_metric`. Its class declares, as class variables, what ranking, ``compare`` and
``check`` need to know without guessing:

* ``higher_is_better`` – the direction of "better";
* ``aggregation`` – a field (default ``"mean"``) naming the :data:`AGGREGATIONS` function that
  reduces a per-set metric's values over the non-reference sets to its leaderboard summary
  (the summary row's ``set`` is the function's name); pooled metrics take none;
* ``kind`` – a free-form family name written into every row (``separability``,
  ``generalization``, ``identification``, ``quality``, ``efficiency`` ship; a new kind is just a
  new name);
* ``needs`` – the inputs ``reduce`` reads (:data:`METRIC_INPUTS`), from which the planner, the
  result-cache keys and the run's training split are derived;
* ``cacheable`` – whether a stored result may stand in for running it (``pipeline/results_cache.py``).

**The reduce protocol** (scikit-learn's "estimators say what they need" / lm-evaluation-harness's
``output_type``): the pipeline never knows what a kind of metric does. For each (metric, model) it
hands :meth:`Metric.reduce` a :class:`MetricInputs` view holding exactly the declared inputs
(stacked features with their labels, per-set features, SR outputs and HR targets, the module,
other metrics' rows, each row's source image) and gets back a :class:`MetricOutput`: draft rows
(:class:`MetricRow`), confusion matrices and embeddings. The reducer stamps the model and the
metric's identity on each draft and that is the whole pipeline side, so a new kind of metric is
one class: declare ``needs``, implement ``compute`` and ``reduce``, decorate with
:func:`register_metric`. The view refuses to hand out an input that was not declared
(:class:`UndeclaredInputError`), so the declarations the planner and the cache keys trust
cannot drift from what a metric actually reads.

Numbers a metric cannot be computed on (one class, non-finite or constant features, too few
samples) raise :class:`~ddr_eval.errors.DegenerateInputError` instead of producing NaN;
:meth:`MetricOutput.guarded` turns that into an ``unavailable: why`` row.

**Intervals over patches or over images.** Patches cut from one photograph are not
independent samples: they share its content, texture and noise. A bootstrap that resamples
patches treats 128 patches of 4 photographs as 128 independent draws and understates the
uncertainty. :func:`cluster_bootstrap_indices` / :func:`cluster_bootstrap_weights` resample
whole source images instead (within each degradation set, so every set keeps its number of
images), and metrics deriving from :class:`ImageIntervalMetric` take ``interval: patches |
images | both`` to choose which interval they report (see there).
"""

from __future__ import annotations

from functools import lru_cache

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Literal, Protocol, Sequence

import numpy as np
import pydantic
from pydantic import Field
from threadpoolctl import ThreadpoolController

from ddr_eval.errors import DegenerateInputError, UserError
from ddr_eval.registry import Registry
from ddr_eval.specs import Pooling, StrictModel, build_typed

# The kinds that ship. Not a closed list: a metric class may name any kind (see the module docstring).
METRIC_KINDS = ("separability", "generalization", "identification", "quality", "efficiency")
# What a metric can need. ``features``: pooled deep features of the evaluated sets (in the
# metric's pooling); ``train_split``: the same on the training images; ``sr_outputs``: SR
# images and their HR targets; ``module``: the network itself; ``rows``: other metrics' rows;
# ``image_groups``: the source image of every patch (for intervals over images, not patches).
METRIC_INPUTS = ("features", "train_split", "sr_outputs", "module", "rows", "image_groups")
CONFIDENCE_LEVEL = 0.95
Interval = Literal["patches", "images", "both"]
IMAGE_BOOTSTRAP_STREAM = 1
"""Spawn key of the image-cluster bootstrap's generator (see :func:`image_bootstrap_rng`)."""

# Row coordinates of rows that are not about one tapped layer or one degradation set.
ALL = "all"  # a metric computed on all evaluated sets pooled
OUTPUT_LAYER = "output"  # rows about the SR output image (quality metrics)
MODEL_LAYER = "model"  # rows about the whole network (efficiency metrics)
WHOLE_NETWORK_LAYERS = (OUTPUT_LAYER, MODEL_LAYER)
"""The row layers that are not a tapped layer: reports set them apart from the per-layer rows."""

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
    ``ci_low``/``ci_high`` is the interval the metric's ``interval`` names; with ``interval:
    both`` the image-cluster interval is ``ci_images`` too. ``n_source_images`` is the number of
    distinct source photographs behind the value, set whenever images were resampled.
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ci_images: tuple[float | None, float | None] | None = None
    n_source_images: int | None = None


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
    ci_images: tuple[float | None, float | None] | None = None
    n_source_images: int | None = None

    @property
    def value(self) -> float:
        """The headline number (accuracy), so ranking can treat every result alike."""
        return self.accuracy


class UndeclaredInputError(RuntimeError):
    """A metric read an input its class does not list in ``needs``: a bug in the metric.

    The planner extracts, and the result cache keys, only what metrics declare; reading
    anything else would work by accident today and return stale or missing data tomorrow.
    """


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


@dataclass(frozen=True)
class Stacked:
    """Features of several sets stacked in suite order, with per-row labels.

    ``labels["degradation"]`` names each row's set, ``labels["content"]`` its source image;
    ``groups`` is set only for metrics that declare ``image_groups``.
    """

    features: np.ndarray
    labels: dict[str, np.ndarray]
    groups: ImageGroups | None = None


@dataclass(frozen=True)
class MetricRow:
    """A metric's draft row for one (layer, set): value, interval, caveats and extra fields.

    The reducer turns it into a :class:`~ddr_eval.results.rows.ResultRow` by adding the model
    and the metric's identity; ``unavailable`` (a reason) becomes an ``unavailable`` status and
    ``warnings`` a ``fallback`` status. A non-finite value becomes an unavailable row there.
    """

    layer: str
    set: str
    value: float | None = None
    ci: tuple[float | None, float | None] = (None, None)
    unavailable: str | None = None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def usable_value(self) -> float | None:
        """The value a summary may aggregate: finite and not unavailable, else None."""
        if self.unavailable is not None or self.value is None or not math.isfinite(float(self.value)):
            return None
        return float(self.value)


@dataclass
class MetricOutput:
    """What one metric produced for one model: draft rows, confusion matrices, embeddings.

    ``confusions`` are dicts with a ``layer`` key (the reducer adds model and metric);
    ``embeddings`` maps a layer to the arrays the report plots (``xy`` and per-point labels).
    """

    rows: list[MetricRow] = field(default_factory=list)
    confusions: list[dict[str, Any]] = field(default_factory=list)
    embeddings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def add(self, layer: str, set_name: str, value: float | None = None, ci=(None, None),
            warnings: Sequence[str] = (), **extra: Any) -> MetricRow:
        row = MetricRow(layer, set_name, value, tuple(ci), None, tuple(str(w) for w in warnings), extra)
        self.rows.append(row)
        return row

    def unavailable(self, layer: str, set_name: str, reason: str) -> MetricRow:
        row = MetricRow(layer, set_name, unavailable=str(reason))
        self.rows.append(row)
        return row

    def result(self, layer: str, set_name: str, result: Any, ci: bool = True, **extra: Any) -> MetricRow:
        """The row of a :class:`MetricResult` (or any result with ``value``, ``ci_*``, ``extra``):
        its documented fallbacks (``extra["warnings"]``) become the row's warnings and an
        image-cluster interval its ``ci_images`` / ``n_images`` fields."""
        interval = (getattr(result, "ci_low", None), getattr(result, "ci_high", None)) if ci else (None, None)
        warnings = (getattr(result, "extra", None) or {}).get("warnings") or ()
        return self.add(layer, set_name, result.value, interval, warnings, **extra, **image_interval_fields(result))

    def guarded(self, layer: str, set_name: str, compute: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``compute(*args, **kwargs)``, or None after an unavailable row when the data is
        degenerate or an optional package is missing (a cell that says why, never a crash or a NaN)."""
        try:
            return compute(*args, **kwargs)
        except (DegenerateInputError, ImportError) as exc:
            self.unavailable(layer, set_name, str(exc))
            return None


def image_interval_fields(result: Any) -> dict[str, Any]:
    """The row fields of an image-cluster interval: ``ci_images: [low, high]`` (``interval:
    both``), ``n_images`` (whenever images were resampled) and ``bootstrap_dropped_images`` (how
    many image resamples were left out for an empty class, when any); nothing for a patch interval."""
    fields: dict[str, Any] = {}
    ci_images = getattr(result, "ci_images", None)
    if ci_images is not None:
        fields["ci_images"] = [ci_images[0], ci_images[1]]
    n_images = getattr(result, "n_source_images", None)
    if n_images is not None:
        fields["n_images"] = int(n_images)
    dropped = (getattr(result, "extra", None) or {}).get("bootstrap_dropped_images")
    if dropped:  # image resamples left out of the interval (an empty class: separability by content)
        fields["bootstrap_dropped_images"] = int(dropped)
    return fields


class MetricInputs(Protocol):
    """What the reducer hands :meth:`Metric.reduce` for one model (``pipeline/reduce.py``).

    Attributes describe the suite and the model and are always there. Each method hands out
    one declared input and raises :class:`UndeclaredInputError` for an undeclared one:
    ``features`` and ``stack`` (``"features"``; ``stack(layer, "train")``: ``"train_split"``),
    ``sr_outputs``/``hr_targets`` (``"sr_outputs"``), ``module`` (``"module"``), ``rows``
    (``"rows"``), ``image_groups`` (``"image_groups"``). Features are in the metric's pooling.
    A metric with ``sets:`` sees only those sets (and the reference): ``sets``, ``test_sets`` and
    ``stack`` (both splits) hold them alone; reading another set is an :class:`UndeclaredInputError`.
    """

    model: str  # the model's label
    layers: tuple[str, ...]  # its tapped layers (shown names)
    sets: tuple[str, ...]  # evaluated degradation sets the metric is computed on (its `sets`), suite order
    test_sets: tuple[str, ...]  # the same without the reference set
    reference: str  # the suite's reference set (readable even when not in `sets`)
    seed: int
    scale: int
    patch_shape: tuple[int, ...]  # one LR patch, (H, W, C)
    is_sr: bool  # a super-resolution network (has SR outputs)

    def features(self, layer: str, set_name: str) -> np.ndarray: ...
    def stack(self, layer: str, split: Literal["eval", "train"] = "eval") -> Stacked: ...
    def image_groups(self, set_name: str) -> np.ndarray: ...
    def has_hr(self, set_name: str) -> bool: ...
    def sr_outputs(self, set_name: str) -> np.ndarray | None: ...
    def hr_targets(self, set_name: str) -> np.ndarray: ...
    def module(self) -> Any | None: ...
    def rows(self, metric_type: str) -> dict[str, float | None]: ...


class Metric(StrictModel):
    """Base class: parameters are validated fields; directions and kind are class variables."""

    metric_type: ClassVar[str]
    higher_is_better: ClassVar[bool]
    kind: ClassVar[str]
    # True for metrics with one value per degradation set, summarised by ``aggregation``.
    per_set: ClassVar[bool] = False
    # What ``reduce`` reads (names in METRIC_INPUTS): the planner extracts cells, the result
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

    pooling: Pooling | None = Field(
        None, description="feature pooling this metric needs; None = the suite's `pooling`"
    )
    models: tuple[str, ...] | None = Field(
        None, description="model labels this metric applies to; None = every model in the suite"
    )
    sets: tuple[str, ...] | None = Field(
        None, description="degradation sets it is computed on (suite order kept); None = every evaluated set"
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

    @pydantic.field_validator("sets")
    @classmethod
    def _named_sets(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one degradation set (or leave `sets` out: every set)")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"names a set twice: {repeated}")
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

    def select_sets(self, names: Iterable[str]) -> tuple[str, ...]:
        """The names of ``names`` (degradation sets, in their order) this metric is computed on."""
        return tuple(name for name in names if self.sets is None or name in self.sets)

    def for_patch(self, patch_shape: tuple[int, ...]) -> Metric:
        """This metric as it names its rows in a suite whose LR patches have ``patch_shape``
        (H, W, C). Most metrics do not depend on it; efficiency metrics take it as their input size."""
        return self

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        """Rows (and confusions, embeddings) of this metric for the one model ``inputs`` describes.

        The one method a new kind of metric implements besides ``compute``: read the declared
        inputs, call ``compute`` under :meth:`MetricOutput.guarded`, add rows. Per-kind base
        classes (``SeparabilityMetric``, ``QualityMetric``, ...) implement it once for their kind.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement reduce()")

    def summarise(self, output: MetricOutput, inputs: MetricInputs, layer: str, values: Sequence[float]) -> None:
        """The summary a leaderboard shows for a per-set metric: its aggregation over the
        non-reference sets, in a row whose ``set`` is the aggregation's name; unavailable when no
        set has a value, so a model never just drops out of a column."""
        summary = self.aggregation
        if values:
            output.add(layer, summary, self.aggregate(values), n_sets=len(values))
        elif not inputs.test_sets:
            output.unavailable(layer, summary,
                               f"the suite has no degradation set besides the reference `{inputs.reference}`")
        else:
            output.unavailable(layer, summary, "no degradation set has a value")

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
        if self.sets is not None:  # its own task: never the column of the same metric on every set
            parts = [*parts, f"{len(self.sets)} set{'s' if len(self.sets) > 1 else ''}"]
        return f"{self.metric_type}[{','.join(parts)}]" if parts else self.metric_type

    def spec(self) -> dict[str, Any]:
        """The canonical ``{"type": ..., **params}`` this metric was (or could be) built from."""
        return {"type": self.metric_type, **self.model_dump()}


class ImageIntervalMetric(Metric):
    """A metric whose bootstrap can resample source images instead of patches.

    ``interval`` chooses what ``ci_low``/``ci_high`` mean:

    * ``patches`` (default, the numbers committed so far): rows resampled independently;
    * ``images``: the cluster bootstrap over source images (within each degradation set);
      honest when patches of one photograph are correlated, and wider then;
    * ``both``: ``ci_low``/``ci_high`` stay the patch interval and the image interval is
      recorded beside it (``ci_images`` in the result, ``extra["ci_images"]`` in the row).

    With ``images`` or ``both`` the result also carries ``n_source_images`` (row:
    ``n_images``), the number of distinct photographs the number rests on. The patch and image
    bootstraps draw from separate generators seeded from the suite seed (``default_rng(seed)``
    and :func:`image_bootstrap_rng`), so asking for ``both`` leaves the patch interval
    bit-identical to ``patches`` and the image interval identical to ``images``. Subclasses
    declare ``image_groups`` in ``needs`` so the reducer hands them each row's source image.
    """

    interval: Interval = Field("patches", description="bootstrap over patches, source images, or both (images in extra)")

    @property
    def wants_patches(self) -> bool:
        return self.interval in ("patches", "both")

    @property
    def wants_images(self) -> bool:
        return self.interval in ("images", "both")

    def require_groups(self, groups: ImageGroups | None, n_rows: int) -> ImageGroups | None:
        """``groups`` checked against the rows, when the image interval needs them; else None."""
        if not self.wants_images:
            return None
        if groups is None:
            raise UserError(f"{self.name}: interval={self.interval} needs the source image of every row (groups=...)")
        if len(groups) != n_rows:
            raise UserError(f"{self.name}: {len(groups)} image groups for {n_rows} rows")
        return groups

    def interval_result(self, value: float, patches: tuple[float | None, float | None] | None,
                        images: tuple[float | None, float | None] | None, groups: ImageGroups | None,
                        extra: dict[str, Any]) -> MetricResult:
        """The result with the interval ``interval`` names (``patches``/``images``: the
        intervals computed, None when not asked for)."""
        main = images if self.interval == "images" else patches
        low, high = main if main is not None else (None, None)
        return MetricResult(value, low, high, extra, ci_images=images if self.interval == "both" else None,
                            n_source_images=groups.n_images if groups is not None else None)


METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator: check the declared class variables and ``reduce``, and register under
    ``metric_type``. Any ``kind`` name is fine: the pipeline only calls ``reduce``."""
    for attribute in ("metric_type", "higher_is_better", "kind"):
        if not hasattr(cls, attribute):
            raise TypeError(f"metric class {cls.__name__} does not declare {attribute}")
    if not isinstance(cls.kind, str) or not cls.kind:
        raise TypeError(f"metric class {cls.__name__} needs a kind name, got {cls.kind!r}")
    if cls.reduce is Metric.reduce:
        raise TypeError(f"metric class {cls.__name__} does not implement reduce(inputs)")
    if not cls.needs or not cls.needs <= set(METRIC_INPUTS):
        raise TypeError(f"metric class {cls.__name__} needs unknown inputs {sorted(cls.needs)}")
    return METRICS.register(cls.metric_type)(cls)


def wall_clock_types() -> frozenset[str]:
    """The registered metric types that measure the machine rather than the model."""
    return frozenset(name for name, cls in METRICS.items() if cls.wall_clock)


def metric_catalog() -> list[dict[str, str]]:
    """What each registered metric declares, one entry per type: ``ddr-eval metrics`` prints it.

    Read from the class variables the pipeline itself trusts (direction, unit, kind, ``needs``),
    so the listing cannot disagree with what ranking and planning do.
    """
    catalog = []
    for name, cls in METRICS.items():
        summary = (cls.__doc__ or "").strip().splitlines()
        catalog.append({
            "name": name,
            "kind": cls.kind,
            "better": "higher" if cls.higher_is_better else "lower",
            "unit": cls.unit or "-",
            "inputs": ", ".join(sorted(cls.needs)),
            "ranks": "no" if cls.wall_clock or not cls.ranked_by_default else "yes",
            "what": summary[0] if summary else "",
        })
    return catalog


def build_metric(spec: dict[str, Any]) -> Metric:
    """Build a metric from ``{"type": name, **params}``; bad specs raise one-line UserErrors."""
    return build_typed(METRICS, spec)


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    """The process's BLAS and OpenMP pools, found once: ``threadpool_limits`` looks them up
    anew on every call (a scan of every loaded library), and metrics limit threads per SVD."""
    return ThreadpoolController()


def limited_threads(limits: int = 1, user_api: str | None = None):
    """Context manager: at most ``limits`` threads in the BLAS (``user_api="blas"``), OpenMP
    (``"openmp"``) or all (None) pools while it is open."""
    return _threadpools().limit(limits=limits, user_api=user_api)


def single_threaded_blas():
    """Context manager: one BLAS thread for the small decompositions metrics do (PCA/SVD).

    At metric sizes (hundreds to thousands of rows, tens to hundreds of columns) a second
    thread gains nothing, and on a shared 2-core machine a busy core makes OpenBLAS's spinning
    threads slower by orders of magnitude (measured: 0.45 s instead of 0.7 ms for a 400 x 48 SVD).
    """
    return limited_threads(1, "blas")


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
