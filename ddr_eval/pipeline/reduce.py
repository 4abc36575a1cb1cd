"""Stage 4 of a run: cell features -> metric rows (the reduce step).

The reducer knows nothing about kinds of metrics. For each (metric, model) it builds a
:class:`ModelInputs` view of the inputs the metric declared in ``needs`` (features in its
pooling, the training split, SR outputs and HR targets, the module, earlier rows, each patch's
source image), calls ``metric.reduce(view)`` and stamps the model and the metric's identity on
the draft rows it gets back (:class:`~ddr_eval.metrics.results.MetricOutput`). What a kind of metric
does with its inputs lives in its class in ``ddr_eval/metrics/``, so a new kind needs no change
here (see the protocol in ``ddr_eval/metrics/base.py``).

Every row (:class:`~ddr_eval.results.rows.ResultRow`) carries the metric's declared direction
(``higher_is_better``), aggregation and unit, so ranking, ``compare`` and ``check`` never guess.
A metric that cannot be computed on the data (one class, constant features, an unavailable
optional package) becomes a row with no value and an ``unavailable: why`` status — never a
silent NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ddr_eval.features.extract import FeatureBatch
from ddr_eval.metrics.base import Metric, Stacked, UndeclaredInputError
from ddr_eval.metrics.bootstrap import ImageGroups
from ddr_eval.metrics.results import MODEL_LAYER, OUTPUT_LAYER, MetricOutput, MetricRow
from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.results_cache import MetricPart
from ddr_eval.results.rows import OK, ResultRow, Status
from ddr_eval.results.run import FeatureKey

__all__ = ["MODEL_LAYER", "OUTPUT_LAYER", "ModelInputs", "Reducer", "Reduction", "metric_pooling"]


@dataclass
class Reduction:
    rows: list[ResultRow] = field(default_factory=list)
    confusions: list[dict[str, Any]] = field(default_factory=list)
    embeddings: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def metric_pooling(metric: Any, default: str) -> str:
    return getattr(metric, "pooling", None) or default


class Reducer:
    """Computes every suite metric for every feature source from the cells' features."""

    def __init__(self, sources: list[FeatureSource], inputs: SuiteInputs, features: dict[FeatureKey, FeatureBatch],
                 reference: str, seed: int, default_pooling: str, scale: int):
        self.sources = sources
        self.inputs = inputs
        self.features = features
        self.reference = reference
        self.seed = seed
        self.default_pooling = default_pooling
        self.scale = scale
        self.result = Reduction()

    def run(self, metrics: list[Any], cached: dict[tuple[int, str], MetricPart] | None = None,
            on_computed: Callable[[int, str, MetricPart], None] | None = None) -> Reduction:
        """Every metric for every model, in suite order. ``cached`` parts, keyed by (metric index,
        model label), are taken as they are; each part computed here is passed to ``on_computed``."""
        parts: dict[tuple[int, str], MetricPart] = {}
        for source in self.sources:
            parts.update(self.compute_source(metrics, source, cached, on_computed))
        return self.assemble(metrics, parts)

    def compute_source(self, metrics: list[Any], source: FeatureSource,
                       cached: dict[tuple[int, str], MetricPart] | None = None,
                       on_computed: Callable[[int, str, MetricPart], None] | None = None, *,
                       done: dict[tuple[int, str], MetricPart] | None = None,
                       only: Callable[[Metric], bool] | None = None) -> dict[tuple[int, str], MetricPart]:
        """The parts of one model, metric by metric in suite order: what a run can hand to
        another thread as soon as that model's cells are extracted (``pipeline/runner.py``).

        ``done`` holds parts already computed for it (their rows are the earlier rows a later
        metric may read); ``only`` picks the metrics to compute now, the rest are left out.
        """
        cached, done = cached or {}, dict(done or {})
        for index, metric in enumerate(metrics):
            key = (index, source.label)
            if key in done or not metric.applies_to(source.label) or (only is not None and not only(metric)):
                continue
            part = cached.get(key)
            if part is None:
                earlier = [row for (i, label), p in sorted(done.items()) if label == source.label and i < index
                           for row in p.rows]
                part = self.compute(metric, source, earlier)
                if on_computed is not None:
                    on_computed(index, source.label, part)
            done[key] = part
        return done

    def assemble(self, metrics: list[Any], parts: dict[tuple[int, str], MetricPart]) -> Reduction:
        """Parts in suite order (metric by metric, model by model), whatever order they were computed in."""
        for index in range(len(metrics)):
            for source in self.sources:
                if (index, source.label) in parts:
                    self._append(parts[(index, source.label)])
        return self.result

    def compute(self, metric: Metric, source: FeatureSource, earlier: list[ResultRow] | None = None) -> MetricPart:
        """One metric on one model: its declared inputs -> ``metric.reduce`` -> stamped rows.
        ``earlier``: this model's rows from the metrics before it in the suite (``rows`` input)."""
        view = ModelInputs(self, metric, source, earlier)
        named = metric.for_patch(view.patch_shape)
        output: MetricOutput = named.reduce(view)
        rows = [self._result_row(named, source, draft) for draft in output.rows]
        confusions = [{"model": source.label, "layer": c["layer"], "metric": named.name,
                       **{k: v for k, v in c.items() if k != "layer"}} for c in output.confusions]
        # every embedding is kept here; the first of a (model, layer) in suite order is plotted (_append)
        embeddings = {(source.label, layer): data for layer, data in output.embeddings.items()}
        return MetricPart(rows, confusions, embeddings)

    @staticmethod
    def _result_row(metric: Metric, source: FeatureSource, draft: MetricRow) -> ResultRow:
        """A draft row with the model and the metric's identity (a non-finite value becomes an
        unavailable row, see ResultRow)."""
        return ResultRow(model=source.label, layer=draft.layer, metric=metric.name, type=metric.metric_type,
                         kind=metric.kind, set=draft.set, value=None if draft.unavailable is not None else draft.value,
                         ci_low=draft.ci[0], ci_high=draft.ci[1], higher_is_better=bool(metric.higher_is_better),
                         aggregation=metric.aggregation, unit=type(metric).unit, status=_status(draft),
                         extra=draft.extra, scope=draft.scope)

    def _append(self, part: MetricPart) -> None:
        self.result.rows.extend(part.rows)
        self.result.confusions.extend(part.confusions)
        for key, data in part.embeddings.items():
            self.result.embeddings.setdefault(key, data)


class ModelInputs:
    """The inputs one metric declared, for one feature source: the view ``metric.reduce`` reads
    (it implements :class:`~ddr_eval.metrics.base.MetricInputs`).

    Each accessor checks the metric's ``needs`` first: the planner extracted, and the result
    cache keyed, only what was declared, so an undeclared read is a bug made loud. A metric with
    ``sets:`` sees those sets alone (``sets``, ``test_sets``, ``stack`` of either split, suite
    order) and the suite's reference; any other set is refused the same way.
    """

    def __init__(self, reducer: Reducer, metric: Metric, source: FeatureSource,
                 earlier: list[ResultRow] | None = None):
        self._reducer, self._source, self._earlier = reducer, source, earlier or []
        self._needs = type(metric).needs
        self._metric_type = metric.metric_type
        self._pooling = metric_pooling(metric, reducer.default_pooling)
        eval_sets = reducer.inputs.eval_sets
        self.model = source.label
        self.layers = tuple(source.layers)
        self.sets = metric.select_sets(eval_sets)
        self._train_sets = metric.select_sets(reducer.inputs.train_sets)
        self.reference = reducer.reference
        self.test_sets = tuple(name for name in self.sets if name != self.reference)
        self.seed = reducer.seed
        self.scale = reducer.scale
        self.patch_shape = tuple(next(iter(eval_sets.values())).lr.shape[1:])
        self.is_sr = source.is_sr

    def _require(self, need: str) -> None:
        if need not in self._needs:
            raise UndeclaredInputError(f"metric {self._metric_type} reads `{need}` without declaring it in `needs`")

    @property
    def _eval_split(self) -> str:
        return next(iter(self._reducer.inputs.eval_sets.values())).split

    def _batch(self, split: str, set_name: str, pooling: str) -> FeatureBatch:
        return self._reducer.features[FeatureKey(self._source.label, split, set_name, pooling)]

    def _eval_set(self, set_name: str) -> DegradedSet:
        """An evaluated set this metric may read: one of its ``sets`` or the reference."""
        if set_name not in self.sets and set_name != self.reference:
            raise UndeclaredInputError(f"metric {self._metric_type} reads set `{set_name}` outside its `sets`")
        return self._reducer.inputs.eval_sets[set_name]

    def features(self, layer: str, set_name: str) -> np.ndarray:
        self._require("features")
        self._eval_set(set_name)
        return self._batch(self._eval_split, set_name, self._pooling).features[self._source.layers[layer]]

    def stack(self, layer: str, split: str = "eval") -> Stacked:
        """Features of every set of ``split`` (``eval``: the evaluated sets; ``train``: the
        training split), stacked in suite order, with degradation and content labels."""
        self._require("features" if split == "eval" else "train_split")
        inputs = self._reducer.inputs
        sets, key = (inputs.eval_sets, self._eval_split) if split == "eval" else (inputs.train_sets, "train")
        sets = {name: sets[name] for name in (self.sets if split == "eval" else self._train_sets)}
        module = self._source.layers[layer]
        xs = [self._batch(key, name, self._pooling).features[module] for name in sets]
        degradation = np.concatenate([np.full(len(d.lr), name, dtype=object) for name, d in sets.items()]).astype(str)
        content = np.concatenate([d.patches.patch_image_names for d in sets.values()])
        groups = ImageGroups(content, degradation) if "image_groups" in self._needs else None
        return Stacked(np.concatenate(xs), {"degradation": degradation, "content": content}, groups)

    def image_groups(self, set_name: str) -> np.ndarray:
        """The source photograph (its name) of every patch of an evaluated set."""
        self._require("image_groups")
        return self._eval_set(set_name).patches.patch_image_names

    def has_hr(self, set_name: str) -> bool:
        """False for an LR-only set: HR-needing metrics then give "unavailable: no HR for set X"."""
        return self._eval_set(set_name).has_hr

    def sr_outputs(self, set_name: str) -> np.ndarray | None:
        """SR outputs (N, H, W, 3 float) of an evaluated set, kept in the suite's default pooling cell."""
        self._require("sr_outputs")
        self._eval_set(set_name)
        return self._batch(self._eval_split, set_name, self._reducer.default_pooling).outputs

    def hr_targets(self, set_name: str) -> np.ndarray:
        self._require("sr_outputs")
        return self._eval_set(set_name).patches.hr

    def module(self) -> Any | None:
        """The network (``torch.nn.Module``), or None for a feature source that is not one."""
        self._require("module")
        return None if self._source.descriptor is None else self._source.descriptor.module

    def rows(self, metric_type: str) -> dict[str, float | None]:
        """This model's values of an earlier metric (in suite order) of ``metric_type``, by evaluated set."""
        self._require("rows")
        return {r.set: r.value for r in self._earlier
                if r.type == metric_type and r.set in self._reducer.inputs.eval_sets}


def _status(draft: MetricRow) -> Status:
    """``unavailable: why``, or a metric's documented fallbacks (its warnings, e.g. a clipped PCA
    dimension) as a ``fallback`` status, so a number computed a different way than asked says so."""
    if draft.unavailable is not None:
        return Status.unavailable(draft.unavailable)
    return Status.fallback("; ".join(draft.warnings)) if draft.warnings else OK
