"""The metric protocol: the :class:`Metric` base class, its declarations, the inputs
``reduce`` reads, and the registry.

A metric is a small frozen pydantic model built from a suite entry ``{"type": name, **params}``
by :func:`build_metric`. Its class declares, as class variables, what ranking, ``compare`` and
``check`` need to know without guessing:

* ``higher_is_better`` – the direction of "better";
* ``aggregation`` – a field (default ``"mean"``) naming the :data:`AGGREGATIONS` function that
  reduces a per-set metric's values over the non-reference sets to its leaderboard summary
  (its summary row, scope ``SUMMARY``, shows the function's name as its ``set``); pooled
  metrics take none;
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
other metrics' rows, each row's source image) and gets back a
:class:`~ddr_eval.metrics.results.MetricOutput`: draft rows, confusion matrices and embeddings.
The reducer stamps the model and the metric's identity on each draft and that is the whole
pipeline side, so a new kind of metric is one class: declare ``needs``, implement ``compute``
and ``reduce``, decorate with :func:`register_metric`. The view refuses to hand out an input
that was not declared (:class:`UndeclaredInputError`), so the declarations the planner and the
cache keys trust cannot drift from what a metric actually reads.

Numbers a metric cannot be computed on (one class, non-finite or constant features, too few
samples) raise :class:`~ddr_eval.core.errors.DegenerateInputError` instead of producing NaN;
:meth:`~ddr_eval.metrics.results.MetricOutput.guarded` turns that into an ``unavailable: why``
row. The rest of a metric's toolbox lives beside this module, one job each: ``results.py``
(result types, draft rows), ``bootstrap.py`` (intervals over patches or source images),
``checks.py`` (input checks), ``threads.py`` (BLAS/OpenMP thread limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Literal, Protocol, Sequence

import numpy as np
import pydantic
from pydantic import Field

from ddr_eval.core.errors import UserError
from ddr_eval.metrics.bootstrap import ImageGroups
from ddr_eval.metrics.results import POOLED_SET, MetricOutput, MetricResult, SetRef
from ddr_eval.core.registry import Registry
from ddr_eval.core.specs import Pooling, StrictModel, build_typed

# The kinds that ship. Not a closed list: a metric class may name any kind (see the module docstring).
METRIC_KINDS = ("separability", "generalization", "identification", "quality", "efficiency")
# What a metric can need. ``features``: pooled deep features of the evaluated sets (in the
# metric's pooling); ``train_split``: the same on the training images; ``sr_outputs``: SR
# images and their HR targets; ``module``: the network itself; ``rows``: other metrics' rows;
# ``image_groups``: the source image of every patch (for intervals over images, not patches).
METRIC_INPUTS = ("features", "train_split", "sr_outputs", "module", "rows", "image_groups")
Interval = Literal["patches", "images", "both"]

# How per-set values become one summary number, by name (as lm-evaluation-harness's
# ``aggregation:`` keys). The median resists one outlying degradation set.
AGGREGATIONS: Registry[Callable[[Sequence[float]], float]] = Registry("aggregation")
AGGREGATIONS.register("mean")(lambda values: float(np.mean(values)))
AGGREGATIONS.register("median")(lambda values: float(np.median(values)))
DEFAULT_AGGREGATION = "mean"
"""A metric's aggregation unless its suite entry names another (pooled metrics keep it: they take none)."""


def summary_set_names() -> tuple[str, ...]:
    """The ``set`` texts of rows that are not about one degradation set: ``all`` (pooled) and
    every registered aggregation's name (summaries). results.csv spells a row's scope this way,
    so the suite loader refuses degradation sets of these names."""
    return (POOLED_SET, *AGGREGATIONS)


class MetricUnavailableError(UserError, ImportError):
    """A metric whose optional dependency is missing or unusable here; the message says why.

    It is an ``ImportError`` so the reduce step, which turns ``ImportError`` and
    ``DegenerateInputError`` into an empty cell noted ``unavailable: <message>``, reports it
    there; uncaught, it is a one-line UserError.
    """


class UndeclaredInputError(RuntimeError):
    """A metric read an input its class does not list in ``needs``: a bug in the metric.

    The planner extracts, and the result cache keys, only what metrics declare; reading
    anything else would work by accident today and return stale or missing data tomorrow.
    """


@dataclass(frozen=True)
class Stacked:
    """Features of several sets stacked in suite order, with per-row labels.

    ``labels["degradation"]`` names each row's set, ``labels["content"]`` its source image;
    ``groups`` is set only for metrics that declare ``image_groups``.
    """

    features: np.ndarray
    labels: dict[str, np.ndarray]
    groups: ImageGroups | None = None



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
    # What "better" means in an axis label (``lower = generalizes better``), where plain
    # "better" would hide it.
    better_means: ClassVar[str] = "better"

    pooling: Pooling | None = Field(
        None, description="feature pooling this metric needs; None = the suite's `pooling`"
    )
    models: tuple[str, ...] | None = Field(
        None, description="model labels this metric applies to; None = every model in the suite"
    )
    sets: tuple[str, ...] | None = Field(
        None, description="degradation sets it is computed on (suite order kept); None = every evaluated set"
    )
    aggregation: str = Field(DEFAULT_AGGREGATION, description="how per-set values become the summary: a name in AGGREGATIONS")

    @pydantic.field_validator("aggregation")
    @classmethod
    def _known_aggregation(cls, value: str) -> str:
        if value not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {value!r}; known: {', '.join(AGGREGATIONS)}")
        if value != DEFAULT_AGGREGATION and not cls.per_set:
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
        non-reference sets, in a ``SUMMARY`` row (its ``set`` reads the aggregation's name);
        unavailable when no set has a value, so a model never just drops out of a column."""
        summary = self.summary_ref
        if values:
            output.add(layer, summary, self.aggregate(values), n_sets=len(values))
        elif not inputs.test_sets:
            output.unavailable(layer, summary,
                               f"the suite has no degradation set besides the reference `{inputs.reference}`")
        else:
            output.unavailable(layer, summary, "no degradation set has a value")

    @property
    def summary_ref(self) -> SetRef:
        """Where this metric's summary row sits: ``SetRef.summary`` of its aggregation."""
        return SetRef.summary(self.aggregation)

    def name_params(self) -> list[str]:
        """The parameters that distinguish two instances of this metric in a table."""
        return []

    @property
    def name(self) -> str:
        parts = self.name_params()
        if self.aggregation != DEFAULT_AGGREGATION:
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
