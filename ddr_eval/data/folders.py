"""Degradation sets read from folders: real LR photographs (LR-only) or captured LR/HR pairs.

A synthetic set degrades HR patches with a chain; a folder set *is* its LR images, as they are
(phone shots, old scans, a RealSR-style captured pair set). Three forms in a suite:

* ``{name: phone, lr_folder: DIR}`` – LR-only: DDR metrics need only the model's features on
  the LR inputs; metrics that need HR report "unavailable: no HR for set phone".
* ``{name: realsr, lr_folder: DIR, hr_folder: DIR}`` – paired by file stem (optional
  ``lr_suffix`` / ``hr_suffix`` such as ``_LR4`` / ``_HR``); HR exactly ``scale`` x LR.
* ``{folders: ROOT}`` – one set per subfolder of ROOT, named after it: paired when the subfolder
  holds ``LR/`` and ``HR/``, otherwise LR-only (its own images, or those in ``LR/``).

Structure (folders exist, hold images, pairs match) is checked when the suite is validated;
pixels (decodable, large enough, pair sizes) when the images are loaded – both before any
forward pass, so a bad folder never leaves a half-written report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ddr_eval.data.images import MAX_PIXELS, SUPPORTED_SUFFIXES, Image, UnreadableImageError, read_image
from ddr_eval.core.errors import UserError

__all__ = ["FolderError", "FolderImages", "expand_folders", "image_files", "load_folder_set", "pair_files"]


class FolderError(UserError, ValueError):
    """A folder set that cannot be used. Also a ``ValueError``, so the suite schema reports it
    with its YAML location (``degradations[1].lr_folder: ...``)."""


@dataclass(frozen=True)
class FolderImages:
    """The decoded images of one folder set, in file order."""

    lr: tuple[Image, ...]
    hr: tuple[Image, ...] | None  # None for an LR-only set
    skipped: tuple[str, ...]  # unreadable files left out (``skip_unreadable: true``)
    digest: str  # sha256 over the used files' names and bytes: the feature-cache key of the set


def image_files(folder: str | Path, what: str = "folder") -> list[Path]:
    """The supported image files directly in ``folder``, sorted by name (hidden files skipped)."""
    path = Path(folder)
    if not path.exists():
        raise FolderError(f"{what} not found: {path}")
    if not path.is_dir():
        raise FolderError(f"{what} is not a directory: {path}")
    files = sorted(f for f in path.iterdir()
                   if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES and not f.name.startswith("."))
    if not files:
        raise FolderError(f"empty {what}: {path} (looked for {', '.join(SUPPORTED_SUFFIXES)})")
    return files


def pair_files(lr_folder: str | Path, hr_folder: str | Path, lr_suffix: str = "", hr_suffix: str = ""
               ) -> list[tuple[Path, Path]]:
    """(LR file, HR file) pairs matched by stem, after removing ``lr_suffix`` / ``hr_suffix``.

    Every LR file needs its HR partner (HR files without an LR partner are ignored).
    """
    lr_files = image_files(lr_folder, "LR folder")
    hr_by_key = _by_key(image_files(hr_folder, "HR folder"), hr_suffix)
    pairs = []
    for key, lr_file in _by_key(lr_files, lr_suffix).items():
        if key not in hr_by_key:
            raise FolderError(f"no HR image for {lr_file} in {hr_folder} (looked for {key}{hr_suffix}.*)")
        pairs.append((lr_file, hr_by_key[key]))
    return pairs


def _by_key(files: list[Path], suffix: str) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for file in files:
        key = file.stem.removesuffix(suffix) if suffix else file.stem
        if key in keyed:
            raise FolderError(f"two images share the stem {key!r}: {keyed[key]} and {file}")
        keyed[key] = file
    return keyed


def expand_folders(root: str | Path) -> list[dict[str, str]]:
    """The set specs of ``{folders: ROOT}``: one per (non-hidden) subfolder, sorted by name."""
    path = Path(root)
    if not path.exists():
        raise FolderError(f"folders root not found: {path}")
    if not path.is_dir():
        raise FolderError(f"folders root is not a directory: {path}")
    subfolders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subfolders:
        raise FolderError(f"folders root {path} has no subfolders (one per degradation set)")
    specs = []
    for sub in subfolders:
        lr, hr = _child_dir(sub, "LR"), _child_dir(sub, "HR")
        if lr is not None and hr is not None:
            specs.append({"name": sub.name, "lr_folder": str(lr), "hr_folder": str(hr)})
        else:
            specs.append({"name": sub.name, "lr_folder": str(lr or sub)})
    return specs


def _child_dir(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it is a directory, matching the case of ``LR`` / ``HR`` loosely."""
    for child in folder.iterdir():
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def load_folder_set(
    name: str,
    lr_folder: str | Path,
    hr_folder: str | Path | None = None,
    *,
    scale: int,
    lr_suffix: str = "",
    hr_suffix: str = "",
    skip_unreadable: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> FolderImages:
    """Decode a folder set's images; an unreadable file is an error naming it, unless skipped.

    For pairs, HR must be exactly ``scale`` x LR on both sides (an error names both files).
    """
    pairs = pair_files(lr_folder, hr_folder, lr_suffix, hr_suffix) if hr_folder else \
        [(file, None) for file in image_files(lr_folder, "LR folder")]
    lr_images, hr_images, skipped = [], [], []
    digest = hashlib.sha256()
    for lr_file, hr_file in pairs:
        try:
            lr = read_image(lr_file, max_pixels)
            hr = read_image(hr_file, max_pixels) if hr_file is not None else None
        except UnreadableImageError:
            if not skip_unreadable:
                raise
            skipped += [str(f) for f in (lr_file, hr_file) if f is not None and not _readable(f, max_pixels)]
            continue
        if hr is not None:
            _require_scaled(lr_file, lr.shape, hr_file, hr.shape, scale)
            hr_images.append(Image(lr_file.name, hr))
        lr_images.append(Image(lr_file.name, lr))
        for file in (lr_file, hr_file):
            if file is not None:
                digest.update(file.name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    if not lr_images:
        raise FolderError(f"degradation set {name!r}: every image in {lr_folder} is unreadable")
    return FolderImages(tuple(lr_images), tuple(hr_images) if hr_folder else None, tuple(skipped), digest.hexdigest())


def _readable(file: Path, max_pixels: int) -> bool:
    try:
        read_image(file, max_pixels)
        return True
    except UnreadableImageError:
        return False


def _require_scaled(lr_file: Path, lr_shape, hr_file: Path, hr_shape, scale: int) -> None:
    if hr_shape[0] != lr_shape[0] * scale or hr_shape[1] != lr_shape[1] * scale:
        raise FolderError(
            f"pair {lr_file} ({lr_shape[1]}x{lr_shape[0]}) and {hr_file} ({hr_shape[1]}x{hr_shape[0]}): "
            f"HR must be exactly x{scale} the LR, i.e. {lr_shape[1] * scale}x{lr_shape[0] * scale}")
