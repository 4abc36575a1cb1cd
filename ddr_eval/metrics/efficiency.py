"""What a network costs to run: parameters, FLOPs, latency and peak memory (NTIRE efficient-SR style).

These metrics measure the network, not its features, so they take the module and the shape of
one LR patch (height, width, channels; the suite's patch size unless ``input_size`` says
otherwise) instead of feature arrays. Every one is "lower is better":

* ``params`` – number of parameters (weights and biases; buffers such as BatchNorm running
  statistics are not parameters and are not counted);
* ``flops`` – floating-point operations of one forward pass on one patch, as counted by
  :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions and matrix products only,
  counted as 2 × multiply–accumulates (so ``flops = 2 × MACs``; many SR papers quote MACs and
  call them FLOPs). Element-wise ops (activations, additions, pixel shuffle, interpolation) are
  not counted; they are a few percent of an SR network's convolution work;
* ``latency`` – milliseconds per patch: the median over ``repeats`` timed forward passes of a
  batch of ``batch_size`` patches, after ``warmup`` untimed passes, under
  ``torch.inference_mode``, divided by ``batch_size``. CUDA is timed with CUDA events, the CPU
  with ``time.perf_counter`` on ``threads`` threads (default 1): a one-patch forward pass is
  dozens of small parallel regions, and with a second thread on a core another process holds,
  every region waits for it (measured on the shared 2-core machine, SRResNet-32 on a 32 x 32
  patch: 650 ms with 2 threads, 6.6 ms with 1). One thread is the setting that means the same
  on a laptop, a loaded CI runner and a quiet server. Still the one noisy column: compare
  latencies measured in the same run;
* ``peak_memory`` – MiB for one forward pass of ``batch_size`` patches: the module's parameters
  and buffers, the input, and the most memory the pass held at once on top of them. On CUDA
  that is ``torch.cuda.max_memory_allocated`` (the allocator's high-water mark) above what was
  allocated before the pass, plus the module's own tensors. On the CPU neither tracemalloc
  (torch allocates outside Python's allocator) nor the process RSS (allocator caching, other
  objects) says anything about one network, so the live tensors of the pass are tracked with
  torch's ``MemTracker`` (``torch.distributed._tools``), which follows every tensor storage
  created and freed by the dispatcher: a deterministic, device-independent peak of tensor
  memory, excluding the allocator's own overhead.

The input is a seeded uniform random patch: speed and memory do not depend on pixel values.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, ClassVar, Iterator

import torch
from pydantic import Field
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.metrics.base import Metric, MetricInputs, MetricUnavailableError, register_metric
from ddr_eval.metrics.results import MODEL_LAYER, POOLED, MetricOutput, MetricResult

MIB = 2**20
FLOP_COUNT_NOTE = "2 x MACs of convolutions and matrix products (torch.utils.flop_counter)"


# --------------------------------------------------------------------------- measurements


def module_device(module: nn.Module) -> torch.device:
    """Where the module's weights are (the CPU for a module without parameters or buffers)."""
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def module_dtype(module: nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def example_input(module: nn.Module, patch_shape: tuple[int, int, int], batch_size: int = 1,
                  seed: int = 0) -> torch.Tensor:
    """A seeded uniform [0, 1) batch (N, C, H, W) for ``patch_shape`` = (H, W, C), on the module's device."""
    height, width, channels = (int(n) for n in patch_shape)
    generator = torch.Generator().manual_seed(seed)
    batch = torch.rand((batch_size, channels, height, width), generator=generator)
    return batch.to(device=module_device(module), dtype=module_dtype(module))


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``torch.inference_mode`` for the duration; the train/eval flag is restored."""
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield module
    finally:
        module.train(was_training)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters, each shared tensor once."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]]:
    """FLOPs of one forward pass on ``example`` (total, and per aten op); see the module docstring."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with evaluating(module), counter:
        module(example)
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op


def time_forward(module: nn.Module, example: torch.Tensor, warmup: int = 2, repeats: int = 5) -> list[float]:
    """Seconds of each of ``repeats`` forward passes on ``example`` after ``warmup`` untimed ones."""
    device = example.device
    times = []
    with evaluating(module):
        for _ in range(warmup):
            module(example)
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                module(example)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1000.0)
            else:
                started = time.perf_counter()
                module(example)
                times.append(time.perf_counter() - started)
    return times


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the duration (``None``: leave it), then restored."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resident_bytes(module: nn.Module, example: torch.Tensor) -> int:
    """Bytes of the module's parameters and buffers and of the input."""
    tensors = [*module.parameters(), *module.buffers(), example]
    return sum(t.numel() * t.element_size() for t in tensors)


def peak_forward_bytes(module: nn.Module, example: torch.Tensor) -> tuple[int, str]:
    """Peak memory of one forward pass (bytes) and how it was measured; see the module docstring."""
    if example.device.type == "cuda":
        return _cuda_peak_bytes(module, example), "torch.cuda.max_memory_allocated"
    return _tracked_peak_bytes(module, example), "torch MemTracker (live tensor storages)"


def _cuda_peak_bytes(module: nn.Module, example: torch.Tensor) -> int:
    device = example.device
    with evaluating(module):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        module(example)
        torch.cuda.synchronize(device)
        added = torch.cuda.max_memory_allocated(device) - before
    return int(added + resident_bytes(module, example))


def _tracked_peak_bytes(module: nn.Module, example: torch.Tensor) -> int:
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError as exc:  # torch built without distributed support
        raise MetricUnavailableError(f"peak_memory on {example.device.type} needs torch's MemTracker: {exc}") from None
    tracker = MemTracker()
    tracker.track_external(module, example)
    with evaluating(module), tracker:
        module(example)
    peak = tracker.get_tracker_snapshot("peak")
    return int(sum(per_device.get("Total", 0) for per_device in peak.values()))


def efficiency_profile(module: nn.Module, patch_shape: tuple[int, int, int], seed: int = 0) -> dict[str, Any]:
    """All four default efficiency metrics of ``module`` on one patch of ``patch_shape`` (H, W, C)."""
    profile = {}
    for metric in (ParamsMetric(), FlopsMetric(), LatencyMetric(), PeakMemoryMetric()):
        sized = metric.for_patch(patch_shape)
        profile[sized.name] = sized.compute(module, patch_shape, seed).value
    return profile


# --------------------------------------------------------------------------- metrics


class EfficiencyMetric(Metric):
    """Common parameters: the input size (the suite's LR patch by default) and the batch."""

    kind: ClassVar[str] = "efficiency"
    higher_is_better: ClassVar[bool] = False
    ranked_by_default: ClassVar[bool] = False  # a cost to read beside quality, ranked only when a suite asks
    needs: ClassVar[frozenset[str]] = frozenset({"module"})
    sized: ClassVar[bool] = True  # whether the value depends on the input size (and says so in its name)

    input_size: tuple[int, int] | None = Field(
        None, description="LR input (height, width); None = the suite's LR patch size"
    )
    batch_size: int = Field(1, ge=1, description="patches per forward pass")

    def for_patch(self, patch_shape: tuple[int, ...]) -> EfficiencyMetric:
        """This metric with ``input_size`` taken from ``patch_shape`` (H, W, C) unless it was given."""
        if self.input_size is not None:
            return self
        return self.model_copy(update={"input_size": (int(patch_shape[0]), int(patch_shape[1]))})

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        """The cost of the network itself on one LR patch of the suite's size: one row, layer
        ``model`` (the reducer hands this metric already sized by :meth:`for_patch`)."""
        output = MetricOutput()
        module = inputs.module()
        if module is None:
            output.unavailable(MODEL_LAYER, POOLED, f"{inputs.model} is not a network")
            return output
        result = output.guarded(MODEL_LAYER, POOLED, self.compute, module, inputs.patch_shape, inputs.seed)
        if result is not None:
            output.result(MODEL_LAYER, POOLED, result, ci=False, measured=result.extra.get("unit", ""))
        return output

    def name_params(self) -> list[str]:
        if not self.sized:
            return []
        params = [f"{self.input_size[0]}x{self.input_size[1]}"] if self.input_size else []
        if self.batch_size != 1:
            params.append(f"b{self.batch_size}")
        return params

    def example(self, module: nn.Module, patch_shape: tuple[int, ...], seed: int) -> torch.Tensor:
        height, width = self.input_size or patch_shape[:2]
        channels = patch_shape[2] if len(patch_shape) > 2 else 3
        if min(height, width, channels) < 1:
            raise UserError(f"{self.metric_type}: input size must be positive, got {height}x{width}x{channels}")
        return example_input(module, (height, width, channels), self.batch_size, seed)

    def compute(self, module: nn.Module, patch_shape: tuple[int, ...], seed: int = 0) -> MetricResult:
        """The metric for ``module`` on a batch of patches of ``patch_shape`` = (H, W, C)."""
        raise NotImplementedError


@register_metric
class ParamsMetric(EfficiencyMetric):
    """Number of parameters (a count)."""

    metric_type: ClassVar[str] = "params"
    unit: ClassVar[str] = "M"
    unit_scale: ClassVar[float] = 1e6
    sized: ClassVar[bool] = False

    def compute(self, module: nn.Module, patch_shape: tuple[int, ...] = (), seed: int = 0) -> MetricResult:
        return MetricResult(float(count_parameters(module)), extra={"unit": "count"})


@register_metric
class FlopsMetric(EfficiencyMetric):
    """FLOPs of one forward pass on one LR patch (= 2 x MACs, convolutions and matmuls only)."""

    metric_type: ClassVar[str] = "flops"
    unit: ClassVar[str] = "GFLOPs"
    unit_scale: ClassVar[float] = 1e9

    def compute(self, module: nn.Module, patch_shape: tuple[int, ...], seed: int = 0) -> MetricResult:
        example = self.example(module, patch_shape, seed)
        with torch_threads(1 if example.device.type == "cpu" else None):  # counts do not depend on it; speed does
            total, by_op = count_flops(module, example)
        return MetricResult(float(total) / self.batch_size, extra={
            "unit": "FLOPs per patch", "counted": FLOP_COUNT_NOTE, "input": list(example.shape), "by_op": by_op})


@register_metric
class LatencyMetric(EfficiencyMetric):
    """Milliseconds per patch: median forward time of a batch / batch size."""

    metric_type: ClassVar[str] = "latency"
    unit: ClassVar[str] = "ms"
    wall_clock: ClassVar[bool] = True
    cacheable: ClassVar[bool] = False

    warmup: int = Field(2, ge=0)
    repeats: int = Field(5, ge=1)
    threads: int | None = Field(1, ge=1, description="CPU threads for the timed passes; None = torch's setting")

    def compute(self, module: nn.Module, patch_shape: tuple[int, ...], seed: int = 0) -> MetricResult:
        example = self.example(module, patch_shape, seed)
        on_cuda = example.device.type == "cuda"
        with torch_threads(None if on_cuda else self.threads):
            threads = torch.get_num_threads()
            seconds = time_forward(module, example, self.warmup, self.repeats)
        per_patch_ms = [1000.0 * s / self.batch_size for s in seconds]
        return MetricResult(statistics.median(per_patch_ms), extra={
            "unit": "ms per patch", "device": str(example.device), "batch_size": self.batch_size,
            "timings_ms": per_patch_ms, "timer": "cuda events" if on_cuda else "perf_counter",
            "cpu_threads": None if on_cuda else threads})


@register_metric
class PeakMemoryMetric(EfficiencyMetric):
    """MiB held at the peak of one forward pass (weights, input and live activations)."""

    metric_type: ClassVar[str] = "peak_memory"
    unit: ClassVar[str] = "MiB"

    def compute(self, module: nn.Module, patch_shape: tuple[int, ...], seed: int = 0) -> MetricResult:
        example = self.example(module, patch_shape, seed)
        with torch_threads(1 if example.device.type == "cpu" else None):
            peak, method = peak_forward_bytes(module, example)
        return MetricResult(peak / MIB, extra={"unit": "MiB", "method": method, "device": str(example.device),
                                               "batch_size": self.batch_size})
