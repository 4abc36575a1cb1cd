"""Metrics overlapped with extraction: same rows as reducing after all cells; write-behind cache; process tuning."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from ddr_eval.cache.store import FeatureCache
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.metrics import METRICS
from ddr_eval.pipeline.executors import LocalExecutor
from ddr_eval.pipeline.overlap import runs_beside_forward
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.core.process import tune_process
from ddr_eval.config.loader import compile_suite
from test_executors import suite_raw as executor_suite  # noqa: F401  (a fixture)

class BatchExecutor(LocalExecutor):
    """The local executor without streaming: every metric then runs after all cells, as before."""

    streams = False

    def __call__(self, cells, cache, batch_size, device, amp_dtype, on_ready=None):
        assert on_ready is None
        return super().__call__(cells, cache, batch_size, device, amp_dtype)


@pytest.fixture(scope="module")
def suite_raw(executor_suite) -> dict:  # noqa: F811  (the imported fixture, requested by name)
    """The executor tests' suite (two tiny SR networks, a statistics baseline, three sets) with
    one metric of each placement: background (chi, silhouette on t-SNE, srga, psnr) and main
    thread afterwards (psnr_drop reads rows; params and flops read the module)."""
    return {**executor_suite, "name": "overlap",
            "metrics": [{"type": "chi", "label": "degradation", "projection": "raw"},
                        {"type": "silhouette", "label": "degradation", "projection": "tsne"},
                        {"type": "srga", "pca_dim": 300}, {"type": "psnr"}, {"type": "psnr_drop"},
                        {"type": "params"}, {"type": "flops"}],
            "rank_by": ["chi[degradation,raw]"]}


def _rows(run) -> list[tuple]:
    return [(r.model, r.layer, r.metric, r.set, r.value, r.ci_low, r.ci_high) for r in run.rows]


def test_overlapped_run_gives_the_rows_of_a_run_that_reduces_afterwards(suite_raw, tmp_path):
    streamed = run_suite(compile_suite(suite_raw), use_cache=False, progress=False)
    batched = run_suite(compile_suite(suite_raw), use_cache=False, progress=False, executor=BatchExecutor())
    assert _rows(streamed) == _rows(batched)  # same values, same (suite) order
    assert [r.metric for r in streamed.rows if r.model == "tiny-a"][:1] == ["chi[degradation,raw]"]
    assert set(streamed.embeddings) == set(batched.embeddings) == {("tiny-a", "deep"), ("tiny-b", "deep"),
                                                                  ("image_statistics", "stats")}
    drops = [r for r in streamed.rows if r.type == "psnr_drop" and r.model == "tiny-a" and r.set == "blur"]
    psnr = {r.set: r.value for r in streamed.rows if r.type == "psnr" and r.model == "tiny-a"}
    assert drops and drops[0].value == pytest.approx(psnr["clean"] - psnr["blur"])


def test_a_warm_overlapped_run_reads_the_cells_it_wrote(suite_raw, tmp_path):
    cold = run_suite(compile_suite(suite_raw), cache_dir=tmp_path, progress=False)
    warm = run_suite(compile_suite(suite_raw), cache_dir=tmp_path, progress=False)
    assert cold.provenance["cache"]["hits"] == 0 and cold.provenance["cache"]["misses"] > 0
    assert warm.provenance["cache"]["misses"] == 0  # every cell written behind is on disk
    assert warm.provenance["results_cache"]["hits"] > 0
    assert _rows(cold) == _rows(warm)


def test_metrics_that_time_trace_or_read_rows_run_on_the_main_thread():
    placed = {name: runs_beside_forward(METRICS.get(name)()) for name in ("chi", "psnr", "psnr_drop", "latency",
                                                                             "flops", "params")}
    assert placed == {"chi": True, "psnr": True, "psnr_drop": False, "latency": False, "flops": False,
                      "params": False}


def _batch(value: float) -> FeatureBatch:
    return FeatureBatch(features={"deep": np.full((3, 4), value, dtype=np.float32)}, outputs=None)


def test_write_behind_serves_pending_entries_and_has_them_on_disk_at_the_end(tmp_path):
    cache = FeatureCache(tmp_path)
    with cache.writing_behind():
        cache.put("ab" + "0" * 62, _batch(1.0))
        assert cache.get("ab" + "0" * 62) is not None  # pending or written: a hit either way
    assert (tmp_path / "ab" / ("ab" + "0" * 62 + ".npz")).exists()
    again = FeatureCache(tmp_path).get("ab" + "0" * 62)
    assert np.array_equal(again.features["deep"], np.ones((3, 4), dtype=np.float32))


def test_a_failed_background_write_is_raised_when_the_block_ends(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)

    def broken(key, arrays):
        raise OSError("disk full")

    monkeypatch.setattr(cache, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        with cache.writing_behind():
            cache.put("cd" + "0" * 62, _batch(2.0))


def test_process_tuning_respects_the_opt_out_and_a_loaded_torch(monkeypatch):
    monkeypatch.setenv("DDR_EVAL_PROCESS_TUNING", "0")
    assert tune_process() == {"malloc": False, "omp_passive": False}
    monkeypatch.delenv("DDR_EVAL_PROCESS_TUNING")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    applied = tune_process()
    assert "torch" in sys.modules and applied["omp_passive"] is False  # too late once torch is loaded
    assert "OMP_WAIT_POLICY" not in os.environ
    if sys.platform.startswith("linux"):
        assert applied["malloc"] is True
