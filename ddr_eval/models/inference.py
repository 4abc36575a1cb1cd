"""Inference on whole images, and what one forward pass costs: models/ owns running a model.

:func:`super_resolve` runs one image through an SR network (padded so every architecture
takes any size); :func:`forward_footprint` measures, on one zero patch, the activation bytes
and tapped-layer widths that memory planning (``pipeline/memory.py``) needs; an image whose
single pass would not fit in :data:`UPSCALE_MEMORY_GIB` is super-resolved in tiles with
:data:`TILE_CONTEXT` pixels of real context around each (``ddr-eval upscale``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ddr_eval.core.errors import UserError

GIB = 2**30
MIB = 2**20
BASELINE_BYTES = 512 * MIB
"""Resident memory of the process before any data: Python, torch and the scientific stack."""
UPSCALE_MEMORY_GIB = 4.0
"""What ``ddr-eval upscale`` may use; larger images are super-resolved in tiles."""
TILE_CONTEXT = 32
"""LR pixels of real image around each tile, cropped away after the forward pass."""
_PROBE_SIDE = 32

PAD_MULTIPLE = 4  # RRDBNet x2/x1 pixel-unshuffles its input, so sizes must divide by 2 or 4


@torch.inference_mode()
def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """One HWC float image through an SR model, clipped to [0, 1].

    The input is reflect-padded to a multiple of 4 (as Real-ESRGAN's inference does) and the
    output cropped back, so any image size works with every architecture.
    """
    model.eval()
    h, w = lr.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].to(device)
    pad_h, pad_w = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    y = model(x)
    scale = y.shape[-1] // x.shape[-1]
    y = y[..., : h * scale, : w * scale][0].permute(1, 2, 0).clamp_(0, 1)
    return y.cpu().numpy()


@dataclass(frozen=True)
class Footprint:
    """What one LR patch costs a model: peak activation bytes and the width of each tapped layer."""

    activation_bytes: int
    channels: dict[str, int]  # module name -> C (the pooled width for gap/gmp)
    numel: dict[str, int]  # module name -> C*h*w (the width for flatten)
    output_numel: int  # of the SR output, 0 when outputs are not kept

    def feature_width(self, module: str, pooling: str) -> int:
        if pooling == "flatten":
            return self.numel[module]
        return 2 * self.channels[module] if pooling == "mean_std" else self.channels[module]


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


def _first_tensor_numel(value: object) -> int:
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    return value.numel() if isinstance(value, torch.Tensor) else 0


def _first_tensor(value: object) -> torch.Tensor:
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise UserError(f"a tapped layer produced {type(value).__name__}, not a tensor")
    return value


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
