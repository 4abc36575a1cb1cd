"""The training loop behind ``ddr-eval zoo train``: pixel loss, optional GAN, snapshots, resume.

Everything random is derived from the recipe seed: the network initialisation from
``torch.manual_seed(seed)`` and each batch from ``(seed, step)``, so a run resumed from its
last state continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ddr_eval.core.atomic import atomic_write
from ddr_eval.data import load_images, split_images
from ddr_eval.data.images import DEFAULT_TEST_IMAGES, ZOO_HELD_OUT_IMAGES
from ddr_eval.degradations import build_chain
from ddr_eval.models.archs import ARCHS
from ddr_eval.models.checkpoint import load_model, save_model
from ddr_eval.models.archs.conditioned import normalise_oracle
from ddr_eval.training.evaluate import evaluate_classifier, evaluate_conditioned, evaluate_sr
from ddr_eval.training.recipe import Recipe, dump_recipe
from ddr_eval.training.sampler import ConditionedSampler, PairSampler

RESUME_FILE = "resume.pt"
MONITOR_PATCHES_PER_IMAGE = 8  # 4 held-out photographs x 8 patches x 3 sets: a second per snapshot on a CPU


def snapshot_monitor_suite(recipe: Recipe) -> dict:
    """The fixed inputs the trainer's DDRMonitor measures every snapshot on: held-out photographs,
    clean / blur / noise at the recipe's scale, CHI by degradation on standardized deep features."""
    return {
        "name": f"{recipe.name}-snapshots", "seed": recipe.seed, "scale": recipe.scale,
        "data": {"source": recipe.data.source, "test_images": recipe.data.test_images or (
                     list(ZOO_HELD_OUT_IMAGES) if recipe.data.source in ("", "embedded") else None),
                 "patch_size": 64,
                 "patches_per_image": MONITOR_PATCHES_PER_IMAGE},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic"}]},
                         {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic"}]},
                         {"name": "noise", "chain": [{"type": "bicubic"}, {"type": "gaussian_noise", "sigma": 20}]}],
        "models": [recipe.name], "layers": ["deep"],
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw"}],
    }


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, float]
    snapshots: list[tuple[int, Path]] = field(default_factory=list)
    seconds: float = 0.0


def _build(arch: str, kwargs: dict) -> nn.Module:
    return ARCHS.get(arch)(**kwargs)


def to_nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def learning_rate_at(recipe: Recipe, step: int) -> float:
    return recipe.lr * recipe.lr_gamma ** sum(step >= m for m in recipe.lr_milestones)


class Trainer:
    """Trains one recipe into ``out_dir`` (model.safetensors, snapshots/, train_log.jsonl, metrics.json)."""

    def __init__(self, recipe: Recipe, out_dir: Path, init_checkpoint: Path | None = None, progress: bool = True,
                 monitor: bool = True, extractor_checkpoint: Path | None = None):
        self.recipe = recipe
        self.out_dir = Path(out_dir)
        self.progress = progress
        # DDR of each snapshot (ddr_log.csv, ddr_over_training.png); it never changes the trained numbers
        self.monitor_snapshots = monitor and recipe.task == "sr"
        self._monitor = None
        torch.manual_seed(recipe.seed)
        self.model = _build(recipe.arch, recipe.arch_kwargs)
        if extractor_checkpoint is not None:  # the frozen DDR extractor of a conditioned model
            self.model.extractor.load_state_dict(load_model(extractor_checkpoint).module.state_dict())
        if init_checkpoint is not None:
            self.model.load_state_dict(load_model(init_checkpoint).module.state_dict())
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=recipe.lr, betas=(0.9, 0.99))
        self.discriminator = None
        if recipe.discriminator is not None:
            spec = recipe.discriminator
            self.discriminator = _build(spec.arch, spec.arch_kwargs)
            self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=spec.lr, betas=(0.9, 0.99))
        images = load_images(recipe.data.source)
        if recipe.data.test_images:
            self.train_images, self.test_images = split_images(images, test_names=recipe.data.test_images)
        else:  # train on the default split's train images; measure on the zoo's own four held-out photos
            self.train_images, test = split_images(images, test_names=DEFAULT_TEST_IMAGES)
            held_out = [image for image in test if image.name in ZOO_HELD_OUT_IMAGES]
            self.test_images = held_out or test
        if recipe.task == "conditioned_sr":
            self.sampler = ConditionedSampler(self.train_images, recipe.degradations, recipe.data.patch_size,
                                              recipe.seed)
        else:
            chains = [build_chain(chain) for chain in recipe.degradations]
            self.sampler = PairSampler(self.train_images, chains, recipe.data.patch_size, recipe.seed)

    # -- loop ---------------------------------------------------------------------------
    def train(self) -> TrainResult:
        start = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "recipe.yaml").write_text(dump_recipe(self.recipe))
        step = self._resume()
        if step == 0:
            (self.out_dir / "train_log.jsonl").unlink(missing_ok=True)
            if self.monitor_snapshots:
                self.monitor().truncate(-1)
            self._maybe_snapshot(0)
        bar = tqdm(total=self.recipe.iterations, initial=step, desc=self.recipe.name,
                   disable=not self.progress or not sys.stderr.isatty())  # no \r spam in a log
        running: dict[str, list[float]] = {}
        while step < self.recipe.iterations:
            losses = self._step(step)
            step += 1
            for key, value in losses.items():
                running.setdefault(key, []).append(value)
            if step % self.recipe.log_every == 0 or step == self.recipe.iterations:
                self._log(step, running, time.perf_counter() - start)
                bar.set_postfix({k: f"{np.mean(v):.4f}" for k, v in running.items()})
                running = {}
            self._maybe_snapshot(step)
            if step % self.recipe.checkpoint_every == 0:
                self._save_resume(step)
            bar.update(1)
        bar.close()
        return self._finish(time.perf_counter() - start)

    def _step(self, step: int) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate_at(self.recipe, step)
        batch = self.sampler.batch(step, self.recipe.batch_size)
        x = to_nchw(batch.lr)
        self.model.train()
        if self.recipe.task == "classification":
            loss = F.cross_entropy(self.model(x), torch.from_numpy(batch.image_index))
            self._apply(self.optimizer, loss)
            return {"ce": loss.item()}
        condition = normalise_oracle(batch.degradation) if self.recipe.task == "conditioned_sr" else None
        return self._sr_step(x, to_nchw(batch.hr), condition)

    def _sr_step(self, x: torch.Tensor, target: torch.Tensor, condition: torch.Tensor | None = None
                 ) -> dict[str, float]:
        loss_spec = self.recipe.loss
        sr = self.model(x) if condition is None else self.model(x, condition)
        pixel = F.l1_loss(sr, target) if loss_spec.pixel == "l1" else F.mse_loss(sr, target)
        losses = {"pixel": pixel.item()}
        total = loss_spec.pixel_weight * pixel
        if self.discriminator is not None and loss_spec.gan_weight > 0:
            for p in self.discriminator.parameters():
                p.requires_grad_(False)
            fake_logit = self.discriminator(sr)
            adversarial = F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))
            total = total + loss_spec.gan_weight * adversarial
            losses["g_gan"] = adversarial.item()
        self._apply(self.optimizer, total)
        if self.discriminator is not None and loss_spec.gan_weight > 0:
            losses["d"] = self._discriminator_step(sr.detach(), target)
        return losses

    def _discriminator_step(self, fake: torch.Tensor, real: torch.Tensor) -> float:
        for p in self.discriminator.parameters():
            p.requires_grad_(True)
        self.discriminator.train()
        real_logit = self.discriminator(real)
        fake_logit = self.discriminator(fake)
        loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) + (
            F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
        )
        self._apply(self.d_optimizer, loss)
        return loss.item()

    @staticmethod
    def _apply(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # -- files --------------------------------------------------------------------------
    def _log(self, step: int, running: dict[str, list[float]], elapsed: float) -> None:
        record = {"iter": step, "lr": learning_rate_at(self.recipe, step - 1), "seconds": round(elapsed, 1)}
        record.update({k: round(float(np.mean(v)), 6) for k, v in running.items()})
        with open(self.out_dir / "train_log.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")

    def _save(self, path: Path, iteration: int) -> None:
        purpose = "classification" if self.recipe.task == "classification" else "sr"  # conditioned_sr is SR
        save_model(
            path,
            self.model,
            self.recipe.arch,
            self.recipe.arch_kwargs,
            purpose=purpose,
            extra_metadata={"recipe": self.recipe.name, "iteration": str(iteration)},
        )

    def _maybe_snapshot(self, step: int) -> None:
        if step in self.recipe.snapshots:
            self._save(self.out_dir / "snapshots" / f"iter_{step:06d}.safetensors", step)
            if self.monitor_snapshots:
                self.monitor().step(self.model, step, force=True)

    def monitor(self):
        """The DDRMonitor of the snapshot series, built on first use (its inputs once per run)."""
        if self._monitor is None:
            from ddr_eval.workflows.monitor import DDRMonitor

            self._monitor = DDRMonitor(snapshot_monitor_suite(self.recipe), every=1, name=self.recipe.name,
                                       seed=self.recipe.seed, log_dir=self.out_dir)
        return self._monitor

    def _resumable(self) -> dict:
        """Everything a resume state holds, by name: each has ``state_dict`` / ``load_state_dict``."""
        parts = {"model": self.model, "optimizer": self.optimizer}
        if self.discriminator is not None:
            parts.update({"discriminator": self.discriminator, "d_optimizer": self.d_optimizer})
        return parts

    def _resume_state(self) -> dict:
        return {name: part.state_dict() for name, part in self._resumable().items()}

    def _save_resume(self, step: int) -> None:
        state = {"step": step, **self._resume_state()}
        atomic_write(self.out_dir / RESUME_FILE, lambda tmp: torch.save(state, tmp))

    def _resume(self) -> int:
        path = self.out_dir / RESUME_FILE
        if not path.exists():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, part in self._resumable().items():
            part.load_state_dict(state[name])
        self._truncate_log(state["step"])
        if self.monitor_snapshots:
            self.monitor().truncate(int(state["step"]))
        return int(state["step"])

    def _truncate_log(self, step: int) -> None:
        log = self.out_dir / "train_log.jsonl"
        if log.exists():
            kept = [line for line in log.read_text().splitlines() if json.loads(line)["iter"] <= step]
            log.write_text("".join(line + "\n" for line in kept))

    def _finish(self, seconds: float) -> TrainResult:
        checkpoint = self.out_dir / "model.safetensors"
        self._save(checkpoint, self.recipe.iterations)
        metrics = self.evaluate()
        metrics["train_seconds"] = round(seconds, 1)
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (self.out_dir / RESUME_FILE).unlink(missing_ok=True)
        if self._monitor is not None:
            self._monitor.finish()
        return TrainResult(checkpoint, metrics, self._series(checkpoint), seconds)

    def _series(self, checkpoint: Path) -> list[tuple[int, Path]]:
        """Snapshots in training order; the last iteration's is the checkpoint itself, not a copy."""
        last = self.recipe.iterations
        (self.out_dir / "snapshots" / f"iter_{last:06d}.safetensors").unlink(missing_ok=True)
        snapshots = [(int(p.stem.split("_")[1]), p) for p in (self.out_dir / "snapshots").glob("*.safetensors")]
        if last in self.recipe.snapshots:
            snapshots.append((last, checkpoint))
        return sorted(snapshots)

    def evaluate(self) -> dict[str, float]:
        if self.recipe.task == "classification":
            batch = self.sampler.batch(step=10**9, batch_size=512)  # a step index training never reaches
            return evaluate_classifier(self.model, batch.lr, batch.image_index)
        if self.recipe.task == "conditioned_sr":
            return evaluate_conditioned(self.model, self.test_images, self.sampler, self.recipe.seed)
        degraded = len(self.sampler.chains) > 1 or len(self.sampler.chains[0].steps) > 1
        metrics = evaluate_sr(self.model, self.test_images, self.sampler.scale,
                              chains=self.sampler.chains if degraded else None, seed=self.recipe.seed)
        if degraded:
            clean = evaluate_sr(self.model, self.test_images, self.sampler.scale)
            metrics.update({"clean_psnr": clean["psnr"], "clean_bicubic_psnr": clean["bicubic_psnr"],
                            "evaluated_on": "the recipe's degradation mix"})
        return metrics
