"""A small VGG-style classification CNN, the baseline the DDR study contrasts SR networks with."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ddr_eval.models.archs.base import Arch, count_indexed, has_keys, in_ch, out_ch, require_positive_int
from ddr_eval.models.archs.registry import ARCHS


class ConvBlock(nn.Module):
    """3x3 conv-BN-ReLU, then a stride-2 3x3 conv-BN-ReLU that halves the size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


@ARCHS.register()
class ContentClassifier(Arch):
    """``num_block`` :class:`ConvBlock` s (width doubling from ``num_feat``, capped at 8x), global
    average pooling and a linear head producing ``num_classes`` logits.

    Trained to recognise image *content*, its deep features are expected to cluster by content
    rather than by degradation — the contrast that makes DDR in SR networks notable.
    """

    purpose = "classification"

    def __init__(self, num_in_ch: int = 3, num_classes: int = 10, num_feat: int = 32, num_block: int = 4) -> None:
        super().__init__()
        require_positive_int("ContentClassifier", num_in_ch=num_in_ch, num_classes=num_classes, num_feat=num_feat,
                             num_block=num_block)
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_classes, 1
        self.num_block = num_block
        widths = [num_feat * min(2**i, 8) for i in range(num_block)]
        self.blocks = nn.Sequential(*(ConvBlock(c_in, c_out) for c_in, c_out in zip([num_in_ch] + widths, widths)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(x)).flatten(1))

    def feature_taps(self) -> dict[str, str]:
        taps = {f"block{i}": f"blocks.{i}" for i in range(self.num_block)}
        taps.update({"first": "blocks.0", "deep": f"blocks.{self.num_block - 1}", "pooled": "pool",
                     "logits": "head"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        if not has_keys(state_dict, "blocks.0.conv1.weight", "blocks.0.bn1.weight", "head.weight"):
            return None
        return {
            "num_in_ch": in_ch(state_dict, "blocks.0.conv1.weight"),
            "num_classes": out_ch(state_dict, "head.weight"),
            "num_feat": out_ch(state_dict, "blocks.0.conv1.weight"),
            "num_block": count_indexed(state_dict, "blocks.{}.conv1.weight"),
        }
