"""Building blocks shared by the SR architectures, with BasicSR's module names and init.

Same parameters, same initialisation and same arithmetic as ``basicsr/archs/arch_util.py``;
activations are *not* in-place here (identical outputs), so a forward hook that keeps a
module's output never sees it overwritten by the next in-place ReLU.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn import init
from torch.nn.modules.batchnorm import _BatchNorm

from ddr_eval.core.errors import UserError


@torch.no_grad()
def default_init_weights(module_list: nn.Module | list[nn.Module], scale: float = 1.0, bias_fill: float = 0.0,
                         **kwargs) -> None:
    """Kaiming-normal init scaled by ``scale`` (BasicSR uses 0.1 for residual branches)."""
    if not isinstance(module_list, list):
        module_list = [module_list]
    for module in module_list:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                init.kaiming_normal_(m.weight, **kwargs)
                m.weight.data *= scale
                if m.bias is not None:
                    m.bias.data.fill_(bias_fill)
            elif isinstance(m, _BatchNorm):
                init.constant_(m.weight, 1)
                if m.bias is not None:
                    m.bias.data.fill_(bias_fill)


def make_layer(block: type[nn.Module], num_blocks: int, **kwargs) -> nn.Sequential:
    """``num_blocks`` copies of ``block(**kwargs)`` in a Sequential (keys ``0.``, ``1.``, ...)."""
    return nn.Sequential(*(block(**kwargs) for _ in range(num_blocks)))


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with identity skip, residual scaled by ``res_scale`` (EDSR/MSRResNet block)."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1, pytorch_init: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU()
        if not pytorch_init:
            default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


def check_upsample_scale(arch: str, scale: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2 or (scale & (scale - 1) and scale != 3):
        raise UserError(f"{arch}: upscale must be a power of 2 or 3, got {scale!r}")


class Upsample(nn.Sequential):
    """conv + PixelShuffle(2) per factor of 2, or one conv + PixelShuffle(3) (convs at even indices)."""

    def __init__(self, scale: int, num_feat: int) -> None:
        check_upsample_scale("Upsample", scale)
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        super().__init__(*layers)


def infer_upsample_scale(state_dict, prefix: str, num_feat: int) -> int | None:
    """The factor of an :class:`Upsample` stored under ``prefix`` (convs at ``prefix.0``, ``.2``...)."""
    convs = 0
    while f"{prefix}.{2 * convs}.weight" in state_dict:
        convs += 1
    if convs == 0:
        return None
    first = int(state_dict[f"{prefix}.0.weight"].shape[0])
    if first == 9 * num_feat and convs == 1:
        return 3
    if first == 4 * num_feat:
        return 2**convs
    return None


def pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Space-to-depth; torch's op uses BasicSR's channel order (c * s * s + i * s + j)."""
    return F.pixel_unshuffle(x, scale)
