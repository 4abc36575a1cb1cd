"""One suite run, end to end: sources -> inputs -> cells -> reduce -> (report, by the caller).

``run_suite`` is the stages of :mod:`ddr_eval.pipeline.build` in order, with what only a suite run
adds around them: the three caches, the memory plan (``plan_run``), a finished model's metrics
overlapped with the next model's forward passes, and provenance (``run_provenance``).

Everything that can be validated is validated before the first forward pass (suite, images,
models, layers), so bad input never leaves a half-finished run behind.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import ddr_eval
from ddr_eval.core.errors import UserError
from ddr_eval.features import select_device
from ddr_eval.cache.store import FeatureCache, NpzStore
from ddr_eval.core.outdir import require_report_dir
from ddr_eval.pipeline.build import (
    RESULTS_SUBDIR,
    RunCaches,
    build_caches,
    build_inputs,
    build_reducer,
    build_sources,
    extract_cells,
    needs_train_split,
    plan_cells,
)
from ddr_eval.pipeline.cells import Cell
from ddr_eval.pipeline.executors import LocalExecutor
from ddr_eval.pipeline.inputs import SuiteInputs, effective_eval_split, planned_inputs
from ddr_eval.pipeline.memory import MemoryPlan, plan_memory
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.overlap import MetricsLane
from ddr_eval.pipeline.reduce import Reducer
from ddr_eval.pipeline.results_cache import MetricPart, ResultCache, ResultKeys
from ddr_eval.results.leaderboard import Leaderboard, MetricInfo, resolve_ranking
from ddr_eval.results.rows import ResultRow
from ddr_eval.results.run import RunResult
from ddr_eval.config.loader import LoadedSuite

__all__ = ["RESULTS_SUBDIR", "check_output_dir", "check_report_dir", "plan_cells", "run_suite"]

def code_commit() -> dict[str, Any]:
    """The commit of the code that computed a result (lm-eval-harness style provenance)."""
    root = Path(ddr_eval.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    return {"commit": "unknown", "dirty": None}


def package_versions() -> dict[str, str]:
    """Installed versions from package metadata: importing sklearn or pandas for a version costs seconds."""
    from importlib.metadata import version

    packages = ("torch", "numpy", "scipy", "scikit-learn", "pandas")
    return {"ddr_eval": ddr_eval.__version__, "python": platform.python_version(),
            **{name: version(name) for name in packages}}


def utc_now() -> str:
    """The current time as UTC ISO 8601 (``2026-01-31T09:15:02Z``), as results.json records it."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_output_dir(path: Path, what: str = "report directory") -> None:
    """Fail before a run, not after it, when its output directory cannot be created or written.

    The directory itself is only created when results are written, so a run that fails
    validation leaves nothing behind.
    """
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} exists and is not a directory")
    try:  # os.access cannot tell for root or special file systems: try, leaving nothing behind
        os.rmdir(tempfile.mkdtemp(prefix=".ddr-eval-probe-", dir=existing))
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot write in {existing} ({exc.strerror or exc})") from None


def check_report_dir(path: Path) -> None:
    """:func:`check_output_dir`, and the directory is new, empty or a ddr-eval report (``ddr_eval.core.outdir``)."""
    check_output_dir(path)
    require_report_dir(path)


def result_keys(loaded: LoadedSuite, sources: list[FeatureSource], inputs: SuiteInputs) -> dict[tuple[int, str], str]:
    suite = loaded.suite
    keys = ResultKeys(inputs, reference=suite.reference_set, seed=suite.seed, default_pooling=suite.pooling,
                      scale=loaded.scale)
    pairs = {(i, s.label): keys.key(m, s) for i, m in enumerate(loaded.metrics) for s in sources if m.applies_to(s.label)}
    return {pair: key for pair, key in pairs.items() if key is not None}


def run_suite(loaded: LoadedSuite, *, use_cache: bool = True, cache_dir: Path | None = None,
              progress: bool = True, executor: Callable | None = None, models: list | None = None) -> RunResult:
    """Run every cell of ``loaded`` and reduce them to metric rows: the stages of
    :mod:`ddr_eval.pipeline.build`, with the caches, the memory plan and provenance around them.

    ``executor`` runs the cells (see ``pipeline/executors.py``); the default runs them in this process.
    ``models`` stands in for ``suite.models`` (same order): specs, or ready feature sources of
    in-memory networks (``ddr_eval.api``).
    """
    clock, started = StageClock(), utc_now()
    sources = build_sources(loaded, models)  # models first: a bad checkpoint or layer fails in a second
    clock.lap("models")
    caches = build_caches(loaded, use_cache, cache_dir)
    inputs = build_inputs(loaded, caches.inputs, before_making=lambda: refuse_too_large(loaded, sources))
    clock.lap("inputs")
    plan = plan_run(loaded, sources, inputs, caches.results)
    clock.lap()  # planning is no stage of its own
    reducer = build_reducer(loaded, sources, inputs)
    with caches.features.writing_behind():
        parts = _extract_and_reduce(executor or LocalExecutor(progress=progress), plan, caches.features, reducer,
                                    loaded)
    clock.lap("features")
    for source in sources:  # what could not run beside the forward passes, in suite order
        parts = reducer.compute_source(loaded.metrics, source, plan.cached, plan.remember, done=parts)
    reduction = reducer.assemble(loaded.metrics, parts)
    clock.lap("metrics")  # the part after the forward passes
    provenance = run_provenance(loaded, sources, inputs, caches, plan, started)
    board = build_leaderboard(loaded, reduction.rows, inputs)
    return RunResult(loaded, reduction.rows, reduction.confusions, reduction.embeddings, provenance,
                     clock.timings(), sources, reducer.features, inputs, board)


@dataclass
class RunPlan:
    """What a run will do once its inputs are made: where, which metric results the cache already
    holds (by (metric index, model label)), which cells to extract, in batches of what size."""

    device: Any
    keys: dict[tuple[int, str], str]  # the results cache's key of each cacheable (metric, model) pair
    cached: dict[tuple[int, str], MetricPart]
    cells: list[Cell]
    memory: MemoryPlan
    results_cache: ResultCache

    def remember(self, index: int, label: str, part: MetricPart) -> None:
        """Keep a computed part in the results cache (not one with an unavailable row: a missing
        optional package may be installed before the next run, and the reason is cheap to find again)."""
        key = self.keys.get((index, label))
        if key is not None and not any(row.status.is_unavailable for row in part.rows):
            self.results_cache.put(key, part)


def plan_run(loaded: LoadedSuite, sources: list[FeatureSource], inputs: SuiteInputs,
             results_cache: ResultCache) -> RunPlan:
    """The device, the cached metric results, the cells the rest needs, and the memory plan.

    Findings read the default-pooling features directly, so a suite with findings plans those
    cells whatever is cached; robustness runs also keep the flattened ones (``plan_cells``).
    """
    suite = loaded.suite
    device = select_device(suite.runtime.device)
    keys = result_keys(loaded, sources, inputs)
    cached = {pair: part for pair, key in keys.items() if (part := results_cache.get(key)) is not None}
    robustness = loaded.findings is not None and loaded.findings.robustness is not None
    cells = plan_cells(sources, inputs, loaded.metrics, suite.pooling, skip=() if robustness else set(cached),
                       reference=suite.reference_set, findings_read_features=bool(suite.findings),
                       store_flattened=robustness)
    memory = plan_memory(cells, inputs, suite.runtime.batch_size, suite.runtime.expected_memory_gib, loaded.source)
    return RunPlan(device, keys, cached, cells, memory, results_cache)


def run_provenance(loaded: LoadedSuite, sources: list[FeatureSource], inputs: SuiteInputs, caches: RunCaches,
                   plan: RunPlan, started: str) -> dict[str, Any]:
    """What results.json records of how a run's numbers were made."""
    suite = loaded.suite
    provenance = {
        "suite": suite.name,
        "suite_file": loaded.source,
        "suite_sha256": suite.sha256(),
        "seed": suite.seed,
        "code": code_commit(),
        "versions": package_versions(),
        "device": str(plan.device),
        "cells": len(plan.cells),
        "cache": cache_counts(caches.features),
        "results_cache": cache_counts(caches.results),
        "memory": plan.memory.as_dict(),
        "models": {source.label: info for source in sources if (info := source.detection()) is not None},
        "started": started,
        "finished": utc_now(),
    }
    if suite.data.limit_patches is not None:
        provenance["limit_patches"] = suite.data.limit_patches
    provenance["data"] = data_used(loaded, inputs, needs_train_split(loaded))
    if inputs.skipped:  # `skip_unreadable: true` folder sets: which files the numbers leave out
        provenance["skipped_unreadable"] = {name: list(files) for name, files in inputs.skipped.items()}
    return provenance


class StageClock:
    """Seconds per stage of a run (``timings`` in results.json), and the total."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str | None = None) -> None:
        """The time since the last lap is ``stage``'s (not recorded without a name)."""
        now = time.perf_counter()
        if stage is not None:
            self.laps[stage] = now - self.last
        self.last = now

    def timings(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in {**self.laps, "total": time.perf_counter() - self.start}.items()}


def cache_counts(cache: NpzStore) -> dict[str, Any]:
    """What results.json records of a cache's use in a run."""
    return {"enabled": cache.enabled, "hits": cache.hits, "misses": cache.misses, "repeats": cache.repeats}


def refuse_too_large(loaded: LoadedSuite, sources: list[FeatureSource]) -> None:
    """Refuse a suite too large for its memory before any input is made (from the planned shapes)."""
    suite = loaded.suite
    planned = planned_inputs(loaded, needs_train_split(loaded))
    if planned is not None:
        cells = plan_cells(sources, planned, loaded.metrics, suite.pooling, reference=suite.reference_set)
        plan_memory(cells, planned, suite.runtime.batch_size, suite.runtime.expected_memory_gib, loaded.source)


def _extract_and_reduce(run, plan: RunPlan, cache: FeatureCache, reducer: Reducer, loaded: LoadedSuite) -> dict:
    """Every cell's features (into ``reducer.features``), and the parts of the metrics that ran
    while they were extracted.

    With an executor that streams (the local one), a model's overlappable metrics start on a
    background thread once its last cell is done (:mod:`ddr_eval.pipeline.overlap`); with
    another executor (Ray) they run after all cells, as before. Either way, the same numbers.
    """
    remaining = {source.label: 0 for source in reducer.sources}
    for cell in plan.cells:
        remaining[cell.source.label] += 1
    lane = MetricsLane(reducer, loaded.metrics, plan.cached, plan.remember)
    try:
        for source in reducer.sources:  # models with nothing to extract (all cached, or no cells) start now
            if remaining[source.label] == 0:
                lane.submit(source)

        def ready(cell: Cell, batch) -> None:
            remaining[cell.source.label] -= 1
            if remaining[cell.source.label] == 0:
                lane.submit(cell.source)

        extract_cells(plan.cells, cache, batch_size=plan.memory.batch_size, device=plan.device,
                      amp_dtype=loaded.suite.runtime.amp_dtype, executor=run, into=reducer.features, on_ready=ready)
        lane.forward_done()
        return lane.finish()
    finally:
        lane.close()


def data_used(loaded: LoadedSuite, inputs: SuiteInputs, need_train: bool) -> dict[str, Any]:
    """Which photographs each split holds and how many patches each set has, for the report and
    the terminal: a split, a ``--limit`` or a small folder changes what a user asked for."""
    used: dict[str, Any] = {"eval_split": effective_eval_split(loaded, need_train),
                            "suite_eval_split": loaded.suite.data.eval_split, "splits": {}}
    for sets in (inputs.eval_sets, inputs.train_sets):
        for dataset in sets.values():
            split = used["splits"].setdefault(dataset.split, {"images": {}, "patches": {}})
            names = dataset.patches.image_names
            split["images"][dataset.name] = sorted({names[i] for i in np.unique(dataset.patches.image_index)})
            split["patches"][dataset.name] = int(len(dataset.lr))
    return used


def metric_infos(loaded: LoadedSuite, inputs: SuiteInputs) -> list[MetricInfo]:
    """What the leaderboard knows of each metric, named as its rows are (``for_patch``: efficiency
    metrics take the suite's LR patch size into their names)."""
    patch_shape = tuple(next(iter(inputs.eval_sets.values())).lr.shape[1:])
    return [MetricInfo.of(m.for_patch(patch_shape)) for m in loaded.metrics]


def build_leaderboard(loaded: LoadedSuite, rows: list[ResultRow], inputs: SuiteInputs) -> Leaderboard:
    """The run's one leaderboard, ranked by the suite's ``rank_by`` (or the default ranking)."""
    infos = metric_infos(loaded, inputs)
    ranking = resolve_ranking(loaded.suite.rank_by, infos)
    return Leaderboard.build([r.to_dict() for r in rows], infos, ranking, loaded.suite.reference_set)
