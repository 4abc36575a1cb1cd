"""DDR-guided blind SR: an SRResNet generator modulated by an embedding of the degradation.

The DDR authors' blind-SR network (lyh-18/DegAE_DegradationAutoencoder) reads the deep
features of a **frozen** GAN-trained, global-residual MSRResNet (the DDR extractor, tapped at
the output of its last residual block, at LR resolution), encodes them with a small
degradation encoder (strided convolutions, global pooling, a two-layer MLP) into a 512-d
embedding, and lets that embedding modulate the SR generator's features. Here the modulation is
SFT-style: every residual block scales and shifts its output per channel,
``x + body(x) * (1 + gamma) + beta``, with ``(gamma, beta)`` a linear map of a shared
projection of the embedding, initialised to zero so an untrained condition is the identity.

``condition="oracle"`` is the same generator conditioned on the true degradation parameters
(blur sigma, noise sigma, normalised) through an MLP to the same 512-d embedding: the upper
bound a DDR-guided model can approach. The harness calls networks with the LR batch alone, so
an oracle model takes its parameters from :meth:`DDRConditionedSR.set_condition` when
``forward`` gets none.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ddr_eval.models.archs.base import Arch, require_choice, require_positive_int
from ddr_eval.models.archs.registry import ARCHS
from ddr_eval.models.archs.srresnet import MSRResNet

CONDITIONS = ("ddr", "oracle")
ORACLE_SCALE = (2.5, 25.0)
"""Blur sigma and noise sigma (0-255) that map to 1.0 in the oracle's normalised parameters."""


class ModulatedBlock(nn.Module):
    """Residual block without BN whose residual is scaled and shifted per channel by the condition."""

    def __init__(self, num_feat: int, modulation_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.sft = nn.Linear(modulation_dim, 2 * num_feat)
        nn.init.zeros_(self.sft.weight)
        nn.init.zeros_(self.sft.bias)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.sft(modulation)[:, :, None, None].chunk(2, dim=1)
        return x + self.conv2(F.relu(self.conv1(x))) * (1 + gamma) + beta


def degradation_encoder(in_ch: int, embed_dim: int) -> nn.Sequential:
    """Strided convolutions, global average pooling and a two-layer MLP: DDR map -> embedding."""
    return nn.Sequential(
        nn.Conv2d(in_ch, 32, 3, 2, 1), nn.LeakyReLU(0.1),
        nn.Conv2d(32, 64, 3, 2, 1), nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 64), nn.LeakyReLU(0.1),
        nn.Linear(64, embed_dim),
    )


@ARCHS.register()
class DDRConditionedSR(Arch):
    """SRResNet generator with SFT modulation from a DDR (or oracle) degradation embedding."""

    scale_kwarg = "upscale"

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 24, num_block: int = 8,
                 upscale: int = 2, condition: str = "ddr", embed_dim: int = 512, modulation_dim: int = 32,
                 extractor: dict[str, Any] | None = None) -> None:
        super().__init__()
        require_positive_int("DDRConditionedSR", num_feat=num_feat, num_block=num_block, embed_dim=embed_dim,
                             modulation_dim=modulation_dim)
        require_choice("DDRConditionedSR", "upscale", upscale, (2, 3, 4))
        require_choice("DDRConditionedSR", "condition", condition, CONDITIONS)
        self.in_channels, self.out_channels, self.scale_factor = num_in_ch, num_out_ch, upscale
        self.upscale, self.num_block, self.condition = upscale, num_block, condition
        if condition == "ddr":
            self.extractor = MSRResNet(**(extractor or {"num_feat": 32, "num_block": 8, "upscale": upscale}))
            self.extractor.requires_grad_(False)
            self.encoder = degradation_encoder(self.extractor.conv_first.out_channels, embed_dim)
        else:
            self.encoder = nn.Sequential(nn.Linear(len(ORACLE_SCALE), 64), nn.LeakyReLU(0.1),
                                         nn.Linear(64, embed_dim))
            self.register_buffer("oracle_params", torch.zeros(1, len(ORACLE_SCALE)), persistent=False)
        self.projection = nn.Sequential(nn.Linear(embed_dim, modulation_dim), nn.LeakyReLU(0.1))
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.ModuleList(ModulatedBlock(num_feat, modulation_dim) for _ in range(num_block))
        stages = 2 if upscale == 4 else 1
        factor = 2 if upscale == 4 else upscale
        self.upconvs = nn.ModuleList(nn.Conv2d(num_feat, num_feat * factor**2, 3, 1, 1) for _ in range(stages))
        self.pixel_shuffle = nn.PixelShuffle(factor)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1)

    def train(self, mode: bool = True) -> "DDRConditionedSR":
        super().train(mode)
        if self.condition == "ddr":
            self.extractor.eval()  # frozen: its DDR must not drift with train-mode layers
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def set_condition(self, params: torch.Tensor | tuple[float, float]) -> None:
        """Oracle models: the true (blur sigma, noise sigma 0-255) used when ``forward`` gets none."""
        self.oracle_params = normalise_oracle(params).to(self.conv_first.weight)

    def ddr(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen extractor's deep features (its last residual block, LR resolution)."""
        with torch.no_grad():
            return self.extractor.body(self.extractor.lrelu(self.extractor.conv_first(x)))

    def embed(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        if self.condition == "ddr":
            return self.encoder(self.ddr(x))
        if params is None:
            params = self.oracle_params.expand(x.shape[0], -1)
        return self.encoder(params.to(x))

    def forward(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """``params``: normalised oracle parameters per sample (:func:`normalise_oracle`); DDR models ignore it."""
        modulation = self.projection(self.embed(x, params))
        out = self.lrelu(self.conv_first(x))
        for block in self.body:
            out = block(out, modulation)
        for upconv in self.upconvs:
            out = self.lrelu(self.pixel_shuffle(upconv(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)

    def feature_taps(self) -> dict[str, str]:
        taps = {"first": "conv_first"}
        taps.update({f"block{i}": f"body.{i}" for i in range(self.num_block)})
        taps["deep"] = f"body.{self.num_block - 1}"
        taps["embedding"] = "encoder"
        if self.condition == "ddr":
            taps["ddr"] = f"extractor.body.{self.extractor.num_block - 1}"
        taps.update({"hr": "conv_hr", "last": "conv_last"})
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        """Never guessed from weights: ddr-eval's own checkpoints of it carry arch and kwargs in metadata."""
        return None


def normalise_oracle(params: torch.Tensor | tuple[float, float]) -> torch.Tensor:
    """(blur sigma, noise sigma 0-255) -> the oracle's input, each divided by :data:`ORACLE_SCALE`."""
    tensor = torch.as_tensor(params, dtype=torch.float32).reshape(-1, len(ORACLE_SCALE))
    return tensor / torch.tensor(ORACLE_SCALE)
