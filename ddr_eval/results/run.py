"""One suite run's result: the one shape every consumer of a run reads.

:func:`ddr_eval.pipeline.runner.run_suite` returns a :class:`RunResult`; findings, the report,
the regression check, ``compare``, the Python API and robustness read it through its methods
(:meth:`RunResult.features`, :meth:`RunResult.image_names`, :meth:`RunResult.row_value`), so the
feature key and each patch's source photograph are computed here, once.

The types of the pipeline's stages it holds (the loaded suite, the inputs, the feature sources)
are named for type checkers only: at run time this module imports nothing above ``results/``
(the import-linter contract excludes ``TYPE_CHECKING`` imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ddr_eval.results.rows import ResultRow

if TYPE_CHECKING:
    from ddr_eval.features.extract import FeatureBatch
    from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs
    from ddr_eval.pipeline.models import FeatureSource
    from ddr_eval.results.leaderboard import Leaderboard
    from ddr_eval.config.loader import LoadedSuite
    from ddr_eval.config.schema import Suite


class FeatureKey(NamedTuple):
    """Which features of a run: a model's, on one split of one degradation set, pooled one way."""

    model: str
    split: str
    set: str
    pooling: str


class MissingFeatures(KeyError):
    """A run did not extract the features asked for (the model, set, split or pooling is not in it)."""


@dataclass
class RunResult:
    """What one run of a suite computed.

    ``rows`` are the metric results (one :class:`~ddr_eval.results.rows.ResultRow` per model,
    layer, metric and set or summary); ``batches`` the extracted features by :class:`FeatureKey`;
    ``inputs`` the LR patches each was extracted from; ``sources`` the models that made them.
    """

    loaded: LoadedSuite
    rows: list[ResultRow]
    confusions: list[dict[str, Any]]
    embeddings: dict[tuple[str, str], dict[str, np.ndarray]]
    provenance: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    sources: list[FeatureSource] = field(default_factory=list)
    batches: dict[FeatureKey, FeatureBatch] = field(default_factory=dict, repr=False)
    inputs: SuiteInputs | None = field(default=None, repr=False)
    leaderboard: Leaderboard | None = None

    @property
    def suite(self) -> Suite:
        return self.loaded.suite

    @property
    def eval_split(self) -> str:
        """The split the evaluated sets were drawn from (``test``, or ``all`` for a small folder)."""
        return next(iter(self.inputs.eval_sets.values())).split

    def source(self, model: str) -> FeatureSource:
        for source in self.sources:
            if source.label == model:
                return source
        raise MissingFeatures(f"the run has no model {model!r}")

    def degraded_set(self, set_name: str, split: str | None = None) -> DegradedSet:
        """The LR inputs of one degradation set (the evaluated split unless ``split="train"``)."""
        sets = self.inputs.train_sets if split == "train" else self.inputs.eval_sets
        if set_name not in sets:
            raise MissingFeatures(f"the run has no degradation set {set_name!r} on split {split or self.eval_split!r}")
        return sets[set_name]

    def has_features(self, model: str, set_name: str, split: str | None = None, pooling: str | None = None) -> bool:
        return self.key(model, set_name, split, pooling) in self.batches

    def key(self, model: str, set_name: str, split: str | None = None, pooling: str | None = None) -> FeatureKey:
        """The :class:`FeatureKey` of a model's features on a set; split and pooling default to the
        evaluated split and the suite's pooling."""
        return FeatureKey(model, split or self.eval_split, set_name, pooling or self.suite.pooling)

    def feature_batch(self, model: str, set_name: str, split: str | None = None,
                      pooling: str | None = None) -> FeatureBatch:
        key = self.key(model, set_name, split, pooling)
        if key not in self.batches:
            raise MissingFeatures(f"the run extracted no features of {model!r} on {set_name!r} "
                                  f"(split {key.split}, pooling {key.pooling})")
        return self.batches[key]

    def features(self, model: str, layer: str, set_name: str, split: str | None = None,
                 pooling: str | None = None) -> np.ndarray:
        """N x D features of ``model`` at ``layer`` (a shown layer name) on one set."""
        source = self.source(model)
        if layer not in source.layers:
            raise MissingFeatures(f"model {model!r} has no layer {layer!r} (it has {', '.join(source.layers)})")
        return self.feature_batch(model, set_name, split, pooling).features[source.layers[layer]]

    def image_names(self, set_name: str, split: str | None = None) -> np.ndarray:
        """The source photograph of every patch of a set, in patch order (the content label)."""
        return self.degraded_set(set_name, split).patches.patch_image_names

    def row_value(self, model: str, metric_type: str, set_name: str) -> float | None:
        """The value of the first row of ``metric_type`` for ``model`` on ``set_name``, or None."""
        for row in self.rows:
            if row.model == model and row.type == metric_type and row.set == set_name:
                return row.value
        return None
