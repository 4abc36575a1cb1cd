"""Feature-extraction throughput through the harness versus a bare forward pass (target >= 0.9).

Per zoo architecture (random weights: speed does not depend on them), on the LR patches a
default suite feeds it (32 x 32, batches of 64 as ``runtime.batch_size``). Both sides do the
same network work: the harness taps the ``deep`` layer *and* returns the SR outputs, as a suite
with image-quality metrics does, so nothing is skipped; the bare side is the loop a user would
write, ``model(x)`` under ``torch.inference_mode()`` on the same batches already in NCHW.
The ratio (bare time / harness time = harness throughput / bare throughput) therefore prices
exactly what the harness adds: the NHWC->NCHW conversion, the hooks, pooling and host copies.

A second benchmark shows what the harness saves when SR outputs are not needed (flattened
features for SRGA): it stops the forward pass after the last tapped layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchlib import SUITE_PATCH, lr_patches, paired, random_descriptor, requires_cuda, zoo_architectures
from ddr_eval_bench.gpu import CudaEventTimer
from ddr_eval.features import autocast_context, extract_features
from ddr_eval.metrics.efficiency import torch_threads

PATCHES = 128  # one degradation set of suites/generalization.yaml
BATCH = 64
TARGET = 0.9
ARCHS = list(zoo_architectures())


def harness_layer(descriptor) -> str:
    """The tap a suite reads; for a classifier its last layer, so both sides run the whole network."""
    return descriptor.taps["deep"] if descriptor.purpose == "sr" else descriptor.taps["logits"]


def bare_forward(model, batches: list[torch.Tensor], device: torch.device, amp_dtype=None,
                 memory_format=torch.contiguous_format) -> None:
    with torch.inference_mode(), autocast_context(device, amp_dtype):
        for batch in batches:
            output = model(batch.to(device, non_blocking=True).contiguous(memory_format=memory_format))
            output.float().cpu()


def nchw_batches(lr: np.ndarray) -> list[torch.Tensor]:
    tensor = torch.from_numpy(lr).permute(0, 3, 1, 2).contiguous()
    return list(tensor.split(BATCH))


@pytest.mark.parametrize("name", ARCHS)
def test_extraction_throughput_vs_bare_forward(benchmark, name):
    descriptor = random_descriptor(name)
    model, layer = descriptor.module, harness_layer(descriptor)
    lr = lr_patches(PATCHES, SUITE_PATCH)
    batches = nchw_batches(lr)
    device = torch.device("cpu")
    outputs = descriptor.purpose == "sr"

    result = paired(
        benchmark,
        subject=lambda: extract_features(model, lr, [layer], batch_size=BATCH, device=device, return_outputs=outputs),
        baseline=lambda: bare_forward(model, batches, device),
        target=TARGET,
    )
    benchmark.extra_info.update({"arch": descriptor.arch, "patches": PATCHES, "batch_size": BATCH,
                                 "patch": list(SUITE_PATCH), "layer": layer, "device": "cpu",
                                 "patches_per_s": PATCHES / result.subject_median_s})
    assert result.meets_target, f"{name}: harness reaches {result.ratio:.2f} of bare throughput (< {TARGET})"


def test_features_only_skips_the_upsampling_tail(benchmark):
    """Flattened-feature cells (SRGA) need no SR output: the harness stops at the deep tap."""
    descriptor = random_descriptor("srresnet-gr")
    model, layer = descriptor.module, harness_layer(descriptor)
    lr = lr_patches(PATCHES, SUITE_PATCH)
    batches = nchw_batches(lr)
    device = torch.device("cpu")
    result = paired(
        benchmark,
        subject=lambda: extract_features(model, lr, [layer], pooling="flatten", batch_size=BATCH, device=device),
        baseline=lambda: bare_forward(model, batches, device),
        target=1.0,
    )
    benchmark.extra_info.update({"arch": descriptor.arch, "patches": PATCHES, "pooling": "flatten",
                                 "patches_per_s": PATCHES / result.subject_median_s})
    assert result.meets_target, f"stopping at the deep tap should beat a full forward, got {result.ratio:.2f}"


def test_extraction_on_one_thread_vs_torch_default(benchmark):
    """Not a target, a measurement for choosing the default: the same extraction on one torch
    thread versus torch's default (one per core). On a quiet machine the default should win;
    on a shared one, every parallel region waits for a thread whose core is busy elsewhere."""
    descriptor = random_descriptor("srresnet-gr")
    model, layer = descriptor.module, harness_layer(descriptor)
    lr = lr_patches(PATCHES, SUITE_PATCH)

    def extract():
        extract_features(model, lr, [layer], batch_size=BATCH, device="cpu", return_outputs=True)

    def on_one_thread():
        with torch_threads(1):
            extract()

    result = paired(benchmark, subject=on_one_thread, baseline=extract)
    benchmark.extra_info.update({"arch": descriptor.arch, "patches": PATCHES, "default_threads": torch.get_num_threads(),
                                 "patches_per_s": PATCHES / result.subject_median_s})


# --------------------------------------------------------------------------- GPU variants

GPU_VARIANTS = {
    "fp32": {"amp_dtype": None, "channels_last": False},
    "bf16": {"amp_dtype": "bf16", "channels_last": False},
    "fp16": {"amp_dtype": "fp16", "channels_last": False},
    "channels_last": {"amp_dtype": None, "channels_last": True},
    "bf16+channels_last": {"amp_dtype": "bf16", "channels_last": True},
}


@requires_cuda
@pytest.mark.parametrize("variant", list(GPU_VARIANTS))
@pytest.mark.parametrize("name", ARCHS)
def test_gpu_extraction_throughput(benchmark, name, variant):
    """On CUDA: harness vs bare forward with autocast / channels_last; device time with CUDA events
    and the peak of ``torch.cuda.max_memory_allocated`` during the harness pass."""
    options = GPU_VARIANTS[variant]
    device = torch.device("cuda")
    if options["amp_dtype"] == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    descriptor = random_descriptor(name)
    memory_format = torch.channels_last if options["channels_last"] else torch.contiguous_format
    model = descriptor.module.to(device=device, memory_format=memory_format)
    layer = harness_layer(descriptor)
    patches = PATCHES * 8  # a GPU needs more work per call to be measurable
    lr = lr_patches(patches, SUITE_PATCH)
    batches = nchw_batches(lr)
    outputs = descriptor.purpose == "sr"

    def harness():
        extract_features(model, lr, [layer], batch_size=BATCH, device=device, return_outputs=outputs,
                         amp_dtype=options["amp_dtype"], channels_last=options["channels_last"])

    def bare():
        bare_forward(model, batches, device, options["amp_dtype"], memory_format)

    result = paired(benchmark, subject=harness, baseline=bare, target=TARGET)
    resident = [b.to(device).contiguous(memory_format=memory_format) for b in batches]
    with torch.inference_mode(), autocast_context(device, options["amp_dtype"]):
        device_seconds = CudaEventTimer()(lambda: [model(b) for b in resident])
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    harness()
    benchmark.extra_info.update({
        "arch": descriptor.arch, "variant": variant, "device": torch.cuda.get_device_name(device),
        "patches": patches, "patches_per_s": patches / result.subject_median_s,
        "device_only_patches_per_s": patches / device_seconds,
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20})
    assert result.meets_target, f"{name} [{variant}]: harness reaches {result.ratio:.2f} of bare throughput"
