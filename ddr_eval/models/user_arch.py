"""A user's own architecture, named ``package.module:ClassName`` (``--arch``, a suite's ``arch:``).

Released networks are often classes that ddr-eval does not build. The user names the class
the way entry points do; ddr-eval imports the module (the current directory is searched after
the installed packages, so a local ``my_pkg/`` works from the CLI as it does under ``python -m``),
checks the attribute is an ``nn.Module`` subclass *before* calling it, builds it with the given
``arch_kwargs`` and loads the checkpoint into it strictly (every key, every shape). Importing a
module runs its code: that is the point of naming your own class, and only modules already on
disk can be named; the checkpoint itself is still read without running code.

Its scale comes from ``arch_kwargs`` (``scale``, ``upscale`` or ``upscale_factor``) or, failing
that, from one forward pass of a zero 16x16 patch. Its taps: the class's own ``feature_taps()``
if it has one, else :func:`ddr_eval.models.taps.heuristic_taps` (``deep`` = the last block of
the body); any module name is a layer as well.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ddr_eval.core.errors import CheckpointError, UserError
from ddr_eval.core.plugins import import_user_module
from ddr_eval.models.taps import heuristic_taps
from ddr_eval.config.schema import IMPORT_TARGET

SCALE_KWARGS = ("scale", "upscale", "upscale_factor")
PROBE_SIZE = 16


def is_import_target(arch: str | None) -> bool:
    """Whether ``arch`` names a class to import (``module:Class``) rather than a built-in architecture."""
    return arch is not None and ":" in arch


def import_arch(target: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass ``target`` (``package.module:Class``) names; anything else is a UserError."""
    if not IMPORT_TARGET.fullmatch(target):
        raise UserError(f"arch {target!r}: expected package.module:ClassName")
    module_name, _, attribute = target.partition(":")
    module = import_user_module(module_name, f"arch {target!r}")
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UserError(f"arch {target!r}: {module_name} has no attribute {attribute}")
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise UserError(f"arch {target!r}: {attribute} is a {type(found).__name__}, not an nn.Module subclass")
    return found


def class_identity(target: str, arch_kwargs: dict[str, Any]) -> str:
    """What features of a user's class depend on besides the weights: the class, its arguments and
    the sha256 of the file defining it (an edited class must not reuse cached features)."""
    cls = import_arch(target)
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:  # a class without a source file (built in, or made at run time)
        source = None
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16] if source and Path(source).is_file() else "nofile"
    return f"{target}:{json.dumps(arch_kwargs, sort_keys=True, default=str)}:{digest}"


def takes_argument(target: str, name: str) -> bool:
    """Whether the class's constructor has a parameter ``name``."""
    try:
        return name in inspect.signature(import_arch(target)).parameters
    except (TypeError, ValueError):  # no introspectable signature
        return False


def build_user_arch(target: str, arch_kwargs: dict[str, Any]) -> nn.Module:
    cls = import_arch(target)
    try:
        return cls(**arch_kwargs)
    except Exception as exc:  # noqa: BLE001 - any constructor failure is bad arch_kwargs for the user
        raise UserError(f"arch {target}: {cls.__name__}(**{arch_kwargs}) failed ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())})") from None


def in_channels_of(module: nn.Module) -> int:
    declared = getattr(module, "in_channels", None)
    if isinstance(declared, int):
        return declared
    first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    return int(first.in_channels) if first is not None else 3


def measure_scale(module: nn.Module, in_channels: int, label: str) -> tuple[int, int]:
    """(scale, output channels) from one forward pass of a zero ``PROBE_SIZE`` square patch."""
    module.eval()
    try:
        with torch.inference_mode():
            output = module(torch.zeros(1, in_channels, PROBE_SIZE, PROBE_SIZE))
    except Exception as exc:  # noqa: BLE001 - the user's forward
        raise UserError(f"{label}: a 1x{in_channels}x{PROBE_SIZE}x{PROBE_SIZE} input fails "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    shape = tuple(getattr(output, "shape", ()))
    if len(shape) != 4 or shape[2] != shape[3] or shape[2] % PROBE_SIZE:
        raise UserError(f"{label}: maps a {PROBE_SIZE}x{PROBE_SIZE} input to {shape}, not an image "
                        "an integer factor larger; give its scale in arch_kwargs (scale / upscale / upscale_factor)")
    return shape[2] // PROBE_SIZE, int(shape[1])


def declared_scale(arch_kwargs: dict[str, Any]) -> int | None:
    for key in SCALE_KWARGS:
        value = arch_kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None


def user_taps(module: nn.Module) -> dict[str, str]:
    own = getattr(module, "feature_taps", None)
    if callable(own):
        return dict(own())
    return heuristic_taps(module)


def load_strictly(module: nn.Module, state_dict: dict[str, torch.Tensor], label: str) -> None:
    """Every key of the file and of the module must match, with the same shapes."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
                 for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or misshaped:
        problems = [f"{name} {_short(keys)}" for name, keys in
                    (("missing", missing), ("unexpected", unexpected), ("mis-shaped (file vs model)", misshaped)) if keys]
        raise CheckpointError(f"{label}: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=False)


def _short(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... +{len(items) - limit} more' if len(items) > limit else ''}]"
