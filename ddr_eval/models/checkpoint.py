"""Reading, recognising, loading and writing checkpoints without ever running a pickle's code.

Checkpoints arrive from strangers (model hubs, papers' Google Drives), and a ``.pth`` is a
pickle that can run arbitrary code when loaded the ordinary way. So pickles are only read with
``torch.load(weights_only=True)``, and ddr-eval itself writes safetensors, whose header also
records the architecture so a zoo checkpoint loads without guessing. TorchScript archives are
refused: ``torch.jit.load`` runs the archive's own code (a module's ``__setstate__`` can write
or read any file), so they load only after the user says they trust the file
(``--trust-code``, :func:`trust_code`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import ddr_eval
from ddr_eval.core.atomic import atomic_write
from ddr_eval.core.errors import CheckpointError, MemoryBudgetError, UserError
from ddr_eval.models.archs import ARCHS, Arch, build_arch
from ddr_eval.models.descriptor import PURPOSES, ModelDescriptor
from ddr_eval.models.layouts import to_basicsr
from ddr_eval.models.taps import heuristic_taps
from ddr_eval.models.user_arch import (
    build_user_arch,
    declared_scale,
    in_channels_of,
    is_import_target,
    load_strictly,
    measure_scale,
    takes_argument,
    user_taps,
)

StateDict = dict[str, torch.Tensor]

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
# BasicSR stores {"params": ..., "params_ema": ...}; the EMA weights are the ones it evaluates
WRAPPER_KEYS = ("params_ema", "params", "state_dict")
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
LAYOUT_RECORDED = "ddr-eval"
"""The layout of a safetensors file whose metadata records its architecture (ddr-eval writes these)."""
LAYOUT_AS_SAVED = "as saved"
"""The layout of a user's class: its own module names, loaded strictly."""
TRUST_CODE_ENV = "DDR_EVAL_TRUST_CODE"
"""Set (to 1) by ``--trust-code``; an environment variable so worker processes inherit the choice."""


def trust_code(enabled: bool = True) -> None:
    """Allow (or forbid again) checkpoint formats that run code when loaded: TorchScript archives.

    Unsafe: a TorchScript archive carries Python-like code that ``torch.jit.load`` executes, and a
    hostile one can read or write any file the process can. Only for files you made yourself.
    """
    if enabled:
        os.environ[TRUST_CODE_ENV] = "1"
    else:
        os.environ.pop(TRUST_CODE_ENV, None)


def code_is_trusted() -> bool:
    return os.environ.get(TRUST_CODE_ENV, "") == "1"


# -- reading ---------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> tuple[StateDict, dict[str, str]]:
    """Tensors and metadata of a checkpoint (safetensors or weights-only pickle; TorchScript only
    after :func:`trust_code`).

    BasicSR wrappers are unwrapped (``params_ema`` preferred over ``params``) and DataParallel
    ``module.`` prefixes stripped. Metadata is the safetensors header's ``__metadata__``, or a
    description of where the weights came from for other formats. Every failure is a
    :class:`CheckpointError` naming the file.
    """
    path = Path(path)
    _check_file(path)
    kind = _sniff(path)
    if kind == "safetensors" or path.suffix == ".safetensors":
        return _read_safetensors(path)
    if kind == "zip" and _is_torchscript(path):
        return _read_torchscript(path)
    if kind in ("zip", "pickle"):
        return _read_pickle(path)
    raise CheckpointError(f"{path} is not a checkpoint (neither safetensors, a PyTorch pickle nor TorchScript)")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")


def _sniff(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < _MAX_SAFETENSORS_HEADER:
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol >= 2: legacy torch.save format
        return "pickle"
    return "unknown"


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own (Rust) error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({_one_line(exc)})") from None
    return _strip_module_prefix(tensors), metadata


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _read_torchscript(path: Path) -> tuple[StateDict, dict[str, str]]:
    if not code_is_trusted():
        raise CheckpointError(torchscript_refusal(path))
    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; reading it is still fine
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path} is a TorchScript archive that cannot be loaded ({_one_line(exc)})") from None
    return _strip_module_prefix(dict(scripted.state_dict())), {"format": "torchscript"}


def torchscript_refusal(path: Path) -> str:
    return (f"refused: {path} is a TorchScript archive, whose loading runs code the file carries; export plain "
            "weights instead (torch.save(model.state_dict(), 'weights.pth') or safetensors), or pass --trust-code "
            "(unsafe) if you made the file yourself")


def _weights_only_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` without torch's chatter about the pickle protocol.

    torch warns (twice for a legacy file) when a pickle uses protocol 3 or higher, which
    ``torch.save`` itself writes on request and every hostile pickle can; the warning says nothing
    the load's outcome does not. Warnings raised during a load that fails are dropped (the
    refusal is the one line a user sees); those of a load that succeeds, other than the protocol
    notice, are passed on.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    for warning in caught:
        if not str(warning.message).startswith("Detected pickle protocol"):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return payload


def _read_pickle(path: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        payload = _weights_only_load(path)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if "Weights only load failed" in message:
            raise CheckpointError(_refusal(path, message)) from None
        raise CheckpointError(f"{path} is corrupt or not a PyTorch checkpoint ({_one_line(exc)})") from None
    except Exception as exc:  # truncated zip (RuntimeError), truncated legacy pickle (EOFError), ...
        if "TorchScript" in str(exc):  # torch's own sniffing found an archive ours did not
            raise CheckpointError(torchscript_refusal(path)) from None
        raise CheckpointError(f"{path} is truncated, corrupt or not a PyTorch checkpoint ({_one_line(exc)})") from None
    state_dict, param_key = _unwrap(path, payload)
    metadata = {"format": "pickle"}
    if param_key:
        metadata["param_key"] = param_key
    return state_dict, metadata


def _refusal(path: Path, message: str) -> str:
    needs_global = re.search(r"GLOBAL ([\w.]+)", message)
    if needs_global:
        return (f"refused: the pickle in {path} needs to execute code ({needs_global.group(1)}); "
                "only weights are loaded")
    detail = re.search(r"(Unsupported [^\n]*)", message)
    return (f"refused: the pickle in {path} uses constructs outside the weights-only subset "
            f"({detail.group(1) if detail else 'unsupported pickle'}); only weights are loaded")


def _unwrap(path: Path, payload: Any) -> tuple[StateDict, str | None]:
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a state dict")
    param_key = next((k for k in WRAPPER_KEYS if isinstance(payload.get(k), Mapping)), None)
    inner = payload[param_key] if param_key else payload
    tensors = {str(k): v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(payload)[:8]))
        raise CheckpointError(f"{path} holds no weights (top-level keys: {keys or 'none'})")
    return _strip_module_prefix(tensors), param_key


def _strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop the ``module.`` that (Distributed)DataParallel adds in front of every key."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# -- recognising -----------------------------------------------------------------------------


def _arch_classes() -> dict[str, type[Arch]]:
    """Canonical name -> class (aliases such as SRResNet map to the class's own name)."""
    return {cls.__name__: cls for _, cls in ARCHS.items()}


def canonical_arch(arch: str) -> str:
    return ARCHS.get(arch).__name__


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """The built-in architecture and constructor arguments a state dict was made by.

    Width, depth and scale are read off key names and tensor shapes. Arguments without
    weights (MSRResNet's ``global_residual``, SRCNN's ``upscale``) keep their defaults unless
    the caller supplies them.
    """
    matches = []
    for name, cls in _arch_classes().items():
        kwargs = cls.infer_kwargs(state_dict)
        if kwargs is not None:
            matches.append((name, kwargs))
    if len(matches) == 1:
        return matches[0]
    keys = sorted(state_dict)
    seen = ", ".join(keys[:6]) + (f", ... ({len(keys)} keys)" if len(keys) > 6 else "")
    if not matches:
        raise CheckpointError(f"unknown architecture: the keys match none of {', '.join(_arch_classes())} "
                              f"(saw {seen or 'no keys'})")
    raise CheckpointError(f"ambiguous architecture: the keys match {', '.join(m[0] for m in matches)} (saw {seen})")


# -- loading ---------------------------------------------------------------------------------


def load_model(path: str | os.PathLike, arch: str | None = None, name: str | None = None, *,
               scale: int | None = None, max_param_bytes: int | None = None, **arch_kwargs: Any) -> ModelDescriptor:
    """Load a checkpoint file into a built-in architecture, a user's class or spandrel's, and describe it.

    The architecture comes from, in order: the safetensors metadata ddr-eval writes; ``arch``
    (a built-in name, or ``package.module:Class`` for a user's own class); detection from the
    weights, after mapping a foreign key layout (:mod:`ddr_eval.models.layouts`: the original
    ESRGAN names, ESRGAN's sequential ``model.N`` names) onto BasicSR's; spandrel, if installed.
    ``arch_kwargs`` fill in or override constructor arguments; asking for a different scale
    than the weights were trained for (via ``scale`` or the arch's own scale argument) is an
    error, not a silent rebuild. The descriptor records the layout the keys were in.
    ``max_param_bytes`` refuses, before building it, a network whose parameters take more.
    """
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    recorded_arch = metadata.get("arch")
    if recorded_arch is None and is_import_target(arch):
        return _load_user_class(path, state_dict, arch, arch_kwargs, name, scale)
    layout = LAYOUT_RECORDED
    if recorded_arch is not None:
        _check_recorded_arch(path, recorded_arch, arch)
        arch_name, base_kwargs = canonical_arch(recorded_arch), _recorded_kwargs(path, metadata)
    else:
        state_dict, layout = to_basicsr(state_dict, str(path))
        if arch is not None:
            arch_name = canonical_arch(arch)
            base_kwargs = _arch_classes()[arch_name].infer_kwargs(state_dict) or {}
        else:
            try:
                arch_name, base_kwargs = detect_arch(state_dict)
            except CheckpointError as exc:
                return _load_with_spandrel(path, state_dict, name, scale, reason=str(exc))

    cls = _arch_classes()[arch_name]
    kwargs = _merge_kwargs(path, arch_name, cls, base_kwargs, arch_kwargs, scale)
    try:
        module = build_arch(arch_name, max_bytes=max_param_bytes, **kwargs)
    except MemoryBudgetError as exc:
        raise MemoryBudgetError(f"{path}: {exc}") from None
    _load_weights(path, module, state_dict, arch_name, kwargs)
    purpose = metadata.get("purpose", cls.purpose)
    if purpose not in PURPOSES:
        raise CheckpointError(f"{path}: metadata purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    descriptor = describe(module, arch_name, kwargs, name=name or path.stem, source=str(path),
                          sha256=sha256_file(path), purpose=purpose)
    descriptor.layout = layout
    _check_scale(path, descriptor, scale)
    return descriptor


def describe(module: Arch, arch: str, arch_kwargs: dict[str, Any], name: str, source: str,
             sha256: str | None = None, purpose: str | None = None) -> ModelDescriptor:
    """A descriptor for a built-in network instance (put in eval mode)."""
    module.eval()
    return ModelDescriptor(
        name=name, arch=arch, arch_kwargs=dict(arch_kwargs), scale=int(module.scale_factor),
        in_channels=int(module.in_channels), out_channels=int(module.out_channels),
        purpose=purpose or module.purpose, taps=module.feature_taps(), module=module, sha256=sha256, source=source,
    )


def _check_recorded_arch(path: Path, recorded: str, requested: str | None) -> None:
    if recorded not in ARCHS:
        raise CheckpointError(f"{path} records architecture {recorded!r}, which is not built in "
                              f"(known: {', '.join(ARCHS)})")
    if requested is not None and canonical_arch(requested) != canonical_arch(recorded):
        raise CheckpointError(f"{path} holds {recorded} weights (recorded in its metadata), not {requested}")


def _recorded_kwargs(path: Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    try:
        kwargs = json.loads(metadata.get("arch_kwargs", "{}"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata arch_kwargs is not valid JSON ({exc})") from None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: metadata arch_kwargs must be a JSON object")
    return kwargs


def _merge_kwargs(path: Path, arch: str, cls: type[Arch], base: dict[str, Any], requested: dict[str, Any],
                  scale: int | None) -> dict[str, Any]:
    """Requested arguments on top of recorded/detected ones, refusing to change a trained scale."""
    scale_key = cls.scale_kwarg
    requested = dict(requested)
    if scale is not None and scale_key is not None:
        if scale_key in requested and requested[scale_key] != scale:
            raise UserError(f"{path}: scale={scale} contradicts {scale_key}={requested[scale_key]}")
        requested[scale_key] = scale
    if scale_key and scale_key in base and scale_key in requested and requested[scale_key] != base[scale_key]:
        raise CheckpointError(f"{path} holds a x{base[scale_key]} {arch}; x{requested[scale_key]} was requested")
    return {**base, **requested}


def _check_scale(path: Path, descriptor: ModelDescriptor, scale: int | None) -> None:
    if scale is not None and descriptor.scale != scale:
        raise CheckpointError(f"{path} holds a x{descriptor.scale} {descriptor.arch}; x{scale} was requested")


def _load_weights(path: Path, module: nn.Module, state_dict: StateDict, arch: str, kwargs: dict[str, Any]) -> None:
    args = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    load_strictly(module, state_dict, f"{path} does not fit {arch}({args})")


def _load_user_class(path: Path, state_dict: StateDict, target: str, arch_kwargs: dict[str, Any],
                     name: str | None, scale: int | None) -> ModelDescriptor:
    """A checkpoint of the user's own class (``--arch package.module:Class``), loaded strictly.

    ``scale`` (``load_model``'s own argument, which a suite's ``arch_kwargs: {scale: 4}`` lands
    in) is passed to the class when its constructor takes a ``scale``; either way it is checked.
    """
    if scale is not None and takes_argument(target, "scale"):
        arch_kwargs = {**arch_kwargs, "scale": scale}
    module = build_user_arch(target, dict(arch_kwargs))
    _load_weights(path, module, state_dict, target, arch_kwargs)
    module.eval()
    in_channels = in_channels_of(module)
    stated = declared_scale(arch_kwargs)
    try:
        measured, out_channels = measure_scale(module, in_channels, f"{path} in {target}")
    except UserError:
        if stated is None:
            raise
        measured, out_channels = stated, in_channels  # the stated scale stands for a net a 16x16 patch cannot probe
    if stated is not None and stated != measured:
        raise CheckpointError(f"{path}: {target} with scale {stated} in arch_kwargs upscales x{measured}")
    descriptor = ModelDescriptor(
        name=name or path.stem, arch=target, arch_kwargs=dict(arch_kwargs), scale=measured,
        in_channels=in_channels, out_channels=out_channels, purpose="sr", taps=user_taps(module), module=module,
        sha256=sha256_file(path), source=str(path), layout=LAYOUT_AS_SAVED,
    )
    _check_scale(path, descriptor, scale)
    return descriptor


def _load_with_spandrel(path: Path, state_dict: StateDict, name: str | None, scale: int | None,
                        reason: str) -> ModelDescriptor:
    """Last resort for architectures ddr-eval does not build: spandrel's detector, if installed.

    Its taps follow the body-block rule of :mod:`ddr_eval.models.taps`. A spandrel that is
    installed but cannot be imported (with the pinned CPU torch, the torchvision pip brings
    along fails with ``operator torchvision::nms does not exist``) is one line naming the extra.
    """
    try:
        import spandrel
    except ModuleNotFoundError as exc:
        if exc.name != "spandrel":
            raise CheckpointError(broken_extra_message(path, reason, exc)) from None
        raise CheckpointError(f"{path}: {reason}; spandrel unavailable: {exc} (pip install 'ddr-eval[spandrel]', or "
                              "name the class with --arch package.module:Class)") from None
    except (ImportError, RuntimeError, OSError) as exc:
        raise CheckpointError(broken_extra_message(path, reason, exc)) from None
    try:
        loaded = spandrel.ModelLoader().load_from_state_dict(state_dict)
    except Exception as exc:
        raise CheckpointError(f"{path}: {reason}; spandrel could not load it either ({_one_line(exc)})") from None
    module = loaded.model.eval()
    descriptor = ModelDescriptor(
        name=name or path.stem, arch=f"spandrel:{loaded.architecture.name}", arch_kwargs={},
        scale=int(loaded.scale), in_channels=int(loaded.input_channels), out_channels=int(loaded.output_channels),
        purpose="sr", taps=heuristic_taps(module), module=module, sha256=sha256_file(path), source=str(path),
        layout="spandrel",
    )
    _check_scale(path, descriptor, scale)
    return descriptor


def broken_extra_message(path: Path, reason: str, exc: BaseException) -> str:
    return (f"{path}: {reason}; the optional extra [spandrel] is installed but does not load "
            f"({type(exc).__name__}: {_one_line(exc)}); reinstall torchvision to match torch "
            f"{torch.__version__}, or uninstall spandrel")


# -- writing ---------------------------------------------------------------------------------


def save_model(path: str | os.PathLike, module: nn.Module, arch: str, arch_kwargs: Mapping[str, Any],
               purpose: str = "sr", extra_metadata: Mapping[str, Any] | None = None) -> str:
    """Write ``module``'s weights and how to rebuild it to a safetensors file; returns its sha256.

    The file appears atomically (temp file in the same directory, then ``os.replace``), so a
    crash never leaves a half-written checkpoint under the final name.
    """
    path = Path(path)
    if purpose not in PURPOSES:
        raise UserError(f"save_model: purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    canonical_arch(arch)  # unknown names fail here, not at load time
    metadata = {
        "arch": arch,
        "arch_kwargs": json.dumps(dict(arch_kwargs), sort_keys=True),
        "purpose": purpose,
        "producer": f"ddr-eval {ddr_eval.__version__}",
    }
    for key, value in (extra_metadata or {}).items():
        metadata[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return sha256_file(path)
