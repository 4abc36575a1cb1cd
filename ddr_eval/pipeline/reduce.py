"""Stage 4 of a run: cell features -> metric rows (the reduce step).

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

from ddr_eval.errors import DegenerateInputError
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.metrics.quality import to_uint8
from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.results_cache import MetricPart
from ddr_eval.results.rows import OK, ResultRow, Status

ALL = "all"
OUTPUT_LAYER = "output"
MODEL_LAYER = "model"  # rows about the whole network (efficiency metrics)


@dataclass
class Reduction:
    rows: list[ResultRow] = field(default_factory=list)
    confusions: list[dict[str, Any]] = field(default_factory=list)
    embeddings: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def metric_pooling(metric: Any, default: str) -> str:
    return getattr(metric, "pooling", None) or default


class Reducer:
    """Computes every suite metric for every feature source from the cells' features."""

    def __init__(self, sources: list[FeatureSource], inputs: SuiteInputs, features: dict, reference: str,
                 seed: int, default_pooling: str, scale: int):
        self.sources = sources
        self.inputs = inputs
        self.features = features  # (label, split, set, pooling) -> FeatureBatch
        self.reference = reference
        self.seed = seed
        self.default_pooling = default_pooling
        self.scale = scale
        self.result = Reduction()

    # -- helpers ------------------------------------------------------------------------
    def _batch(self, source: FeatureSource, split: str, set_name: str, pooling: str) -> FeatureBatch:
        return self.features[(source.label, split, set_name, pooling)]

    def _layer_features(self, source, layer, split, set_name, pooling) -> np.ndarray:
        return self._batch(source, split, set_name, pooling).features[source.layers[layer]]

    def _stack(self, source, layer, sets: dict[str, DegradedSet], pooling: str, split: str):
        xs, degradation, content = [], [], []
        for name, dataset in sets.items():
            xs.append(self._layer_features(source, layer, split, name, pooling))
            degradation += [name] * len(dataset.lr)
            content += [dataset.patches.image_names[i] for i in dataset.patches.image_index]
        return np.concatenate(xs), {"degradation": np.asarray(degradation), "content": np.asarray(content)}

    def _row(self, metric, source: FeatureSource, layer: str, set_name: str, value=None, ci=(None, None),
             status: Status = OK, **extra) -> ResultRow:
        """Append one result row (a non-finite value becomes an unavailable row, see ResultRow)."""
        row = ResultRow(model=source.label, layer=layer, metric=metric.name, type=metric.metric_type,
                        kind=metric.kind, set=set_name, value=value, ci_low=ci[0], ci_high=ci[1],
                        higher_is_better=bool(metric.higher_is_better), aggregation=metric.aggregation,
                        unit=type(metric).unit, status=status, extra=extra)
        self.result.rows.append(row)
        return row

    def _unavailable(self, metric, source, layer, set_name, reason: str) -> ResultRow:
        return self._row(metric, source, layer, set_name, status=Status.unavailable(reason))

    def _guard(self, metric, source, layer, set_name, compute: Callable[[], Any]):
        """Run one metric; degenerate data or a missing optional package becomes an unavailable row."""
        try:
            return compute()
        except (DegenerateInputError, ImportError) as exc:
            self._unavailable(metric, source, layer, set_name, str(exc))
            return None

    # -- metric kinds -------------------------------------------------------------------
    def run(self, metrics: list[Any], cached: dict[tuple[int, str], MetricPart] | None = None,
            on_computed: Callable[[int, str, MetricPart], None] | None = None) -> Reduction:
        """Every metric for every model, in suite order. ``cached`` parts, keyed by (metric index,
        model label), are taken as they are; each part computed here is passed to ``on_computed``."""
        cached = cached or {}
        for index, metric in enumerate(metrics):
            handler = getattr(self, f"_{metric.kind}")
            for source in self.sources:
                if not metric.applies_to(source.label):
                    continue
                part = cached.get((index, source.label))
                if part is not None:
                    self._append(part)
                    continue
                start = self._mark()
                handler(metric, source)
                if on_computed is not None:
                    on_computed(index, source.label, self._since(start))
        return self.result

    def _mark(self) -> tuple[int, int, set]:
        return len(self.result.rows), len(self.result.confusions), set(self.result.embeddings)

    def _since(self, mark: tuple[int, int, set]) -> MetricPart:
        rows, confusions, embedded = mark
        return MetricPart(self.result.rows[rows:], self.result.confusions[confusions:],
                          {k: v for k, v in self.result.embeddings.items() if k not in embedded})

    def _append(self, part: MetricPart) -> None:
        self.result.rows.extend(part.rows)
        self.result.confusions.extend(part.confusions)
        for key, data in part.embeddings.items():
            self.result.embeddings.setdefault(key, data)

    def _separability(self, metric, source):
        pooling = metric_pooling(metric, self.default_pooling)
        for layer in source.layers:
            x, labels = self._stack(source, layer, self.inputs.eval_sets, pooling, self._eval_split)
            result = self._guard(metric, source, layer, ALL, lambda: metric.compute(x, labels[metric.label], self.seed))
            if result is None:
                continue
            self._row(metric, source, layer, ALL, result.value, (result.ci_low, result.ci_high), _status(result),
                      label=metric.label,
                      projection=getattr(metric, "projection", None))
            embedding = result.extra.get("embedding") if result.extra else None
            if embedding is not None:
                self.result.embeddings.setdefault((source.label, layer), {"xy": embedding, **labels})

    def _generalization(self, metric, source):
        pooling = metric_pooling(metric, self.default_pooling)
        for layer in source.layers:
            ref = self._layer_features(source, layer, self._eval_split, self.reference, pooling)
            values = []
            for name in self._test_sets:
                test = self._layer_features(source, layer, self._eval_split, name, pooling)
                result = self._guard(metric, source, layer, name, lambda: metric.compute(ref, test, self.seed))
                if result is not None:
                    row = self._row(metric, source, layer, name, result.value, (result.ci_low, result.ci_high),
                                    _status(result))
                    if row.value is not None:
                        values.append(row.value)
            self._summary_row(metric, source, layer, values)

    def _quality(self, metric, source):
        if not source.is_sr:
            return
        if metric.metric_type == "psnr_drop":
            return self._psnr_drop(metric, source)
        values = []
        for name, dataset in self.inputs.eval_sets.items():
            if (missing := self._no_hr(name)) is not None:
                self._unavailable(metric, source, OUTPUT_LAYER, name, missing)
                continue
            batch = self._batch(source, self._eval_split, name, self._output_pooling)
            targets = to_uint8(dataset.patches.hr)
            result = self._guard(metric, source, OUTPUT_LAYER, name, lambda: metric.compute(
                _outputs_as_uint8(batch.outputs), targets, crop_border=self.scale, test_y_channel=True,
                seed=self.seed))
            if result is not None:
                row = self._row(metric, source, OUTPUT_LAYER, name, result.value, (result.ci_low, result.ci_high),
                                _status(result))
                if name != self.reference and row.value is not None:
                    values.append(row.value)
        self._summary_row(metric, source, OUTPUT_LAYER, values)

    def _psnr_drop(self, metric, source):
        summary = metric.aggregation
        psnr = {r.set: r.value for r in self.result.rows
                if r.model == source.label and r.type == "psnr" and r.set in self.inputs.eval_sets}
        if self.reference not in psnr:
            self._unavailable(metric, source, OUTPUT_LAYER, summary, "list a `psnr` metric before `psnr_drop`")
            return
        if psnr[self.reference] is None:
            self._unavailable(metric, source, OUTPUT_LAYER, summary, f"no psnr on the reference `{self.reference}`")
            return
        drops = []
        for name in self._test_sets:
            if (missing := self._no_hr(name)) is not None:
                self._unavailable(metric, source, OUTPUT_LAYER, name, missing)
                continue
            if psnr.get(name) is None:
                self._unavailable(metric, source, OUTPUT_LAYER, name, f"no psnr on `{name}`")
                continue
            drops.append(psnr[self.reference] - psnr[name])
            self._row(metric, source, OUTPUT_LAYER, name, drops[-1])
        self._summary_row(metric, source, OUTPUT_LAYER, drops)

    def _identification(self, metric, source):
        pooling = metric_pooling(metric, self.default_pooling)
        for layer in source.layers:
            x_train, y_train = self._stack(source, layer, self.inputs.train_sets, pooling, "train")
            x_test, y_test = self._stack(source, layer, self.inputs.eval_sets, pooling, self._eval_split)
            result = self._guard(metric, source, layer, ALL, lambda: metric.compute(
                x_train, y_train["degradation"], x_test, y_test["degradation"], self.seed))
            if result is None:
                continue
            ci = (getattr(result, "ci_low", None), getattr(result, "ci_high", None))
            self._row(metric, source, layer, ALL, result.accuracy, ci, _status(result),
                      macro_f1=float(result.macro_f1))
            self.result.confusions.append({
                "model": source.label, "layer": layer, "metric": metric.name, "classes": list(result.classes),
                "matrix": np.asarray(result.confusion).tolist(), "accuracy": float(result.accuracy),
                "macro_f1": float(result.macro_f1)})

    def _efficiency(self, metric, source):
        """Cost of the network itself on one LR patch of the suite's size: one row, layer ``model``."""
        patch_shape = next(iter(self.inputs.eval_sets.values())).lr.shape[1:]
        sized = metric.for_patch(patch_shape)
        if source.descriptor is None:
            self._unavailable(sized, source, MODEL_LAYER, ALL, f"{source.label} is not a network")
            return
        module = source.descriptor.module
        result = self._guard(sized, source, MODEL_LAYER, ALL, lambda: sized.compute(module, patch_shape, self.seed))
        if result is not None:
            self._row(sized, source, MODEL_LAYER, ALL, result.value, status=_status(result),
                      measured=result.extra.get("unit", ""))

    def _summary_row(self, metric, source, layer, values):
        """The summary a leaderboard shows for a per-set metric: its aggregation over the
        non-reference sets, in a row whose ``set`` is the aggregation's name; unavailable when no
        set has a value, so a model never just drops out of a column."""
        summary = metric.aggregation
        if values:
            self._row(metric, source, layer, summary, metric.aggregate(values), n_sets=len(values))
        elif not self._test_sets:
            self._unavailable(metric, source, layer, summary,
                              f"the suite has no degradation set besides the reference `{self.reference}`")
        else:
            self._unavailable(metric, source, layer, summary, "no degradation set has a value")

    def _no_hr(self, set_name: str) -> str | None:
        """Why a metric that needs HR (PSNR, SSIM, PSNR drop, LPIPS) cannot run on a set that has
        none (an LR-only folder set), else None: such a cell is "unavailable", never NaN or an error."""
        if self.inputs.eval_sets[set_name].has_hr:
            return None
        return f"no HR for set {set_name}"

    # -- shape of the suite -------------------------------------------------------------
    @property
    def _eval_split(self) -> str:
        return next(iter(self.inputs.eval_sets.values())).split

    @property
    def _test_sets(self) -> list[str]:
        return [name for name in self.inputs.eval_sets if name != self.reference]

    @property
    def _output_pooling(self) -> str:
        return self.default_pooling


def _outputs_as_uint8(outputs: np.ndarray | None) -> np.ndarray:
    """SR outputs as the uint8 images quality metrics score; NaN/Inf would be cast to arbitrary bytes."""
    if outputs is None:
        raise DegenerateInputError("the model produced no SR outputs")
    if not np.isfinite(outputs).all():
        raise DegenerateInputError(f"SR outputs contain {int(np.size(outputs) - np.isfinite(outputs).sum())} NaN/Inf values")
    return to_uint8(outputs)


def _status(result: Any) -> Status:
    """A metric's documented fallbacks (``extra["warnings"]``, e.g. a clipped PCA dimension) as a
    ``fallback`` status, so a number computed a different way than asked says so in the results."""
    warnings = (getattr(result, "extra", None) or {}).get("warnings") or []
    return Status.fallback("; ".join(str(w) for w in warnings)) if warnings else OK
