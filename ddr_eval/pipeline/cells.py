"""Stage 3 of a run: one *cell* = one feature source x one degradation set x one pooling.

Cells are independent of each other (the unit an executor can farm out); their results are
read back from the feature cache when nothing they depend on has changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_eval.cache.store import FeatureCache, cell_key
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.pipeline.inputs import DegradedSet
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.results.run import FeatureKey

FLATTEN = "flatten"


@dataclass(frozen=True)
class Cell:
    """``stored``: whether the feature cache keeps the cell's features once computed. Flattened
    maps (C*H*W values a patch, tens of MB a cell) are read by metrics only, whose results the
    results cache keeps, so by default they are not stored; pooled features are (findings read them)."""

    source: FeatureSource
    dataset: DegradedSet
    pooling: str
    outputs: bool  # also keep the SR outputs (for image-quality metrics)
    stored: bool = True

    @property
    def name(self) -> str:
        return f"{self.source.label} x {self.dataset.key} [{self.pooling}]"

    @property
    def feature_key(self) -> FeatureKey:
        """Where a run keeps this cell's features (:attr:`ddr_eval.results.run.RunResult.batches`)."""
        return FeatureKey(self.source.label, self.dataset.split, self.dataset.name, self.pooling)

    def key(self) -> str:
        modules = sorted(self.source.layers.values())
        return cell_key(self.source.identity, modules, self.pooling, self.dataset.lr, self.outputs and self.source.is_sr,
                        self.dataset.source_digest)


def make_cell(source: FeatureSource, dataset: DegradedSet, pooling: str, outputs: bool = False, *,
              store_flattened: bool = False) -> Cell:
    """The cell of ``source`` on ``dataset`` in ``pooling``: pooled features are kept in the feature
    cache, flattened maps only with ``store_flattened`` (robustness runs read them across sample sizes)."""
    return Cell(source, dataset, pooling, outputs, stored=pooling != FLATTEN or store_flattened)


def run_cells(cells: list[Cell], cache: FeatureCache, batch_size: int, device, amp_dtype) -> list[FeatureBatch]:
    """Features of cells that share a source and an input set (they differ in pooling), with one
    forward pass for all those the cache does not hold."""
    if len({(id(c.source), id(c.dataset)) for c in cells}) > 1:
        raise ValueError("run_cells takes cells of one source and one degradation set")
    keys = [cell.key() for cell in cells]

    def recompute(cell: Cell):  # a cached entry that turns out damaged when its arrays are read
        return lambda: cell.source.extract(cell.dataset.lr, cell.pooling, batch_size, device, amp_dtype, False).features

    batches = [cache.get(key, rows=len(cell.dataset.lr), recompute=recompute(cell)) for key, cell in zip(keys, cells)]
    missing = [i for i, batch in enumerate(batches) if batch is None]
    if not missing:
        return batches
    first = cells[missing[0]]
    outputs = any(cells[i].outputs for i in missing)
    extracted = first.source.extract_poolings(first.dataset.lr, tuple(cells[i].pooling for i in missing),
                                              batch_size, device, amp_dtype, outputs)
    for i in missing:
        batch = extracted[cells[i].pooling]
        batch = FeatureBatch(features=batch.features, outputs=batch.outputs if cells[i].outputs else None)
        store(cache, cells[i], keys[i], batch)
        batches[i] = batch
    return batches


def store(cache: FeatureCache, cell: Cell, key: str, batch: FeatureBatch) -> None:
    """Cache a finished cell the cache keeps (``cell.stored``), unless its SR outputs hold NaN/Inf:
    the cache keeps outputs as uint8, where NaN would turn into ordinary pixel values, so such a
    cell is recomputed each run and the report says "unavailable" every time."""
    if cell.stored and (batch.outputs is None or np.isfinite(batch.outputs).all()):
        cache.put(key, batch)


def group_cells(cells: list[Cell]) -> list[list[int]]:
    """Indices of ``cells`` grouped by (source, input set), in first-appearance order: each group
    can share one forward pass."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, cell in enumerate(cells):
        groups.setdefault((id(cell.source), id(cell.dataset)), []).append(index)
    return list(groups.values())
