"""Where inference runs and in which precision.

Kept apart from extraction so the CLI, the runner and the training loops resolve ``--device``
the same way and fail the same way when a GPU is asked for but absent.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from ddr_eval.core.errors import UserError

AMP_DTYPES: dict[str, torch.dtype] = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
"""Accepted spellings of the mixed-precision dtype."""


def select_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device preference.

    ``"auto"`` (or ``None``) picks CUDA when available, else Apple MPS, else the CPU. An explicit
    ``"cuda"``/``"cuda:N"``/``"mps"`` that this machine cannot provide is a UserError rather than
    a silent fallback, because benchmark timings and numerics depend on the device.
    """
    if preference is None or preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError) as error:
        raise UserError(f"unknown device {preference!r} ({error}); use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {preference!r} requested but CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"device {preference!r} requested but only {count} CUDA device(s) exist")
    elif device.type == "mps" and not _mps_available():
        raise UserError(f"device {preference!r} requested but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unsupported device {preference!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def autocast_context(device: torch.device | str, dtype: str | None) -> ContextManager:
    """Mixed precision for a forward pass: ``torch.autocast`` on CUDA when ``dtype`` is given.

    Elsewhere it is a no-op: CPU autocast is usually slower than float32 and would change the
    numbers for no gain, so requesting it there keeps full precision.
    """
    if dtype is not None and dtype not in AMP_DTYPES:
        raise UserError(f"unknown mixed-precision dtype {dtype!r}; use one of {', '.join(AMP_DTYPES)}")
    device = torch.device(device)
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    if AMP_DTYPES[dtype] is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise UserError(f"amp_dtype {dtype!r}: this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 "
                        "support; use fp16")
    return torch.autocast(device_type="cuda", dtype=AMP_DTYPES[dtype])


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
