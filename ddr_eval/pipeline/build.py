"""The pipeline's stages, one public entry point each: the only place a run is assembled.

A suite run is five stages, and every way into one calls these same functions: ``run_suite``
(``runner.py``: the CLI and :func:`ddr_eval.evaluate`), :class:`ddr_eval.workflows.monitor.DDRMonitor`,
``Results.features`` in the Python API, ``identify`` and ``compare`` (through ``evaluate``)::

    sources = build_sources(loaded)                    # 1. models: a bad checkpoint or layer fails first
    inputs = build_inputs(loaded)                      # 2. HR patches -> degraded LR sets
    cells = plan_cells(sources, inputs, loaded.metrics, loaded.suite.pooling)  # 3. what to extract
    features = extract_cells(cells, batch_size=64, device="cpu")               #    -> FeatureKey: batch
    rows = reduce_features(loaded, sources, inputs, features).rows             # 4. metric rows

So a change to how a stage works (which cells a metric needs, how a cell is cached, how rows
are stamped) reaches every consumer at once, and the monitor's numbers are the CLI's. What a
suite run adds around the stages (caches, the memory plan, metrics overlapped with the forward
passes, provenance) is ``run_suite``'s own business.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import numpy as np

from ddr_eval.data import PatchSet
from ddr_eval.cache.store import FeatureCache
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.pipeline import models as model_loading
from ddr_eval.pipeline.cells import Cell, make_cell
from ddr_eval.pipeline.executors import LocalExecutor
from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs, prepare_inputs
from ddr_eval.pipeline.inputs_cache import INPUTS_SUBDIR, InputsCache, cached_inputs
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.reduce import Reducer, Reduction, metric_pooling
from ddr_eval.pipeline.results_cache import MetricPart, ResultCache
from ddr_eval.results.run import FeatureKey
from ddr_eval.config.loader import LoadedSuite

RESULTS_SUBDIR = "metrics"  # the result cache lives inside the feature cache's directory

__all__ = ["RESULTS_SUBDIR", "RunCaches", "build_caches", "build_inputs", "build_reducer", "build_sources",
           "extract_cells", "first_patches", "lr_set", "needs_train_split", "plan_cells", "reduce_features"]


# -- stage 1: models ---------------------------------------------------------------------------


def build_sources(loaded: LoadedSuite, models: Sequence[Any] | None = None, *,
                  layers: Sequence[str] | None = None) -> list[FeatureSource]:
    """The suite's models as checked feature sources, tapped at the suite's ``layers`` (or ``layers``).

    ``models`` stands in for ``suite.models``: specs, or ready :class:`FeatureSource` s of
    in-memory networks (``ddr_eval.api``). The suite's memory budget refuses a network that
    ``arch_kwargs`` would make larger, before it is built.
    """
    suite = loaded.suite
    return model_loading.build_sources(list(models if models is not None else suite.models),
                                       tuple(layers or suite.layers), loaded.scale, suite.seed,
                                       max_param_bytes=int(suite.runtime.expected_memory_gib * 2**30))


# -- stage 2: inputs ---------------------------------------------------------------------------


@dataclass
class RunCaches:
    """The three caches of a run, in one directory: features, metric results, degraded inputs."""

    features: FeatureCache
    results: ResultCache
    inputs: InputsCache

    @property
    def enabled(self) -> bool:
        return self.features.enabled


def build_caches(loaded: LoadedSuite, use_cache: bool = True, cache_dir: Path | None = None) -> RunCaches:
    """The caches a run of ``loaded`` reads and fills (all off with ``use_cache=False`` or the suite's
    ``runtime.cache: false``). Starting them sizes the cache for its bound and removes what killed
    runs left (once per process)."""
    features = FeatureCache(cache_dir, enabled=use_cache and loaded.suite.runtime.cache)
    if features.enabled:
        features.bound.start()
    results = ResultCache(features.root / RESULTS_SUBDIR, enabled=features.enabled, bound=features.bound)
    inputs = InputsCache(features.root / INPUTS_SUBDIR, enabled=features.enabled, bound=features.bound)
    return RunCaches(features, results, inputs)


def needs_train_split(loaded: LoadedSuite) -> bool:
    """Whether a metric of the suite reads the training split (it is degraded only then)."""
    return any("train_split" in m.needs for m in loaded.metrics)


def build_inputs(loaded: LoadedSuite, cache: InputsCache | None = None,
                 before_making: Callable[[], None] | None = None) -> SuiteInputs:
    """The suite's degraded LR sets (and the training split when a metric reads it), read from
    ``cache`` when an earlier run made the same ones. ``before_making`` runs before any image is
    decoded when they have to be made (the memory planner refuses a suite there)."""
    need_train = needs_train_split(loaded)
    if cache is not None:
        return cached_inputs(loaded, need_train, cache, before_making)
    if before_making is not None:
        before_making()
    return prepare_inputs(loaded, need_train)


def lr_set(lr: np.ndarray, name: str = "input", split: str = "test") -> DegradedSet:
    """LR patches (N,h,w,3 float32) given as an array, as a degradation set the cells can read:
    no HR targets, one source photograph ``name`` for all of them (``identify``'s grid patches)."""
    n = len(lr)
    patches = PatchSet(None, np.zeros(n, np.int64), np.arange(n, dtype=np.int64), (name,))
    return DegradedSet(name, split, np.ascontiguousarray(lr, dtype=np.float32), patches)


# -- stage 3: cells ----------------------------------------------------------------------------


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
        for pooling in sorted(eval_poolings):
            cells += [make_cell(source, d, pooling, name in output_sets and pooling == default_pooling,
                                store_flattened=store_flattened) for name, d in inputs.eval_sets.items()]
        for pooling in sorted(train_sets):
            cells += [make_cell(source, d, pooling, store_flattened=store_flattened)
                      for name, d in inputs.train_sets.items() if name in train_sets[pooling]]
    return cells


def extract_cells(cells: list[Cell], cache: FeatureCache | None = None, *, batch_size: int, device,
                  amp_dtype: str | None = None, executor: Callable | None = None,
                  into: dict[FeatureKey, FeatureBatch] | None = None,
                  on_ready: Callable[[Cell, FeatureBatch], None] | None = None) -> dict[FeatureKey, FeatureBatch]:
    """Every cell's features by :class:`FeatureKey` (``into``, when given, is filled and returned).

    ``executor`` runs the forward passes (``pipeline/executors.py``; default: in this process,
    no progress bar); ``cache`` (default: none) is read first and filled. ``on_ready(cell, batch)``
    is called as each cell's features are in ``into`` — as they finish with an executor that
    streams (the local one), after all of them with another (Ray).
    """
    cache = cache if cache is not None else FeatureCache(enabled=False)
    run = executor or LocalExecutor(progress=False)
    features = into if into is not None else {}

    def ready(index: int, batch: FeatureBatch) -> None:
        cell = cells[index]
        features[cell.feature_key] = batch
        if on_ready is not None:
            on_ready(cell, batch)

    if getattr(run, "streams", False):
        run(cells, cache, batch_size, device, amp_dtype, on_ready=ready)
    else:
        for index, batch in enumerate(run(cells, cache, batch_size, device, amp_dtype)):
            ready(index, batch)
    return features


# -- stage 4: reduce ---------------------------------------------------------------------------


def build_reducer(loaded: LoadedSuite, sources: list[FeatureSource], inputs: SuiteInputs,
                  features: dict[FeatureKey, FeatureBatch] | None = None) -> Reducer:
    """The reducer of the suite's metrics over ``features`` (a dict the extraction may still be filling)."""
    suite = loaded.suite
    return Reducer(sources, inputs, {} if features is None else features, suite.reference_set, suite.seed,
                   suite.pooling, loaded.scale)


def reduce_features(loaded: LoadedSuite, sources: list[FeatureSource], inputs: SuiteInputs,
                    features: dict[FeatureKey, FeatureBatch],
                    cached: dict[tuple[int, str], MetricPart] | None = None,
                    on_computed: Callable[[int, str, MetricPart], None] | None = None) -> Reduction:
    """Every metric of the suite for every source, in suite order (see :meth:`Reducer.run`)."""
    return build_reducer(loaded, sources, inputs, features).run(loaded.metrics, cached, on_computed)


def first_patches(inputs: SuiteInputs, features: dict[FeatureKey, FeatureBatch],
                  per_image: int) -> tuple[SuiteInputs, dict[FeatureKey, FeatureBatch]]:
    """The evaluated sets cut to the first ``per_image`` patches of every photograph, with their
    features: a run read at a smaller sample size (``reduce_features`` on the result) without a
    second forward pass. Patches are drawn per photograph in a seeded order, so the first ``k`` of
    a larger draw are a draw of ``k``."""
    kept = {name: d.patches.patch_index < per_image for name, d in inputs.eval_sets.items()}
    sets = {name: replace(d, lr=d.lr[kept[name]], patches=d.patches.subset(kept[name]))
            for name, d in inputs.eval_sets.items()}
    cut = {key: FeatureBatch({module: array[kept[key.set]] for module, array in batch.features.items()},
                             None if batch.outputs is None else batch.outputs[kept[key.set]])
           for key, batch in features.items() if key.set in sets and key.split == sets[key.set].split}
    return SuiteInputs(sets, {}), cut
