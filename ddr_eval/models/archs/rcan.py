"""RCAN (Zhang et al. 2018) with BasicSR's module names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.models.archs.arch_util import Upsample, check_upsample_scale, infer_upsample_scale, make_layer
from ddr_eval.models.archs.base import Arch, count_indexed, has_keys, in_ch, out_ch, require_positive_int
from ddr_eval.models.archs.edsr import DIV2K_RGB_MEAN, make_mean
from ddr_eval.models.archs.registry import ARCHS


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: global pool, bottleneck 1x1 convs, sigmoid gate per channel."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1, padding=0),
            nn.ReLU(),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """Residual channel-attention block: conv-ReLU-conv-CA, residual scaled by ``res_scale``."""

    def __init__(self, num_feat: int, squeeze_factor: int = 16, res_scale: float = 1) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rcab(x) * self.res_scale + x


class ResidualGroup(nn.Module):
    """``num_block`` RCABs and a conv, with a skip around the group."""

    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int = 16, res_scale: float = 1) -> None:
        super().__init__()
        self.residual_group = make_layer(RCAB, num_block, num_feat=num_feat, squeeze_factor=squeeze_factor,
                                         res_scale=res_scale)
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual_group(x)) + x


@ARCHS.register()
class RCAN(Arch):
    """Residual channel-attention network: residual groups of RCABs, EDSR-style head and tail.

    The official x4 model uses ``num_group=10, num_block=20``. Feature taps ``block{i}`` are the
    residual groups (the natural unit of depth here), ``deep`` the last group.
    """

    scale_kwarg = "upscale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_group: int = 10,
                 num_block: int = 16, squeeze_factor: int = 16, upscale: int = 4, res_scale: float = 1,
                 img_range: float = 255.0, rgb_mean: Sequence[float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        require_positive_int("RCAN", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                             num_group=num_group, num_block=num_block, squeeze_factor=squeeze_factor)
        if num_feat // squeeze_factor < 1:
            raise UserError(f"RCAN: squeeze_factor {squeeze_factor} leaves no channels of num_feat {num_feat}")
        check_upsample_scale("RCAN", upscale)
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, upscale
        self.num_group = num_group
        self.img_range = img_range
        self.mean = make_mean("RCAN", rgb_mean, num_in_ch, num_out_ch)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualGroup, num_group, num_feat=num_feat, num_block=num_block,
                               squeeze_factor=squeeze_factor, res_scale=res_scale)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.type_as(x)
        x = self.conv_first((x - mean) * self.img_range)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / self.img_range + mean

    def feature_taps(self) -> dict[str, str]:
        taps = {"first": "conv_first"}
        taps.update({f"block{i}": f"body.{i}" for i in range(self.num_group)})
        taps.update({"deep": f"body.{self.num_group - 1}", "body_out": "conv_after_body", "upsample": "upsample",
                     "last": "conv_last"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        if not has_keys(state_dict, "conv_first.weight", "body.0.residual_group.0.rcab.0.weight",
                        "body.0.conv.weight", "conv_after_body.weight", "upsample.0.weight", "conv_last.weight"):
            return None
        num_feat = out_ch(state_dict, "conv_first.weight")
        upscale = infer_upsample_scale(state_dict, "upsample", num_feat)
        squeezed = out_ch(state_dict, "body.0.residual_group.0.rcab.3.attention.1.weight")
        if upscale is None or num_feat % squeezed:
            return None
        return {
            "num_in_ch": in_ch(state_dict, "conv_first.weight"),
            "num_out_ch": out_ch(state_dict, "conv_last.weight"),
            "num_feat": num_feat,
            "num_group": count_indexed(state_dict, "body.{}.conv.weight"),
            "num_block": count_indexed(state_dict, "body.0.residual_group.{}.rcab.0.weight"),
            "squeeze_factor": num_feat // squeezed,
            "upscale": upscale,
        }
