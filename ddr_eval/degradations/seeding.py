"""Per-patch random generators derived from the suite seed.

Every random draw of a degradation (noise maps, strengths sampled from ranges) comes from a
generator keyed by (suite seed, image, patch, set name). The key, not the processing order,
decides the numbers, so LR patches are bit-identical across runs, batch sizes, worker counts
and subsets of sets. Strings enter the key through hashlib: Python's ``hash()`` is salted per
process and would make every run different.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["rng_for", "stable_hash"]


def stable_hash(text: str) -> int:
    """A 64-bit non-negative integer from ``text`` that is the same in every process."""
    if not isinstance(text, str):
        raise TypeError(f"stable_hash expects a str, got {type(text).__name__}")
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def rng_for(seed: int, image_index: int, patch_index: int, set_name: str) -> np.random.Generator:
    """The generator for one patch of one degradation set.

    ``SeedSequence`` mixes the four entries into well-separated streams, so neighbouring keys
    (patch 0 and 1, seed 0 and 1) do not give correlated noise.
    """
    key = [_non_negative_int(seed, "seed"), _non_negative_int(image_index, "image_index"),
           _non_negative_int(patch_index, "patch_index"), stable_hash(set_name)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def _non_negative_int(value: object, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)
