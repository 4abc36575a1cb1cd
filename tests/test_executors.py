"""Executors: the local and the Ray one give the same cells, rows and cache; Ray retries and reports.

The Ray tests share one local Ray instance on 2 CPUs (module scope: Ray takes seconds to start)
and are skipped when the optional ``ray`` extra is not installed.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch

from ddr_eval import cli
from ddr_eval.core.errors import UserError
from ddr_eval.cache.store import FeatureCache
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.pipeline.executors import (
    CellFailedError,
    InjectedFailure,
    InjectedFault,
    LocalExecutor,
    make_executor,
)
from ddr_eval.pipeline.inputs import prepare_inputs
from ddr_eval.pipeline.models import build_sources
from ddr_eval.pipeline.runner import RESULTS_SUBDIR, plan_cells, run_suite
from ddr_eval.config.loader import compile_suite

TINY_SR = {"num_feat": 8, "num_block": 2, "upscale": 2}


@pytest.fixture(scope="module")
def suite_raw(tmp_path_factory) -> dict:
    """Two tiny SR networks (different weights) and a statistics baseline, three degradation sets."""
    root = tmp_path_factory.mktemp("executor_suite")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = root / f"tiny-sr-{seed}.safetensors"
        save_model(path, build_arch("MSRResNet", **TINY_SR), "MSRResNet", TINY_SR)
        paths.append(str(path))
    return {
        "name": "executors",
        "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "chelsea", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 4},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
            {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 20}]},
        ],
        "models": [{"path": paths[0], "as": "tiny-a"}, {"path": paths[1], "as": "tiny-b"},
                   {"baseline": "image_statistics"}],
        "layers": ["deep"],
        # srga reads flattened maps: a model's gap and flatten cells of one set share a forward pass
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw"}, {"type": "psnr"},
                    {"type": "srga", "pca_dim": 4}],
        "runtime": {"device": "cpu", "batch_size": 5},
    }


@pytest.fixture(scope="module")
def loaded(suite_raw):
    return compile_suite(suite_raw, "executors-test")


@pytest.fixture(scope="module")
def cells(loaded):
    suite = loaded.suite
    sources = build_sources(suite.models, suite.layers, loaded.scale, suite.seed)
    inputs = prepare_inputs(loaded, need_train=False)
    return plan_cells(sources, inputs, loaded.metrics, suite.pooling)


@pytest.fixture(scope="module")
def local_batches(cells):
    return LocalExecutor()(cells, FeatureCache(enabled=False), 5, torch.device("cpu"), None)


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.features.keys() == b.features.keys()
        for name in a.features:
            np.testing.assert_array_equal(a.features[name], b.features[name])
        assert (a.outputs is None) == (b.outputs is None)
        if a.outputs is not None:
            np.testing.assert_array_equal(a.outputs, b.outputs)


# -- without ray ------------------------------------------------------------------------------


def test_make_executor_chooses_by_name():
    assert isinstance(make_executor(), LocalExecutor)
    with pytest.raises(UserError, match="unknown executor 'dask'.*local, ray"):
        make_executor("dask")
    with pytest.raises(UserError, match="--address only applies to --executor ray"):
        make_executor("local", address="auto")


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(UserError, match=r"ray is not installed: pip install 'ddr-eval\[ray\]'"):
        make_executor("ray")


def test_cli_executor_ray_without_ray_exits_2_before_any_work(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(tmp_path / "no-such-suite.yaml"), "--executor", "ray", "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ray is not installed: pip install 'ddr-eval[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_injected_fault_fails_only_the_first_attempts_of_matching_cells(tmp_path):
    fault = InjectedFault(cell="x test/blur", state_dir=str(tmp_path), attempts=2)
    fault.before("tiny-a x test/noise [gap]")  # not matched: never fails
    for _ in range(2):
        with pytest.raises(InjectedFailure, match="tiny-a x test/blur"):
            fault.before("tiny-a x test/blur [gap]")
    fault.before("tiny-a x test/blur [gap]")
    with pytest.raises(InjectedFailure):  # attempts are counted per cell
        fault.before("tiny-b x test/blur [gap]")


def test_local_executor_writes_and_then_reads_the_cache(cells, local_batches, tmp_path):
    cache = FeatureCache(tmp_path)
    assert_same_batches(LocalExecutor()(cells, cache, 5, torch.device("cpu"), None), local_batches)
    again = FeatureCache(tmp_path)
    LocalExecutor()(cells, again, 5, torch.device("cpu"), None)
    stored = sum(cell.stored for cell in cells)  # flattened maps are recomputed, not stored
    assert stored < len(cells) and (again.hits, again.misses) == (stored, len(cells) - stored)


# -- with ray ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_module():
    return pytest.importorskip("ray", reason="the optional ray extra is not installed (pip install 'ddr-eval[ray]')")


@pytest.fixture(scope="module")
def ray_cluster(ray_module):
    ray_module.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray_module
    ray_module.shutdown()


def test_ray_asks_for_a_gpu_only_when_the_device_is_cuda(ray_module):
    assert make_executor("ray").placement(torch.device("cpu")) == (0, "cpu")
    assert make_executor("ray").placement(torch.device("cuda", 1)) == (1, "cuda")
    assert make_executor("ray", gpus_per_cell=0.25).placement(torch.device("cpu")) == (0.25, "cuda")
    assert make_executor("ray", gpus_per_cell=0).placement(torch.device("cuda")) == (0, "cpu")
    with pytest.raises(UserError, match="cpus_per_cell"):
        make_executor("ray", cpus_per_cell=0)


def test_ray_gives_the_same_rows_as_local_and_reuses_its_cache(ray_cluster, loaded, cells, tmp_path):
    local = run_suite(loaded, cache_dir=tmp_path / "local", progress=False)
    on_ray = run_suite(loaded, cache_dir=tmp_path / "ray", progress=False, executor=make_executor("ray"))
    assert local.rows and on_ray.rows == local.rows
    assert on_ray.provenance["cache"] == local.provenance["cache"]

    # every stored cell is cached now: with the metric results dropped, the run plans its cells
    # again and reads the pooled ones; the flattened maps (never stored) are computed on Ray again
    shutil.rmtree(tmp_path / "local" / RESULTS_SUBDIR)
    stored = sum(cell.stored for cell in cells)
    cached = run_suite(loaded, cache_dir=tmp_path / "local", progress=False, executor=make_executor("ray"))
    assert cached.rows == local.rows
    assert cached.provenance["cache"] == {"enabled": True, "hits": stored, "misses": len(cells) - stored,
                                          "repeats": stored}


@pytest.mark.parametrize("crash", [False, True], ids=["transient-error", "killed-worker"])
def test_ray_retries_a_failed_cell(ray_cluster, cells, local_batches, tmp_path, crash):
    fault = InjectedFault(cell="tiny-b x all/blur", state_dir=str(tmp_path), crash=crash)
    executor = make_executor("ray", max_retries=1, fault=fault)
    batches = executor(cells, FeatureCache(tmp_path / "cache"), 5, torch.device("cpu"), None)
    assert_same_batches(batches, local_batches)


def test_ray_cell_that_keeps_failing_is_named_and_others_are_cached(ray_cluster, cells, local_batches, tmp_path):
    fault = InjectedFault(cell="tiny-a x all/blur", state_dir=str(tmp_path), attempts=3)
    cache = FeatureCache(tmp_path / "cache")
    message = r"model tiny-a, degradation set all/blur \(flatten, gap\) failed after 2 attempts: InjectedFailure"
    with pytest.raises(CellFailedError, match=message) as error:
        make_executor("ray", max_retries=1, fault=fault)(cells, cache, 5, torch.device("cpu"), None)
    assert error.value.exit_code == 1
    failed = [cell.name for cell in cells if "tiny-a x all/blur" in cell.name]
    assert len(failed) == 2  # its gap and flatten cells share the failing task
    for cell, expected in zip(cells, local_batches):
        cached = cache.get(cell.key())
        if cell.name in failed or not cell.stored:
            assert cached is None
        else:
            np.testing.assert_array_equal(next(iter(cached.features.values())), next(iter(expected.features.values())))


def test_cli_run_on_ray_writes_the_same_results_as_local(ray_cluster, suite_raw, tmp_path):
    import yaml

    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump({**suite_raw, "outputs": {"tsne_plots": False, "html": False}}))
    for executor in ("local", "ray"):
        try:
            cli.main(["run", str(suite_file), "--executor", executor, "--no-cache", "-q",
                      "--out", str(tmp_path / executor)])
        except SystemExit as exit_info:
            assert exit_info.code in (0, None)
    assert (tmp_path / "ray" / "results.csv").read_text() == (tmp_path / "local" / "results.csv").read_text()


def test_a_quiet_run_on_a_new_local_ray_prints_nothing(ray_module, suite_raw, tmp_path):
    """Ray announces token authentication at every start; a quiet run's terminal stays empty."""
    import os
    import subprocess

    import yaml

    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump({**suite_raw, "outputs": {"tsne_plots": False, "html": False}}))
    env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-m", "ddr_eval.cli", "run", str(suite_file), "--executor", "ray", "-q",
                           "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == "", done.stderr
