"""Unpaired CinCGAN training (Yuan et al., CVPRW 2018), the ``task: cincgan`` of a recipe.

Degraded LR patches and clean HR patches come from *different* training photographs (the
split is by image, alternating), so no pair of inputs and targets is ever seen:

* inner cycle (LR -> clean LR): ``G1 = model.denoiser``, reverse ``G2``, discriminator ``D1`` on
  clean LR (the bicubic downsampling of the clean HR patches). Losses: least-squares GAN on
  ``G1(x)``, cycle ``||G2(G1(x)) - x||^2``, identity ``|G1(y) - y|`` on clean LR ``y``, total
  variation of ``G1(x)``;
* outer cycle (clean LR -> HR): ``SR = model.sr``, down-scaler ``G3``, discriminator ``D2`` on
  HR. Losses: least-squares GAN on ``SR(G1(x))``, cycle ``||G3(SR(G1(x))) - x||^2`` back to the
  degraded input, identity ``|SR(y) - y_hr|`` on the clean pair, total variation of the output;
  it trains ``G1`` jointly, as the paper's final stage does.

The loss weights are the recipe's ``cincgan:`` section (the paper's by default). Every batch is
drawn from ``(seed, step)`` like the other recipes, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddr_eval.degradations import build_chain
from ddr_eval.models.archs.cincgan import Downscaler, LRGenerator, PatchDiscriminator
from ddr_eval.training.sampler import PairSampler
from ddr_eval.training.trainer import Trainer, learning_rate_at, to_nchw


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))


class CinCGANTrainer(Trainer):
    """:class:`Trainer` with CinCGAN's two cycles; the saved model is the deployed ``sr(denoiser(x))``."""

    def __init__(self, recipe, out_dir, **kwargs):
        super().__init__(recipe, out_dir, **kwargs)
        degraded_images = self.train_images[0::2]
        clean_images = self.train_images[1::2]
        chains = [build_chain(chain) for chain in recipe.degradations]
        patch = recipe.data.patch_size
        self.degraded = PairSampler(degraded_images, chains, patch, recipe.seed)
        self.clean = PairSampler(clean_images, [build_chain([{"type": "bicubic", "scale": recipe.scale}])], patch,
                                 recipe.seed + 1)
        self.reverse = LRGenerator()
        self.downscaler = Downscaler(recipe.scale)
        self.d_lr, self.d_hr = PatchDiscriminator(), PatchDiscriminator()
        generators = [*self.model.parameters(), *self.reverse.parameters(), *self.downscaler.parameters()]
        self.optimizer = torch.optim.Adam(generators, lr=recipe.lr, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam([*self.d_lr.parameters(), *self.d_hr.parameters()], lr=recipe.lr,
                                            betas=(0.5, 0.999))

    def _step(self, step: int) -> dict[str, float]:
        for optimizer in (self.optimizer, self.d_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(self.recipe, step)
        x = to_nchw(self.degraded.batch(step, self.recipe.batch_size).lr)
        clean = self.clean.batch(step, self.recipe.batch_size)
        y, y_hr = to_nchw(clean.lr), to_nchw(clean.hr)
        w = self.recipe.cincgan
        for module in (self.model, self.reverse, self.downscaler):
            module.train()
        self.d_lr.requires_grad_(False)
        self.d_hr.requires_grad_(False)
        denoised = self.model.denoiser(x)
        sr = self.model.sr(denoised)
        losses = {
            "gan_lr": _lsgan(self.d_lr(denoised), True),
            "cycle_lr": F.mse_loss(self.reverse(denoised), x),
            "identity_lr": F.l1_loss(self.model.denoiser(y), y),
            "tv_lr": total_variation(denoised),
            "gan_hr": _lsgan(self.d_hr(sr), True),
            "cycle_hr": F.mse_loss(self.downscaler(sr), x),
            "identity_hr": F.l1_loss(self.model.sr(y), y_hr),
            "tv_hr": total_variation(sr),
        }
        total = (w.gan * (losses["gan_lr"] + losses["gan_hr"]) + w.cycle * (losses["cycle_lr"] + losses["cycle_hr"])
                 + w.identity * (losses["identity_lr"] + losses["identity_hr"])
                 + w.tv_lr * losses["tv_lr"] + w.tv_hr * losses["tv_hr"])
        self._apply(self.optimizer, total)
        self.d_lr.requires_grad_(True)
        self.d_hr.requires_grad_(True)
        d_loss = (_lsgan(self.d_lr(y), True) + _lsgan(self.d_lr(denoised.detach()), False)
                  + _lsgan(self.d_hr(y_hr), True) + _lsgan(self.d_hr(sr.detach()), False))
        self._apply(self.d_optimizer, d_loss)
        return {**{k: v.item() for k, v in losses.items()}, "d": d_loss.item()}

    def _resumable(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "reverse": self.reverse,
                "downscaler": self.downscaler, "d_lr": self.d_lr, "d_hr": self.d_hr, "d_optimizer": self.d_optimizer}
