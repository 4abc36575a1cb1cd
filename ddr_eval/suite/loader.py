"""Load a suite file into a :class:`LoadedSuite`: the validated schema plus its built components.

Degradation steps and metrics are registry-built from their ``type:`` key; each is validated
here, before any work starts, so an error names its YAML path (``degradations[2].chain[0].sigma``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ddr_eval.degradations import DEGRADATIONS, DegradationChain
from ddr_eval.errors import UserError
from ddr_eval.metrics import METRICS
from ddr_eval.results.leaderboard import MetricInfo, resolve_ranking
from ddr_eval.specs import build_typed, format_location
from ddr_eval.suite.findings_spec import FindingsSpec
from ddr_eval.suite.errors import load_yaml_mapping, validation_error_to_user_error
from ddr_eval.suite.schema import Suite, SweepError


@dataclass(frozen=True)
class LoadedSuite:
    suite: Suite
    chains: dict[str, DegradationChain]
    metrics: list[Any]  # built metric objects, in suite order
    source: str
    findings: Any = None  # ddr_eval.suite.findings_spec.FindingsSpec when the suite asks for findings
    scale: int = 2  # the suite's `scale:`, or the factor its chains share


def _build_typed(registry, spec: Any, where: tuple, source: str):
    return build_typed(registry, spec, where, source=source)


def compile_suite(raw: dict[str, Any], source: str = "<suite>") -> LoadedSuite:
    try:
        suite = Suite.model_validate(raw)
    except SweepError as exc:
        raise UserError(f"{source}: {exc}") from None
    except ValidationError as exc:
        raise validation_error_to_user_error(exc, source) from None
    chains = {dset.name: _build_chain(dset, i, suite.scale, source) for i, dset in enumerate(suite.degradations)}
    scale = suite.scale or _common_scale(chains, source)
    patch = suite.data.patch_size
    if patch % scale:
        raise UserError(f"{source}: data.patch_size: {patch} is not a multiple of the scale {scale}")
    metrics = [_build_typed(METRICS, m, ("metrics", i), source) for i, m in enumerate(suite.metrics)]
    try:  # a rank_by naming no metric of the suite fails now, not after the run
        resolve_ranking(suite.rank_by, [MetricInfo.of(m) for m in metrics])
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    return LoadedSuite(suite, chains, metrics, source, _findings(suite, source), scale)


def _build_chain(dset, index: int, scale: int | None, source: str) -> DegradationChain:
    """One set's chain; a downsampling step without ``scale`` takes the suite's, which it must match."""
    where = ("degradations", index, "chain")
    steps = []
    for j, spec in enumerate(dset.chain):
        if isinstance(spec, dict) and scale is not None and "scale" not in spec and _downsamples(spec):
            spec = {**spec, "scale": scale}
        steps.append(_build_typed(DEGRADATIONS, spec, (*where, j), source))
    downsamplers = [s for s in steps if s.scale_factor != 1]
    if len(downsamplers) != 1:
        raise UserError(
            f"{source}: {format_location(where)}: needs exactly one downsampling step (e.g. type: bicubic), "
            f"found {len(downsamplers)}"
        )
    chain = DegradationChain(steps)
    if scale is not None and chain.scale != scale:
        raise UserError(f"{source}: {format_location(where)}: set {dset.name!r} downsamples x{chain.scale} "
                        f"but the suite's scale is {scale}")
    return chain


def _downsamples(spec: dict) -> bool:
    kind = spec.get("type")
    return isinstance(kind, str) and kind in DEGRADATIONS and DEGRADATIONS.get(kind).downsamples


def _common_scale(chains: dict[str, DegradationChain], source: str) -> int:
    scales = {name: chain.scale for name, chain in chains.items()}
    if len(set(scales.values())) != 1:
        raise UserError(f"{source}: degradations: all sets must downsample by the same scale, got {scales}; "
                        "set the suite's top-level `scale:`")
    return next(iter(scales.values()))


def _findings(suite: Suite, source: str):
    if suite.findings is None:
        return None
    try:
        spec = FindingsSpec.model_validate(suite.findings)
    except ValidationError as exc:
        raise validation_error_to_user_error(exc, source, ("findings",)) from None
    models = {m.label for m in suite.models}
    sets = {d.name for d in suite.degradations}
    for key, part in spec:
        if not isinstance(part, BaseModel):
            continue
        for name in part.model_names():
            if name not in models:
                raise UserError(f"{source}: findings.{key}: model {name!r} is not in the suite's models")
        if hasattr(part, "snapshots") and len(part.snapshots(models)) < 3:
            raise UserError(f"{source}: findings.{key}.series: the suite lists {len(part.snapshots(models))} "
                            f"snapshots of {part.series!r} (models NAME@ITERATION); need >= 3")
        for name in getattr(part, "sets", ()) or ():
            if name not in sets:
                raise UserError(f"{source}: findings.{key}.sets: {name!r} is not a degradation set")
    return spec


def load_suite(path: str | Path) -> LoadedSuite:
    """Read, validate and build a suite file; every problem is a one-line :class:`UserError`."""
    return compile_suite(load_yaml_mapping(path), str(path))
