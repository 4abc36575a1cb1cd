"""Stage 1 of a run: images -> HR patches -> one LR array per degradation set and split.

Chain sets degrade the suite's HR patches; folder sets cut their LR (and HR) patches from files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddr_eval.data import PatchSet, load_images, sample_patches, split_images
from ddr_eval.data.folders import FolderError, FolderImages, image_files, load_folder_set
from ddr_eval.data.patches import sample_paired_patches
from ddr_eval.data.images import DEFAULT_TEST_IMAGES, EMBEDDED_IMAGES, folder_image_files
from ddr_eval.degradations import degrade_patches
from ddr_eval.core.errors import UserError
from ddr_eval.config.loader import LoadedSuite


@dataclass(frozen=True)
class DegradedSet:
    """LR inputs of one degradation set on one split, with their HR targets and content labels.

    ``patches.hr`` is None for an LR-only folder set: real LR photographs have no ground truth,
    so metrics that need HR report "unavailable" for it. ``source_digest`` (folder sets) is the
    sha256 of the files' bytes, part of the feature-cache key.
    """

    name: str
    split: str
    lr: np.ndarray  # N,h,w,3 float32
    patches: PatchSet
    source_digest: str | None = None

    @property
    def key(self) -> str:
        return f"{self.split}/{self.name}"

    @property
    def has_hr(self) -> bool:
        return self.patches.hr is not None


@dataclass(frozen=True)
class SuiteInputs:
    eval_sets: dict[str, DegradedSet]  # by degradation set name
    train_sets: dict[str, DegradedSet]  # empty unless a metric needs a training split
    skipped: dict[str, tuple[str, ...]] = field(default_factory=dict)  # set -> unreadable files skipped


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


SMALL_FOLDER = 8  # a folder `data.source` with fewer photographs is evaluated whole by default


def effective_eval_split(loaded: LoadedSuite, need_train: bool) -> str:
    """The split a run evaluates: the suite's ``data.eval_split``, except that a folder source of
    fewer than :data:`SMALL_FOLDER` photographs is evaluated on all of them when the suite does not
    set ``eval_split`` or ``test_images`` and no metric needs a training split: a 30 % test split
    of 10 photographs scores 3 of them, which is not what someone pointing at a folder asks for."""
    data = loaded.suite.data
    explicit = {"eval_split", "test_images"} & data.model_fields_set
    if explicit or need_train or _is_embedded(data.source) or not loaded.chains:
        return data.eval_split
    from ddr_eval.data.images import folder_image_files

    root = Path(data.source)
    count = len(data.images) if data.images is not None else len(folder_image_files(root)) if root.is_dir() else 0
    return "all" if 0 < count < SMALL_FOLDER else data.eval_split


def _require_patch_fits(images, patch_size: int, source: str, where: str = "data.patch_size", what: str = "") -> None:
    """Every image must hold one patch, whichever split it falls in.

    Checked on all images, not only the split being sampled: an image that no split can ever
    use is a mistake in the folder or in ``data.patch_size``, and it should not depend on the
    seeded split whether the run notices.
    """
    too_small = [image for image in images if min(image.pixels.shape[:2]) < patch_size]
    if too_small:
        first = too_small[0]
        height, width = first.pixels.shape[:2]
        more = f" (and {len(too_small) - 1} more)" if len(too_small) > 1 else ""
        raise UserError(f"{source}: {where}: {what}image {first.name!r} ({width}x{height}) is smaller than "
                        f"the patch size {patch_size}{more}; remove it or use smaller patches")


def _load_folder_sets(loaded: LoadedSuite) -> dict[str, FolderImages]:
    """Decode every folder set (before any patch is degraded), checking that LR patches fit."""
    lr_patch = loaded.suite.data.patch_size // loaded.scale
    names = [d.name for d in loaded.suite.degradations]
    loaded_sets = {}
    for name, dset in loaded.folder_sets.items():
        images = load_folder_set(name, dset.lr_folder, dset.hr_folder, scale=loaded.scale, lr_suffix=dset.lr_suffix,
                                 hr_suffix=dset.hr_suffix, skip_unreadable=dset.skip_unreadable)
        _require_patch_fits(images.lr, lr_patch, loaded.source, f"degradations[{names.index(name)}].lr_folder",
                            f"LR patch (data.patch_size / scale) of set {name!r}: LR ")
        loaded_sets[name] = images
    return loaded_sets


def _folder_split(images: FolderImages, split: str, name: str, loaded: LoadedSuite) -> tuple[list, list | None]:
    """The (LR, HR) images of a folder set on one split: seeded and content-disjoint like a folder
    ``data.source`` (``test_fraction``); ``all`` takes every image."""
    hr = list(images.hr) if images.hr is not None else None
    if split == "all":
        return list(images.lr), hr
    try:
        train, test = split_images(images.lr, test_fraction=loaded.suite.data.test_fraction, seed=loaded.suite.seed)
    except UserError as exc:
        raise UserError(f"{loaded.source}: degradation set {name!r}: {exc}; or use data.eval_split: all") from None
    chosen = {image.name for image in (train if split == "train" else test)}
    keep = [i for i, image in enumerate(images.lr) if image.name in chosen]
    return [images.lr[i] for i in keep], None if hr is None else [hr[i] for i in keep]


def _folder_set(name: str, split: str, images: FolderImages, loaded: LoadedSuite) -> DegradedSet:
    """LR patches of ``patch_size / scale`` cut from the LR files (with aligned HR patches for pairs)."""
    data, scale = loaded.suite.data, loaded.scale
    lr_images, hr_images = _folder_split(images, split, name, loaded)
    if hr_images is None:
        cut = sample_patches(lr_images, data.patch_size // scale, data.patches_per_image, seed=loaded.suite.seed)
        keep = limited(len(cut), data.limit_patches, loaded.suite.seed)
        patches = PatchSet(None, cut.image_index[keep], cut.patch_index[keep], cut.image_names)
        return DegradedSet(name, split, cut.hr[keep], patches, images.digest)
    patches, lr = sample_paired_patches(lr_images, hr_images, data.patch_size // scale, scale,
                                        data.patches_per_image, loaded.suite.seed)
    keep = limited(len(patches), data.limit_patches, loaded.suite.seed)
    return DegradedSet(name, split, lr[keep], patches.subset(keep), images.digest)


def limited(count: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``count`` patches: a seeded subset in the original order
    (every image keeps its chance to appear), or all of them without a limit (``--limit``)."""
    if limit is None or count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def prepare_inputs(loaded: LoadedSuite, need_train: bool) -> SuiteInputs:
    """Sample HR patches and degrade them with every chain, and cut patches from every folder set;
    bit-identical for the same suite and files."""
    suite = loaded.suite
    folders = _load_folder_sets(loaded)
    splits = _splits(loaded) if loaded.chains else None

    def degrade(split: str) -> dict[str, DegradedSet]:
        patches = None
        if splits is not None:
            patches = sample_patches(splits[split], suite.data.patch_size, suite.data.patches_per_image,
                                     seed=suite.seed, multiple_of=loaded.scale)
            if suite.data.limit_patches is not None:
                patches = patches.subset(limited(len(patches), suite.data.limit_patches, suite.seed))
        sets = {}
        for dset in suite.degradations:
            if dset.name in folders:
                sets[dset.name] = _folder_set(dset.name, split, folders[dset.name], loaded)
                continue
            chain = loaded.chains[dset.name]
            lr = degrade_patches(chain, patches.hr, patches.image_index, patches.patch_index, suite.seed,
                                 f"{split}/{dset.name}")
            sets[dset.name] = DegradedSet(dset.name, split, lr, patches)
        return sets

    eval_sets = degrade(effective_eval_split(loaded, need_train))
    train_sets = degrade("train") if need_train else {}
    skipped = {name: images.skipped for name, images in folders.items() if images.skipped}
    return SuiteInputs(eval_sets, train_sets, skipped)


def planned_inputs(loaded: LoadedSuite, need_train: bool) -> SuiteInputs | None:
    """The inputs :func:`prepare_inputs` would make, with the right shapes but no memory behind
    them (zero-stride arrays whose ``nbytes`` is still the real size), so the memory planner
    can refuse a suite before any image is decoded or degraded. Counts come from image names
    and file listings only; ``None`` when they cannot be known that way (the real inputs then
    go to the planner as before)."""
    suite, data = loaded.suite, loaded.suite.data
    try:
        eval_split = effective_eval_split(loaded, need_train)
        counts = {split: _image_count(loaded, split) for split in {eval_split, *(("train",) if need_train else ())}}
        folder_counts = {name: len(image_files(dset.lr_folder)) for name, dset in loaded.folder_sets.items()}
    except (OSError, FolderError, UserError):
        return None
    hr_side, lr_side = data.patch_size, data.patch_size // loaded.scale

    def stand_in(split: str) -> dict[str, DegradedSet]:
        sets = {}
        for dset in suite.degradations:
            if dset.name in folder_counts:
                n = _split_count(folder_counts[dset.name], None, data.test_fraction, split) * data.patches_per_image
                hr = _no_memory((n, hr_side, hr_side, 3)) if dset.has_hr else None
            else:
                n = counts[split] * data.patches_per_image
                if data.limit_patches is not None:
                    n = min(n, data.limit_patches)
                hr = _no_memory((n, hr_side, hr_side, 3))
            index = np.broadcast_to(np.int64(0), (n,))
            sets[dset.name] = DegradedSet(dset.name, split, _no_memory((n, lr_side, lr_side, 3)),
                                          PatchSet(hr, index, index, ("planned",)))
        return sets

    return SuiteInputs(stand_in(eval_split), stand_in("train") if need_train else {})


def _no_memory(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.float32(0), shape)


def _image_count(loaded: LoadedSuite, split: str) -> int:
    """How many of ``data.source``'s images fall in ``split`` (as :func:`_splits` decides, from names)."""
    data = loaded.suite.data
    if not loaded.chains:
        return 0
    if _is_embedded(data.source):
        names = list(data.images) if data.images is not None else [entry.name for entry in EMBEDDED_IMAGES]
    else:
        names = list(data.images) if data.images is not None else [str(p) for p in folder_image_files(Path(data.source))]
    test_names = data.test_images
    if test_names is None and _is_embedded(data.source):
        test_names = tuple(n for n in DEFAULT_TEST_IMAGES if n in set(names)) or None
    return _split_count(len(names), None if test_names is None else len(set(test_names)), data.test_fraction, split)


def _split_count(total: int, n_test: int | None, test_fraction: float, split: str) -> int:
    """The size of ``split`` among ``total`` images (``split_images``'s rule)."""
    if split == "all":
        return total
    if n_test is None:
        n_test = min(max(round(test_fraction * total), 1), total - 1) if total >= 2 else 0
    return n_test if split == "test" else total - n_test


__all__ = ["DegradedSet", "SuiteInputs", "planned_inputs", "prepare_inputs", "EMBEDDED_IMAGES"]
