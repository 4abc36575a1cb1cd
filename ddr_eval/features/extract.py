"""Deep features of a network, read with forward hooks on named submodules.

The harness adds as little as possible on top of a plain batched forward pass: one NHWC->NCHW
conversion per batch, pooling done on the device inside the hook, and one device->host copy per
layer per batch. When SR outputs are not wanted, the forward pass stops as soon as every tapped
layer has run, so the (often expensive) upsampling tail is skipped.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.features.device import autocast_context, select_device
from ddr_eval.core.specs import POOLINGS


@dataclass
class FeatureBatch:
    """Pooled features per tapped layer (N x D float32) and, if asked for, the SR outputs."""

    features: dict[str, np.ndarray]
    outputs: np.ndarray | None = None  # N,H,W,3 float32 clipped to [0, 1]


def extract_features(
    model: nn.Module,
    lr: np.ndarray,
    layers: Sequence[str],
    pooling: str = "gap",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    amp_dtype: str | None = None,
    return_outputs: bool = False,
    progress: Callable[[int], object] | None = None,
    channels_last: bool = False,
) -> FeatureBatch:
    """Run ``model`` on LR patches (N,h,w,C NHWC float32) and pool the outputs of ``layers``.

    ``layers`` are module names as in ``model.named_modules()``; a layer's features are its
    output (the first tensor if it returns a tuple) the first time it runs in a forward pass.
    Pooling reduces every dimension after the channel one (PyTorch's channel-first layout);
    2-D outputs (N x C) pass through unchanged for ``gap``/``gmp``.

    The model is moved to ``device`` (``None`` = auto) and run in eval mode under
    ``torch.inference_mode()``; its train/eval flag is restored afterwards, and the hooks are
    always removed. On out-of-memory the batch size is halved and the batch retried, down to 1.
    ``progress``, if given, is called with the number of patches finished after each batch
    (so ``tqdm(total=N).update`` fits). ``amp_dtype`` (``"bf16"``/``"fp16"``) enables autocast
    on CUDA; ``channels_last`` runs the model in that memory format (faster convs on CUDA).
    """
    return extract_poolings(model, lr, layers, (pooling,), batch_size, device, amp_dtype, return_outputs,
                            progress, channels_last)[pooling]


def extract_poolings(
    model: nn.Module,
    lr: np.ndarray,
    layers: Sequence[str],
    poolings: Sequence[str],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    amp_dtype: str | None = None,
    return_outputs: bool = False,
    progress: Callable[[int], object] | None = None,
    channels_last: bool = False,
) -> dict[str, FeatureBatch]:
    """:func:`extract_features` for several poolings of the same layers in one forward pass.

    A suite that needs both pooled features (``gap``) and whole maps (``flatten``, for SRGA) of
    the same inputs pays for one forward pass instead of two. Every returned batch carries the
    SR outputs when ``return_outputs``.
    """
    lr = _validate_input(lr)
    layers = list(dict.fromkeys(layers))
    poolings = tuple(dict.fromkeys(poolings))
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown or not poolings:
        raise UserError(f"unknown pooling {(unknown or [None])[0]!r}; use one of {', '.join(POOLINGS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not layers and not return_outputs:
        raise UserError("nothing to extract: give at least one layer or return_outputs=True")
    modules = {name: _resolve_module(model, name) for name in layers}

    device = select_device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    # always with an explicit format: a model an earlier call left in channels_last goes back
    model.to(device=device, memory_format=memory_format)
    model.eval()
    input_dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    taps = _LayerTaps(modules, poolings, stop_when_done=not return_outputs)
    try:
        with taps, torch.inference_mode(), autocast_context(device, amp_dtype):
            runner = _BatchRunner(model, taps, device, input_dtype, memory_format, return_outputs)
            batch = runner.run(lr, int(batch_size), progress)
    finally:
        model.train(was_training)
    return {pooling: FeatureBatch(features={name: batch.features[_tap_key(name, pooling)] for name in layers},
                                  outputs=batch.outputs)
            for pooling in poolings}


def _tap_key(name: str, pooling: str) -> str:
    return f"{pooling}\0{name}"


_OUTPUTS = "\0outputs"  # key of the SR outputs among the host arrays; cannot be a module name


class _HostArrays:
    """Float32 host arrays filled batch by batch, allocated when the first batch shows their shape
    (one copy per batch, no concatenation at the end)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.arrays: dict[str, np.ndarray] = {}

    def write(self, key: str, start: int, values: torch.Tensor) -> None:
        array = self.arrays.get(key)
        if array is None:
            array = self.arrays[key] = np.empty((self.total, *values.shape[1:]), dtype=np.float32)
        torch.from_numpy(array[start : start + len(values)]).copy_(values)


class _StopForward(Exception):
    """Raised by the last hook to skip the rest of the network once every layer is captured."""


class _LayerTaps:
    """Forward hooks that pool each layer's first output per forward pass, on the device, once
    per pooling (keys ``_tap_key(layer, pooling)``)."""

    def __init__(self, modules: dict[str, nn.Module], poolings: tuple[str, ...], stop_when_done: bool) -> None:
        self.modules = modules
        self.poolings = poolings
        self.stop_when_done = stop_when_done
        self.pooled: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> _LayerTaps:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._hook_for(name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.pooled = {}

    def _hook_for(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if _tap_key(name, self.poolings[0]) in self.pooled:
                return
            tensor = _first_tensor(output, name)
            for pooling in self.poolings:
                self.pooled[_tap_key(name, pooling)] = _pool(tensor, pooling, name)
            if self.stop_when_done and len(self.pooled) == len(self.modules) * len(self.poolings):
                raise _StopForward

        return hook


class _BatchRunner:
    """Batched forward passes with OOM back-off; collects host-side results."""

    def __init__(self, model, taps, device, input_dtype, memory_format, return_outputs) -> None:
        self.model = model
        self.taps = taps
        self.device = device
        self.input_dtype = input_dtype
        self.memory_format = memory_format
        self.return_outputs = return_outputs

    def run(self, lr: np.ndarray, batch_size: int, progress: Callable[[int], object] | None) -> FeatureBatch:
        host = _HostArrays(len(lr))
        start = 0
        while start < len(lr):
            stop = min(start + batch_size, len(lr))
            out_of_memory = False
            try:
                pooled, output = self._forward(lr[start:stop])
                for name, values in pooled.items():
                    host.write(name, start, values)
                if output is not None:
                    host.write(_OUTPUTS, start, output.permute(0, 2, 3, 1))
            except Exception as error:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not _is_out_of_memory(error):
                    raise
                out_of_memory = True
            if out_of_memory:  # outside `except` so the failed batch's tensors can be freed
                batch_size = self._back_off(batch_size)
                continue
            if progress is not None:
                progress(stop - start)
            start = stop
        outputs = host.arrays.pop(_OUTPUTS, None)
        if outputs is not None:
            np.clip(outputs, 0.0, 1.0, out=outputs)
        return FeatureBatch(features=host.arrays, outputs=outputs)

    def _forward(self, batch: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """One forward pass; returns the pooled features and the NCHW output, still on the device."""
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)
        x = x.to(device=self.device, dtype=self.input_dtype, non_blocking=True)
        self.taps.pooled = {}
        try:
            output = self.model(x)
        except _StopForward:
            output = None
        pooled, self.taps.pooled = self.taps.pooled, {}
        missing = [name for name in self.taps.modules if _tap_key(name, self.taps.poolings[0]) not in pooled]
        if missing:
            raise UserError(f"layer(s) {', '.join(map(repr, missing))} did not run during the forward pass")
        if not self.return_outputs:
            return pooled, None
        output = _first_tensor(output, "model output")
        if output.ndim != 4:
            raise UserError(
                f"model output has shape {tuple(output.shape)}; return_outputs needs an N,C,H,W image batch"
            )
        return pooled, output

    def _back_off(self, batch_size: int) -> int:
        self.taps.pooled = {}
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if batch_size == 1:
            raise UserError(
                f"out of memory on {self.device} even at batch size 1; use smaller patches or another device"
            )
        return batch_size // 2


def _pool(tensor: torch.Tensor, pooling: str, name: str) -> torch.Tensor:
    """Pool on the device into a fresh float32 tensor (never a view: later in-place ops such as
    ``ReLU(inplace=True)`` would otherwise change the captured values)."""
    if tensor.ndim < 2:
        raise UserError(f"layer {name!r} outputs a {tensor.ndim}-D tensor; expected at least N x C")
    if pooling == "flatten":
        return tensor.flatten(1).to(torch.float32, copy=True)
    if tensor.ndim == 2:  # already one value per channel: its spread over space is 0
        vector = tensor.to(torch.float32, copy=True)
        return torch.cat([vector, torch.zeros_like(vector)], dim=1) if pooling == "mean_std" else vector
    spatial = tuple(range(2, tensor.ndim))
    if pooling == "gap":
        return tensor.mean(dim=spatial, dtype=torch.float32)
    if pooling == "mean_std":
        std, mean = torch.std_mean(tensor.to(torch.float32), dim=spatial, correction=0)
        return torch.cat([mean, std], dim=1)
    return tensor.amax(dim=spatial).to(torch.float32)


def _first_tensor(value: object, name: str) -> torch.Tensor:
    while isinstance(value, (tuple, list)) and value:
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise UserError(f"{name!r} produced {type(value).__name__}, not a tensor")
    return value


def _resolve_module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        available = [module_name for module_name, _ in model.named_modules() if module_name]
        hints = difflib.get_close_matches(name, available, n=5) or available[:8]
        raise UserError(
            f"model {type(model).__name__} has no module {name!r}; available include: {', '.join(hints)}"
        ) from None


def _validate_input(lr: np.ndarray) -> np.ndarray:
    lr = np.asarray(lr)
    if lr.ndim != 4:
        raise UserError(f"LR input must be an N,h,w,C batch, got shape {lr.shape}")
    if len(lr) == 0:
        raise UserError("LR input is empty (0 patches)")
    # One contiguous, writable float32 copy at most, so every batch is a cheap zero-copy view.
    return np.require(lr, dtype=np.float32, requirements=["C", "W"])


_OUT_OF_MEMORY_MESSAGES = (
    "out of memory",  # CUDA ("CUDA out of memory"), MPS ("MPS backend out of memory")
    "can't allocate memory",  # CPU: "DefaultCPUAllocator: can't allocate memory: you tried to allocate ..."
)


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and any(text in str(error) for text in _OUT_OF_MEMORY_MESSAGES)
    )
