"""Random training pairs drawn from images, reproducible from (seed, step) alone.

Each step's generator is ``default_rng([seed, step])``, so a resumed run draws exactly the
batches an uninterrupted one would without storing any random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_eval.data import Image
from ddr_eval.degradations import DegradationChain, build_chain
from ddr_eval.degradations.chain import blur_and_noise_sigmas
from ddr_eval.core.errors import UserError


@dataclass(frozen=True)
class Batch:
    lr: np.ndarray  # N,h,w,3 float32
    hr: np.ndarray  # N,H,W,3 float32
    image_index: np.ndarray  # N int64: the content label
    degradation: np.ndarray | None = None  # N,2 float32: (blur sigma, noise sigma 0-255), 0 = absent


class PairSampler:
    """Crops HR patches uniformly over images and degrades each with a random chain."""

    def __init__(self, images: list[Image], chains: list[DegradationChain], patch_size: int, seed: int):
        if not images:
            raise UserError("training needs at least one image")
        scales = {chain.scale for chain in chains}
        if len(scales) != 1:
            raise UserError(f"all training degradation chains must share one scale, got {sorted(scales)}")
        self.scale = scales.pop()
        if patch_size % self.scale:
            raise UserError(f"patch_size {patch_size} is not a multiple of the scale {self.scale}")
        for image in images:
            h, w = image.pixels.shape[:2]
            if min(h, w) < patch_size:
                raise UserError(f"image {image.name} ({w}x{h}) is smaller than the patch {patch_size}")
        self.images = images
        self.chains = chains
        self.patch_size = patch_size
        self.seed = seed

    def batch(self, step: int, batch_size: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        lrs, hrs, labels, params = [], [], [], []
        for _ in range(batch_size):
            index = int(rng.integers(len(self.images)))
            hr = _augment(self._crop(self.images[index].pixels, rng), rng)
            lr, degradation = self._degrade(hr, int(rng.integers(len(self.chains))), rng)
            lrs.append(lr)
            hrs.append(hr)
            labels.append(index)
            params.append(degradation)
        degradation = None if params[0] is None else np.asarray(params, dtype=np.float32)
        return Batch(np.stack(lrs).astype(np.float32), np.stack(hrs), np.asarray(labels, dtype=np.int64), degradation)

    def _degrade(self, hr: np.ndarray, chain: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple | None]:
        """The LR of ``hr`` through chain number ``chain``, and its parameters if the sampler records them."""
        return self.chains[chain].apply(hr, rng), None

    def _crop(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = pixels.shape[:2]
        top = int(rng.integers(h - self.patch_size + 1))
        left = int(rng.integers(w - self.patch_size + 1))
        return pixels[top : top + self.patch_size, left : left + self.patch_size]


def _augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The usual SR augmentation: a random horizontal flip and a random multiple of 90 degrees."""
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(np.rot90(patch, int(rng.integers(4))))


def _draw(spec: dict, rng: np.random.Generator) -> dict:
    """A step spec with each ``[low, high]`` range replaced by a uniform draw from it."""
    return {key: float(rng.uniform(*value)) if isinstance(value, (list, tuple)) else value
            for key, value in spec.items()}


class ConditionedSampler(PairSampler):
    """:class:`PairSampler` that also returns each patch's true degradation parameters.

    A chain with ranges (``sigma: [0.5, 2.5]``) draws its values inside the op, out of sight;
    conditioned training (the oracle model) needs them, so this sampler draws every range
    itself from the step's generator and applies a chain with those fixed values.
    """

    def __init__(self, images: list[Image], chain_specs: list[list[dict]], patch_size: int, seed: int):
        self.chain_specs = [[dict(step) for step in chain] for chain in chain_specs]
        super().__init__(images, [build_chain(chain) for chain in chain_specs], patch_size, seed)

    def _degrade(self, hr: np.ndarray, chain: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
        drawn = [_draw(spec, rng) for spec in self.chain_specs[chain]]
        return build_chain(drawn).apply(hr, rng), blur_and_noise_sigmas(drawn)

    def midpoint_chains(self) -> list[tuple[list[dict], tuple[float, float]]]:
        """Each chain family at the middle of its ranges, with its parameters: the held-out check."""
        chains = []
        for chain in self.chain_specs:
            fixed = [{k: float(np.mean(v)) if isinstance(v, (list, tuple)) else v for k, v in step.items()}
                     for step in chain]
            chains.append((fixed, blur_and_noise_sigmas(fixed)))
        return chains
