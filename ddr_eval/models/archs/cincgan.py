"""CinCGAN (Yuan et al., "Unsupervised Image Super-Resolution using Cycle-in-Cycle GANs", CVPRW 2018).

The network the DDR observation started from. Trained without paired data: an inner cycle maps
degraded LR to clean LR (``denoiser`` G1, with a reverse generator G2 and a discriminator on
clean LR), and an outer cycle super-resolves the cleaned LR (``sr``, an EDSR) and maps it back
down (``downscaler`` G3) with a second discriminator on HR. :class:`CinCGAN` is the deployed
chain ``sr(denoiser(x))``; the reverse generators and discriminators exist only in training
(``ddr_eval.training.cincgan``). Its DDR is read inside the SR network, as in the DDR paper.

The generators follow the paper's shape at mini scale: convolution stacks with a global skip
(the inner-cycle generators) and an EDSR for SR; the down-scaler is strided convolutions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ddr_eval.models.archs.base import Arch, require_positive_int
from ddr_eval.models.archs.edsr import EDSR
from ddr_eval.models.archs.registry import ARCHS


class LRGenerator(nn.Module):
    """LR -> LR image translator (CinCGAN's G1/G2): conv stack predicting a residual to the input."""

    def __init__(self, num_feat: int = 32, num_layers: int = 5):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.LeakyReLU(0.2)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(num_feat, 3, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Downscaler(nn.Module):
    """HR -> LR (CinCGAN's G3): strided convolutions, one stride-2 stage per factor of 2."""

    def __init__(self, scale: int, num_feat: int = 32):
        super().__init__()
        stages = {2: 1, 4: 2}[scale]
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.LeakyReLU(0.2)]
        for _ in range(stages):
            layers += [nn.Conv2d(num_feat, num_feat, 4, 2, 1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(num_feat, 3, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + nn.functional.avg_pool2d(x, self.scale)


class PatchDiscriminator(nn.Module):
    """A small fully convolutional (PatchGAN) discriminator, one logit map per image."""

    def __init__(self, num_feat: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, num_feat, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(num_feat, 2 * num_feat, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * num_feat, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@ARCHS.register()
class CinCGAN(Arch):
    """The deployed CinCGAN: ``sr(denoiser(x))`` (inner-cycle G1, then the outer cycle's EDSR)."""

    scale_kwarg = "upscale"

    def __init__(self, upscale: int = 2, num_feat: int = 32, num_block: int = 4, denoiser_feat: int = 32,
                 denoiser_layers: int = 5) -> None:
        super().__init__()
        require_positive_int("CinCGAN", num_feat=num_feat, num_block=num_block)
        self.in_channels, self.out_channels, self.scale_factor = 3, 3, upscale
        self.denoiser = LRGenerator(denoiser_feat, denoiser_layers)
        self.sr = EDSR(num_feat=num_feat, num_block=num_block, upscale=upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sr(self.denoiser(x))

    def feature_taps(self) -> dict[str, str]:
        taps = {f"sr.{name}": f"sr.{module}" for name, module in self.sr.feature_taps().items()}
        taps["deep"] = taps["sr.deep"]
        taps["denoised"] = "denoiser"
        return taps

    @classmethod
    def infer_kwargs(cls, state_dict) -> dict[str, Any] | None:
        """Never guessed from weights: ddr-eval's own checkpoints of it carry arch and kwargs in metadata."""
        return None
