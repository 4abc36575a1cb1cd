"""Where each finding holds: the paper's findings over degradation strength, suite seeds and sample size.

A suite whose ``findings:`` section has a ``robustness:`` part (``suites/paper-robustness.yaml``)
is run once per seed in ``robustness.seeds`` (each seed draws other patches and other noise;
features go through the feature cache, so a model sees each (seed, set) once, whatever reads it).
From each seed's run:

* the suite's own findings (``findings:``, the paper's configuration), with their usual verdicts
  (finding 7 too: its probes are cross-validated and chosen on each seed's training split, so the
  table over seeds names each seed's chosen DDR and baseline variant beside their test accuracies),
  and those of the suites it includes (``findings.include``), each run at the same seed;
* along each swept degradation (``strength:``), every finding ``robustness:`` names (the paper's
  suites: 1 global residual, 2 adversarial, 4 SR vs classification, 6 generalization) at every
  level, on the sets its class pairs with one level (:attr:`~ddr_eval.findings.Finding.strength_sets`:
  the clean ``reference`` set and the level, or the level alone), by the same class and verdict
  rule as the single-configuration finding; its curve plots the result's ``series``, finding 1's
  halves come from its ``parts``. Nothing here is written per finding;
* with ``sample_size:``, one more run per seed with ``max(sizes)`` patches per set on the named
  models and sets, read at every size (the first ``size / images`` patches of each image).

Rules (computed here, stated in ``findings.md``): a finding *holds* at a strength level when at
least ``seeds_agree`` seeds (default: a majority) give ``reproduced`` there; the range where it
holds is stated in the swept parameter's terms ("for blur sigma >= 1.5, not below"). A number
is *stable* from the smallest size on whose seeds' spread (max - min) / |mean| is at most
``stable_within`` at that size and every larger one.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ddr_eval.core.errors import UserError
from ddr_eval.findings import FINDINGS, FindingContext, FindingResult, Verdict, compute_findings
from ddr_eval.report import finding_table, markdown_table
from ddr_eval.results import ReportSection, RowScope
from ddr_eval.results.run import RunResult
from ddr_eval.config.findings_spec import (
    RobustnessSpec,
    SampleSizeSpec,
    StrengthGroup,
)


# --------------------------------------------------------------------------- pure helpers


def strength_range(xs: Sequence[float], holds: Sequence[bool], label: str, stronger: str = "higher") -> str:
    """Where along a sweep a verdict holds, in the parameter's terms.

    ``xs`` are the levels (any order) and ``holds`` whether the finding holds at each; the
    answer names the weakest level from which it holds at every stronger one ("for blur sigma
    >= 1.5, not below"), or its opposite, or the levels one by one when neither fits.
    """
    order = sorted(range(len(xs)), key=lambda i: xs[i], reverse=stronger == "lower")  # weak -> strong
    xs = [xs[i] for i in order]
    holds = [bool(holds[i]) for i in order]
    ge, le = (">=", "<=") if stronger == "higher" else ("<=", ">=")
    if all(holds):
        return f"at every {label} tested ({_g(xs[0])} to {_g(xs[-1])})"
    if not any(holds):
        return f"at no {label} tested ({_g(xs[0])} to {_g(xs[-1])})"
    first = holds.index(True)
    if all(holds[first:]):
        return f"for {label} {ge} {_g(xs[first])}, not below"
    last = len(holds) - 1 - holds[::-1].index(True)
    if all(holds[: last + 1]):
        return f"for {label} {le} {_g(xs[last])}, not above"
    return f"at {label} " + ", ".join(_g(x) for x, h in zip(xs, holds) if h) + " only"


def _g(x: float) -> str:
    return f"{x:g}"


def crossover(xs: Sequence[float], ratios: Sequence[float]) -> float | None:
    """The strength at which a ratio (CHI by degradation / CHI by content) first crosses 1 going
    from weak to strong, by linear interpolation of log(ratio) between neighbouring levels
    (``xs`` ascending); None when it never crosses."""
    logs = np.log(np.maximum(np.asarray(ratios, dtype=float), 1e-12))
    for i in range(len(xs) - 1):
        if (logs[i] < 0) != (logs[i + 1] < 0):
            return float(xs[i] + (xs[i + 1] - xs[i]) * (0 - logs[i]) / (logs[i + 1] - logs[i]))
    return None


def stable_from(sizes: Sequence[int], values_by_size: Sequence[Sequence[float]], within: float) -> int | None:
    """The smallest size from which every size's spread over seeds, (max - min) / |mean|, is <= ``within``."""
    ok = [len(v) > 1 and (max(v) - min(v)) <= within * abs(float(np.mean(v))) for v in values_by_size]
    for i in range(len(sizes)):
        if all(ok[i:]):
            return int(sizes[i])
    return None


def spread(values: Sequence[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{np.mean(values):.3g} [{min(values):.3g}, {max(values):.3g}]"


# --------------------------------------------------------------------------- one seed's run


@dataclass
class LevelPoint:
    """One finding at one strength level in one seed's run."""

    finding: str
    group: str
    x: float
    set: str
    seed: int
    verdict: Verdict
    values: dict[str, float]  # series -> the number the curve plots (FindingResult.series, full precision)
    parts: dict[str, bool] = field(default_factory=dict)  # finding 1: each half of its rule -> holds here


def swept_findings(spec: RobustnessSpec) -> dict[str, type]:
    """The finding classes ``robustness:`` sweeps over strength, key -> class; a finding whose class
    cannot be paired with one level (no ``strength_sets``) is refused before any run."""
    classes = {key: FINDINGS.get(key) for key in spec.parts()}
    for key, cls in classes.items():
        if cls.strength_sets is None:
            located = ", ".join(k for k, c in FINDINGS.in_registration_order() if c.strength_sets is not None)
            raise UserError(f"findings.robustness.{key}: finding {key!r} is not located over strength "
                            f"(these are: {located})")
    return classes


def strength_points(result, spec: RobustnessSpec, context: FindingContext | None = None) -> list[LevelPoint]:
    """Every swept finding at every level of every swept group of one run."""
    context = context or FindingContext(result, result.loaded.findings)
    classes = swept_findings(spec)
    seed = result.suite.seed
    points = []
    for group in spec.strength:
        levels = [(d.sweep.value, d.name) for d in result.suite.degradations
                  if d.sweep is not None and d.sweep.group == group.sweep]
        for x, name in levels:
            for key, part in spec.parts().items():
                found = classes[key].at_level(part, spec.reference, name).compute(context)
                points.append(LevelPoint(key, group.sweep, x, name, seed, found.verdict, dict(found.series),
                                         dict(found.parts)))
    return points


def sample_size_points(result: RunResult, spec: SampleSizeSpec, reference_seed: int) -> list[dict[str, Any]]:
    """CHI (degradation, raw), silhouette (degradation) and SRGA (flatten, first set = reference;
    its summary over the other sets) at every size, each computed by the pipeline's reduce stage
    on the first ``size / images`` patches of every image of one run (:func:`sample_size_suite`
    declares the three metrics)."""
    from ddr_eval.pipeline.build import first_patches, reduce_features

    patches = result.degraded_set(spec.sets[0]).patches
    n_images, most = len(patches.image_names), int(patches.patch_index.max()) + 1
    sources = [result.source(label) for label in spec.models]
    points = []
    for size in spec.sizes:
        per_image = size // n_images
        if per_image < 1 or per_image > most:
            raise UserError(f"findings.robustness.sample_size: {size} patches per set need 1 to "
                            f"{most * n_images} ({n_images} images)")
        inputs, features = first_patches(result.inputs, result.batches, per_image)
        values = {(r.model, r.layer, r.type, r.scope): r.value
                  for r in reduce_features(result.loaded, sources, inputs, features).rows}
        for source in sources:
            key = (source.label, next(iter(source.layers)))
            row = {"seed": reference_seed, "model": source.label, "patches per set": size, "images": n_images,
                   "chi": values.get((*key, "chi", RowScope.POOLED)),
                   "silhouette": values.get((*key, "silhouette", RowScope.POOLED))}
            srga = values.get((*key, "srga", RowScope.SUMMARY))
            if srga is not None:
                row["srga"] = srga
            points.append(row)
    return points


# --------------------------------------------------------------------------- runs


def reseeded(loaded, seed: int):
    return dataclasses.replace(loaded, suite=loaded.suite.model_copy(update={"seed": seed}))


def sample_size_suite(loaded, spec: SampleSizeSpec, seed: int):
    """The suite of one sample-size run: the named models and sets, ``max(sizes)`` patches per set."""
    from ddr_eval.data.images import DEFAULT_TEST_IMAGES
    from ddr_eval.config.loader import compile_suite

    suite = loaded.suite
    raw = suite.model_dump(mode="json", by_alias=True, exclude_none=True)
    n_images = len(suite.data.test_images or DEFAULT_TEST_IMAGES)
    raw["data"]["patches_per_image"] = -(-max(spec.sizes) // n_images)
    raw["seed"] = seed
    raw["degradations"] = [{k: v for k, v in d.items() if k != "sweep"} for d in raw["degradations"]
                           if d["name"] in spec.sets]
    raw["models"] = [m for m in raw["models"] if ModelLabel.of(m) in spec.models]
    srga = [m for m in raw["metrics"] if m["type"] == "srga"] or [{"type": "srga"}]
    raw["metrics"] = [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0},
                      {"type": "silhouette", "label": "degradation", "projection": spec.silhouette_projection,
                       "bootstrap": 0}, *srga]
    for metric in raw["metrics"]:
        metric["models"] = list(spec.models)
    raw["findings"] = {"layer": loaded.findings.layer}  # a suite with findings extracts every feature it lists
    raw.pop("rank_by", None)
    raw["reference"] = spec.sets[0]
    raw["name"] = suite.name + "-sample-size"
    return compile_suite(raw, loaded.source + " (sample size)")


class ModelLabel:
    @staticmethod
    def of(dumped: dict[str, Any]) -> str:
        from ddr_eval.config.schema import ModelSpec

        return ModelSpec.model_validate(dumped).label


@dataclass
class RobustnessResult:
    runs: list  # one RunResult per seed, in seed order
    spec: RobustnessSpec
    per_seed_findings: dict[int, list[FindingResult]]
    points: list[LevelPoint]
    sample_size: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cache: dict[str, int] = field(default_factory=dict)


def run_robustness(loaded, run: Callable, progress: Callable[[str], None] = lambda _: None) -> RobustnessResult:
    """Every seed's run (``run(loaded) -> RunResult``), their findings and strength curves, and the
    sample-size runs."""
    spec = loaded.findings.robustness
    swept_findings(spec)  # a finding that cannot be swept is refused before the first run
    started = time.perf_counter()
    runs, per_seed, points, sizes = [], {}, [], []
    cache: dict[str, int] = defaultdict(int)

    def count(result) -> None:
        for name, prefix in (("cache", ""), ("results_cache", "results_")):
            for what in ("hits", "misses", "repeats"):
                cache[prefix + what] += int(result.provenance[name].get(what, 0))

    for seed in spec.seeds:
        progress(f"seed {seed}: findings and strength sweep")
        result = run(reseeded(loaded, seed))
        runs.append(result)
        count(result)
        per_seed[seed] = compute_findings(result)
        for included in loaded.included:  # `findings.include`: those suites' findings, at this seed too
            progress(f"seed {seed}: {included.suite.name}")
            other = run(reseeded(included, seed))
            count(other)
            per_seed[seed] = [*per_seed[seed], *compute_findings(other)]
        points += strength_points(result, spec)
        if spec.sample_size:
            progress(f"seed {seed}: sample size")
            sized = run(sample_size_suite(loaded, spec.sample_size, seed))
            count(sized)
            sizes += sample_size_points(sized, spec.sample_size, seed)
    return RobustnessResult(runs, spec, per_seed, points, sizes, time.perf_counter() - started, dict(cache))


def cache_state(cache: dict[str, int]) -> str:
    """Whether the measured time is cold or warm, from the runs' cache counts.

    Hits on entries this process wrote itself (``repeats``: a cell or metric result with the key of
    one computed earlier in the same ``ddr-eval run``) are work done in this run, so they do not make
    it warm. Cold: no feature cell and no metric result came from an earlier run's cache.
    """
    hits, misses, repeats = (cache.get(k, 0) for k in ("hits", "misses", "repeats"))
    earlier = hits - repeats
    earlier_results = cache.get("results_hits", 0) - cache.get("results_repeats", 0)
    counts = f"feature cache {hits} hits / {misses} misses"
    if repeats:
        counts += f", {repeats} of them on cells this run had computed itself"
    counts += f"; metric results {cache.get('results_hits', 0)} hits / {cache.get('results_misses', 0)} misses"
    if earlier == 0 and earlier_results == 0:
        return f"cold: every feature and metric computed in this run ({counts})"
    if misses == 0:
        return f"warm: every feature cell read from an earlier run's cache ({counts})"
    return (f"partly warm: {earlier} of {hits + misses} feature cells and {earlier_results} metric results read "
            f"from an earlier run's cache ({counts})")


# --------------------------------------------------------------------------- aggregation


def _group_label(group: StrengthGroup, result) -> str:
    if group.label:
        return group.label
    point = next(d.sweep for d in result.suite.degradations if d.sweep and d.sweep.group == group.sweep)
    return f"{group.sweep} {point.parameter}"


def strength_findings(robust: RobustnessResult) -> list[FindingResult]:
    """One result per swept finding: its range per swept group, the seeds agreeing per level."""
    spec, first = robust.spec, robust.runs[0]
    need, n_seeds = spec.required_agreement(), len(spec.seeds)
    by = defaultdict(list)
    for p in robust.points:
        by[(p.finding, p.group, p.x)].append(p)
    findings = []
    for key in dict.fromkeys(p.finding for p in robust.points):
        cls = FINDINGS.get(key)
        table, ranges, part_ranges, holds_everywhere, holds_somewhere = [], [], {}, True, False
        for group in spec.strength:
            label = _group_label(group, first)
            xs = sorted({x for (k, g, x) in by if k == key and g == group.sweep})
            holds = []
            part_names = list(dict.fromkeys(n for x in xs for p in by[(key, group.sweep, x)] for n in p.parts))
            part_holds = {n: [] for n in part_names}
            for x in xs:
                level = by[(key, group.sweep, x)]
                verdicts = [p.verdict for p in level]
                ok = verdicts.count(Verdict.REPRODUCED) >= need
                holds.append(ok)
                series = list(dict.fromkeys(s for p in level for s in p.values))
                row = {"sweep": label, "level": x, "set": level[0].set,
                       "seeds reproduced": f"{verdicts.count(Verdict.REPRODUCED)}/{n_seeds}",
                       "seeds partly": f"{verdicts.count(Verdict.PARTLY)}/{n_seeds}", "holds": ok}
                for name in part_names:  # finding 1: how many seeds meet each half of the rule here
                    met = sum(bool(p.parts.get(name)) for p in level)
                    part_holds[name].append(met >= need)
                    row[f"seeds: {name}"] = f"{met}/{n_seeds}"
                row.update({s: spread([p.values.get(s) for p in level]) for s in series})
                table.append(row)
            text = strength_range(xs, holds, label, group.stronger)
            if cls.crossing is not None:
                text += _crossovers(by, key, group, xs, label, cls.crossing)
            if part_names:
                located = {n: strength_range(xs, h, label, group.stronger) for n, h in part_holds.items()}
                part_ranges[label] = located
                text += " (" + "; ".join(f"{n}: {where}" for n, where in located.items()) + ")"
            ranges.append(text)
            holds_everywhere &= all(holds)
            holds_somewhere |= any(holds)
        verdict = Verdict.REPRODUCED if holds_everywhere else Verdict.PARTLY if holds_somewhere else Verdict.NOT
        summary = (f"holds (>= {need} of {n_seeds} seeds reproduce it) " + "; ".join(ranges) + ".")
        findings.append(FindingResult(f"{key}@strength", cls.title + ", over strength", "holds at every strength level",
                                      verdict, f"holds at a level when >= {need} of {n_seeds} seeds reproduce it there; "
                                      "reproduced when it holds at every level of every sweep, partly when at some",
                                      summary, table, {"ranges": ranges, "seeds": list(spec.seeds), "parts": part_ranges}))
    return findings


def _crossovers(by, key, group, xs, label, level: float) -> str:
    """Where each series (mean over seeds) crosses ``level`` (the finding's ``crossing``; finding 4:
    each model's degradation / content ratio crossing 1)."""
    ordered = xs if group.stronger == "higher" else xs[::-1]
    models = list(dict.fromkeys(s for x in xs for p in by[(key, group.sweep, x)] for s in p.values))
    parts = []
    for model in models:
        ratios = [float(np.mean([p.values[model] for p in by[(key, group.sweep, x)]])) / level for x in ordered]
        at = crossover(ordered, ratios)
        parts.append(f"{model} crosses {level:g} at {label} ~ {at:.2g}" if at is not None else
                     f"{model} {'above' if ratios[0] > 1 else 'below'} {level:g} throughout")
    return " (" + "; ".join(parts) + ")"


def _most_common(values: Sequence[str]) -> str:
    """The most frequent of ``values`` and how many of them it is: ``"a (2/3)"``."""
    top = max(dict.fromkeys(values), key=list(values).count)
    return f"{top} ({list(values).count(top)}/{len(values)})"


def seed_findings(robust: RobustnessResult) -> list[FindingResult]:
    """The suite's own findings (paper configuration), each over the seeds: how many agree, the
    spread of its numbers, and each seed's named choices (finding 7: the probe variants its
    training-split cross-validation chose)."""
    seeds = list(robust.per_seed_findings)
    first = robust.per_seed_findings[seeds[0]]
    out = []
    for i, finding in enumerate(first):
        runs = [robust.per_seed_findings[s][i] for s in seeds]
        verdicts = [f.verdict for f in runs]
        majority = max((Verdict.REPRODUCED, Verdict.PARTLY, Verdict.NOT), key=verdicts.count)
        numeric = [k for k, v in finding.numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        named = [k for k, v in finding.numbers.items() if isinstance(v, str)]
        table = [{"seed": s, "verdict": f.verdict, **{k: round(float(f.numbers[k]), 4) for k in numeric},
                  **{k: f.numbers[k] for k in named}} for s, f in zip(seeds, runs)]
        if numeric or named:
            label = "mean [min, max]" + (" / most common" if named else "")
            table.append({"seed": label, "verdict": f"{verdicts.count(majority)}/{len(seeds)} {majority}",
                          **{k: spread([f.numbers[k] for f in runs]) for k in numeric},
                          **{k: _most_common([f.numbers[k] for f in runs]) for k in named}})
        summary = (f"{verdicts.count(majority)} of {len(seeds)} seeds: {majority} "
                   f"({', '.join(f'seed {s}: {v}' for s, v in zip(seeds, verdicts))}). Seed {seeds[0]}: {finding.summary}")
        out.append(FindingResult(finding.key + "@seeds", finding.title + ", over seeds", finding.expected, majority,
                                 "the seeds' majority verdict; each seed's by: " + finding.rule,
                                 summary, table, {"verdicts": dict(zip(map(str, seeds), verdicts))}))
    return out


def sample_size_finding(robust: RobustnessResult) -> FindingResult | None:
    spec = robust.spec.sample_size
    if spec is None or not robust.sample_size:
        return None
    table, stable = [], {}
    metrics = [m for m in ("chi", "silhouette", "srga") if any(m in r for r in robust.sample_size)]
    for model in spec.models:
        rows = [r for r in robust.sample_size if r["model"] == model]
        for size in spec.sizes:
            at = [r for r in rows if r["patches per set"] == size]
            table.append({"model": model, "patches per set": size, "images": at[0]["images"],
                          **{m: spread([r.get(m) for r in at]) for m in metrics}})
        for m in metrics:
            values = [[r[m] for r in rows if r["patches per set"] == size and m in r] for size in spec.sizes]
            stable[f"{model} / {m}"] = stable_from(spec.sizes, values, spec.stable_within)
    text = "; ".join(f"{k}: from {v}" if v is not None else f"{k}: not within {max(spec.sizes)}" for k, v in stable.items())
    return FindingResult("sample_size", "How many patches a stable number needs",
                         f"seeds' spread / |mean| <= {spec.stable_within:g}", Verdict.MEASURED,
                         f"a number is stable from the smallest size whose seeds' spread (max - min) / |mean| is "
                         f"<= {spec.stable_within:g} there and at every larger size",
                         f"stable (spread over {len(robust.spec.seeds)} seeds within {spec.stable_within:g} of the mean) "
                         f"{text}.", table, {"stable_from": stable})


def robustness_findings(robust: RobustnessResult) -> list[FindingResult]:
    found = [*strength_findings(robust), *seed_findings(robust)]
    sized = sample_size_finding(robust)
    return found + ([sized] if sized else [])


def strength_curves(robust: RobustnessResult):
    """Points for the report's strength-curve figure: mean over seeds, band min..max over seeds."""
    import pandas as pd

    rows = []
    by = defaultdict(list)
    for p in robust.points:
        for series, value in p.values.items():
            by[(p.finding, p.group, p.x, series)].append(value)
    labels = {g.sweep: _group_label(g, robust.runs[0]) for g in robust.spec.strength}
    for (finding, group, x, series), values in by.items():
        series, metric = FINDINGS.get(finding).curve(series)  # (line, panel), as the finding's class draws it
        rows.append({"series": series, "sweep": group, "parameter": labels[group], "x": x,
                     "metric": metric, "value": float(np.mean(values)),
                     "ci_low": float(min(values)), "ci_high": float(max(values))})
    return pd.DataFrame(rows)


def robustness_sections(robust: RobustnessResult, findings: list[FindingResult]) -> list[ReportSection]:
    import pandas as pd

    timing = f"Measured: {robust.seconds:.0f} s for {len(robust.spec.seeds)} seeds, {cache_state(robust.cache)}."
    curves = strength_curves(robust)
    head = ReportSection("Where the findings hold: strength curves",
                         "Each level is the swept set paired with the clean reference; lines are the mean over "
                         "seeds, bands the min..max over seeds. " + timing, None, curves=curves)
    return [head, *(ReportSection(f"{f.title} — {f.verdict}", f"Expected: {f.expected}. Measured: {f.summary}",
                                  pd.DataFrame(finding_table(f)) if f.table else None) for f in findings)]


def robustness_markdown(robust: RobustnessResult, findings: list[FindingResult]) -> str:
    spec = robust.spec
    images = len(robust.runs[0].inputs.eval_sets[spec.reference].patches.image_names)
    patches = len(robust.runs[0].inputs.eval_sets[spec.reference].patches.image_index)
    lines = ["# Where the paper's findings hold: strength, seeds, sample size", "",
             f"Seeds {list(spec.seeds)}; {patches} patches from {images} held-out images per set. "
             f"Measured time: {robust.seconds:.0f} s, {cache_state(robust.cache)}.", "",
             "Rules: a finding holds at a strength level when at least "
             f"{spec.required_agreement()} of {len(spec.seeds)} seeds give `reproduced` there (each level paired "
             "with the clean reference, the single-configuration rules of `ddr_eval.findings`); over a sweep it is "
             "`reproduced` when it holds at every level of every sweep, `partly reproduced` when at some, `not "
             "reproduced` when at none." + _strength_notes(robust) + " Over seeds, the verdict is the seeds' majority"
             + _seed_notes(findings) + ". A number "
             "is stable from the smallest size whose seeds' spread (max - min) / |mean| is within the stated tolerance "
             "there and at every larger size.", "",
             "| finding | verdict | where / how often |", "|---|---|---|"]
    lines += [f"| {f.title} | **{f.verdict}** | {f.summary} |" for f in findings]
    for f in findings:
        lines += ["", f"## {f.title}", "", f"Verdict: **{f.verdict}**. {f.summary}", ""]
        if f.table:
            lines.append(markdown_table(finding_table(f)))
    return "\n".join(lines) + "\n"


def _strength_notes(robust: RobustnessResult) -> str:
    """What the swept findings' classes add to the strength rule (finding 1: its two halves)."""
    thresholds = robust.runs[0].loaded.findings.thresholds
    notes = [FINDINGS.get(key).strength_note(thresholds) for key in robust.spec.parts()]
    return "".join(" " + note for note in notes if note)


def _seed_notes(findings: list[FindingResult]) -> str:
    """How findings are recomputed per seed, where their classes say (finding 7: its probe choice)."""
    keys = [f.key.removesuffix("@seeds") for f in findings if f.key.endswith("@seeds")]
    notes = [FINDINGS.get(key).seeds_note for key in dict.fromkeys(keys) if key in FINDINGS]
    return "".join("; " + note for note in notes if note)


def robustness_files(robust: RobustnessResult, findings: list[FindingResult]) -> dict[str, str]:
    import json

    document = {"seeds": list(robust.spec.seeds), "seconds": round(robust.seconds, 1), "cache": robust.cache,
                "findings": [{"key": f.key, "title": f.title, "verdict": f.verdict, "summary": f.summary,
                              "table": finding_table(f), "numbers": f.numbers} for f in findings],
                "points": [dataclasses.asdict(p) for p in robust.points],
                "sample_size": robust.sample_size}
    return {"robustness.md": robustness_markdown(robust, findings),
            "robustness.json": json.dumps(document, indent=2, default=float) + "\n"}
