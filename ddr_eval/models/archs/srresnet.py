"""MSRResNet (BasicSR's modified SRResNet: residual blocks without BN) with a global-residual switch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ddr_eval.models.archs.arch_util import ResidualBlockNoBN, default_init_weights, make_layer
from ddr_eval.models.archs.base import (
    Arch,
    count_indexed,
    has_keys,
    in_ch,
    out_ch,
    require_choice,
    require_positive_int,
)
from ddr_eval.models.archs.registry import ARCHS


@ARCHS.register()
class MSRResNet(Arch):
    """Modified SRResNet (Ledig et al. 2017, blocks without BN as in EDSR), x2/x3/x4.

    ``global_residual=True`` is BasicSR's network: the output is added to the bilinearly
    upsampled input, so the body only learns the residual. ``False`` drops that skip, which
    the DDR study compares because the global residual changes what deep features encode.
    The switch has no parameters, so both variants share state-dict keys.
    """

    scale_kwarg = "upscale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, global_residual: bool = True) -> None:
        super().__init__()
        require_positive_int("MSRResNet", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                             num_block=num_block)
        require_choice("MSRResNet", "upscale", upscale, (2, 3, 4))
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, upscale
        self.upscale = upscale
        self.num_block = num_block
        self.global_residual = bool(global_residual)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        if upscale in (2, 3):
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1)

        default_init_weights([self.conv_first, self.upconv1, self.conv_hr, self.conv_last], 0.1)
        if upscale == 4:
            default_init_weights(self.upconv2, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        if self.global_residual:
            out = out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return out

    def feature_taps(self) -> dict[str, str]:
        taps = {"first": "conv_first"}
        taps.update({f"block{i}": f"body.{i}" for i in range(self.num_block)})
        taps["deep"] = f"body.{self.num_block - 1}"
        taps["up1"] = "upconv1"
        if self.upscale == 4:
            taps["up2"] = "upconv2"
        taps.update({"hr": "conv_hr", "last": "conv_last"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        if not has_keys(state_dict, "conv_first.weight", "body.0.conv1.weight", "upconv1.weight", "conv_hr.weight",
                        "conv_last.weight"):
            return None
        num_feat = out_ch(state_dict, "conv_first.weight")
        if "upconv2.weight" in state_dict:
            upscale = 4
        else:
            ratio = out_ch(state_dict, "upconv1.weight") // num_feat
            upscale = {4: 2, 9: 3}.get(ratio)
            if upscale is None:
                return None
        return {
            "num_in_ch": in_ch(state_dict, "conv_first.weight"),
            "num_out_ch": out_ch(state_dict, "conv_last.weight"),
            "num_feat": num_feat,
            "num_block": count_indexed(state_dict, "body.{}.conv1.weight"),
            "upscale": upscale,
        }


ARCHS.register("SRResNet")(MSRResNet)
