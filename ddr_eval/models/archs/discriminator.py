"""BasicSR's VGG-style discriminator (SRGAN/ESRGAN), plus a 64x64 variant."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.models.archs.base import Arch, has_keys, in_ch, out_ch, require_choice, require_positive_int
from ddr_eval.models.archs.registry import ARCHS


@ARCHS.register()
class VGGStyleDiscriminator(Arch):
    """Stages of (3x3 conv, 4x4 stride-2 conv) with BN and LeakyReLU(0.2), then two linears.

    Each stage halves the size until 4x4 remain: 128 -> 5 stages (``conv0_*`` .. ``conv4_*``),
    256 -> 6 stages, as in BasicSR. ``input_size=64`` is an addition for small patches: the same
    network with 4 stages (``conv0_*`` .. ``conv3_*``), identical key names for the stages it has.
    Channels double per stage from ``num_feat`` up to ``8 * num_feat``.
    """

    purpose = "discriminator"

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        require_positive_int("VGGStyleDiscriminator", num_in_ch=num_in_ch, num_feat=num_feat)
        require_choice("VGGStyleDiscriminator", "input_size", input_size, (64, 128, 256))
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, 1, 1
        self.input_size = input_size
        self.num_stages = int(math.log2(input_size // 4))

        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        channels = num_feat
        for stage in range(1, self.num_stages):
            wider = num_feat * min(2**stage, 8)
            setattr(self, f"conv{stage}_0", nn.Conv2d(channels, wider, 3, 1, 1, bias=False))
            setattr(self, f"bn{stage}_0", nn.BatchNorm2d(wider, affine=True))
            setattr(self, f"conv{stage}_1", nn.Conv2d(wider, wider, 4, 2, 1, bias=False))
            setattr(self, f"bn{stage}_1", nn.BatchNorm2d(wider, affine=True))
            channels = wider
        self.linear1 = nn.Linear(channels * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def _stage(self, name: str) -> nn.Module:
        return getattr(self, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise UserError(f"VGGStyleDiscriminator expects {self.input_size}x{self.input_size} inputs, "
                            f"got {tuple(x.shape[-2:])}")
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for stage in range(1, self.num_stages):
            feat = self.lrelu(self._stage(f"bn{stage}_0")(self._stage(f"conv{stage}_0")(feat)))
            feat = self.lrelu(self._stage(f"bn{stage}_1")(self._stage(f"conv{stage}_1")(feat)))
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1))))

    def feature_taps(self) -> dict[str, str]:
        taps = {"first": "conv0_0"}
        taps.update({f"block{s}": f"bn{s}_1" for s in range(self.num_stages)})
        taps.update({"deep": f"bn{self.num_stages - 1}_1", "linear1": "linear1", "last": "linear2"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        if not has_keys(state_dict, "conv0_0.weight", "conv0_1.weight", "bn0_1.weight", "linear1.weight",
                        "linear2.weight"):
            return None
        stages = 1
        while f"conv{stages}_0.weight" in state_dict:
            stages += 1
        input_size = 4 * 2**stages
        if input_size not in (64, 128, 256):
            return None
        return {"num_in_ch": in_ch(state_dict, "conv0_0.weight"), "num_feat": out_ch(state_dict, "conv0_0.weight"),
                "input_size": input_size}
