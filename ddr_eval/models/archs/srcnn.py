"""SRCNN (Dong et al. 2014), mapping LR to HR by upsampling inside ``forward``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ddr_eval.core.errors import UserError
from ddr_eval.models.archs.base import Arch, has_keys, in_ch, out_ch, require_positive_int
from ddr_eval.models.archs.registry import ARCHS


@ARCHS.register()
class SRCNN(Arch):
    """Three convs (patch extraction, non-linear mapping, reconstruction) on a bicubic upsample.

    Classic SRCNN takes the bicubic-upsampled image as input; doing that upsampling here
    (``F.interpolate``, bicubic, ``align_corners=False``) gives it the same LR -> HR interface
    as every other network. ``upscale`` has no weights, so it cannot be read off a checkpoint.
    """

    scale_kwarg = "upscale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_feat2: int = 32,
                 kernel_sizes: Sequence[int] = (9, 5, 5), upscale: int = 2) -> None:
        super().__init__()
        require_positive_int("SRCNN", num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat,
                             num_feat2=num_feat2, upscale=upscale)
        kernel_sizes = tuple(kernel_sizes)
        if len(kernel_sizes) != 3 or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise UserError(f"SRCNN: kernel_sizes must be three odd positive integers, got {kernel_sizes!r}")
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, upscale
        self.upscale = upscale
        k1, k2, k3 = kernel_sizes
        self.conv1 = nn.Conv2d(num_in_ch, num_feat, k1, 1, k1 // 2)
        self.conv2 = nn.Conv2d(num_feat, num_feat2, k2, 1, k2 // 2)
        self.conv3 = nn.Conv2d(num_feat2, num_out_ch, k3, 1, k3 // 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.upscale, mode="bicubic", align_corners=False)
        return self.conv3(self.relu(self.conv2(self.relu(self.conv1(x)))))

    def feature_taps(self) -> dict[str, str]:
        return {"first": "conv1", "block0": "conv1", "block1": "conv2", "deep": "conv2", "last": "conv3"}

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        expected = {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
        if not has_keys(state_dict, *expected) or set(state_dict) != expected:
            return None
        return {
            "num_in_ch": in_ch(state_dict, "conv1.weight"),
            "num_out_ch": out_ch(state_dict, "conv3.weight"),
            "num_feat": out_ch(state_dict, "conv1.weight"),
            "num_feat2": out_ch(state_dict, "conv2.weight"),
            "kernel_sizes": [int(state_dict[f"conv{i}.weight"].shape[-1]) for i in (1, 2, 3)],
        }
