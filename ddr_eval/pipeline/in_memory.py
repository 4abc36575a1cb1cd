"""What a run is asked to evaluate when the caller holds the models: in-memory ``nn.Module`` s
checked and made into ready feature sources, and a suite (path, dict, ``Suite``) merged with the
caller's models (:func:`prepare`). The Python API's :func:`ddr_eval.evaluate` and the training
monitor both start here, so an in-memory model is checked and identified one way.

An in-memory module is checked before any work starts, like a checkpoint: its output must be
``scale`` x its input, its layers must exist (the error lists the nearest names) and its input
channels must match the LR patches; each problem is a :class:`ModelInputError` naming the model.
Its cache identity is the sha256 of its state_dict bytes and its class name, so a re-run of
the same weights reuses cached features and a trained step never does.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ddr_eval.config.schema import ModelSpec, Suite
from ddr_eval.core.errors import UserError
from ddr_eval.models import ModelDescriptor
from ddr_eval.pipeline.models import FeatureSource

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")
IN_MEMORY_PREFIX = "in-memory:"  # the suite spec standing for an in-memory model (name shown in results.json)


class ModelInputError(UserError, ValueError):
    """An in-memory model that does not fit its input: wrong scale, unknown layer, wrong channel count."""


# --------------------------------------------------------------------------- in-memory models


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 of a module's class name and every state_dict tensor (name, dtype, shape, bytes).

    This is an in-memory model's cache identity, the analogue of a checkpoint file's sha256: two
    modules share cached features only when they would compute the same function.
    """
    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for key, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"\0{key}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _module_names(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_modules() if name]


def input_channels(module: nn.Module) -> int | None:
    """The channels ``module`` takes: its ``in_channels`` attribute, else its first convolution's;
    None when neither says."""
    declared = getattr(module, "in_channels", None)
    if isinstance(declared, int):
        return declared
    first = next((m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if isinstance(first, nn.Conv2d):
        return int(first.in_channels)
    return None


def _taps(module: nn.Module) -> dict[str, str]:
    feature_taps = getattr(module, "feature_taps", None)
    return dict(feature_taps()) if callable(feature_taps) else {}


def device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@dataclass
class InMemoryModel:
    """A network held in memory, with what a suite needs to know about it.

    ``layers`` are module names (``net.named_modules()``) or, for ddr-eval's own architectures,
    tap aliases (``deep``, ``block0``, ...); ``None`` takes the suite's layers. ``scale`` defaults
    to the suite's. ``purpose`` is ``"sr"`` (checked for ``scale`` x output) or ``"classification"``.
    """

    module: nn.Module
    name: str | None = None
    scale: int | None = None
    layers: Sequence[str] | None = None
    purpose: str = "sr"
    taps: dict[str, str] | None = None
    identity: str | None = None  # a checkpoint's sha256, when known; else computed from the state_dict

    def __post_init__(self) -> None:
        if not isinstance(self.module, nn.Module):
            raise ModelInputError(f"expected a torch nn.Module, got {type(self.module).__name__}")
        self.name = self.name or type(self.module).__name__
        if self.taps is None:
            self.taps = _taps(self.module)

    @classmethod
    def from_descriptor(cls, descriptor: ModelDescriptor, layers: Sequence[str] | None = None) -> "InMemoryModel":
        return cls(descriptor.module, descriptor.name, descriptor.scale, layers, descriptor.purpose,
                   dict(descriptor.taps), descriptor.sha256)

    def resolve_layers(self, default_layers: Sequence[str]) -> dict[str, str]:
        """Shown layer name -> module name; an unknown name lists the nearest module names."""
        names = _module_names(self.module)
        known = set(names)
        resolved = {}
        for layer in self.layers or default_layers:
            module = self.taps.get(layer, layer)
            if layer == "sweep" and self.taps:
                resolved.update({k: v for k, v in self.taps.items() if k.startswith("block")})
                continue
            if module not in known:
                candidates = [*self.taps, *names]
                nearest = difflib.get_close_matches(layer, candidates, n=5, cutoff=0.4) or candidates[:8]
                raise ModelInputError(f"model {self.name}: no layer {layer!r}; nearest names: {', '.join(nearest)}")
            resolved[layer] = module
        if not resolved:
            raise ModelInputError(f"model {self.name}: no layers to tap; pass layers= (module names)")
        return resolved

    def check_input(self, lr_shape: tuple[int, int, int], scale: int) -> None:
        """One zero patch through the network (eval mode, inference mode, mode restored):
        channel count and, for SR networks, an output of ``scale`` x the input."""
        height, width, channels = lr_shape
        expected = input_channels(self.module)
        if expected is not None and expected != channels:
            raise ModelInputError(f"model {self.name}: takes {expected} input channels, the LR patches have {channels}")
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                x = torch.zeros(1, channels, height, width, device=device_of(self.module))
                output = self.module(x)
        except RuntimeError as exc:
            raise ModelInputError(f"model {self.name}: fails on a 1x{channels}x{height}x{width} LR batch: "
                                  f"{str(exc).splitlines()[0]}") from None
        finally:
            self.module.train(was_training)
        if self.purpose != "sr":
            return
        while isinstance(output, (tuple, list)) and output:
            output = output[0]
        shape = tuple(getattr(output, "shape", ()))
        wanted = (1, 3, height * scale, width * scale)
        if len(shape) != 4 or shape[2:] != wanted[2:]:
            raise ModelInputError(f"model {self.name}: maps a {height}x{width} input to {shape}, not x{scale} "
                                  f"({wanted[2]}x{wanted[3]}); pass the right scale= or fix the module")

    def source(self, default_layers: Sequence[str], scale: int, lr_shape: tuple[int, int, int],
               identity: bool = True) -> FeatureSource:
        """A checked feature source for a run (``identity=False`` skips hashing: no caching)."""
        if self.scale is not None and self.purpose == "sr" and self.scale != scale:
            raise ModelInputError(f"model {self.name} is x{self.scale} but the suite is x{scale}")
        layers = self.resolve_layers(default_layers)
        self.check_input(lr_shape, scale)
        out_channels = getattr(self.module, "out_channels", 3)
        descriptor = ModelDescriptor(
            name=self.name, arch=type(self.module).__name__, arch_kwargs={}, scale=scale if self.purpose == "sr" else 1,
            in_channels=lr_shape[2], out_channels=int(out_channels) if isinstance(out_channels, int) else 3,
            purpose=self.purpose, taps=dict(self.taps), module=self.module, sha256=None, source="in-memory")
        key = (self.identity or f"module:{state_dict_sha256(self.module)}") if identity else ""
        descriptor.sha256 = key or None
        return FeatureSource(self.name, layers, descriptor, key)


# --------------------------------------------------------------------------- suites and models


def raw_suite(suite: Any) -> tuple[dict[str, Any], str]:
    from ddr_eval.config.errors import load_yaml_mapping
    from ddr_eval.config.loader import LoadedSuite

    if isinstance(suite, LoadedSuite):
        return suite.suite.model_dump(mode="json", by_alias=True), suite.source
    if isinstance(suite, Suite):
        return suite.model_dump(mode="json", by_alias=True), f"<suite {suite.name}>"
    if isinstance(suite, dict):
        return copy.deepcopy(suite), f"<suite {suite.get('name', 'dict')}>"
    if isinstance(suite, (str, Path)):
        return load_yaml_mapping(suite), str(suite)
    raise UserError(f"suite: expected a path, a dict or a Suite, got {type(suite).__name__}")


def _entry(model: Any, name: str | None, scale: int | None, layers: Sequence[str] | None) -> dict | InMemoryModel:
    """One ``models=`` entry as a suite spec (dict) or an :class:`InMemoryModel`."""
    if isinstance(model, InMemoryModel):
        return model
    if isinstance(model, nn.Module):
        return InMemoryModel(model, name, scale, layers)
    if isinstance(model, ModelDescriptor):
        return InMemoryModel.from_descriptor(model, layers)
    if isinstance(model, ModelSpec):
        return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(model, dict):
        return dict(model)
    if isinstance(model, Path) or (isinstance(model, str) and (Path(model).suffix in CHECKPOINT_SUFFIXES
                                                              or Path(model).is_file())):
        spec: dict[str, Any] = {"path": str(Path(model).resolve())}
        return {**spec, "as": name} if name else spec
    if isinstance(model, str):
        return {"name": model}
    raise UserError(f"models: cannot evaluate a {type(model).__name__}; give a zoo name, a checkpoint path, "
                    "an nn.Module or a ModelDescriptor")


def _label(entry: dict | InMemoryModel) -> str:
    if isinstance(entry, InMemoryModel):
        return entry.name
    try:
        return ModelSpec.model_validate(entry).label
    except Exception:  # noqa: BLE001 - the suite's validation reports it with its YAML path
        return str(entry)


def prepare(suite: Any, models: Any = None, *, replace: bool = False, name: str | None = None,
            scale: int | None = None, layers: Sequence[str] | None = None, identity: bool = True):
    """The suite with ``models`` added (an entry with an existing model's name replaces it; with
    ``replace`` they replace all of them), and the models list for the run: a spec per suite
    model, or a checked feature source for an in-memory one. Nothing is extracted yet."""
    from ddr_eval.config.loader import LoadedSuite, compile_suite

    if models is None and isinstance(suite, LoadedSuite):
        return suite, None
    raw, source = raw_suite(suite)
    base_dir = Path(source).parent if Path(source).is_file() else None  # findings.include paths are relative to it
    if models is None:
        return compile_suite(raw, source, base_dir), None
    entries = [_entry(m, name, scale, layers) for m in (models if isinstance(models, (list, tuple)) else [models])]
    specs: list[dict | InMemoryModel] = [] if replace else list(raw.get("models") or [])
    labels = [_label(s if not isinstance(s, str) else {"name": s}) for s in specs]
    for entry in entries:
        label = _label(entry)
        if label in labels:
            specs[labels.index(label)] = entry
        else:
            specs.append(entry)
            labels.append(label)
    in_memory = {label: e for label, e in zip(labels, specs) if isinstance(e, InMemoryModel)}
    raw["models"] = [{"name": f"{IN_MEMORY_PREFIX}{type(e.module).__name__}", "as": e.name}
                     if isinstance(e, InMemoryModel) else e for e in specs]
    loaded = compile_suite(raw, source + (f" (+ {', '.join(in_memory)})" if in_memory else ""), base_dir)
    suite_obj = loaded.suite
    lr_side = suite_obj.data.patch_size // loaded.scale
    run_models = [in_memory[spec.label].source(suite_obj.layers, loaded.scale, (lr_side, lr_side, 3), identity)
                  if spec.label in in_memory else spec for spec in suite_obj.models]
    return loaded, run_models
