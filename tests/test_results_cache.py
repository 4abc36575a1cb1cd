"""Metric-result cache: a warm run gives the same report without a forward pass or a refit,
and anything a result depends on changes its key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddr_eval.cache.store import FeatureCache, LazyNpzArrays
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.metrics import build_metric
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.inputs import prepare_inputs
from ddr_eval.pipeline.models import build_sources
from ddr_eval.pipeline import results_cache
from ddr_eval.pipeline.results_cache import MetricPart, ResultCache, ResultKeys
from ddr_eval.pipeline.runner import RESULTS_SUBDIR, run_suite
from ddr_eval.results import ResultRow, RowScope, Status
from ddr_eval.config.loader import compile_suite

TINY_SR = {"num_feat": 8, "num_block": 2, "upscale": 2}


@pytest.fixture(scope="module")
def suite_raw(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("results_cache") / "tiny.safetensors"
    torch.manual_seed(0)
    save_model(path, build_arch("MSRResNet", **TINY_SR), "MSRResNet", TINY_SR)
    return {
        "name": "results-cache", "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "chelsea", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 6},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
        ],
        "models": [{"path": str(path), "as": "tiny"}],
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 20},
                    {"type": "silhouette", "label": "degradation", "projection": "tsne"},
                    {"type": "srga", "pca_dim": 8}, {"type": "psnr"}, {"type": "psnr_drop"},
                    {"type": "params"}, {"type": "latency", "repeats": 1, "warmup": 0}],
        "runtime": {"device": "cpu"},
    }


def _run(raw: dict, cache_dir, **kwargs):
    return run_suite(compile_suite(raw, "results-cache-test"), cache_dir=cache_dir, progress=False, **kwargs)


def _without_latency(rows):
    return [r for r in rows if r.type != "latency"]


def test_warm_run_reuses_every_cacheable_result_and_extracts_nothing(suite_raw, tmp_path):
    cold = _run(suite_raw, tmp_path)
    warm = _run(suite_raw, tmp_path)
    cacheable = 5  # chi, silhouette, srga, psnr, params; psnr_drop and latency always run
    assert cold.provenance["results_cache"] == {"enabled": True, "hits": 0, "misses": cacheable, "repeats": 0}
    # the cold run of this process wrote them: hits, and repeats of this process's own entries
    assert warm.provenance["results_cache"] == {"enabled": True, "hits": cacheable, "misses": 0, "repeats": cacheable}
    assert warm.provenance["cells"] == 0 and warm.provenance["cache"]["hits"] == 0
    assert _without_latency(warm.rows) == _without_latency(cold.rows)
    assert [r.type for r in warm.rows] == [r.type for r in cold.rows]  # same order: same report
    assert warm.embeddings.keys() == cold.embeddings.keys()
    for key, data in cold.embeddings.items():
        for name, array in data.items():
            np.testing.assert_array_equal(warm.embeddings[key][name], array)


def test_no_cache_and_a_damaged_entry_recompute(suite_raw, tmp_path):
    cold = _run(suite_raw, tmp_path)
    assert _run(suite_raw, tmp_path, use_cache=False).provenance["results_cache"]["hits"] == 0
    entries = sorted((tmp_path / RESULTS_SUBDIR).rglob("*.npz"))
    entries[0].write_bytes(entries[0].read_bytes()[:50])  # truncated: a miss, then rewritten
    again = _run(suite_raw, tmp_path)
    assert again.provenance["results_cache"]["misses"] == 1
    assert _without_latency(again.rows) == _without_latency(cold.rows)
    assert _run(suite_raw, tmp_path).provenance["results_cache"]["misses"] == 0


@pytest.mark.parametrize("change", ["seed", "metric", "degradation", "reference", "code"])
def test_what_a_result_depends_on_is_in_its_key(suite_raw, change, monkeypatch):
    def keys(raw):
        loaded = compile_suite(raw, "results-cache-test")
        suite = loaded.suite
        sources = build_sources(suite.models, suite.layers, loaded.scale, suite.seed)
        inputs = prepare_inputs(loaded, need_train=False)
        result_keys = ResultKeys(inputs, reference=suite.reference_set, seed=suite.seed,
                                 default_pooling=suite.pooling, scale=loaded.scale)
        return [result_keys.key(m, sources[0]) for m in loaded.metrics if m.metric_type == "chi"]

    changed = {**suite_raw, "metrics": list(suite_raw["metrics"]), "degradations": list(suite_raw["degradations"])}
    before = keys(suite_raw)
    if change == "code":  # an edited source file
        monkeypatch.setattr(results_cache, "code_fingerprint", lambda: "edited")
    elif change == "seed":
        changed["seed"] = 1
    elif change == "metric":
        changed["metrics"][0] = {**changed["metrics"][0], "bootstrap": 21}
    elif change == "degradation":
        changed["degradations"][1] = {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.5},
                                                                 {"type": "bicubic", "scale": 2}]}
    elif change == "reference":
        changed["reference"] = "blur"
    assert keys(changed) != before


def test_measurements_and_derived_metrics_are_never_cached(suite_raw):
    loaded = compile_suite(suite_raw, "results-cache-test")
    inputs = prepare_inputs(loaded, need_train=False)
    sources = build_sources(loaded.suite.models, loaded.suite.layers, loaded.scale, 0)
    keys = ResultKeys(inputs, reference="clean", seed=0, default_pooling="gap", scale=2)
    assert keys.key(build_metric({"type": "latency"}), sources[0]) is None
    assert keys.key(build_metric({"type": "psnr_drop"}), sources[0]) is None
    assert keys.key(build_metric({"type": "flops"}), sources[0]) is not None


def test_a_stored_part_round_trips(tmp_path):
    cache = ResultCache(tmp_path)
    rows = [ResultRow("m", "deep", "chi", "chi", "separability", "all", 0.1 + 0.2, True, ci_low=0.25, ci_high=0.5,
                      extra={"label": "degradation"}, scope=RowScope.POOLED),
            ResultRow("m", "deep", "srga", "srga", "generalization", "blur", None, False,
                      status=Status.unavailable("one class"))]
    confusions = [{"model": "m", "classes": ["a", "b"], "matrix": [[1, 0], [2, 3]]}]
    embeddings = {("m", "deep"): {"xy": np.random.default_rng(0).normal(size=(4, 2)),
                                  "degradation": np.array(["a", "a", "b", "b"])}}
    cache.put("ab" * 32, MetricPart(rows, confusions, embeddings))
    part = cache.get("ab" * 32)
    assert part.rows == rows and part.confusions == confusions
    np.testing.assert_array_equal(part.embeddings[("m", "deep")]["xy"], embeddings[("m", "deep")]["xy"])
    assert part.embeddings[("m", "deep")]["degradation"].tolist() == ["a", "a", "b", "b"]
    assert cache.get("cd" * 32) is None and (cache.hits, cache.misses) == (1, 1)
    assert ResultCache(tmp_path, enabled=False).get("ab" * 32) is None


def test_cached_features_are_read_only_when_used(tmp_path):
    cache = FeatureCache(tmp_path)
    features = {"body.1": np.arange(12, dtype=np.float32).reshape(3, 4)}
    cache.put("ef" * 32, FeatureBatch(features=features, outputs=np.zeros((3, 4, 4, 3), np.float32)))
    batch = cache.get("ef" * 32)
    assert isinstance(batch.features, LazyNpzArrays) and not batch.features._loaded
    assert list(batch.features) == ["body.1"] and batch.outputs.shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(batch.features["body.1"], features["body.1"])
    with pytest.raises(KeyError):
        batch.features["missing"]
