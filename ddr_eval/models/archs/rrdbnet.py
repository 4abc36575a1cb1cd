"""RRDBNet, the ESRGAN / Real-ESRGAN generator, with BasicSR's module names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ddr_eval.models.archs.arch_util import default_init_weights, make_layer, pixel_unshuffle
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

# input channels are multiplied by this (pixel-unshuffle) so the x4 trunk serves x2 and x1
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class ResidualDenseBlock(nn.Module):
    """Five densely connected convs; the output is scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)
        default_init_weights([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, outer residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


@ARCHS.register()
class RRDBNet(Arch):
    """ESRGAN generator: RRDB trunk at LR, then two nearest-neighbour x2 upsampling convs.

    The trunk always upsamples x4; for ``scale`` 2 and 1 the input is pixel-unshuffled by
    2 and 4 first (BasicSR's extension), which is why ``conv_first`` then has 4x / 16x inputs.
    """

    scale_kwarg = "scale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        require_positive_int("RRDBNet", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                             num_block=num_block, num_grow_ch=num_grow_ch)
        require_choice("RRDBNet", "scale", scale, (1, 2, 4))
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, scale
        self.scale = scale
        self.num_block = num_block
        unshuffle = _UNSHUFFLE[scale]
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unshuffle = _UNSHUFFLE[self.scale]
        feat = self.conv_first(pixel_unshuffle(x, unshuffle) if unshuffle > 1 else x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

    def feature_taps(self) -> dict[str, str]:
        taps = {"first": "conv_first"}
        taps.update({f"block{i}": f"body.{i}" for i in range(self.num_block)})
        taps.update({"deep": f"body.{self.num_block - 1}", "body_out": "conv_body", "up1": "conv_up1",
                     "up2": "conv_up2", "hr": "conv_hr", "last": "conv_last"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        if not has_keys(state_dict, "conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight",
                        "conv_up1.weight", "conv_last.weight"):
            return None
        num_out_ch = out_ch(state_dict, "conv_last.weight")
        # the unshuffle factor is only identifiable assuming as many input as output channels
        ratio, remainder = divmod(in_ch(state_dict, "conv_first.weight"), num_out_ch)
        scale = {1: 4, 4: 2, 16: 1}.get(ratio) if remainder == 0 else None
        if scale is None:
            return None
        return {
            "num_in_ch": num_out_ch,
            "num_out_ch": num_out_ch,
            "scale": scale,
            "num_feat": out_ch(state_dict, "conv_first.weight"),
            "num_block": count_indexed(state_dict, "body.{}.rdb1.conv1.weight"),
            "num_grow_ch": out_ch(state_dict, "body.0.rdb1.conv1.weight"),
        }
