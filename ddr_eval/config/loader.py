"""Load a suite file into a :class:`LoadedSuite`: the validated schema plus its built components.

Degradation steps and metrics are registry-built from their ``type:`` key; each is validated
here, before any work starts, so an error names its YAML path (``degradations[2].chain[0].sigma``).
The suites a ``findings.include`` names are loaded and validated here too (``LoadedSuite.included``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ddr_eval.data.folders import FolderError, expand_folders, image_files, pair_files
from ddr_eval.degradations import DEGRADATIONS, DegradationChain
from ddr_eval.core.errors import UserError
from ddr_eval.metrics import METRICS
from ddr_eval.metrics.base import summary_set_names
from ddr_eval.results.leaderboard import MetricInfo, resolve_ranking
from ddr_eval.core.specs import build_typed, check_bounded, format_location, one_line
from ddr_eval.config.findings_spec import FINDING_SPECS, FindingsSpec, RobustnessSpec, base_fields
from ddr_eval.config.errors import load_yaml_mapping, validation_error_to_user_error
from ddr_eval.config.overrides import Overrides, apply_overrides
from ddr_eval.config.schema import Suite, SweepError


@dataclass(frozen=True)
class LoadedSuite:
    suite: Suite
    chains: dict[str, DegradationChain]
    metrics: list[Any]  # built metric objects, in suite order
    source: str
    findings: Any = None  # ddr_eval.config.findings_spec.FindingsSpec when the suite asks for findings
    scale: int = 2  # the suite's `scale:`, or the factor its chains share
    folder_sets: dict[str, Any] = field(default_factory=dict)  # name -> DegradationSet with an lr_folder
    included: tuple["LoadedSuite", ...] = ()  # the suites of `findings.include`, loaded and checked, in order


def _build_typed(registry, spec: Any, where: tuple, source: str):
    return build_typed(registry, spec, where, source=source)


def compile_suite(raw: dict[str, Any], source: str = "<suite>", base_dir: str | Path | None = None) -> LoadedSuite:
    """``raw`` validated and built; ``source`` names it in errors, ``base_dir`` is where its
    ``findings.include`` paths are relative to (default: ``source``'s folder when it is a file,
    else the working directory)."""
    check_bounded(raw, source)  # before validation copies or hashes a free-form field
    try:
        suite = Suite.model_validate(_expand_folder_roots(raw, source))
    except SweepError as exc:
        raise UserError(f"{source}: {exc}") from None
    except ValidationError as exc:
        raise validation_error_to_user_error(exc, source) from None
    _refuse_summary_names(suite, source)
    chains = {dset.name: _build_chain(dset, i, suite.scale, source)
              for i, dset in enumerate(suite.degradations) if not dset.is_folder}
    folder_sets = {dset.name: _check_folders(dset, i, source) for i, dset in enumerate(suite.degradations)
                   if dset.is_folder}
    scale = suite.scale or _common_scale(chains, folder_sets, source)
    patch = suite.data.patch_size
    if patch % scale:
        raise UserError(f"{source}: data.patch_size: {patch} is not a multiple of the scale {scale}")
    metrics = [_build_typed(METRICS, m, ("metrics", i), source) for i, m in enumerate(suite.metrics)]
    _check_metric_sets(metrics, [d.name for d in suite.degradations], source)
    try:  # a rank_by naming no metric of the suite fails now, not after the run
        resolve_ranking(suite.rank_by, [MetricInfo.of(m) for m in metrics])
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    _require_hr_reference(suite, metrics, source)
    findings = _findings(suite, metrics, source)
    if base_dir is None:
        base_dir = Path(source).parent if Path(source).is_file() else Path()
    included = _included(findings, source, Path(base_dir)) if findings is not None else ()
    return LoadedSuite(suite, chains, metrics, source, findings, scale, folder_sets, included)


def _refuse_summary_names(suite: Suite, source: str) -> None:
    """A set named like a pooled or summary row (``all`` or an aggregation, ``mean``/``median``
    or one registered since) would share its ``set`` text in results.csv, which has no scope
    column, and the key ``check`` compares rows by."""
    reserved = {name.lower() for name in summary_set_names()}
    for i, dset in enumerate(suite.degradations):
        if dset.name.lower() in reserved:
            raise UserError(f"{source}: degradations[{i}].name: {dset.name!r} is reserved for summary rows "
                            f"({', '.join(sorted(reserved))}); choose another name")


def _expand_folder_roots(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``{folders: ROOT}`` entries become one set per subfolder of ROOT, before validation."""
    entries = raw.get("degradations") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not any(isinstance(e, dict) and "folders" in e for e in entries):
        return raw
    expanded = []
    for i, entry in enumerate(entries):
        if not (isinstance(entry, dict) and "folders" in entry):
            expanded.append(entry)
            continue
        where = format_location(("degradations", i))
        extra = sorted(set(entry) - {"folders", "skip_unreadable"})
        if extra:
            raise UserError(f"{source}: {where}: a `folders:` entry takes only folders and skip_unreadable, "
                            f"not {', '.join(extra)}")
        if not isinstance(entry["folders"], str):
            raise UserError(f"{source}: {where}.folders: must be a folder path, got {entry['folders']!r}")
        try:
            specs = expand_folders(entry["folders"])
        except FolderError as exc:
            raise UserError(f"{source}: {where}.folders: {exc}") from None
        options = {"skip_unreadable": entry["skip_unreadable"]} if "skip_unreadable" in entry else {}
        expanded += [{**spec, **options} for spec in specs]
    return {**raw, "degradations": expanded}


def _check_folders(dset, index: int, source: str):
    """A folder set's folders exist and hold images, and every LR image has its HR partner."""
    where = ("degradations", index)
    try:
        image_files(dset.lr_folder, "LR folder")
    except FolderError as exc:
        raise UserError(f"{source}: {format_location((*where, 'lr_folder'))}: {exc}") from None
    if dset.hr_folder is not None:
        try:
            pair_files(dset.lr_folder, dset.hr_folder, dset.lr_suffix, dset.hr_suffix)
        except FolderError as exc:
            raise UserError(f"{source}: {format_location((*where, 'hr_folder'))}: {exc}") from None
    return dset


def _check_metric_sets(metrics: list[Any], set_names: list[str], source: str) -> None:
    """Each metric's ``sets:`` names degradation sets of the suite (after sweep expansion), and two
    metrics named alike (one column) are computed on the same sets."""
    import difflib

    for i, metric in enumerate(metrics):
        for name in metric.sets or ():
            if name not in set_names:
                close = difflib.get_close_matches(name, set_names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(f"{source}: metrics[{i}].sets: {name!r} is not a degradation set of the suite{hint}")
    first: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        j = first.setdefault(metric.name, i)
        if set(metric.sets or ()) != set(metrics[j].sets or ()):
            raise UserError(f"{source}: metrics[{i}].sets: {metric.name} is also metrics[{j}], on other sets; "
                            "metrics of one name share a column, so give them the same sets")


def _require_hr_reference(suite: Suite, metrics: list[Any], source: str) -> None:
    """Metrics that compare with HR need HR on the reference set (PSNR drop is measured from it)."""
    reference = next(d for d in suite.degradations if d.name == suite.reference_set)
    needs_hr = [m.name for m in metrics if getattr(m, "kind", None) == "quality"]
    if needs_hr and not reference.has_hr:
        raise UserError(f"{source}: reference: set {reference.name!r} is LR-only (no HR) but {', '.join(needs_hr)} "
                        "need HR on the reference; choose a chain or paired set as `reference`")


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


def _common_scale(chains: dict[str, DegradationChain], folder_sets: dict, source: str) -> int:
    if not chains:
        raise UserError(f"{source}: scale: the folder sets {', '.join(folder_sets)} do not say their SR factor; "
                        "set the suite's top-level `scale:` (2, 3 or 4)")
    scales = {name: chain.scale for name, chain in chains.items()}
    if len(set(scales.values())) != 1:
        raise UserError(f"{source}: degradations: all sets must downsample by the same scale, got {scales}; "
                        "set the suite's top-level `scale:`")
    return next(iter(scales.values()))


def _findings(suite: Suite, metrics: list, source: str):
    if suite.findings is None:
        return None
    _refuse_unknown_findings(suite.findings, FindingsSpec, ("findings",), source)
    try:
        spec = FindingsSpec.model_validate(suite.findings)
    except ValidationError as exc:
        raise validation_error_to_user_error(exc, source, ("findings",)) from None
    models = {m.label for m in suite.models}
    for key, part in spec.parts().items():
        for name in part.model_names():
            if name not in models:
                raise UserError(f"{source}: findings.{key}: model {name!r} is not in the suite's models")
        if hasattr(part, "snapshots") and len(part.snapshots(models)) < 3:
            raise UserError(f"{source}: findings.{key}.series: the suite lists {len(part.snapshots(models))} "
                            f"snapshots of {part.series!r} (models NAME@ITERATION); need >= 3")
        if "sets" in type(part).model_fields and not part.sets:
            raise UserError(f"{source}: findings.{key}.sets: name the degradation sets it is computed on")
        _check_finding_needs(part, f"findings.{key}", suite, metrics, source)
    if spec.robustness is not None:
        for name in spec.robustness.model_names():
            if name not in models:
                raise UserError(f"{source}: findings.robustness: model {name!r} is not in the suite's models")
        _check_robustness(spec.robustness, suite, metrics, source)
    return spec


def _refuse_unknown_findings(raw: Any, model, where: tuple[str, ...], source: str) -> None:
    """A key of ``findings:`` (or ``findings.robustness:``) that is neither an option nor a
    registered finding, refused with the findings one could mean."""
    if not isinstance(raw, dict):
        return
    for key in raw:
        if key not in base_fields(model) and key not in FINDING_SPECS:
            raise UserError(f"{source}: {'.'.join(where)}.{key}: unknown finding {key!r}; known: "
                            f"{', '.join(name for name, _ in FINDING_SPECS.in_registration_order())}")
    if "robustness" in where or not isinstance(raw.get("robustness"), dict):
        return
    _refuse_unknown_findings(raw["robustness"], RobustnessSpec, (*where, "robustness"), source)


def _check_finding_needs(part, where: str, suite: Suite, metrics: list, source: str) -> None:
    """The sets a finding reads exist, and the suite computes what its spec declares it reads
    (:class:`~ddr_eval.config.findings_spec.FindingNeeds`)."""
    sets = {d.name: d for d in suite.degradations}
    for name in part.set_names():
        if name not in sets:
            raise UserError(f"{source}: {where}.sets: {name!r} is not a degradation set")
        if part.needs.sr_outputs and not sets[name].has_hr:
            raise UserError(f"{source}: {where}: set {name!r} is LR-only (no HR), but the finding scores SR outputs "
                            "against HR")
    types = {m.metric_type for m in metrics}
    if part.needs.row_types and not types & set(part.needs.row_types):
        raise UserError(f"{source}: {where}: reads metric rows of type {' or '.join(part.needs.row_types)}; "
                        "the suite's metrics compute none of them")


def _included(spec: FindingsSpec, source: str, base_dir: Path) -> tuple[LoadedSuite, ...]:
    """Each ``findings.include`` file (relative to ``base_dir``) loaded and validated as a suite of
    its own: it must have findings, and neither include suites itself nor be a robustness suite
    (a robustness suite may include suites: it runs each of them at each of its seeds)."""
    included: list[LoadedSuite] = []
    for i, entry in enumerate(spec.include):
        where = f"{source}: findings.include[{i}]"
        path = base_dir / entry
        try:
            raw = load_yaml_mapping(path)
            findings = raw.get("findings")
            if isinstance(findings, dict) and findings.get("include"):  # before compiling it: it may include this file
                raise UserError(f"{path} includes suites itself (findings.include); includes do not nest")
            loaded = compile_suite(raw, str(path), path.parent)
        except UserError as exc:
            raise UserError(one_line(f"{where}: {exc}")) from None
        if loaded.findings is None:
            raise UserError(f"{where}: {path} has no `findings:` section; an included suite contributes its findings")
        if loaded.findings.robustness is not None:
            raise UserError(f"{where}: {path} has findings.robustness; a robustness suite cannot be included")
        twin = next((j for j, other in enumerate(included) if other.suite.name == loaded.suite.name), None)
        if twin is not None:
            raise UserError(f"{where}: {path}: suite {loaded.suite.name!r} is already included "
                            f"(findings.include[{twin}])")
        included.append(loaded)
    return tuple(included)


def _check_robustness(spec, suite: Suite, metrics: list, source: str) -> None:
    sets = {d.name for d in suite.degradations}
    groups = {d.sweep.group for d in suite.degradations if d.sweep is not None}
    if spec.reference not in sets:
        raise UserError(f"{source}: findings.robustness.reference: {spec.reference!r} is not a degradation set")
    for i, group in enumerate(spec.strength):
        if group.sweep not in groups:
            raise UserError(f"{source}: findings.robustness.strength[{i}].sweep: {group.sweep!r} is not a swept set "
                            f"(swept: {sorted(groups)})")
    for key, part in spec.parts().items():
        _check_finding_needs(part, f"findings.robustness.{key}", suite, metrics, source)
    for name in spec.sample_size.sets if spec.sample_size else ():
        if name not in sets:
            raise UserError(f"{source}: findings.robustness.sample_size.sets: {name!r} is not a degradation set")


def load_suite(path: str | Path, overrides: Overrides | None = None) -> LoadedSuite:
    """Read, validate and build a suite file, with the command line's ``overrides`` applied first;
    every problem is a one-line :class:`UserError`."""
    return compile_suite(apply_overrides(load_yaml_mapping(path), overrides), str(path))
