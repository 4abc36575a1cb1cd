"""One suite run, end to end: inputs -> sources -> cells -> reduce -> (report, by the caller).

Everything that can be validated is validated before the first forward pass (suite, images,
models, layers), so bad input never leaves a half-finished run behind.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np

import ddr_eval
from ddr_eval.errors import UserError
from ddr_eval.features import select_device
from ddr_eval.features.cache import FeatureCache
from ddr_eval.outdir import require_report_dir
from ddr_eval.pipeline.cells import FLATTEN, Cell
from ddr_eval.pipeline.executors import LocalExecutor
from ddr_eval.pipeline.inputs import SuiteInputs, effective_eval_split, planned_inputs
from ddr_eval.pipeline.inputs_cache import INPUTS_SUBDIR, InputsCache, cached_inputs
from ddr_eval.pipeline.memory import plan_memory
from ddr_eval.pipeline.models import FeatureSource, build_sources
from ddr_eval.pipeline.overlap import MetricsLane
from ddr_eval.pipeline.reduce import Reducer, metric_pooling
from ddr_eval.pipeline.results_cache import MetricPart, ResultCache, ResultKeys
from ddr_eval.results.leaderboard import Leaderboard, MetricInfo, resolve_ranking
from ddr_eval.results.rows import ResultRow
from ddr_eval.results.run import FeatureKey, RunResult
from ddr_eval.suite.loader import LoadedSuite

RESULTS_SUBDIR = "metrics"  # the result cache lives inside the feature cache's directory


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
    """:func:`check_output_dir`, and the directory is new, empty or a ddr-eval report (``ddr_eval.outdir``)."""
    check_output_dir(path)
    require_report_dir(path)


def plan_cells(sources: list[FeatureSource], inputs: SuiteInputs, metrics: list, default_pooling: str,
               skip: Collection[tuple[int, str]] = frozenset(), reference: str | None = None, *,
               findings_read_features: bool = False, store_flattened: bool = False) -> list[Cell]:
    """The cells each source needs: one per (split, set, pooling) that one of its metrics reads.

    Flattened feature maps are large (C*H*W per patch), so a pooling or the training split is
    extracted only for sources whose metrics ask for it, and a training-split set only when one
    of them reads it in that pooling (a metric's ``sets:``; the evaluated sets are all extracted).
    ``skip`` holds (metric index, model label) pairs whose results are cached: a source none of
    whose other metrics reads features gets no cell at all. With ``findings_read_features`` (a
    suite with findings, which read the evaluated sets' default-pooling features directly) those
    cells are planned whatever is cached, exactly as an uncached run plans them; only other
    poolings that no uncached metric reads are left out. Flattened cells are not kept in the
    feature cache (``Cell.stored``) unless ``store_flattened`` (robustness runs read them across
    sample sizes). ``reference``: the suite's reference set (default: the first evaluated set).
    """
    reference = reference if reference is not None else next(iter(inputs.eval_sets))
    cells = []
    for source in sources:
        applicable = [(i, m) for i, m in enumerate(metrics) if m.applies_to(source.label) and m.reads_cells()]
        pending = [m for i, m in applicable if (i, source.label) not in skip]
        if skip and not pending and not findings_read_features:
            continue
        shaping = [m for _, m in applicable] if findings_read_features else pending  # outputs flags: cell keys
        eval_poolings = {default_pooling} | {metric_pooling(m, default_pooling) for m in pending if "features" in m.needs}
        train_sets: dict[str, set[str]] = {}  # pooling -> the training-split sets read in it
        for m in pending:
            if "train_split" in m.needs:
                train_sets.setdefault(metric_pooling(m, default_pooling), set()).update(m.select_sets(inputs.train_sets))
        # SR outputs (the whole upscaling tail, not just the tapped blocks) only for the sets an
        # output-reading metric reads, its reference included
        output_sets = {name for m in shaping if "sr_outputs" in m.needs
                       for name in (*m.select_sets(inputs.eval_sets), reference)}

        def cell(dataset, pooling: str, outputs: bool, source: FeatureSource = source) -> Cell:
            return Cell(source, dataset, pooling, outputs, stored=pooling != FLATTEN or store_flattened)

        for pooling in sorted(eval_poolings):
            cells += [cell(d, pooling, name in output_sets and pooling == default_pooling)
                      for name, d in inputs.eval_sets.items()]
        for pooling in sorted(train_sets):
            cells += [cell(d, pooling, False) for name, d in inputs.train_sets.items() if name in train_sets[pooling]]
    return cells


def _result_keys(loaded: LoadedSuite, sources: list[FeatureSource], inputs: SuiteInputs) -> dict[tuple[int, str], str]:
    suite = loaded.suite
    keys = ResultKeys(inputs, reference=suite.reference_set, seed=suite.seed, default_pooling=suite.pooling,
                      scale=loaded.scale)
    pairs = {(i, s.label): keys.key(m, s) for i, m in enumerate(loaded.metrics) for s in sources if m.applies_to(s.label)}
    return {pair: key for pair, key in pairs.items() if key is not None}


def _unavailable(part: MetricPart) -> bool:
    """A part with an unavailable row is not stored: a missing optional package may be
    installed before the next run, and the reason is cheap to find again."""
    return any(row.status.is_unavailable for row in part.rows)


def run_suite(loaded: LoadedSuite, *, use_cache: bool = True, cache_dir: Path | None = None,
              progress: bool = True, executor: Callable | None = None, models: list | None = None) -> RunResult:
    """Run every cell of ``loaded`` and reduce them to metric rows.

    ``executor`` runs the cells (see ``pipeline/executors.py``); the default runs them in this process.
    ``models`` stands in for ``suite.models`` (same order): specs, or ready feature sources of
    in-memory networks (``ddr_eval.api``).
    """
    suite = loaded.suite
    timings: dict[str, float] = {}
    started = utc_now()
    t0 = time.perf_counter()
    # models first: a bad checkpoint or layer name fails in a second, before images are degraded
    sources = build_sources(models if models is not None else suite.models, suite.layers, loaded.scale, suite.seed,
                            max_param_bytes=int(suite.runtime.expected_memory_gib * 2**30))
    timings["models"] = time.perf_counter() - t0

    t = time.perf_counter()
    need_train = any("train_split" in m.needs for m in loaded.metrics)
    cache = FeatureCache(cache_dir, enabled=use_cache and suite.runtime.cache)
    if cache.enabled:  # sizes the cache for its bound and removes what killed runs left (once per process)
        cache.bound.start()

    def plan_before_making_inputs() -> None:  # refuses a suite too large for its memory before any input is made
        planned = planned_inputs(loaded, need_train)
        if planned is not None:
            cells = plan_cells(sources, planned, loaded.metrics, suite.pooling, reference=suite.reference_set)
            plan_memory(cells, planned, suite.runtime.batch_size, suite.runtime.expected_memory_gib, loaded.source)

    inputs_cache = InputsCache(cache.root / INPUTS_SUBDIR, enabled=cache.enabled, bound=cache.bound)
    inputs = cached_inputs(loaded, need_train, inputs_cache, before_making=plan_before_making_inputs)
    timings["inputs"] = time.perf_counter() - t

    device = select_device(suite.runtime.device)
    results_cache = ResultCache(cache.root / RESULTS_SUBDIR, enabled=cache.enabled, bound=cache.bound)
    keys = _result_keys(loaded, sources, inputs)
    cached = {pair: part for pair, key in keys.items() if (part := results_cache.get(key)) is not None}
    # findings read the default-pooling features directly; robustness runs also read flattened ones
    robustness = loaded.findings is not None and loaded.findings.robustness is not None
    cells = plan_cells(sources, inputs, loaded.metrics, suite.pooling, skip=() if robustness else set(cached),
                       reference=suite.reference_set, findings_read_features=bool(suite.findings),
                       store_flattened=robustness)
    memory = plan_memory(cells, inputs, suite.runtime.batch_size, suite.runtime.expected_memory_gib, loaded.source)

    t = time.perf_counter()
    run = executor or LocalExecutor(progress=progress)
    reducer = Reducer(sources, inputs, {}, suite.reference_set, suite.seed, suite.pooling, loaded.scale)

    def remember(index: int, label: str, part: MetricPart) -> None:
        key = keys.get((index, label))
        if key is not None and not _unavailable(part):
            results_cache.put(key, part)

    with cache.writing_behind():
        features, parts = _extract_and_reduce(run, cells, sources, cache, memory.batch_size, device, suite, reducer,
                                              loaded.metrics, cached, remember)
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    for source in sources:  # what could not run beside the forward passes, in suite order
        parts = reducer.compute_source(loaded.metrics, source, cached, remember, done=parts)
    reduction = reducer.assemble(loaded.metrics, parts)
    timings["metrics"] = time.perf_counter() - t  # the part after the forward passes
    timings["total"] = time.perf_counter() - t0

    provenance = {
        "suite": suite.name,
        "suite_file": loaded.source,
        "suite_sha256": suite.sha256(),
        "seed": suite.seed,
        "code": code_commit(),
        "versions": package_versions(),
        "device": str(device),
        "cells": len(cells),
        "cache": {"enabled": cache.enabled, "hits": cache.hits, "misses": cache.misses, "repeats": cache.repeats},
        "results_cache": {"enabled": results_cache.enabled, "hits": results_cache.hits,
                          "misses": results_cache.misses, "repeats": results_cache.repeats},
        "memory": memory.as_dict(),
        "models": {source.label: info for source in sources if (info := source.detection()) is not None},
        "started": started,
        "finished": utc_now(),
    }
    if suite.data.limit_patches is not None:
        provenance["limit_patches"] = suite.data.limit_patches
    provenance["data"] = data_used(loaded, inputs, need_train)
    if inputs.skipped:  # `skip_unreadable: true` folder sets: which files the numbers leave out
        provenance["skipped_unreadable"] = {name: list(files) for name, files in inputs.skipped.items()}
    board = build_leaderboard(loaded, reduction.rows, inputs)
    return RunResult(loaded, reduction.rows, reduction.confusions, reduction.embeddings, provenance,
                     {k: round(v, 3) for k, v in timings.items()}, sources, features, inputs, board)


def _extract_and_reduce(run, cells: list[Cell], sources: list[FeatureSource], cache: FeatureCache, batch_size: int,
                        device, suite, reducer: Reducer, metrics: list, cached: dict, remember) -> tuple[dict, dict]:
    """Every cell's features, and the parts of the metrics that ran while they were extracted.

    With an executor that streams (the local one), a model's overlappable metrics start on a
    background thread once its last cell is done (:mod:`ddr_eval.pipeline.overlap`); with
    another executor (Ray) they run after all cells, as before. Either way, the same numbers.
    """
    features = reducer.features
    remaining = {source.label: 0 for source in sources}
    for cell in cells:
        remaining[cell.source.label] += 1
    lane = MetricsLane(reducer, metrics, cached, remember)
    try:
        for source in sources:  # models with nothing to extract (all cached, or no cells) start now
            if remaining[source.label] == 0:
                lane.submit(source)

        def ready(index: int, batch) -> None:
            cell = cells[index]
            features[FeatureKey(cell.source.label, cell.dataset.split, cell.dataset.name, cell.pooling)] = batch
            remaining[cell.source.label] -= 1
            if remaining[cell.source.label] == 0:
                lane.submit(cell.source)

        if getattr(run, "streams", False):
            run(cells, cache, batch_size, device, suite.runtime.amp_dtype, on_ready=ready)
        else:
            for index, batch in enumerate(run(cells, cache, batch_size, device, suite.runtime.amp_dtype)):
                ready(index, batch)
        lane.forward_done()
        return features, lane.finish()
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
