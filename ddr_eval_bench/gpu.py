"""``ddr-eval bench --gpu``: throughput and memory of every architecture on one CUDA GPU.

One matrix, planned up front (:func:`plan_cases`): every distinct zoo architecture plus the
public-size shapes (:data:`PUBLIC_SHAPES`, random init: speed does not depend on the weights),
each at fp32, bf16 and fp16 autocast, with channels_last off and on. Per case it times

* the harness, :func:`ddr_eval.features.extract_features` (deep tap + SR outputs, host arrays
  out), and
* a bare ``model(x)`` forward on batches already on the device,

with the same timer (CUDA events on a GPU: they time the device work between two points of
the stream, not Python's view of it), and reads ``torch.cuda.max_memory_allocated`` over the
harness pass. Then it times the main job (``ddr-eval run suites/generalization.yaml`` in a
subprocess, cold feature cache) on the GPU. Results go to ``gpu.json`` and ``gpu.md``.

Budget: the suite's whole matrix must fit in four minutes on one GPU, so each case gets a fixed
small amount of work (:data:`PATCHES` LR patches, :data:`REPEATS` timed passes after one warm-up)
and the run stops planning new cases once :data:`BUDGET_S` is used up (skipped cases are listed).

Everything except the CUDA calls is plain code that runs on the CPU too (``device="cpu"``, a
:class:`WallTimer`, tiny shapes), which is how the tests cover it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("reports") / "bench"
GPU_JSON = "gpu.json"
GPU_MD = "gpu.md"
PRECISIONS = ("fp32", "bf16", "fp16")
LAYOUTS = (False, True)  # channels_last off / on
PATCHES = 256
BATCH_SIZE = 64
LR_PATCH = 32
REPEATS = 3
TOTAL_BUDGET_S = 240.0
BUDGET_S = 150.0  # for the matrix; the main job gets what is left of TOTAL_BUDGET_S
MAIN_SUITE = ROOT / "suites" / "generalization.yaml"

PUBLIC_SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "MSRResNet-x4-64x16": ("MSRResNet", {"num_feat": 64, "num_block": 16, "upscale": 4}),
    "RRDBNet-x4-64x23": ("RRDBNet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}),
    "EDSR-M-x4": ("EDSR", {"num_feat": 64, "num_block": 16, "upscale": 4, "res_scale": 1}),
    "RCAN-x4": ("RCAN", {"num_feat": 64, "num_group": 10, "num_block": 20, "upscale": 4}),
}
"""The published sizes (BasicSR's MSRResNet_x4, ESRGAN's RRDBNet, EDSR-M, RCAN), randomly initialised."""

RELEASED_SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "realesrgan-x4plus@64": ("RRDBNet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}),
    "realesrgan-x4plus@128": ("RRDBNet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}),
    "realesr-animevideov3@64": ("SRVGGNetCompact", {"num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}),
    "realesr-animevideov3@128": ("SRVGGNetCompact", {"num_feat": 64, "num_conv": 16, "upscale": 4,
                                                     "act_type": "prelu"}),
}
"""The released networks of suites/public-x4.yaml at the LR sizes people upscale (``@side``: the LR
patch side), planned first so a short GPU loan measures them before anything else."""


def lr_side_of(name: str, default: int = LR_PATCH) -> int:
    """The LR patch side a shape name asks for (``name@128``), else ``default``."""
    _, _, side = name.rpartition("@")
    return int(side) if side.isdigit() else default


def patches_for(side: int, patches: int = PATCHES, base_side: int = LR_PATCH) -> int:
    """Patches of side ``side`` holding the LR pixels of ``patches`` patches of ``base_side`` (at least one):
    a 128 px case does the pixels of a 32 px one, so large patches keep a case's time bounded."""
    return max(1, min(patches, round(patches * (base_side / side) ** 2)))


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class GpuCase:
    """One cell of the matrix: an architecture at one precision and memory layout."""

    name: str
    arch: str
    arch_kwargs: dict[str, Any] = field(hash=False)
    precision: str = "fp32"
    channels_last: bool = False

    @property
    def amp_dtype(self) -> str | None:
        return None if self.precision == "fp32" else self.precision


def zoo_shapes(zoo=None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Zoo entry name -> (arch, arch_kwargs), one entry per distinct configuration (fine-tuned
    variants of a network have its speed)."""
    from ddr_eval.models.zoo import Zoo

    zoo = zoo or Zoo.load()
    shapes: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in sorted(zoo.models, key=lambda e: (len(e.name), e.name)):
        config = (entry.arch, dict(entry.arch_kwargs))
        if config not in shapes.values():
            shapes[entry.name] = config
    return shapes


def plan_cases(shapes: dict[str, tuple[str, dict[str, Any]]], precisions: Sequence[str] = PRECISIONS,
               layouts: Sequence[bool] = LAYOUTS) -> list[GpuCase]:
    """Every shape x precision x layout, shapes in the given order."""
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r}; use {', '.join(PRECISIONS)}")
    return [GpuCase(name, arch, dict(kwargs), precision, layout)
            for name, (arch, kwargs) in shapes.items() for precision in precisions for layout in layouts]


# --------------------------------------------------------------------------- timing


class WallTimer:
    """``perf_counter`` around a call (CPU, and the tests)."""

    def __call__(self, fn: Callable[[], Any]) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started


class CudaEventTimer:
    """CUDA events recorded on the current stream before and after a call; the elapsed device
    time between them, after synchronising on the end event."""

    def __call__(self, fn: Callable[[], Any]) -> float:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


def median_seconds(fn: Callable[[], Any], timer: Callable[[Callable[[], Any]], float], repeats: int = REPEATS,
                   warmup: int = 1) -> float:
    """Median of ``repeats`` timed calls after ``warmup`` untimed ones (cuDNN autotuning,
    allocator growth and lazy module set-up happen in the warm-up)."""
    for _ in range(warmup):
        fn()
    return statistics.median(timer(fn) for _ in range(repeats))


class PeakMemory:
    """``torch.cuda.max_memory_allocated`` over a block (``None`` off CUDA)."""

    def __init__(self, device) -> None:
        self.device = device

    def measure(self, fn: Callable[[], Any]) -> float | None:
        import torch

        if self.device.type != "cuda":
            fn()
            return None
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        fn()
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) / 2**20


# --------------------------------------------------------------------------- one case


def run_case(case: GpuCase, device, timer, patches: int = PATCHES, batch_size: int = BATCH_SIZE,
             lr_patch: int = LR_PATCH, repeats: int = REPEATS) -> dict[str, Any]:
    """Harness and bare forward of one case: patches/s of each, their ratio, peak MiB."""
    import numpy as np
    import torch

    from ddr_eval.features.device import autocast_context
    from ddr_eval.features.extract import extract_features
    from ddr_eval.models.archs import build_arch
    from ddr_eval.models.checkpoint import describe

    if case.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return {**_case_fields(case), "skipped": "this GPU has no bfloat16 support"}
    torch.manual_seed(0)
    descriptor = describe(build_arch(case.arch, **case.arch_kwargs), case.arch, case.arch_kwargs, name=case.name,
                          source=f"random:{case.name}")
    model, is_sr = descriptor.module, descriptor.purpose == "sr"
    size = getattr(model, "input_size", lr_side_of(case.name, lr_patch))  # a discriminator takes its fixed size
    patches = patches_for(size, patches, lr_patch)
    lr = np.random.default_rng(0).random((patches, size, size, descriptor.in_channels), dtype=np.float32)
    layer = descriptor.layer("deep") if "deep" in descriptor.taps else next(iter(descriptor.taps.values()))

    def harness():
        extract_features(model, lr, [layer], pooling="gap", batch_size=batch_size, device=device,
                         amp_dtype=case.amp_dtype, return_outputs=is_sr, channels_last=case.channels_last)

    memory_format = torch.channels_last if case.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    resident = [torch.from_numpy(lr[i:i + batch_size]).permute(0, 3, 1, 2).to(device)
                .contiguous(memory_format=memory_format) for i in range(0, patches, batch_size)]

    def bare():
        with torch.inference_mode(), autocast_context(device, case.amp_dtype):
            for batch in resident:
                model(batch)

    peak_mib = PeakMemory(device).measure(harness)
    harness_s = median_seconds(harness, timer, repeats)
    bare_s = median_seconds(bare, timer, repeats)
    return {**_case_fields(case), "patches": patches, "batch_size": batch_size, "lr_patch": size,
            "harness_patches_per_s": patches / harness_s, "bare_patches_per_s": patches / bare_s,
            "ratio": bare_s / harness_s, "peak_memory_mib": peak_mib, "params": descriptor.num_params}


def _case_fields(case: GpuCase) -> dict[str, Any]:
    fields = asdict(case)
    fields["channels_last"] = bool(case.channels_last)
    return fields


# --------------------------------------------------------------------------- the main job


def main_job_seconds(device: str = "cuda", suite: Path = MAIN_SUITE, timeout_s: float = 180.0) -> dict[str, Any]:
    """Wall time of ``ddr-eval run <suite>`` on ``device``, a fresh process with an empty feature
    cache (its report goes to a scratch directory)."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="ddr-eval-gpu-") as scratch:
        raw = yaml.safe_load(Path(suite).read_text())
        raw.setdefault("runtime", {})["device"] = device
        copy = Path(scratch) / Path(suite).name
        copy.write_text(yaml.safe_dump(raw))
        env = {**os.environ, "DDR_EVAL_FEATURE_CACHE": str(Path(scratch) / "cache")}
        argv = [sys.executable, "-m", "ddr_eval.cli", "run", str(copy), "--out", str(Path(scratch) / "report"), "-q"]
        started = time.perf_counter()
        try:
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"suite": str(suite), "device": device, "seconds": None, "error": f"timed out after {timeout_s} s"}
        seconds = time.perf_counter() - started
    error = done.stderr.strip().splitlines()[-1] if done.returncode else None
    return {"suite": str(suite), "device": device, "seconds": None if error else seconds, "error": error}


# --------------------------------------------------------------------------- the whole run


def run_gpu_bench(out_dir: Path | str = DEFAULT_OUT, device=None, shapes=None, timer=None, patches: int = PATCHES,
                  batch_size: int = BATCH_SIZE, lr_patch: int = LR_PATCH, repeats: int = REPEATS,
                  budget_s: float = BUDGET_S, precisions: Sequence[str] = PRECISIONS,
                  main_job: Callable[[], dict[str, Any]] | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Run the matrix and write ``gpu.json`` + ``gpu.md`` into ``out_dir``; returns the document.

    Defaults are the real run (CUDA, zoo + public shapes, CUDA events, the main job). The tests
    pass ``device="cpu"``, tiny ``shapes``, a :class:`WallTimer` and a stand-in ``main_job``.
    """
    import torch

    device = torch.device(device or "cuda")
    timer = timer or (CudaEventTimer() if device.type == "cuda" else WallTimer())
    shapes = shapes if shapes is not None else {**RELEASED_SHAPES, **zoo_shapes(), **PUBLIC_SHAPES}
    started = clock()
    cases, skipped = [], []
    for case in plan_cases(shapes, precisions):
        if clock() - started > budget_s:
            skipped.append({**_case_fields(case), "skipped": "time budget used up"})
            continue
        cases.append(run_case(case, device, timer, patches, batch_size, lr_patch, repeats))
    remaining = max(TOTAL_BUDGET_S - (clock() - started) - 5.0, 30.0)
    main = main_job() if main_job else main_job_seconds(str(device), timeout_s=remaining)
    document = {"device": _device_name(device), "torch": torch.__version__, "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "timer": type(timer).__name__, "cases": cases + skipped, "main_job": main,
                "matrix_seconds": clock() - started}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / GPU_JSON).write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / GPU_MD).write_text(gpu_markdown(document))
    return document


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def gpu_markdown(document: dict[str, Any]) -> str:
    """The markdown table of a ``gpu.json`` document."""
    from tabulate import tabulate

    def number(value: Any) -> str:
        return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [[c["name"], c["arch"], c["precision"], "on" if c["channels_last"] else "off",
             number(c.get("harness_patches_per_s")), number(c.get("bare_patches_per_s")), number(c.get("ratio")),
             number(c.get("peak_memory_mib")), c.get("skipped", "")] for c in document["cases"]]
    main = document.get("main_job") or {}
    main_line = (f"{number(main.get('seconds'))} s" if main.get("seconds") is not None
                 else f"not measured ({main.get('error')})")
    return "\n".join([
        f"# ddr-eval GPU benchmark: {document['device']}", "",
        f"torch {document['torch']}, {document['when']}; timer: {document['timer']}; "
        f"matrix {number(document.get('matrix_seconds'))} s.", "",
        "Harness = `extract_features` (deep tap, SR outputs to host); bare = `model(x)` on batches already on the "
        "device; ratio = harness throughput / bare throughput; peak = `torch.cuda.max_memory_allocated` over the "
        "harness pass.", "",
        tabulate(rows, headers=["model", "arch", "precision", "channels_last", "patches/s harness", "patches/s bare",
                                "ratio", "peak MiB", "skipped"], tablefmt="github", disable_numparse=True), "",
        f"Main job (`ddr-eval run {Path(main.get('suite', MAIN_SUITE)).name}`, cold cache, whole process): {main_line}",
    ]) + "\n"
