"""Random training pairs drawn from images, reproducible from (seed, step) alone.

Each step's generator is ``default_rng([seed, step])``, so a resumed run draws exactly the
batches an uninterrupted one would without storing any random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_eval.data import Image
from ddr_eval.degradations import DegradationChain
from ddr_eval.errors import UserError


@dataclass(frozen=True)
class Batch:
    lr: np.ndarray  # N,h,w,3 float32
    hr: np.ndarray  # N,H,W,3 float32
    image_index: np.ndarray  # N int64: the content label


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
        lrs, hrs, labels = [], [], []
        for _ in range(batch_size):
            index = int(rng.integers(len(self.images)))
            hr = _augment(self._crop(self.images[index].pixels, rng), rng)
            chain = self.chains[int(rng.integers(len(self.chains)))]
            lrs.append(chain.apply(hr, rng))
            hrs.append(hr)
            labels.append(index)
        return Batch(np.stack(lrs).astype(np.float32), np.stack(hrs), np.asarray(labels, dtype=np.int64))

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
