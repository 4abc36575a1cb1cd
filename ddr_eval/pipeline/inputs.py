"""Stage 1 of a run: images -> HR patches -> one LR array per degradation set and split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddr_eval.data import PatchSet, load_images, sample_patches, split_images
from ddr_eval.data.images import DEFAULT_TEST_IMAGES, EMBEDDED_IMAGES
from ddr_eval.degradations import degrade_patches
from ddr_eval.errors import UserError
from ddr_eval.suite.loader import LoadedSuite


@dataclass(frozen=True)
class DegradedSet:
    """LR inputs of one degradation set on one split, with their HR targets and content labels."""

    name: str
    split: str
    lr: np.ndarray  # N,h,w,3 float32
    patches: PatchSet

    @property
    def key(self) -> str:
        return f"{self.split}/{self.name}"


@dataclass(frozen=True)
class SuiteInputs:
    eval_sets: dict[str, DegradedSet]  # by degradation set name
    train_sets: dict[str, DegradedSet]  # empty unless a metric needs a training split


def _is_embedded(source: str) -> bool:
    return source in ("", "embedded")


def _splits(loaded: LoadedSuite):
    data = loaded.suite.data
    images = load_images(data.source, names=data.images)
    _require_patch_fits(images, data.patch_size, loaded.source)
    test_names = data.test_images
    if test_names is None and _is_embedded(data.source):
        present = {image.name for image in images}
        test_names = tuple(n for n in DEFAULT_TEST_IMAGES if n in present) or None
    train, test = split_images(images, test_names=test_names, test_fraction=data.test_fraction, seed=loaded.suite.seed)
    return {"train": train, "test": test, "all": images}


def _require_patch_fits(images, patch_size: int, source: str) -> None:
    """Every image must hold one HR patch, whichever split it falls in.

    Checked on all images, not only the split being sampled: an image that no split can ever
    use is a mistake in the folder or in ``data.patch_size``, and it should not depend on the
    seeded split whether the run notices.
    """
    too_small = [image for image in images if min(image.pixels.shape[:2]) < patch_size]
    if too_small:
        first = too_small[0]
        height, width = first.pixels.shape[:2]
        more = f" (and {len(too_small) - 1} more)" if len(too_small) > 1 else ""
        raise UserError(f"{source}: data.patch_size: image {first.name!r} ({width}x{height}) is smaller than "
                        f"the patch size {patch_size}{more}; remove it or use smaller patches")


def prepare_inputs(loaded: LoadedSuite, need_train: bool) -> SuiteInputs:
    """Sample HR patches and degrade them with every chain; bit-identical for the same suite."""
    suite = loaded.suite
    splits = _splits(loaded)

    def degrade(split: str) -> dict[str, DegradedSet]:
        patches = sample_patches(
            splits[split], suite.data.patch_size, suite.data.patches_per_image, seed=suite.seed, multiple_of=loaded.scale
        )
        return {
            name: DegradedSet(
                name,
                split,
                degrade_patches(chain, patches.hr, patches.image_index, patches.patch_index, suite.seed, f"{split}/{name}"),
                patches,
            )
            for name, chain in loaded.chains.items()
        }

    eval_sets = degrade(suite.data.eval_split)
    train_sets = degrade("train") if need_train else {}
    return SuiteInputs(eval_sets, train_sets)


__all__ = ["DegradedSet", "SuiteInputs", "prepare_inputs", "EMBEDDED_IMAGES"]
