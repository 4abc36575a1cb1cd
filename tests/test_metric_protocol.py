"""A new kind of metric is one class: declared inputs, ``compute``, ``reduce``; no pipeline change.

The metric below exists only in this file. It runs through everything a shipped metric does —
the planner (which cells to extract), the result cache (its key, a warm run), the reducer and
the leaderboard — because the pipeline only ever calls ``metric.reduce(inputs)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from ddr_eval.metrics import METRICS, build_metric
from ddr_eval.metrics.base import Metric, MetricInputs, UndeclaredInputError, register_metric
from ddr_eval.metrics.checks import check_features
from ddr_eval.metrics.results import MetricOutput, MetricResult
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.results import RowScope
from ddr_eval.config.loader import compile_suite

TINY_SR = {"num_feat": 8, "num_block": 2, "upscale": 2}


class MeanFeatureNorm(Metric):
    """Mean L2 norm of a layer's pooled features, per degradation set (a brand-new kind)."""

    metric_type: ClassVar[str] = "mean_feature_norm"
    kind: ClassVar[str] = "feature_norm"
    higher_is_better: ClassVar[bool] = False
    per_set: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"features"})

    def compute(self, features: np.ndarray) -> MetricResult:
        return MetricResult(float(np.linalg.norm(check_features(features), axis=1).mean()))

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        output = MetricOutput()
        for layer in inputs.layers:
            values = []
            for name in inputs.sets:
                result = output.guarded(layer, name, self.compute, inputs.features(layer, name))
                if result is None:
                    continue
                value = output.result(layer, name, result).usable_value
                if name != inputs.reference and value is not None:
                    values.append(value)
            self.summarise(output, inputs, layer, values)  # the leaderboard's `mean` row
        return output


class ReadsOutputsUndeclared(MeanFeatureNorm):
    """A buggy metric: reads SR outputs but declares only features."""

    metric_type: ClassVar[str] = "reads_outputs_undeclared"

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        inputs.sr_outputs(inputs.reference)
        return MetricOutput()


@pytest.fixture()
def new_kind():
    for cls in (MeanFeatureNorm, ReadsOutputsUndeclared):
        register_metric(cls)
    yield MeanFeatureNorm
    for cls in (MeanFeatureNorm, ReadsOutputsUndeclared):
        METRICS.unregister(cls.metric_type)


@pytest.fixture(scope="module")
def suite_raw(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("protocol") / "tiny.safetensors"
    torch.manual_seed(0)
    save_model(path, build_arch("MSRResNet", **TINY_SR), "MSRResNet", TINY_SR)
    return {
        "name": "new-kind", "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "chelsea", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 4},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
            {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 0.1}]},
        ],
        "models": [{"path": str(path), "as": "tiny"}, {"baseline": "image_statistics"}],
        "metrics": [{"type": "mean_feature_norm", "pooling": "gmp"}, {"type": "psnr", "bootstrap": 0}],
        "runtime": {"device": "cpu"},
    }


def _run(raw: dict, cache_dir):
    return run_suite(compile_suite(raw, "new-kind-test"), cache_dir=cache_dir, progress=False)


def test_a_new_metric_kind_runs_through_planner_cache_reducer_and_leaderboard(new_kind, suite_raw, tmp_path):
    cold = _run(suite_raw, tmp_path)
    # the planner extracted the pooling the new metric declared, beside the suite's default
    assert {key.pooling for key in cold.batches} == {"gap", "gmp"}
    rows = [r for r in cold.rows if r.type == "mean_feature_norm"]
    assert {r.kind for r in rows} == {"feature_norm"}
    assert {(r.model, r.set) for r in rows} == {(m, s) for m in ("tiny", "image_statistics")
                                               for s in ("clean", "blur", "noise", "mean")}
    source = next(s for s in cold.sources if s.label == "tiny")
    layer = next(iter(source.layers))
    blur = cold.features("tiny", layer, "blur", pooling="gmp")
    row = next(r for r in rows if r.model == "tiny" and r.set == "blur" and r.layer == layer)
    assert row.value == pytest.approx(np.linalg.norm(blur.astype(np.float64), axis=1).mean())
    summary = next(r for r in rows if r.model == "tiny" and r.scope is RowScope.SUMMARY and r.layer == layer)
    assert summary.set == "mean"  # results.csv spells a summary by its aggregation
    per_set = [r.value for r in rows if r.model == "tiny" and r.layer == layer and r.set in ("blur", "noise")]
    assert summary.value == pytest.approx(np.mean(per_set)) and summary.extra["n_sets"] == 2

    # the leaderboard ranks by it (ranked_by_default), with its declared direction
    column = next(c for c in cold.leaderboard.columns if c.metric == "mean_feature_norm[gmp]")
    assert column.higher_is_better is False
    board = {r["model"]: r for r in cold.leaderboard.rows}
    assert board.keys() == {"tiny", "image_statistics"} and all(r["rank"] for r in board.values())

    # the result cache keys and stores it like any metric: a warm run recomputes nothing
    warm = _run(suite_raw, tmp_path)
    # 2 metrics x 2 models (psnr on the statistics baseline is an empty part, cached too)
    assert warm.provenance["results_cache"]["hits"] == cold.provenance["results_cache"]["misses"] == 4
    assert warm.provenance["cells"] == 0
    assert warm.rows == cold.rows
    changed = {**suite_raw, "metrics": [{"type": "mean_feature_norm"}, *suite_raw["metrics"][1:]]}
    assert _run(changed, tmp_path).provenance["results_cache"]["misses"] == 2  # another pooling: another key


def test_reading_an_undeclared_input_fails_loudly(new_kind, suite_raw, tmp_path):
    raw = {**suite_raw, "models": suite_raw["models"][:1], "metrics": [{"type": "reads_outputs_undeclared"}]}
    with pytest.raises(UndeclaredInputError, match="sr_outputs"):
        _run(raw, tmp_path)


def test_register_metric_wants_reduce_and_any_kind_name():
    class NoReduce(Metric):
        metric_type: ClassVar[str] = "no_reduce"
        kind: ClassVar[str] = "anything"
        higher_is_better: ClassVar[bool] = True

    with pytest.raises(TypeError, match="reduce"):
        register_metric(NoReduce)
    assert "no_reduce" not in METRICS
    assert build_metric({"type": "chi"}).kind == "separability"  # the shipped kinds are unchanged
