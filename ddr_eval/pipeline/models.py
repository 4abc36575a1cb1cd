"""Stage 2 of a run: model specs -> feature sources, with layer aliases resolved.

Everything that can be wrong about a model (unknown name, bad checkpoint, wrong scale,
unknown layer) is found here, before any feature is extracted.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np
import torch

from ddr_eval.core.errors import MemoryBudgetError, UserError
from ddr_eval.features import FeatureBatch, extract_poolings, image_statistics
from ddr_eval.models import ModelDescriptor
from ddr_eval.models.archs import ARCHS, build_arch
from ddr_eval.models.checkpoint import load_model
from ddr_eval.models.user_arch import class_identity, is_import_target
from ddr_eval.models.zoo import resolve_model
from ddr_eval.core.specs import SnapshotLabel
from ddr_eval.config.schema import ModelSpec
from ddr_eval.config.shipped import suite_hint

SWEEP = "sweep"  # layer alias that expands to every per-block tap, for layer sweeps


@dataclass
class FeatureSource:
    """Something that maps LR patches to named feature arrays: a network or a statistics baseline."""

    label: str
    layers: dict[str, str]  # shown layer name -> module name
    descriptor: ModelDescriptor | None = None
    identity: str = ""  # what the features depend on (checkpoint sha256, arch, baseline), for caching
    extra: dict = field(default_factory=dict)
    from_path: bool = False  # loaded from a checkpoint path (a user's model): its detection is shown

    def detection(self) -> dict | None:
        """What was detected and built for a network model: recorded per model in ``results.json``
        (``provenance.models``) and shown as one line by ``run`` and ``compare`` (:func:`detection_line`)."""
        if self.descriptor is None:
            return None
        d = self.descriptor
        return {"arch": d.arch, "scale": d.scale, "arch_kwargs": dict(d.arch_kwargs), "params": d.num_params,
                "layout": d.layout, "source": d.source, "from_path": self.from_path, "taps": dict(self.layers)}

    @property
    def is_sr(self) -> bool:
        return self.descriptor is not None and self.descriptor.purpose == "sr"

    def extract(self, lr: np.ndarray, pooling: str, batch_size: int, device, amp_dtype, outputs: bool) -> FeatureBatch:
        return self.extract_poolings(lr, (pooling,), batch_size, device, amp_dtype, outputs)[pooling]

    def extract_poolings(self, lr: np.ndarray, poolings: tuple[str, ...], batch_size: int, device, amp_dtype,
                         outputs: bool) -> dict[str, FeatureBatch]:
        """Features of ``lr`` under each pooling, from one forward pass."""
        if self.descriptor is None:
            stats = image_statistics(lr).astype(np.float32)
            return {pooling: FeatureBatch(features={"stats": stats}, outputs=None) for pooling in poolings}
        return extract_poolings(
            self.descriptor.module,
            lr,
            list(self.layers.values()),
            poolings,
            batch_size=batch_size,
            device=device,
            amp_dtype=amp_dtype,
            return_outputs=outputs and self.is_sr,
        )


def _descriptor(spec: ModelSpec, seed: int, max_param_bytes: int | None = None) -> tuple[ModelDescriptor, str]:
    if spec.iteration is not None:  # the zoo resolves (and sha256-verifies) "name@iteration"
        descriptor = resolve_model(str(SnapshotLabel(spec.name, spec.iteration)), arch=spec.arch)
    elif spec.path:
        descriptor = load_model(spec.path, arch=spec.arch, name=spec.label, max_param_bytes=max_param_bytes,
                                **spec.arch_kwargs)
    else:
        descriptor = resolve_model(spec.name, arch=spec.arch)
    identity = descriptor.sha256 or descriptor.source
    if is_import_target(descriptor.arch):  # the same weights in another class (or class version) compute otherwise
        identity = f"{identity}:{class_identity(descriptor.arch, descriptor.arch_kwargs)}"
    if spec.random_init:
        if descriptor.arch not in ARCHS:
            raise UserError(f"model {spec.label}: random_init needs a built-in architecture, not {descriptor.arch}")
        torch.manual_seed(seed)
        descriptor.module = build_arch(descriptor.arch, max_bytes=max_param_bytes, **descriptor.arch_kwargs)
        identity = f"untrained:{descriptor.arch}:{sorted(descriptor.arch_kwargs.items())}:{seed}"
    descriptor.module.eval()
    return descriptor, identity


def detection_line(label: str, info: dict) -> str:
    """``label: RRDBNet x4 (num_feat=64, ...), 16,697,987 parameters, layout esrgan-original; deep -> body.22``."""
    kwargs = ", ".join(f"{k}={v}" for k, v in info["arch_kwargs"].items())
    taps = ", ".join(f"{alias} -> {module}" if alias != module else module for alias, module in info["taps"].items())
    return (f"{label}: {info['arch']} x{info['scale']}" + (f" ({kwargs})" if kwargs else "")
            + f", {info['params']:,} parameters, layout {info['layout'] or 'n/a'}; {taps}")


def require_finite_weights(descriptor: ModelDescriptor, label: str) -> None:
    """A diverged or damaged checkpoint (NaN/Inf weights) is refused: its features and outputs
    would be NaN, and SR outputs cast to uint8 would turn NaN into plausible-looking numbers."""
    bad = sum(int((~torch.isfinite(t)).sum()) for t in descriptor.module.state_dict().values() if t.is_floating_point())
    if bad:
        raise UserError(f"model {label}: {descriptor.source} holds {bad} NaN/Inf weights (diverged or damaged checkpoint)")


def _resolve_layers(descriptor: ModelDescriptor, requested: tuple[str, ...], label: str) -> dict[str, str]:
    modules = dict(descriptor.module.named_modules())
    layers: dict[str, str] = {}
    for name in requested:
        if name == SWEEP:
            blocks = {k: v for k, v in descriptor.taps.items() if k.startswith("block")}
            if not blocks:
                raise UserError(f"model {label}: layer 'sweep' needs block taps and it has none; {layer_choices(descriptor)}")
            layers.update(sorted(blocks.items(), key=lambda kv: int(kv[0][5:])))
            continue
        module = descriptor.taps.get(name, name)
        if not module or module not in modules:
            raise UserError(f"model {label}: unknown layer {name!r}; {layer_choices(descriptor, name)}")
        layers[name] = module
    return layers


def layer_choices(descriptor: ModelDescriptor, wanted: str = "") -> str:
    """What a layer may be for this model: its taps, then module names (those nearest ``wanted`` first)."""
    names = [n for n, _ in descriptor.module.named_modules() if n]
    nearest = difflib.get_close_matches(wanted, names, n=6, cutoff=0.5) if wanted else []
    shown = nearest + [n for n in names if n not in nearest][:max(0, 8 - len(nearest))]
    taps = ", ".join(_compact_taps(descriptor.taps)) or "none"
    more = f", ... ({len(names)} in all)" if len(names) > len(shown) else ""
    return f"taps: {taps}; module names: {', '.join(shown)}{more}"


def _compact_taps(taps: dict[str, str]) -> list[str]:
    """Tap aliases with the ``block0..blockN`` run written as one range."""
    blocks = [a for a in taps if a.startswith("block") and a[5:].isdigit()]
    others = [a for a in taps if a not in blocks]
    return others + ([f"block0..block{len(blocks) - 1}"] if blocks else [])


def build_sources(specs: list[ModelSpec | FeatureSource | ModelDescriptor], default_layers: tuple[str, ...], scale: int,
                  seed: int, max_param_bytes: int | None = None) -> list[FeatureSource]:
    """One feature source per model: specs are resolved (zoo, checkpoint, baseline); a ready
    :class:`FeatureSource` (an in-memory model from :mod:`ddr_eval.api`) or a
    :class:`ModelDescriptor` is taken as it is, after the same scale and weight checks.
    ``max_param_bytes`` (the suite's memory budget) refuses a network that ``arch_kwargs`` would
    make larger, before it is built."""
    sources = []
    for spec in specs:
        if isinstance(spec, (FeatureSource, ModelDescriptor)):
            sources.append(_ready_source(spec, default_layers, scale))
            continue
        if spec.baseline == "image_statistics":
            sources.append(FeatureSource(spec.label, {"stats": "stats"}, identity="baseline:image_statistics:v1"))
            continue
        try:
            descriptor, identity = _descriptor(spec, seed, max_param_bytes)
        except MemoryBudgetError as exc:
            raise MemoryBudgetError(f"model {spec.label}: arch_kwargs: {exc}") from None
        require_finite_weights(descriptor, spec.label)
        if descriptor.purpose == "sr" and descriptor.scale != scale:
            raise UserError(f"model {spec.label} is x{descriptor.scale} but the suite is x{scale}; "
                            f"{suite_hint(descriptor.scale)}")
        layers = _resolve_layers(descriptor, spec.layers or default_layers, spec.label)
        sources.append(FeatureSource(spec.label, layers, descriptor, identity, from_path=bool(spec.path)))
    return sources


def _ready_source(ready: FeatureSource | ModelDescriptor, default_layers: tuple[str, ...], scale: int) -> FeatureSource:
    if isinstance(ready, ModelDescriptor):
        layers = _resolve_layers(ready, default_layers, ready.name)
        ready = FeatureSource(ready.name, layers, ready, ready.sha256 or f"descriptor:{ready.source}")
    if ready.descriptor is not None:
        require_finite_weights(ready.descriptor, ready.label)
        if ready.is_sr and ready.descriptor.scale != scale:
            raise UserError(f"model {ready.label} is x{ready.descriptor.scale} but the suite is x{scale}; "
                            f"{suite_hint(ready.descriptor.scale)}")
    return ready
