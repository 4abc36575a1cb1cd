"""Overhead of the Ray executor against the local one on the same suite, and what one cell costs.

    python bench/bench_executors.py                 # overhead ratio on suites/generalization.yaml
    python bench/bench_executors.py --cell-cost     # + time and memory of one cell per zoo architecture
    python bench/bench_executors.py --cell-cost --no-overhead
    python bench/bench_executors.py --models 2      # a quicker run on the first two models
    pytest bench/bench_executors.py                 # the same on 2 models, as `ddr-eval bench` runs it

The suite is ``suites/generalization.yaml`` with every zoo model replaced by a checkpoint of
the same architecture and size (from ``model_zoo/recipes``) with seeded random weights: the cost
of a forward pass does not depend on the weights, and the benchmark then needs no trained zoo.
Every executor runs the same planned cells with the cache disabled, on this machine's CPUs:
local (one process, torch's default threads), Ray one cell at a time with as many threads
(``serial_ratio``: the executor's own cost) and Ray with one CPU per cell (``parallel_ratio``:
what a user of this machine sees). Ray's start-up is timed apart, since a long-lived cluster pays
it once. Ratios are Ray's wall time over the local one (1.0 = no overhead). Results go to
``reports/bench/executors.json``; ``identical`` says whether all variants gave the same arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "generalization.yaml"
RECIPES = ROOT / "model_zoo" / "recipes"
OUT = ROOT / "reports" / "bench" / "executors.json"


def recipe_archs(names: list[str]) -> dict[str, tuple[str, dict]]:
    archs = {}
    for name in names:
        recipe = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        archs[name] = (recipe["arch"], recipe.get("arch_kwargs", {}))
    return archs


def stand_in_suite(workdir: Path, n_models: int | None):
    """generalization.yaml with seeded random-weight checkpoints in place of the zoo models."""
    from ddr_eval.models.archs import build_arch
    from ddr_eval.models.checkpoint import save_model
    from ddr_eval.config.loader import compile_suite

    raw = yaml.safe_load(SUITE.read_text())
    names = [m if isinstance(m, str) else m["name"] for m in raw["models"]][:n_models]
    models = []
    for seed, (name, (arch, kwargs)) in enumerate(recipe_archs(names).items()):
        torch.manual_seed(seed)
        path = workdir / f"{name}.safetensors"
        save_model(path, build_arch(arch, **kwargs), arch, kwargs)
        models.append({"path": str(path), "as": name})
    raw.update(models=models, runtime={"device": "cpu", "batch_size": 64})
    return compile_suite(raw, f"{SUITE} (random-weight stand-ins)")


def planned_cells(loaded):
    from ddr_eval.pipeline.build import build_inputs, build_sources, plan_cells

    suite = loaded.suite
    sources = build_sources(loaded)
    return plan_cells(sources, build_inputs(loaded), loaded.metrics, suite.pooling, reference=suite.reference_set)


def run_once(executor, cells):
    from ddr_eval.cache.store import FeatureCache

    start = time.perf_counter()
    batches = executor(cells, FeatureCache(enabled=False), 64, torch.device("cpu"), None)
    return time.perf_counter() - start, batches


def same_batches(a, b) -> bool:
    return all(x.features.keys() == y.features.keys()
               and all(np.array_equal(x.features[k], y.features[k]) for k in x.features)
               and ((x.outputs is None and y.outputs is None) or np.array_equal(x.outputs, y.outputs))
               for x, y in zip(a, b))


def overhead(cells, repeats: int) -> dict:
    """Wall time of the cells: local, Ray one cell at a time with the same threads, Ray in parallel.

    ``serial_ratio`` is the Ray executor's own cost (scheduling, object store, result copies);
    ``parallel_ratio`` is what a user of this machine sees with one cell per CPU. Runs are
    interleaved so that load from other processes hits every variant alike.
    """
    import ray

    from ddr_eval.pipeline.executors import LocalExecutor, RayExecutor

    def peak_rss_mib() -> float:
        """Peak resident memory of a Ray worker (Linux); nested, so it is pickled by value and the
        workers need not import this file."""
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))

    cpus = os.cpu_count()
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    startup_s = time.perf_counter() - start
    variants = {"local": LocalExecutor(), "ray_serial": RayExecutor(cpus_per_cell=cpus),
                "ray_parallel": RayExecutor(cpus_per_cell=1)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    identical = True
    try:
        for name in ("ray_serial", "ray_parallel"):  # start the workers (torch import), as on a running cluster
            run_once(variants[name], cells[:2])
        for _ in range(repeats):
            results = {}
            for name, executor in variants.items():
                elapsed, results[name] = run_once(executor, cells)
                seconds[name].append(elapsed)
            identical &= all(same_batches(results["local"], results[name]) for name in results)
        worker_peaks = ray.get([ray.remote(num_cpus=1)(peak_rss_mib).remote() for _ in range(2 * cpus)])
    finally:
        ray.shutdown()
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "cells": len(cells), "cpus": cpus, "torch_threads_local": torch.get_num_threads(), "repeats": repeats,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **{f"{name}_s": round(value, 3) for name, value in median.items()},
        "ray_startup_s": round(startup_s, 3),
        "serial_ratio": round(median["ray_serial"] / median["local"], 3),
        "parallel_ratio": round(median["ray_parallel"] / median["local"], 3),
        "identical": identical,
        "ray_worker_peak_rss_mib": round(max(worker_peaks), 1),
    }


# -- cost of one cell -------------------------------------------------------------------------

_CELL_PROBE = r"""
import json, sys, time
import numpy as np, torch
from ddr_eval.features import extract_features
from ddr_eval.models.archs import build_arch

def status_mib(field):  # Linux: VmRSS (now) and VmHWM (peak since the last reset)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

arch, kwargs, n, size, pooling, outputs = json.loads(sys.argv[1])
torch.set_num_threads(1)  # a Ray task with num_cpus=1
model = build_arch(arch, **kwargs).eval()
lr = np.random.default_rng(0).random((n, size, size, 3), dtype=np.float32)
layer = model.feature_taps()["deep"]
extract_features(model, lr[:1], [layer], pooling=pooling, device="cpu", return_outputs=outputs)  # lazy inits
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset VmHWM to the current RSS
before = status_mib("VmRSS")
start = time.perf_counter()
batch = extract_features(model, lr, [layer], pooling=pooling, batch_size=64, device="cpu", return_outputs=outputs)
seconds = time.perf_counter() - start
result = sum(a.nbytes for a in batch.features.values()) + (batch.outputs.nbytes if batch.outputs is not None else 0)
print(json.dumps({"seconds": seconds, "rss_idle_mib": before, "rss_peak_mib": status_mib("VmHWM"),
                  "cell_extra_mib": status_mib("VmHWM") - before, "result_mib": result / 2**20,
                  "params": sum(p.numel() for p in model.parameters())}))
"""


def cell_cost(lr_shape: tuple[int, ...]) -> list[dict]:
    """One cell per distinct zoo architecture, each in a fresh process (a clean peak RSS)."""
    raw = yaml.safe_load(SUITE.read_text())
    names = [m if isinstance(m, str) else m["name"] for m in raw["models"]]
    distinct = {}
    for name, (arch, kwargs) in recipe_archs(names).items():
        distinct.setdefault((arch, json.dumps(kwargs, sort_keys=True)), name)
    patches, lr_size = lr_shape[0], lr_shape[1]
    rows = []
    for (arch, kwargs), name in distinct.items():
        for pooling, outputs in (("gap", True), ("flatten", False)):
            args = json.dumps([arch, json.loads(kwargs), patches, lr_size, pooling, outputs])
            probe = subprocess.run([sys.executable, "-c", _CELL_PROBE, args], capture_output=True, text=True,
                                   check=True)
            measured = json.loads(probe.stdout)
            rows.append({"model": name, "arch": arch, "pooling": pooling, "outputs": outputs, "patches": patches,
                         **{k: round(v, 3) if isinstance(v, float) else v for k, v in measured.items()}})
    return rows


BENCH_MODELS = 2  # under `ddr-eval bench`: 20 of the suite's 80 cells, a few minutes on 2 cores


def test_ray_executor_overhead(benchmark, tmp_path):
    """``ddr-eval bench`` entry: the ratios on the first models of the suite (``extra_info``)."""
    import pytest

    pytest.importorskip("ray", reason="the optional ray extra is not installed (pip install 'ddr-eval[ray]')")
    cells = planned_cells(stand_in_suite(tmp_path, BENCH_MODELS))
    measured: dict = {}
    benchmark.pedantic(lambda: measured.update(overhead(cells, repeats=1)), rounds=1, iterations=1)
    benchmark.extra_info.update(measured)
    assert measured["identical"], "the Ray executor gave different features than the local one"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=None, help="use only the first N models of the suite")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per executor (the median is kept)")
    parser.add_argument("--cell-cost", action="store_true", help="also measure one cell per zoo architecture")
    parser.add_argument("--no-overhead", action="store_true", help="skip the executor comparison")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    report: dict = {"suite": str(SUITE.relative_to(ROOT))}
    with tempfile.TemporaryDirectory() as tmp:
        cells = planned_cells(stand_in_suite(Path(tmp), args.models))
        if not args.no_overhead:
            report["overhead"] = overhead(cells, args.repeats)
            print(json.dumps(report["overhead"]))
    if args.cell_cost:
        report["cell_cost"] = cell_cost(cells[0].dataset.lr.shape)
        for row in report["cell_cost"]:
            print(json.dumps(row))
    report["driver_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
