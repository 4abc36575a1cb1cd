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

``ddr-eval upscale`` uses the same estimate, scaled by area, for one pass over a whole image;
an image whose pass would not fit in :data:`UPSCALE_MEMORY_GIB` is super-resolved in tiles
with :data:`TILE_CONTEXT` pixels of real context around each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ddr_eval.errors import UserError
from ddr_eval.metrics.identification import IMAGE_STATISTIC_NAMES
from ddr_eval.pipeline.cells import Cell
from ddr_eval.pipeline.inputs import SuiteInputs
from ddr_eval.training.evaluate import PAD_MULTIPLE, super_resolve

GIB = 2**30
MIB = 2**20
BASELINE_BYTES = 512 * MIB
"""Resident memory of the process before any data: Python, torch and the scientific stack."""
UPSCALE_MEMORY_GIB = 4.0
"""What ``ddr-eval upscale`` may use; larger images are super-resolved in tiles."""
TILE_CONTEXT = 32
"""LR pixels of real image around each tile, cropped away after the forward pass."""
_PROBE_SIDE = 32


@dataclass(frozen=True)
class Footprint:
    """What one LR patch costs a model: peak activation bytes and the width of each tapped layer."""

    activation_bytes: int
    channels: dict[str, int]  # module name -> C (the pooled width for gap/gmp)
    numel: dict[str, int]  # module name -> C*h*w (the width for flatten)
    output_numel: int  # of the SR output, 0 when outputs are not kept

    def feature_width(self, module: str, pooling: str) -> int:
        return self.numel[module] if pooling == "flatten" else self.channels[module]


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


class _Stop(Exception):
    """Ends the probe forward pass where feature extraction would end it."""


def forward_footprint(module: nn.Module, patch_shape: tuple[int, int, int], tapped: Iterable[str],
                      outputs: bool) -> Footprint:
    """Run one zero LR patch (h, w, C) through ``module`` and measure what a patch costs.

    The forward pass stops once every tapped module has run unless ``outputs`` is wanted, as
    :func:`~ddr_eval.features.extract.extract_features` does, so the estimate covers the same
    layers extraction runs.
    """
    tapped = list(dict.fromkeys(tapped))
    parameter = next((p for p in module.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    element = torch.finfo(dtype).bits // 8
    peak = 0
    channels: dict[str, int] = {}
    numel: dict[str, int] = {}

    def leaf_hook(leaf: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal peak
        size = sum(t.numel() for t in inputs if isinstance(t, torch.Tensor))
        size += _first_tensor_numel(output)
        if isinstance(leaf, nn.Conv2d) and isinstance(output, torch.Tensor):
            kernel = leaf.kernel_size[0] * leaf.kernel_size[1]
            size += leaf.in_channels // leaf.groups * kernel * output.shape[-2] * output.shape[-1]
        peak = max(peak, size)

    def tap_hook(name: str):
        def hook(_: nn.Module, __: tuple, output: object) -> None:
            if name in numel:
                return
            tensor = _first_tensor(output)
            channels[name] = int(tensor.shape[1]) if tensor.ndim >= 2 else int(tensor.numel())
            numel[name] = int(tensor[0].numel()) if tensor.ndim >= 1 else 1
            if not outputs and len(numel) == len(tapped):
                raise _Stop

        return hook

    handles = [leaf.register_forward_hook(leaf_hook) for leaf in module.modules() if not any(leaf.children())]
    handles += [module.get_submodule(name).register_forward_hook(tap_hook(name)) for name in tapped]
    height, width, colours = patch_shape
    x = torch.zeros(1, colours, height, width, dtype=dtype, device=device)
    was_training = module.training
    module.eval()
    output_numel = 0
    try:
        with torch.inference_mode():
            result = module(x)
            output_numel = _first_tensor_numel(result) if outputs else 0
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return Footprint(peak * element, channels, numel, output_numel)


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
        raise UserError(
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
        arrays[id(dataset.patches.hr)] = dataset.patches.hr
    return sum(array.nbytes for array in arrays.values())


def _first_tensor(value: object) -> torch.Tensor:
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise UserError(f"a tapped layer produced {type(value).__name__}, not a tensor")
    return value


def _first_tensor_numel(value: object) -> int:
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    return value.numel() if isinstance(value, torch.Tensor) else 0


# -- whole images (ddr-eval upscale) -------------------------------------------------------------


def upscale_tile_side(module: nn.Module, image_shape: tuple[int, ...], scale: int,
                      memory_gib: float = UPSCALE_MEMORY_GIB) -> int | None:
    """``None`` if one forward pass over the whole LR image fits in ``memory_gib``, else the side
    (a multiple of 4) of square tiles that do, each with :data:`TILE_CONTEXT` pixels of context.

    Activations of a convolutional SR network grow with the pixel count, so the estimate of a
    32x32 probe (see :func:`forward_footprint`) is scaled by area.
    """
    height, width, colours = image_shape
    probe = forward_footprint(module, (_PROBE_SIDE, _PROBE_SIDE, colours), [], outputs=True)
    per_pixel = probe.activation_bytes / _PROBE_SIDE**2
    images = height * width * colours * 4 * (1 + 2 * scale * scale)  # input, output, its uint8/PNG copies
    room = memory_gib * GIB - BASELINE_BYTES - images
    if per_pixel * height * width <= room:
        return None
    side = int(math.sqrt(max(room, 0) / per_pixel)) - 2 * TILE_CONTEXT
    side -= side % PAD_MULTIPLE
    if side < PAD_MULTIPLE:
        raise UserError(f"a {width}x{height} image is too large to super-resolve within {memory_gib:g} GiB, "
                        "even in tiles; downscale or crop it first")
    return side


def super_resolve_in_tiles(module: nn.Module, image: np.ndarray, scale: int, tile: int,
                           context: int = TILE_CONTEXT) -> np.ndarray:
    """Super-resolve an HWC image tile by tile, each tile run with ``context`` pixels of the real
    image around it (cropped afterwards), as Real-ESRGAN's tiled inference does.

    The result equals a whole-image pass wherever the network's receptive field is within
    ``context``; deeper networks differ slightly near tile borders.
    """
    height, width = image.shape[:2]
    out = np.empty((height * scale, width * scale, 3), dtype=np.float32)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            top_c, left_c = max(top - context, 0), max(left - context, 0)
            sr = super_resolve(module, image[top_c:min(bottom + context, height), left_c:min(right + context, width)])
            rows = slice((top - top_c) * scale, (bottom - top_c) * scale)
            cols = slice((left - left_c) * scale, (right - left_c) * scale)
            out[top * scale:bottom * scale, left * scale:right * scale] = sr[rows, cols]
    return out


def super_resolve_within_memory(module: nn.Module, image: np.ndarray, scale: int,
                                memory_gib: float = UPSCALE_MEMORY_GIB) -> np.ndarray:
    """One pass over the whole image when it fits in ``memory_gib``, tiles when it does not."""
    tile = upscale_tile_side(module, image.shape, scale, memory_gib)
    if tile is None:
        return super_resolve(module, image)
    return super_resolve_in_tiles(module, image, scale, tile)
