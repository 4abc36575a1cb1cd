"""Helpers shared by the benchmarks: zoo architectures, paired timing, peak memory, exponents.

Machines here are shared and noisy, so a benchmark never compares against a number measured
at another time: it times the subject and its baseline *alternately in the same run* and
reports their ratio (medians), which cancels most of the load that both see.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch

from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import describe
from ddr_eval.models.descriptor import ModelDescriptor
from ddr_eval.training.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "model_zoo" / "recipes"
SUITE_PATCH = (32, 32, 3)  # the LR patch of suites/generalization.yaml (64 px HR at x2)


# --------------------------------------------------------------------------- zoo architectures


def zoo_architectures() -> dict[str, tuple[str, dict[str, Any]]]:
    """Recipe name -> (arch, arch_kwargs), one recipe per distinct architecture configuration.

    Fine-tuned or re-trained variants of the same network (srgan-* of srresnet-*, the real-world
    srresnet) have the same speed, so only the first recipe of each configuration is kept.
    """
    recipes = [load_recipe(path) for path in RECIPES.glob("*.yaml")]
    recipes.sort(key=lambda r: (r.init_from is not None, len(r.name), r.name))  # originals first
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for recipe in recipes:
        config = (recipe.arch, dict(recipe.arch_kwargs))
        if config not in seen.values():
            seen[recipe.name] = config
    return seen


def random_descriptor(name: str, seed: int = 0) -> ModelDescriptor:
    """A zoo architecture with seeded random weights (speed does not depend on the weights)."""
    arch, kwargs = zoo_architectures()[name]
    torch.manual_seed(seed)
    return describe(build_arch(arch, **kwargs), arch, kwargs, name=name, source=f"random:{name}")


def lr_patches(n: int, patch: tuple[int, int, int] = SUITE_PATCH, seed: int = 0) -> np.ndarray:
    """``n`` seeded uniform LR patches (N, H, W, C float32): speed does not depend on content."""
    return np.random.default_rng(seed).random((n, *patch), dtype=np.float32)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")


# --------------------------------------------------------------------------- paired timing


@dataclass
class Ratio:
    """Subject and baseline timed alternately; ``ratio`` = baseline / subject median (>1: subject faster)."""

    subject_median_s: float
    baseline_median_s: float
    subject_s: list[float]
    baseline_s: list[float]
    target: float | None = None

    @property
    def ratio(self) -> float:
        return self.baseline_median_s / self.subject_median_s

    @property
    def meets_target(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "meets_target": self.meets_target}


def paired(benchmark, subject: Callable[[], Any], baseline: Callable[[], Any], rounds: int = 3,
           warmup: int = 1, target: float | None = None) -> Ratio:
    """Benchmark ``subject`` with pytest-benchmark, timing ``baseline`` right before each round.

    The baseline runs in pytest-benchmark's untimed ``setup`` hook, so the two alternate round
    by round and see the same machine load. Both are also timed here (so the ratio exists with
    ``--benchmark-disable`` too, from one round) and the result goes into ``extra_info``.
    """
    subject_times: list[float] = []
    baseline_times: list[float] = []

    def timed(fn, into):
        started = time.perf_counter()
        fn()
        into.append(time.perf_counter() - started)

    for _ in range(warmup):
        baseline()
        subject()
    benchmark.pedantic(lambda: timed(subject, subject_times), setup=lambda: timed(baseline, baseline_times),
                       rounds=rounds, iterations=1)
    result = Ratio(statistics.median(subject_times), statistics.median(baseline_times), subject_times,
                   baseline_times, target)
    benchmark.extra_info.update(result.as_dict())
    return result


# --------------------------------------------------------------------------- peak memory


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def peak_rss() -> Iterator[dict[str, Any]]:
    """Peak resident memory a block added to the process, in MiB (``out["peak_mib"]``).

    On Linux the kernel's high-water mark (VmHWM) is reset before the block by writing 5 to
    ``/proc/self/clear_refs``, so the peak is this block's own; the result is that peak minus
    the resident size at the start. Elsewhere ``ru_maxrss`` is a lifetime maximum and cannot be
    reset, so a block only shows if it exceeds every earlier peak (``out["reset"]`` is False).
    Covers everything: torch, numpy, sklearn's compiled code, allocator caching included.
    """
    out: dict[str, Any] = {"peak_mib": None, "reset": False}
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        out["reset"] = True
    except OSError:
        pass
    start_kib = _status_kib("VmRSS") if out["reset"] else _maxrss_kib()
    try:
        yield out
    finally:
        peak_kib = _status_kib("VmHWM") if out["reset"] else _maxrss_kib()
        if start_kib is not None and peak_kib is not None:
            out["peak_mib"] = max(peak_kib - start_kib, 0) / 1024


def _maxrss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


# --------------------------------------------------------------------------- scaling


def fit_exponent(sizes: list[int], values: list[float]) -> float:
    """Slope of log(value) against log(size): ``value ~ size ** exponent``."""
    sizes_array, values_array = np.asarray(sizes, float), np.asarray(values, float)
    keep = values_array > 0
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes_array[keep]), np.log(values_array[keep]), 1)[0])


@dataclass
class Measurement:
    seconds: float  # the fastest of the repeats
    repeats: int
    rss_mib: float | None  # peak resident memory added (everything; allocator reuse can hide some)
    traced_mib: float  # tracemalloc peak (numpy and Python objects; not torch's CPU allocator)


def measure(fn: Callable[[], Any], min_seconds: float = 0.2, max_repeats: int = 5) -> Measurement:
    """Time ``fn``; calls shorter than ``min_seconds`` are repeated (up to ``max_repeats``) and
    the fastest kept, so millisecond phases are not all fixed cost and scheduler noise.
    Memory is from the first call (tracemalloc on for it only)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with peak_rss() as memory:
            started = time.perf_counter()
            fn()
            times = [time.perf_counter() - started]
        traced = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    while sum(times) < min_seconds and len(times) < max_repeats:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return Measurement(min(times), len(times), memory["peak_mib"], traced)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
