"""Extraction throughput at the sizes people publish (x4, random init), harness vs bare forward.

The zoo is small so it trains here; users bring full-size checkpoints. These are the public
x4 shapes of ``model_zoo/zoo.yaml`` (BasicSR MSRResNet 64/16, ESRGAN's RRDBNet 64/23, EDSR-M,
RCAN), built with random weights (speed does not depend on them) and fed the LR patches of
``suites/generalization-x4.yaml`` (32 x 32). Target as for the zoo: the harness reaches at
least 0.9 of a bare ``model(x)`` loop's throughput on the same batches.
"""

from __future__ import annotations

import pytest
import torch

from bench_extraction import bare_forward, harness_layer
from benchlib import SUITE_PATCH, lr_patches, paired
from ddr_eval.features import extract_features
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import describe
from ddr_eval.models.zoo import Zoo

PUBLIC_SHAPES = ("MSRResNet_x4", "ESRGAN_x4", "EDSR_Mx4", "RCAN_x4")
PATCHES = 16  # full-size nets cost 10-100x the zoo's per patch
BATCH = 8
TARGET = 0.9


def public_descriptor(name: str, seed: int = 0):
    entry = Zoo.load().get(name)
    torch.manual_seed(seed)
    module = build_arch(entry.arch, **entry.arch_kwargs)
    return describe(module, entry.arch, dict(entry.arch_kwargs), name=name, source=f"random:{name}")


@pytest.mark.parametrize("name", PUBLIC_SHAPES)
def test_public_shape_extraction_vs_bare_forward(benchmark, name):
    descriptor = public_descriptor(name)
    assert descriptor.scale == 4
    model, layer = descriptor.module, harness_layer(descriptor)
    lr = lr_patches(PATCHES, SUITE_PATCH)
    batches = list(torch.from_numpy(lr).permute(0, 3, 1, 2).contiguous().split(BATCH))
    device = torch.device("cpu")
    result = paired(
        benchmark,
        subject=lambda: extract_features(model, lr, [layer], batch_size=BATCH, device=device, return_outputs=True),
        baseline=lambda: bare_forward(model, batches, device),
        target=TARGET,
    )
    params = sum(p.numel() for p in model.parameters())
    benchmark.extra_info.update({"arch": descriptor.arch, "public_shape": name, "params": params,
                                 "patches": PATCHES, "batch_size": BATCH, "patch": list(SUITE_PATCH),
                                 "layer": layer, "device": "cpu",
                                 "patches_per_s": PATCHES / result.subject_median_s})
    assert result.meets_target, f"{name}: harness reaches {result.ratio:.2f} of bare throughput (< {TARGET})"
