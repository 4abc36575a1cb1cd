"""EDSR (Lim et al. 2017) with BasicSR's module names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.models.archs.arch_util import (
    ResidualBlockNoBN,
    Upsample,
    check_upsample_scale,
    infer_upsample_scale,
    make_layer,
)
from ddr_eval.models.archs.base import Arch, count_indexed, has_keys, in_ch, out_ch, require_positive_int
from ddr_eval.models.archs.registry import ARCHS

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def make_mean(arch: str, rgb_mean: Sequence[float], num_in_ch: int, num_out_ch: int) -> torch.Tensor:
    """The mean subtracted from inputs and added back to outputs (one value per channel)."""
    if len(rgb_mean) != num_in_ch or num_in_ch != num_out_ch:
        raise UserError(
            f"{arch}: rgb_mean has {len(rgb_mean)} values but the network maps {num_in_ch} to {num_out_ch} "
            "channels; they must all match because the mean is subtracted from the input and added to the output"
        )
    return torch.tensor([float(v) for v in rgb_mean]).view(1, -1, 1, 1)


@ARCHS.register()
class EDSR(Arch):
    """EDSR: residual blocks without BN, a long skip around the body, sub-pixel upsampling.

    Inputs are shifted by the DIV2K mean and scaled to ``img_range``; ``mean`` is a plain
    attribute (not a buffer) exactly as in BasicSR, so it is not part of the state dict.
    EDSR-L (256 features, 32 blocks) is trained with ``res_scale=0.1``, EDSR-M with 1.
    """

    scale_kwarg = "upscale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, res_scale: float = 1, img_range: float = 255.0,
                 rgb_mean: Sequence[float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        require_positive_int("EDSR", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                             num_block=num_block)
        check_upsample_scale("EDSR", upscale)
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, upscale
        self.num_block = num_block
        self.img_range = img_range
        self.mean = make_mean("EDSR", rgb_mean, num_in_ch, num_out_ch)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale,
                               pytorch_init=True)
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
        taps.update({f"block{i}": f"body.{i}" for i in range(self.num_block)})
        taps.update({"deep": f"body.{self.num_block - 1}", "body_out": "conv_after_body", "upsample": "upsample",
                     "last": "conv_last"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        if not has_keys(state_dict, "conv_first.weight", "body.0.conv1.weight", "conv_after_body.weight",
                        "upsample.0.weight", "conv_last.weight"):
            return None
        num_feat = out_ch(state_dict, "conv_first.weight")
        upscale = infer_upsample_scale(state_dict, "upsample", num_feat)
        if upscale is None:
            return None
        num_block = count_indexed(state_dict, "body.{}.conv1.weight")
        return {
            "num_in_ch": in_ch(state_dict, "conv_first.weight"),
            "num_out_ch": out_ch(state_dict, "conv_last.weight"),
            "num_feat": num_feat,
            "num_block": num_block,
            "upscale": upscale,
            # not stored in the weights: EDSR-L was trained with 0.1 (paper, BasicSR options)
            "res_scale": 0.1 if (num_feat, num_block) == (256, 32) else 1,
        }
