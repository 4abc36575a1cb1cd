"""SRVGGNetCompact, Real-ESRGAN's compact VGG-style network (``realesr-animevideov3``, ``realesr-general-x4v3``)."""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ddr_eval.models.archs.base import Arch, in_ch, out_ch, require_choice, require_positive_int
from ddr_eval.models.archs.registry import ARCHS

ACTIVATIONS = ("relu", "prelu", "leakyrelu")
_BODY_KEY = re.compile(r"body\.(\d+)\.(weight|bias)$")


def _activation(act_type: str, num_feat: int) -> nn.Module:
    """Real-ESRGAN's choices; not in-place here, so a tap on a conv keeps what the conv computed."""
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    return nn.ReLU()


@ARCHS.register()
class SRVGGNetCompact(Arch):
    """A plain stack of conv + activation at LR, one conv to ``out * upscale**2`` channels and a pixel shuffle.

    Every conv works at LR and nothing follows the shuffle except adding the nearest-upsampled
    input, so the network only learns the residual. ``body`` is one ModuleList, as in
    Real-ESRGAN: ``body.0`` the first conv, ``body.1`` its activation, then ``num_conv``
    (conv, activation) pairs, and ``body.{2 * num_conv + 2}`` the last conv.
    """

    scale_kwarg = "upscale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu") -> None:
        super().__init__()
        require_positive_int("SRVGGNetCompact", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                             num_conv=num_conv, upscale=upscale)
        require_choice("SRVGGNetCompact", "act_type", act_type, ACTIVATIONS)
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, upscale
        self.upscale = upscale
        self.num_conv = num_conv
        self.act_type = act_type

        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)])
        for _ in range(num_conv):
            self.body.extend([nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)])
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")

    def feature_taps(self) -> dict[str, str]:
        """``block{i}`` is the activation after the i-th conv (``block0`` after the first); ``deep`` the last of them."""
        blocks = {f"block{i}": f"body.{2 * i + 1}" for i in range(self.num_conv + 1)}
        return {"first": "body.0", **blocks, "deep": f"body.{2 * self.num_conv + 1}",
                "last": f"body.{2 * self.num_conv + 2}", "upsampler": "upsampler"}

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        """Recognised by its keys: only ``body.N.weight/bias``, a conv at every even N, a PReLU at every odd N.

        ReLU and LeakyReLU variants hold no activation weights, so their activation (and hence the
        variant) cannot be read off a state dict; those need ``arch`` and ``act_type`` given.
        """
        indices = set()
        for key in state_dict:
            match = _BODY_KEY.match(key)
            if match is None:
                return None
            indices.add(int(match.group(1)))
        if not indices or indices != set(range(max(indices) + 1)) or max(indices) % 2 or max(indices) < 4:
            return None
        last = max(indices)
        convs, prelus = range(0, last + 1, 2), range(1, last, 2)
        if any(state_dict[f"body.{i}.weight"].ndim != 4 for i in convs):
            return None
        if any(state_dict[f"body.{i}.weight"].ndim != 1 for i in prelus):
            return None
        num_out_ch = in_ch(state_dict, "body.0.weight")  # as many output as input channels, as published
        upscale = math.isqrt(out_ch(state_dict, f"body.{last}.weight") // num_out_ch)
        if upscale < 1 or num_out_ch * upscale * upscale != out_ch(state_dict, f"body.{last}.weight"):
            return None
        return {
            "num_in_ch": num_out_ch,
            "num_out_ch": num_out_ch,
            "num_feat": out_ch(state_dict, "body.0.weight"),
            "num_conv": last // 2 - 1,
            "upscale": upscale,
            "act_type": "prelu",
        }
