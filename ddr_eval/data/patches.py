"""High-resolution patches cut from source images, with the content label of each patch.

DDR separability asks whether features cluster by *degradation*; the content label
(``image_index``) is what lets metrics check that they do not simply cluster by *image*, and what
keeps train and test content-disjoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from ddr_eval.data.images import Image
from ddr_eval.core.errors import UserError


@dataclass(frozen=True)
class PatchSet:
    """HR patches plus, per patch, the image it came from and its index within that image."""

    hr: np.ndarray | None  # N,P,P,3 float32; None for LR-only sets (real LR photographs have no HR)
    image_index: np.ndarray  # N int64 -> position in image_names (the content label)
    patch_index: np.ndarray  # N int64, index of the patch within its image
    image_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.image_index)
        if self.hr is not None and (self.hr.ndim != 4 or self.hr.shape[-1] != 3 or len(self.hr) != n):
            raise ValueError(f"PatchSet.hr must be N,P,P,3 with one patch per label, got shape {self.hr.shape}")
        if self.image_index.shape != (n,) or self.patch_index.shape != (n,):
            raise ValueError("PatchSet.image_index and patch_index must have one entry per patch")

    def __len__(self) -> int:
        return len(self.image_index)

    @cached_property
    def patch_image_names(self) -> np.ndarray:
        """The source photograph's name of every patch, in patch order (the content label)."""
        return np.asarray([self.image_names[i] for i in self.image_index])

    def subset(self, mask: np.ndarray | Sequence[int] | Sequence[bool]) -> PatchSet:
        """The patches selected by a boolean mask or integer indices.

        ``image_names`` is kept whole so ``image_index`` values keep their meaning.
        """
        selector = np.asarray(mask)
        return PatchSet(
            hr=None if self.hr is None else self.hr[selector],
            image_index=self.image_index[selector],
            patch_index=self.patch_index[selector],
            image_names=self.image_names,
        )


def split_images(
    images: Sequence[Image],
    test_names: Sequence[str] | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> tuple[list[Image], list[Image]]:
    """Split images into content-disjoint (train, test) lists, each in the input order.

    Explicit ``test_names`` win (e.g. :data:`~ddr_eval.data.images.DEFAULT_TEST_IMAGES` for the
    embedded set); otherwise a seeded shuffle puts ``round(test_fraction * n)`` images (at least
    one, and leaving at least one) in the test split.
    """
    names = [image.name for image in images]
    _require_unique(names)
    if test_names is not None:
        unknown = [name for name in test_names if name not in names]
        if unknown:
            raise UserError(
                f"test image(s) {', '.join(map(repr, unknown))} not among the images: {', '.join(names)}"
            )
        test_set = set(test_names)
    else:
        if not 0.0 < test_fraction < 1.0:
            raise UserError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")
        if len(images) < 2:
            raise UserError(f"need at least 2 images to split into train and test, got {len(images)}")
        n_test = min(max(round(test_fraction * len(images)), 1), len(images) - 1)
        order = np.random.default_rng(seed).permutation(len(images))
        test_set = {names[i] for i in order[:n_test]}
    train = [image for image in images if image.name not in test_set]
    test = [image for image in images if image.name in test_set]
    if not train:
        raise UserError("the test images cover every image; nothing is left to train on")
    return train, test


def sample_patches(
    images: Sequence[Image],
    patch_size: int,
    patches_per_image: int,
    seed: int,
    multiple_of: int = 1,
    grid: bool = False,
) -> PatchSet:
    """Cut ``patches_per_image`` square HR patches of side ``patch_size`` from every image.

    Random mode draws top-left corners (patches may overlap) from a generator seeded by
    ``(seed, image name)``: an image gets the same patches whatever other images are loaded and
    in whatever order, so splits and subsets never reshuffle content.

    ``grid=True`` is deterministic instead: the image is tiled into non-overlapping patches
    (the grid centred so margins are even) and ``patches_per_image`` tiles evenly spread over
    the raster order are kept; an image with fewer tiles contributes all of them.

    ``patch_size`` must be a multiple of ``multiple_of`` (the SR scale) so that the LR patch
    has an integer size.
    """
    _require_positive_int("patch_size", patch_size)
    _require_positive_int("patches_per_image", patches_per_image)
    _require_positive_int("multiple_of", multiple_of)
    if patch_size % multiple_of:
        raise UserError(
            f"patch_size {patch_size} is not a multiple of the scale {multiple_of}; "
            f"use e.g. {patch_size - patch_size % multiple_of or multiple_of}"
        )
    if not images:
        raise UserError("no images to cut patches from")
    names = [image.name for image in images]
    _require_unique(names)
    for image in images:
        height, width = image.pixels.shape[:2]
        if height < patch_size or width < patch_size:
            raise UserError(
                f"image {image.name!r} ({width}x{height}) is smaller than the patch size "
                f"{patch_size}x{patch_size}"
            )

    crops, image_index, patch_index = [], [], []
    for i, image in enumerate(images):
        if grid:
            corners = _grid_corners(image.pixels.shape[:2], patch_size, patches_per_image)
        else:
            corners = _random_corners(image, patch_size, patches_per_image, seed)
        crops.append(_crop(image.pixels, corners, patch_size))
        image_index.append(np.full(len(corners), i, dtype=np.int64))
        patch_index.append(np.arange(len(corners), dtype=np.int64))
    return PatchSet(
        hr=np.concatenate(crops).astype(np.float32, copy=False),
        image_index=np.concatenate(image_index),
        patch_index=np.concatenate(patch_index),
        image_names=tuple(names),
    )


def sample_paired_patches(
    lr_images: Sequence[Image],
    hr_images: Sequence[Image],
    lr_patch_size: int,
    scale: int,
    patches_per_image: int,
    seed: int,
) -> tuple[PatchSet, np.ndarray]:
    """Aligned patches of LR/HR pairs: ``(PatchSet of HR patches, LR patches)``.

    Corners are drawn on the LR image (seeded by the pair's name, as :func:`sample_patches`)
    and multiplied by ``scale`` on the HR image, so HR patch ``i`` covers exactly the scene of LR
    patch ``i``. Each HR image must be exactly ``scale`` times its LR image (checked by the loader).
    """
    _require_positive_int("patches_per_image", patches_per_image)
    names = [image.name for image in lr_images]
    _require_unique(names)
    lr_crops, hr_crops, image_index, patch_index = [], [], [], []
    for i, (lr, hr) in enumerate(zip(lr_images, hr_images)):
        corners = _random_corners(lr, lr_patch_size, patches_per_image, seed)
        lr_crops.append(_crop(lr.pixels, corners, lr_patch_size))
        hr_crops.append(_crop(hr.pixels, corners * scale, lr_patch_size * scale))
        image_index.append(np.full(len(corners), i, dtype=np.int64))
        patch_index.append(np.arange(len(corners), dtype=np.int64))
    patches = PatchSet(np.concatenate(hr_crops).astype(np.float32, copy=False), np.concatenate(image_index),
                       np.concatenate(patch_index), tuple(names))
    return patches, np.concatenate(lr_crops).astype(np.float32, copy=False)


def _random_corners(image: Image, patch_size: int, count: int, seed: int) -> np.ndarray:
    height, width = image.pixels.shape[:2]
    rng = np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(image.name)]))
    rows = rng.integers(0, height - patch_size + 1, size=count)
    cols = rng.integers(0, width - patch_size + 1, size=count)
    return np.stack([rows, cols], axis=1)


def _grid_corners(shape: tuple[int, int], patch_size: int, count: int) -> np.ndarray:
    height, width = shape
    n_rows, n_cols = height // patch_size, width // patch_size
    top, left = (height - n_rows * patch_size) // 2, (width - n_cols * patch_size) // 2
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    corners = np.stack([top + rows.ravel() * patch_size, left + cols.ravel() * patch_size], axis=1)
    if len(corners) > count:
        keep = np.unique(np.linspace(0, len(corners) - 1, count).round().astype(np.int64))
        corners = corners[keep]
    return corners


def _crop(pixels: np.ndarray, corners: np.ndarray, patch_size: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (patch_size, patch_size), axis=(0, 1))
    # windows[r, c] is (3, P, P); move channels last to keep patches HWC.
    return np.ascontiguousarray(windows[corners[:, 0], corners[:, 1]].transpose(0, 2, 3, 1))


def _stable_hash(text: str) -> int:
    """A 64-bit hash that, unlike ``hash()``, is the same in every Python process."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def _require_unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    duplicates = sorted({name for name in names if name in seen or seen.add(name)})
    if duplicates:
        raise UserError(f"duplicate image name(s) {', '.join(map(repr, duplicates))}; names are content labels")


def _require_positive_int(label: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{label} must be a positive integer, got {value!r}")
