"""Ordered degradation chains, built from suite specs, and their application to patch sets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Iterable, Iterator, Sequence

import numpy as np

from ddr_eval.degradations.ops import DEGRADATIONS, Degradation
from ddr_eval.degradations.seeding import rng_for
from ddr_eval.core.errors import UserError
from ddr_eval.core.specs import build_typed

__all__ = ["DegradationChain", "InvalidDegradationError", "build_chain", "build_step", "degrade_patches"]

# Patches degraded per vectorised call: bounds the temporary copies of big patch sets.
CHUNK_SIZE = 512


class InvalidDegradationError(UserError, ValueError):
    """A degradation spec that cannot be built.

    Also a ``ValueError`` so that a pydantic validator calling :func:`build_chain` (the suite
    schema) reports it with the YAML location instead of letting it escape unlabelled.
    """


class DegradationChain:
    """Degradation steps applied in order; at most one of them may downsample.

    ``spec()`` is the canonical description used for cache keys and reports: two chains that
    do the same thing have equal specs, whatever order or spelling the YAML used for params.
    """

    def __init__(self, steps: Iterable[Degradation] = ()) -> None:
        self.steps: tuple[Degradation, ...] = tuple(steps)
        for step in self.steps:
            if not isinstance(step, Degradation):
                raise TypeError(f"chain steps must be Degradation objects, got {type(step).__name__}")
        downsamplers = [step.type for step in self.steps if step.scale_factor != 1]
        if len(downsamplers) > 1:
            raise InvalidDegradationError(
                f"a degradation chain may downsample only once, got {', '.join(downsamplers)}"
            )

    @property
    def scale(self) -> int:
        """Total downsampling factor (HR side / LR side)."""
        return math.prod(step.scale_factor for step in self.steps)

    @property
    def is_random(self) -> bool:
        return any(step.is_random for step in self.steps)

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Degrade one HWC image; every step draws from the same generator, in order."""
        out = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        for step in self.steps:
            out = step.apply(out, rng)
        return out

    def apply_batch(
        self, batch: np.ndarray, rngs: Sequence[np.random.Generator] | None = None
    ) -> np.ndarray:
        """Degrade an NHWC batch, ``rngs[i]`` feeding image ``i`` (needed if ``is_random``).

        Same numbers as calling :meth:`apply` per image with its generator: each generator is
        consumed step after step exactly as in ``apply``; only deterministic steps are batched.
        """
        out = np.clip(np.asarray(batch, dtype=np.float32), 0.0, 1.0)
        for step in self.steps:
            out = step.apply_batch(out, rngs)
        return out

    def spec(self) -> list[dict]:
        return [step.spec() for step in self.steps]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Degradation]:
        return iter(self.steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DegradationChain) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(repr(self.spec()))

    def __repr__(self) -> str:
        return f"DegradationChain({self.spec()!r})"


def build_step(spec: Mapping | Degradation) -> Degradation:
    """Validate ``{"type": name, **params}`` into the registered op (an op passes through)."""
    if isinstance(spec, Degradation):
        return spec
    return build_typed(DEGRADATIONS, spec, error=InvalidDegradationError)


def build_chain(specs: Sequence[Mapping | Degradation] | DegradationChain) -> DegradationChain:
    """Validate a list of step specs into a chain; errors name the offending step index."""
    if isinstance(specs, DegradationChain):
        return specs
    if isinstance(specs, (str, bytes, Mapping)) or not isinstance(specs, Sequence):
        raise InvalidDegradationError(f"a degradation chain must be a list of steps, got {specs!r}")
    steps = []
    for index, spec in enumerate(specs):
        try:
            steps.append(build_step(spec))
        except InvalidDegradationError as exc:
            raise InvalidDegradationError(f"chain[{index}]: {exc}") from exc
    return DegradationChain(steps)


def degrade_patches(
    chain: DegradationChain | Sequence[Mapping],
    hr: np.ndarray,
    image_index: np.ndarray | None = None,
    patch_index: np.ndarray | None = None,
    seed: int | None = None,
    set_name: str | None = None,
) -> np.ndarray:
    """LR patches (N, P/scale, P/scale, C) float32 for HR patches ``hr`` (N, P, P, C).

    Patch ``i`` is degraded with ``rng_for(seed, image_index[i], patch_index[i], set_name)``,
    so the output depends only on these inputs: bit-identical across calls, and unchanged when
    patches are added, dropped or reordered. Deterministic steps run vectorised in chunks.

    ``hr`` may also be a ``PatchSet`` (``.hr``, ``.image_index``, ``.patch_index``), called as
    in ARCHITECTURE.md: ``degrade_patches(chain, patches, seed, set_name)``.
    """
    if hasattr(hr, "hr") and hasattr(hr, "image_index") and hasattr(hr, "patch_index"):
        given = [value for value in (image_index, patch_index, seed, set_name) if value is not None]
        if len(given) != 2:
            raise TypeError("with a PatchSet, call degrade_patches(chain, patches, seed, set_name)")
        (seed, set_name), patches = given, hr
        hr, image_index, patch_index = patches.hr, patches.image_index, patches.patch_index
    chain = build_chain(chain)
    hr, image_index, patch_index = _check_patch_arrays(hr, image_index, patch_index)
    if seed is None or not isinstance(set_name, str):
        raise TypeError("degrade_patches needs an integer seed and a set_name string")
    _check_divisible(hr.shape[1:3], chain.scale)

    rngs = None
    if chain.is_random:
        rngs = [rng_for(seed, int(i), int(p), set_name) for i, p in zip(image_index, patch_index)]
    if len(hr) == 0:
        lr_side = hr.shape[1] // chain.scale, hr.shape[2] // chain.scale
        return np.empty((0, *lr_side, hr.shape[3]), dtype=np.float32)
    chunks = []
    for start in range(0, len(hr), CHUNK_SIZE):
        stop = start + CHUNK_SIZE
        chunks.append(chain.apply_batch(hr[start:stop], None if rngs is None else rngs[start:stop]))
    return np.concatenate(chunks)


def _check_patch_arrays(hr, image_index, patch_index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hr = np.asarray(hr)
    if hr.ndim != 4:
        raise ValueError(f"HR patches must be an (N, P, P, C) array, got shape {hr.shape}")
    if not np.issubdtype(hr.dtype, np.floating):
        raise TypeError(f"HR patches must be floats in [0, 1], got dtype {hr.dtype}")
    indices = []
    for name, values in (("image_index", image_index), ("patch_index", patch_index)):
        values = np.asarray(values)
        if values.shape != (len(hr),) or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                f"{name} must be {len(hr)} integers (one per patch), got {values.dtype} array {values.shape}"
            )
        indices.append(values)
    return hr.astype(np.float32, copy=False), indices[0], indices[1]


def _check_divisible(spatial: tuple[int, int], scale: int) -> None:
    if spatial[0] % scale or spatial[1] % scale:
        raise UserError(
            f"patch size {spatial[0]}x{spatial[1]} is not divisible by the degradation scale {scale}; "
            f"choose a patch size that is a multiple of {scale}"
        )


def blur_and_noise_sigmas(specs: Sequence[Mapping]) -> tuple[float, float]:
    """(Gaussian blur sigma, Gaussian noise sigma 0-255) of a chain spec with fixed values, 0 for
    a step the chain lacks: the true parameters an oracle-conditioned SR model is told."""
    found = {"gaussian_blur": 0.0, "gaussian_noise": 0.0}
    for spec in specs:
        if spec.get("type") in found:
            found[spec["type"]] = float(spec["sigma"])
    return found["gaussian_blur"], found["gaussian_noise"]
