"""Stage 3 of a run: one *cell* = one feature source x one degradation set x one pooling.

Cells are independent of each other (the unit an executor can farm out); their results are
read back from the feature cache when nothing they depend on has changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_eval.features.cache import FeatureCache, cell_key
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.pipeline.inputs import DegradedSet
from ddr_eval.pipeline.models import FeatureSource


@dataclass(frozen=True)
class Cell:
    source: FeatureSource
    dataset: DegradedSet
    pooling: str
    outputs: bool  # also keep the SR outputs (for image-quality metrics)

    @property
    def name(self) -> str:
        return f"{self.source.label} x {self.dataset.key} [{self.pooling}]"

    def key(self) -> str:
        modules = sorted(self.source.layers.values())
        return cell_key(self.source.identity, modules, self.pooling, self.dataset.lr, self.outputs and self.source.is_sr)


def run_cell(cell: Cell, cache: FeatureCache, batch_size: int, device, amp_dtype) -> FeatureBatch:
    """Features of one cell, keyed by module name, from the cache or a forward pass."""
    key = cell.key()
    cached = cache.get(key)
    if cached is not None:
        return cached
    batch = cell.source.extract(cell.dataset.lr, cell.pooling, batch_size, device, amp_dtype, cell.outputs)
    if batch.outputs is None or np.isfinite(batch.outputs).all():
        # the cache keeps SR outputs as uint8, where NaN would turn into ordinary pixel values;
        # such a cell is recomputed each run so the report says "unavailable" every time
        cache.put(key, batch)
    return batch
