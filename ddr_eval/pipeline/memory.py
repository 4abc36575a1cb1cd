"""How many patches go through a network at once, so that a run stays under its stated memory.

A suite states ``runtime.expected_memory_gib`` (default 4). Before the first forward pass the
runner estimates what the run will hold and what one patch costs inside a forward pass, and
lowers ``runtime.batch_size`` (never raises it) until

    baseline + held arrays + batch_size x per-patch activations  <=  expected_memory_gib

* **baseline** – the interpreter with torch, numpy, scipy, scikit-learn, pandas and matplotlib
  imported: :data:`BASELINE_BYTES` (measured about 0.4 GiB RSS, rounded up).
* **held arrays** – what a run keeps until its metrics are computed: the HR patches and LR
  inputs, every cell's pooled features (N x D float32, where D = C*h*w for ``flatten``) and the
  SR outputs of cells that feed image-quality metrics. These sizes are exact.
* **per-patch activations** – one forward pass of a single LR patch with hooks on every leaf
  module (stopping where extraction stops when no SR output is needed): the largest leaf's
  input + output, plus, for a convolution, its unfolded (im2col) input, at the model's dtype.
  Across the built-in architectures at 32x32 LR the measured peak per patch was 9-82% of this
  estimate, so it errs on the safe side; the model with the largest estimate sets the batch.

The rule reads only the suite and the models, never the machine's current state, so a suite
gets the same batch size in every run and on every machine. If even one patch does not fit,
the run stops before any work with a :class:`UserError` naming ``runtime.expected_memory_gib``.
Metric computations (bootstraps, t-SNE, pairwise distances) are not part of the estimate.

``ddr-eval upscale`` uses the same estimate (``models/inference.py``), scaled by area, for one
pass over a whole image, and tiles an image whose pass would not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_eval.core.errors import MemoryBudgetError
from ddr_eval.features.statistics import IMAGE_STATISTIC_NAMES
from ddr_eval.pipeline.cells import Cell
from ddr_eval.pipeline.inputs import SuiteInputs
from ddr_eval.models.inference import BASELINE_BYTES, GIB, MIB, Footprint, forward_footprint



@dataclass(frozen=True)
class MemoryPlan:
    """The batch size a run uses and the estimate it came from."""

    batch_size: int
    requested_batch_size: int
    budget_bytes: int
    baseline_bytes: int
    held_bytes: int
    per_patch_bytes: int

    @property
    def estimated_peak_bytes(self) -> int:
        return self.baseline_bytes + self.held_bytes + self.batch_size * self.per_patch_bytes

    def as_dict(self) -> dict[str, float | int]:
        """For the report's provenance: sizes in MiB."""
        return {
            "batch_size": self.batch_size,
            "requested_batch_size": self.requested_batch_size,
            "expected_memory_gib": round(self.budget_bytes / GIB, 3),
            "estimated_peak_mib": round(self.estimated_peak_bytes / MIB, 1),
            "held_mib": round(self.held_bytes / MIB, 1),
            "per_patch_mib": round(self.per_patch_bytes / MIB, 3),
        }


def plan_memory(cells: list[Cell], inputs: SuiteInputs, requested_batch_size: int,
                expected_memory_gib: float, source: str = "<suite>") -> MemoryPlan:
    """The largest batch size <= ``requested_batch_size`` that keeps the run within its budget.

    ``source`` (the suite file) only names the culprit in the error when nothing fits.
    """
    footprints = _footprints(cells)
    held = _inputs_bytes(inputs) + sum(_cell_bytes(cell, footprints) for cell in cells)
    per_patch = max((f.activation_bytes for f in footprints.values()), default=0)
    budget = int(expected_memory_gib * GIB)
    room = budget - BASELINE_BYTES - held
    if room < per_patch or room < 0:
        need = (BASELINE_BYTES + held + per_patch) / GIB
        raise MemoryBudgetError(
            f"{source}: runtime.expected_memory_gib: {expected_memory_gib:g} GiB is less than this suite needs at batch size 1 "
            f"(about {need:.2f} GiB: {BASELINE_BYTES / GIB:.2f} baseline, {held / GIB:.2f} patches/features/outputs "
            f"kept for the metrics, {per_patch / MIB:.1f} MiB per patch in the forward pass); raise it, or use "
            "fewer or smaller patches, or a pooling other than flatten")
    batch_size = requested_batch_size if per_patch == 0 else min(requested_batch_size, room // per_patch)
    return MemoryPlan(int(batch_size), requested_batch_size, budget, BASELINE_BYTES, held, per_patch)


def _footprints(cells: list[Cell]) -> dict[tuple[int, bool], Footprint]:
    """One probe per (network, outputs kept): LR patches have the same shape in every cell."""
    footprints: dict[tuple[int, bool], Footprint] = {}
    for cell in cells:
        descriptor = cell.source.descriptor
        if descriptor is None:
            continue
        outputs = cell.outputs and cell.source.is_sr
        key = (id(cell.source), outputs)
        if key not in footprints:
            patch_shape = tuple(int(n) for n in cell.dataset.lr.shape[1:])
            footprints[key] = forward_footprint(descriptor.module, patch_shape, cell.source.layers.values(), outputs)
    return footprints


def _cell_bytes(cell: Cell, footprints: dict[tuple[int, bool], Footprint]) -> int:
    """Float32 features (and SR outputs) one cell hands to the metrics."""
    patches = len(cell.dataset.lr)
    if cell.source.descriptor is None:
        return patches * len(IMAGE_STATISTIC_NAMES) * 4
    footprint = footprints[(id(cell.source), cell.outputs and cell.source.is_sr)]
    width = sum(footprint.feature_width(module, cell.pooling) for module in set(cell.source.layers.values()))
    return patches * (width + footprint.output_numel) * 4


def _inputs_bytes(inputs: SuiteInputs) -> int:
    arrays: dict[int, np.ndarray] = {}
    for dataset in (*inputs.eval_sets.values(), *inputs.train_sets.values()):
        arrays[id(dataset.lr)] = dataset.lr
        if dataset.patches.hr is not None:  # LR-only folder sets have no HR
            arrays[id(dataset.patches.hr)] = dataset.patches.hr
    return sum(array.nbytes for array in arrays.values())


