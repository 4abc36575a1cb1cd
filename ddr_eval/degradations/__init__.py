"""Degradations: registry of ops, ordered chains, MATLAB-compatible ``imresize``, seeding.

A suite lists chains as ``[{type: gaussian_blur, sigma: 2}, {type: bicubic, scale: 4}]``;
:func:`build_chain` validates them into a :class:`DegradationChain`, and
:func:`degrade_patches` turns HR patches into LR patches with per-patch seeded generators.
"""

from ddr_eval.degradations import ops  # noqa: F401  (registers the ops in DEGRADATIONS)
from ddr_eval.degradations import realworld  # noqa: F401  (resize, realesrgan, bsrgan)
from ddr_eval.degradations.chain import (
    DegradationChain,
    InvalidDegradationError,
    build_chain,
    build_step,
    degrade_patches,
)
from ddr_eval.degradations.ops import DEGRADATIONS, Degradation
from ddr_eval.degradations.resize import imresize
from ddr_eval.degradations.seeding import rng_for, stable_hash

__all__ = [
    "DEGRADATIONS",
    "Degradation",
    "DegradationChain",
    "InvalidDegradationError",
    "build_chain",
    "build_step",
    "degrade_patches",
    "imresize",
    "rng_for",
    "stable_hash",
]
