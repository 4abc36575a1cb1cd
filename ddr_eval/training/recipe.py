"""Training recipes: the YAML that reproduces a zoo checkpoint.

A recipe pins everything a run depends on (architecture, data split, degradations, loss,
optimiser, iterations, seed), so ``ddr-eval zoo train NAME`` on another machine retraces the
same run. Recipes live in ``model_zoo/recipes/<name>.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from ddr_eval.core.specs import StrictModel
from ddr_eval.config.errors import load_yaml_mapping, validation_error_to_user_error



class TrainData(StrictModel):
    """Where training patches come from: the train split of an image source."""

    source: str = "embedded"
    test_images: tuple[str, ...] | None = None
    patch_size: int = Field(64, gt=0, description="HR crop size (classifiers: LR crop size)")


class LossSpec(StrictModel):
    """Pixel loss plus an optional adversarial term (vanilla GAN with BCE, as SRGAN/ESRGAN)."""

    pixel: Literal["l1", "mse"] = "l1"
    pixel_weight: float = Field(1.0, ge=0)
    gan_weight: float = Field(0.0, ge=0)


class DiscriminatorSpec(StrictModel):
    arch: str = "VGGStyleDiscriminator"
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    lr: float = Field(1e-4, gt=0)


class CycleLossSpec(StrictModel):
    """CinCGAN's loss weights (Yuan et al. 2018: GAN 1, cycle 10, identity 5, TV 0.5 inner / 2 outer)."""

    gan: float = Field(1.0, ge=0)
    cycle: float = Field(10.0, ge=0)
    identity: float = Field(5.0, ge=0)
    tv_lr: float = Field(0.5, ge=0)
    tv_hr: float = Field(2.0, ge=0)


class Recipe(StrictModel):
    """One zoo entry's training run."""

    name: str
    description: str = ""
    task: Literal["sr", "conditioned_sr", "cincgan", "classification"] = Field(
        "sr", description="conditioned_sr: a DDRConditionedSR generator, fed the true degradation parameters; "
        "cincgan: unpaired cycle-in-cycle training (ddr_eval.training.cincgan)")
    arch: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    scale: int = Field(2, ge=1)
    data: TrainData = TrainData()
    degradations: list[list[dict[str, Any]]] = Field(
        default_factory=lambda: [[{"type": "bicubic", "scale": 2}]],
        description="chains sampled uniformly per patch; each chain must downsample by `scale`",
    )
    loss: LossSpec = LossSpec()
    cincgan: CycleLossSpec = CycleLossSpec()
    discriminator: DiscriminatorSpec | None = None
    init_from: str | None = Field(None, description="zoo name whose weights start this run")
    extractor_from: str | None = Field(
        None, description="conditioned_sr with a DDR condition: the zoo SR model whose weights are the frozen extractor")
    iterations: int = Field(gt=0)
    batch_size: int = Field(16, gt=0)
    lr: float = Field(2e-4, gt=0)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = Field(0.5, gt=0, le=1)
    seed: int = 0
    snapshots: tuple[int, ...] = Field((), description="iterations at which to keep a checkpoint")
    log_every: int = Field(50, gt=0)
    checkpoint_every: int = Field(250, gt=0, description="resume-state interval")

    @model_validator(mode="after")
    def _check_consistency(self) -> "Recipe":
        if self.loss.gan_weight > 0 and self.discriminator is None:
            raise ValueError("loss.gan_weight > 0 needs a `discriminator:` section")
        if self.extractor_from is not None and self.task != "conditioned_sr":
            raise ValueError("extractor_from needs task: conditioned_sr")
        if any(s < 0 or s > self.iterations for s in self.snapshots):
            raise ValueError(f"snapshots must lie in [0, {self.iterations}]")
        return self


def load_recipe(path: str | Path) -> Recipe:
    """Parse and validate a recipe file; errors name the file and the field."""
    raw = load_yaml_mapping(path)
    try:
        return Recipe.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError
        raise validation_error_to_user_error(exc, path) from None


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
