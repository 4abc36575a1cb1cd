"""The DDR paper's findings, each a computed number with an interval and a plain verdict.

A suite may carry a ``findings:`` section (``suites/paper.yaml`` does). After the reduce
step, each finding is computed from the run's own features and metric rows, on the subsets
of models, layers and degradation sets it names, and compared with what the paper reports.
Intervals: every CHI here carries the patch bootstrap ``[low, high]`` and the cluster bootstrap
over source images (``{low, high}``, stratified by degradation set, with the number of images
behind it); verdicts that compare intervals use the image one.
A verdict (:class:`Verdict`) is one of ``reproduced``, ``partly reproduced`` (the direction holds
but the effect is smaller than reported, or holds for some pairs only) and ``not reproduced``;
the numbers stay whatever they are.

``findings.include`` names other suites whose findings follow this suite's; the caller
(``ddr_eval.api.Results``) runs them and labels each of their findings with :func:`suite_origin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from types import SimpleNamespace

import numpy as np

from ddr_eval.errors import UserError
from ddr_eval.metrics.bootstrap import ImageGroups
from ddr_eval.metrics.separability import ChiMetric
from ddr_eval.results import ReportSection
from ddr_eval.specs import SnapshotLabel
from ddr_eval.suite.findings_spec import (
    AdversarialSpec,
    BlindSrSpec,
    CincganSpec,
    ContentSpec,
    FindingsSpec,
    GeneralizationSpec,
    GlobalResidualSpec,
    IdentificationSpec,
    SpectrumSpec,
    TrainingSpec,
)

class Verdict(str, Enum):
    """What a finding's rule says about the paper's claim; the value is the text reports show.

    A ``str`` enum, so ``findings.json`` holds the plain text and a verdict equals its text
    (``Verdict.NOT == "not reproduced"``); ``str()`` and f-strings give the text too, not
    ``Verdict.NOT``, so the markdown and HTML reports read the same as with plain strings.
    """

    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"
    NOT = "not reproduced"
    MEASURED = "measured"  # a finding that reports a number and makes no claim (robustness: sample size)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class Finding:
    key: str
    title: str
    expected: str
    verdict: Verdict
    summary: str
    table: list[dict[str, Any]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    # the included suite that computed it (:func:`suite_origin`); None: the report's own suite
    suite: dict[str, Any] | None = None
    plots: tuple[tuple[str, str], ...] = ()  # (file name in the report directory, caption)


def suite_origin(result) -> dict[str, Any]:
    """Which run computed a finding: the suite file, its name, seed and hash, and where its own
    report goes (``ddr-eval run FILE`` writes it; a report that includes the suite does not)."""
    return {"file": result.loaded.source, "name": result.suite.name, "seed": result.suite.seed,
            "suite_sha256": result.provenance.get("suite_sha256"), "report": f"{result.suite.output_dir()}/"}


def _origin_text(origin: dict[str, Any]) -> str:
    return (f"Computed by {origin['file']} (seed {origin['seed']}), a suite this one includes, on its own run; "
            f"full report: {origin['report']} (written by `ddr-eval run {origin['file']}`, not by this report).")


def _verdict_interval(result) -> tuple[float | None, float | None]:
    """The interval verdicts read: the cluster bootstrap over source images when the result has
    one (``interval: both``), else the patch interval."""
    images = getattr(result, "ci_images", None)
    if images is not None and None not in images:
        return images[0], images[1]
    return result.ci_low, result.ci_high


def clearly_above(high, low) -> bool:
    """``high`` is above ``low``: their intervals (over source images when computed, see
    :func:`_verdict_interval`) are disjoint when both have one (a suite with ``bootstrap: 0``
    has none), else the point values are compared."""
    (high_low, _), (_, low_high) = _verdict_interval(high), _verdict_interval(low)
    if None in (high_low, low_high):
        return high.value > low.value
    return high_low > low_high


def _ci(result) -> str:
    """``value [patch interval] {image interval} (n images)``: both intervals and how many photographs."""
    if result.ci_low is None:
        return f"{result.value:.3g}"
    text = f"{result.value:.3g} [{result.ci_low:.3g}, {result.ci_high:.3g}]"
    images = getattr(result, "ci_images", None)
    if images is not None and None not in images:
        text += f" {{{images[0]:.3g}, {images[1]:.3g}}} ({getattr(result, 'n_source_images', '?')} images)"
    return text


def gr_part_name(half: str, spec: GlobalResidualSpec, threshold: float) -> str:
    """One half of finding 1's ratio rule, named by its models: ``finished`` (the GR net) or
    ``matched fit`` (the GR snapshot at the no-GR net's PSNR), each against the no-GR net."""
    model = spec.with_gr if half == "finished" else spec.matched_fit
    return f"{half} {model} / {spec.without_gr} >= {threshold:g}x"


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} dB"


class FindingsComputer:
    """Computes findings from a :class:`~ddr_eval.pipeline.runner.RunResult`."""

    def __init__(self, result, spec: FindingsSpec):
        self.result = result
        self.spec = spec
        self.sources = {s.label: s for s in result.sources}
        self.split = next(iter(result.inputs.eval_sets.values())).split
        self.pooling = result.suite.pooling
        # both intervals: [patches] for comparison with earlier reports, {images} (cluster bootstrap
        # over source photographs, stratified by set) for the verdicts
        self.chi = ChiMetric(projection="raw", bootstrap=spec.bootstrap, interval="both" if spec.bootstrap else "patches")

    # -- access ---------------------------------------------------------------------------
    def _source(self, label: str):
        if label not in self.sources:
            raise UserError(f"findings name model {label!r}, which the suite does not list")
        return self.sources[label]

    def _features(self, label: str, set_name: str, layer: str | None = None) -> np.ndarray:
        source = self._source(label)
        layer = layer or (self.spec.layer if self.spec.layer in source.layers else next(iter(source.layers)))
        if not self.result.has_features(label, set_name):
            raise UserError(f"findings name degradation set {set_name!r}, which the suite does not list")
        return self.result.features(label, layer, set_name)

    def chi_by(self, label: str, sets, by: str = "degradation", layer: str | None = None):
        xs, labels, images, strata = [], [], [], []
        for name in sets:
            x = self._features(label, name, layer)
            xs.append(x)
            names = list(self.result.image_names(name))
            images += names
            strata += [name] * len(x)
            labels += [name] * len(x) if by == "degradation" else names
        groups = ImageGroups(np.asarray(images), np.asarray(strata)) if self.chi.wants_images else None
        return self.chi.compute(np.concatenate(xs), np.asarray(labels), self.result.suite.seed, groups=groups)

    def row_value(self, model: str, metric_type: str, set_name: str) -> float | None:
        for row in self.result.rows:
            if row.model == model and row.type == metric_type and row.set == set_name:
                return row.value
        return None

    def psnr(self, model: str) -> float | None:
        return self.row_value(model, "psnr", self.result.suite.reference_set)

    # -- findings -------------------------------------------------------------------------
    def compute(self) -> list[Finding]:
        names = ["global_residual", "adversarial", "training", "sr_vs_classification", "spectrum",
                 "generalization", "identification", "blind_sr", "cincgan"]
        return [getattr(self, f"_{n}")(getattr(self.spec, n)) for n in names if getattr(self.spec, n)]

    def _global_residual(self, spec: GlobalResidualSpec) -> Finding:
        """CHI with vs without GR; with ``matched_fit``, also a GR snapshot at the no-GR net's PSNR.

        Rule: reproduced when CHI with GR is >= ``thresholds.gr_ratio`` (10) x CHI without (at matched
        fit too, if given);
        partly when the intervals are apart (every comparison); otherwise not reproduced.
        The two halves of the ratio rule (finished GR net vs no-GR net; matched-fit snapshot vs no-GR
        net) are also reported one by one in ``numbers["parts"]`` (half -> holds) and the summary, so a
        verdict that fails on one half says which.
        """
        without = self.chi_by(spec.without_gr, spec.sets)
        compared = [(spec.with_gr, self.chi_by(spec.with_gr, spec.sets))]
        if spec.matched_fit:
            compared.append((spec.matched_fit, self.chi_by(spec.matched_fit, spec.sets)))
        ratios = {m: r.value / max(without.value, 1e-12) for m, r in compared}
        apart = all(clearly_above(r, without) for _, r in compared)
        threshold = self.spec.thresholds.gr_ratio
        verdict = Verdict.REPRODUCED if min(ratios.values()) >= threshold else Verdict.PARTLY if apart else Verdict.NOT
        parts = {gr_part_name("finished", spec, threshold): ratios[spec.with_gr] >= threshold}
        if spec.matched_fit:
            parts[gr_part_name("matched fit", spec, threshold)] = ratios[spec.matched_fit] >= threshold
        table = [{"model": m, "CHI (degradation)": _ci(r), "PSNR (clean, dB)": self.psnr(m)}
                 for m, r in (*compared, (spec.without_gr, without))]
        with_gr, ratio = compared[0][1], ratios[spec.with_gr]
        summary = f"CHI {with_gr.value:.3g} with GR vs {without.value:.3g} without: {ratio:.1f}x."
        numbers = {"chi_with": with_gr.value, "chi_without": without.value, "ratio": ratio}
        if spec.matched_fit:
            matched = compared[1][1]
            summary += (f" At matched fit ({spec.matched_fit}, PSNR {_db(self.psnr(spec.matched_fit))} vs "
                        f"{_db(self.psnr(spec.without_gr))}): CHI {matched.value:.3g}, "
                        f"{ratios[spec.matched_fit]:.1f}x.")
            numbers.update({"chi_matched_fit": matched.value, "ratio_matched_fit": ratios[spec.matched_fit]})
        summary += " " + "; ".join(f"{name}: {'holds' if ok else 'does not hold'}" for name, ok in parts.items()) + "."
        numbers["parts"] = parts
        return Finding("global_residual", "Global residual makes DDR emerge",
                       "CHI with GR an order of magnitude above CHI without", verdict, summary, table, numbers)

    def _adversarial(self, spec: AdversarialSpec) -> Finding:
        """Each (GAN, pixel-loss) pair; snapshots of the GAN's fine-tuning the suite lists
        (``name@iteration``) are shown beside it but do not enter the verdict."""
        table, wins, ratios, snapshots = [], 0, {}, {}
        for gan, mse in spec.pairs:
            g, m = self.chi_by(gan, spec.sets), self.chi_by(mse, spec.sets)
            ratios[f"{gan}/{mse}"] = g.value / max(m.value, 1e-12)
            wins += clearly_above(g, m)
            for _, label in self._series(gan):
                snapshot = self.chi_by(label, spec.sets)
                snapshots[label] = snapshot.value
                table.append({"model": label, "CHI (degradation)": _ci(snapshot), "PSNR (clean, dB)": self.psnr(label)})
            table += [{"model": gan, "CHI (degradation)": _ci(g), "PSNR (clean, dB)": self.psnr(gan)},
                      {"model": mse, "CHI (degradation)": _ci(m), "PSNR (clean, dB)": self.psnr(mse)}]
        verdict = Verdict.REPRODUCED if wins == len(spec.pairs) else Verdict.PARTLY if wins else Verdict.NOT
        text = "; ".join(f"{k}: {v:.2f}x" for k, v in ratios.items())
        return Finding("adversarial", "Adversarial training makes features discriminative",
                       "GAN-trained CHI above its pixel-loss counterpart's, even without GR", verdict,
                       f"CHI ratio GAN / pixel-loss: {text} ({wins} of {len(spec.pairs)} pairs clearly higher).",
                       table, {"ratios": ratios, "snapshots": snapshots})

    def _series(self, name: str) -> list[tuple[int, str]]:
        """(iteration, label) of the ``name@iteration`` snapshots the suite lists, in training order."""
        snapshots = [(snapshot.iteration, label) for label in self.sources
                     if (snapshot := SnapshotLabel.parse(label)) and snapshot.series == name]
        return sorted(snapshots)

    def _training(self, spec: TrainingSpec) -> Finding:
        points = self._series(spec.series)
        if len(points) < 3:
            raise UserError(f"findings.training: the suite lists {len(points)} snapshots of {spec.series}; need >= 3")
        chis = [self.chi_by(label, spec.sets) for _, label in points]
        iterations = [it for it, _ in points]
        from scipy.stats import spearmanr  # lazy: scipy.stats costs a second of start-up

        rho, p = spearmanr(iterations, [c.value for c in chis])
        table = [{"iteration": it, "CHI (degradation)": _ci(c), "PSNR (clean, dB)": self.psnr(label)}
                 for (it, label), c in zip(points, chis)]
        verdict = Verdict.REPRODUCED if rho > self.spec.thresholds.spearman else Verdict.PARTLY if rho > 0 else Verdict.NOT
        return Finding("training", "DDR grows during training", "CHI rises with iterations (Spearman > 0)",
                       verdict, f"Spearman rho(iteration, CHI) = {rho:.2f} (p = {p:.3f}) over {len(points)} snapshots.",
                       table, {"spearman": float(rho), "p": float(p), "iterations": iterations,
                               "chi": [c.value for c in chis], "psnr": [self.psnr(label) for _, label in points]})

    def _sr_vs_classification(self, spec: ContentSpec) -> Finding:
        table, ok_sr, ok_cls, curves = [], 0, 0, {}
        for model in (*spec.sr, *spec.classification):
            source = self._source(model)
            curve = []
            for layer in source.layers:
                deg = self.chi_by(model, spec.sets, "degradation", layer)
                con = self.chi_by(model, spec.sets, "content", layer)
                curve.append((layer, deg.value, con.value))
            curves[model] = curve
            layer, deg_v, con_v = curve[-1] if self.spec.layer not in source.layers else next(
                c for c in curve if c[0] == self.spec.layer)
            is_sr = model in spec.sr
            ok_sr += is_sr and deg_v > con_v
            ok_cls += (not is_sr) and con_v > deg_v
            table.append({"model": model, "kind": "SR" if is_sr else "classification", "layer": layer,
                          "CHI by degradation": round(deg_v, 3), "CHI by content": round(con_v, 3),
                          "degradation / content": round(deg_v / max(con_v, 1e-12), 2)})
        total = len(spec.sr) + len(spec.classification)
        verdict = Verdict.REPRODUCED if ok_sr + ok_cls == total else Verdict.PARTLY if ok_sr + ok_cls else Verdict.NOT
        return Finding("sr_vs_classification", "SR features cluster by degradation, classification features by content",
                       "SR: CHI by degradation >> by content; classifier: the opposite", verdict,
                       f"{ok_sr} of {len(spec.sr)} SR nets cluster by degradation; {ok_cls} of "
                       f"{len(spec.classification)} classifiers by content.", table, {"curves": curves})

    def _spectrum(self, spec: SpectrumSpec) -> Finding:
        if len(spec.sets) != len(spec.sigmas):
            raise UserError("findings.spectrum: sets and sigmas must have the same length")
        pairs = []
        for i in range(len(spec.sets)):
            for j in range(i + 1, len(spec.sets)):
                chi = self.chi_by(spec.model, (spec.sets[i], spec.sets[j]))
                pairs.append((abs(spec.sigmas[j] - spec.sigmas[i]), spec.sets[i], spec.sets[j], chi.value))
        from scipy.stats import spearmanr  # lazy: scipy.stats costs a second of start-up

        rho, p = spearmanr([d for d, *_ in pairs], [c for *_, c in pairs])
        neighbours = [round(c, 3) for d, a, b, c in pairs if spec.sets.index(b) == spec.sets.index(a) + 1]
        verdict = Verdict.REPRODUCED if rho > self.spec.thresholds.spearman else Verdict.PARTLY if rho > 0 else Verdict.NOT
        table = [{"pair": f"{a} vs {b}", "sigma distance": d, "CHI": round(c, 3)} for d, a, b, c in pairs]
        return Finding("spectrum", "Blur strengths form an ordered path in DDR space",
                       "CHI between two blur levels grows with their sigma distance", verdict,
                       f"Spearman rho(sigma distance, pairwise CHI) = {rho:.2f} (p = {p:.3f}); "
                       f"neighbouring levels: {neighbours}.", table,
                       {"spearman": float(rho), "pairs": [list(p_) for p_ in pairs]})

    def _generalization(self, spec: GeneralizationSpec) -> Finding:
        table, better, total = [], 0, 0
        for metric in ("srga", "ddr_chi_to_reference", "psnr_drop"):
            for name in spec.sets:
                trained = self.row_value(spec.trained, metric, name)
                base = self.row_value(spec.baseline, metric, name)
                if trained is None or base is None:
                    continue
                total += 1
                better += trained < base
                table.append({"metric": metric, "set": name, spec.trained: round(trained, 4),
                              spec.baseline: round(base, 4), "lower for degraded-trained": trained < base})
        if not total:
            raise UserError("findings.generalization: the suite computes none of srga, ddr_chi_to_reference, psnr_drop")
        verdict = (Verdict.REPRODUCED if better == total
                   else Verdict.PARTLY if better > total * self.spec.thresholds.generalization_partly else Verdict.NOT)
        return Finding("generalization", "Training on degradations generalizes to them",
                       "lower SRGA, DDR-CHI-to-clean and PSNR drop for the model trained on degraded inputs",
                       verdict, f"{better} of {total} comparisons favour {spec.trained}.", table,
                       {"better": better, "total": total})

    def _identification(self, spec: IdentificationSpec) -> Finding:
        """Every probe variant the suite computed (backbone x layers x pooling x classifier grid)
        on the named DDR models and baselines, each with its cross-validated accuracy on the
        training split and its accuracy on the (content-disjoint) test split.

        Rule: the DDR variant and the baseline variant with the best *training-split*
        cross-validated accuracy are chosen (the test split plays no part in the choice);
        reproduced when the chosen DDR probe's test accuracy is above the chosen baseline's,
        otherwise not reproduced. The best test accuracies are shown beside it, not used.
        """
        roles = {**{m: "DDR" for m in spec.ddr}, **{m: "baseline" for m in spec.baselines}}
        rows = [r for r in self.result.rows if r.type == "identification" and r.model in roles and r.value is not None]
        missing = [m for m in roles if not any(r.model == m for r in rows)]
        if missing:
            raise UserError(f"findings.identification: no identification result for {missing}")
        sets_of = {m.name: m.sets for m in self.result.loaded.metrics}  # a metric's `sets:`: its classes
        tasks = {None if sets_of.get(r.metric) is None else frozenset(sets_of[r.metric]) for r in rows}
        if len(tasks) > 1:
            named = sorted({f"{r.metric} on {', '.join(sets_of.get(r.metric) or ['every set'])}" for r in rows})
            raise UserError(f"findings.identification: its probes are scored on different degradation sets "
                            f"({'; '.join(named)}); compare probes on one task (one `sets:`)")
        (task,) = tasks
        classes = [name for name in self.result.inputs.eval_sets if task is None or name in task]
        unselected = sorted({r.metric for r in rows if r.extra.get("cv_accuracy") is None})
        if unselected:
            raise UserError(f"findings.identification: {unselected[0]} has no training-split cross-validation; "
                            f"give it cv_folds >= 2 (the finding chooses probes on the training split only)")
        chosen = {role: max((r for r in rows if roles[r.model] == role), key=lambda r: r.extra["cv_accuracy"])
                  for role in ("DDR", "baseline")}
        table = [{"features": r.model, "role": roles[r.model], "layer": r.layer, "probe": r.metric,
                  "C": r.extra.get("C_chosen") or "", "train CV accuracy": round(r.extra["cv_accuracy"], 4),
                  "test accuracy": _row_ci(r),
                  "chosen": "yes" if r is chosen[roles[r.model]] else ""}
                 for r in sorted(rows, key=lambda r: (roles[r.model] != "DDR", -r.extra["cv_accuracy"]))]
        ddr, base = chosen["DDR"], chosen["baseline"]
        verdict = Verdict.REPRODUCED if ddr.value > base.value else Verdict.NOT
        best_test = {role: max(r.value for r in rows if roles[r.model] == role) for role in ("DDR", "baseline")}
        folds = f"{ddr.extra.get('cv_folds')}-fold cross-validation on the training split" + (
            ", folds grouped by photograph" if ddr.extra.get("cv_grouped") else "")
        summary = (f"chosen by {folds}: DDR probe "
                   f"{_variant(ddr)} {ddr.value:.3f} on the test split vs baseline {_variant(base)} {base.value:.3f}; "
                   f"{len(rows)} variants tried (best test accuracy: DDR {best_test['DDR']:.3f}, "
                   f"baselines {best_test['baseline']:.3f}).")
        numbers = {"ddr_accuracy": ddr.value, "baseline_accuracy": base.value, "chosen_ddr": _variant(ddr),
                   "chosen_baseline": _variant(base), "variants": len(rows),
                   "best_test": best_test, "classes": classes}
        return Finding("identification", "DDR identifies distortions",
                       "a probe on DDR, chosen on the training split, beats the baselines", verdict, summary, table,
                       numbers)

    def _blind_sr(self, spec: BlindSrSpec) -> Finding:
        """Y-PSNR/SSIM per patch of the blind, unconditioned and oracle models on every set named,
        with 95% intervals from a bootstrap over source photographs, and blind SR's paired PSNR
        gain over the unconditioned model (same patches, same photographs resampled).

        Rule: reproduced when the gain's interval lies above 0 on every set inside the training
        ranges; partly when on some of them; otherwise not reproduced. Sets outside the training
        ranges and the gap to the oracle are reported beside the verdict, not in it.
        """
        roles = {"blind": spec.blind, "unconditioned": spec.unconditioned, "oracle": spec.oracle}
        table, gains = [], {}
        for region, sets in (("inside", spec.inside), ("outside", spec.outside)):
            for name in sets:
                scores = {role: self._patch_quality(label, name) for role, label in roles.items()}
                gain = scores["blind"]["psnr"] - scores["unconditioned"]["psnr"]
                images = self.result.image_names(name)
                gains[name] = (region, *self._mean_interval(gain, images))
                row = {"set": name, "strengths": region, "images": len(set(images))}
                for role, label in roles.items():
                    row[f"{label} PSNR (dB)"] = _mean_ci_text(*self._mean_interval(scores[role]["psnr"], images))
                    row[f"{label} SSIM"] = _mean_ci_text(*self._mean_interval(scores[role]["ssim"], images), digits=4)
                row["blind - unconditioned (dB)"] = _mean_ci_text(*gains[name][1:], signed=True)
                table.append(row)
        inside = [g for g in gains.values() if g[0] == "inside"]
        wins = sum(low is not None and low > 0 for _, _, low, _ in inside)
        verdict = Verdict.REPRODUCED if inside and wins == len(inside) else Verdict.PARTLY if wins else Verdict.NOT
        outside = [g for g in gains.values() if g[0] == "outside"]
        summary = (f"blind SR's PSNR gain over {spec.unconditioned} has its interval above 0 on {wins} of "
                   f"{len(inside)} sets inside the training ranges (mean gain "
                   f"{np.mean([g[1] for g in inside]):+.2f} dB)")
        if outside:
            summary += f"; outside them, mean gain {np.mean([g[1] for g in outside]):+.2f} dB"
        summary += "."
        numbers: dict[str, Any] = {name: {"range": g[0], "gain_db": g[1], "gain_ci": [g[2], g[3]]}
                                   for name, g in gains.items()}
        # the headline numbers, flat, so a table over seeds can show their spread
        numbers["sets_won_inside"] = int(wins)
        numbers["mean_gain_inside_db"] = float(np.mean([g[1] for g in inside])) if inside else None
        if outside:
            numbers["mean_gain_outside_db"] = float(np.mean([g[1] for g in outside]))
        return Finding("blind_sr", "DDR-guided blind SR", "conditioning on DDR beats the same generator without "
                       "it on degradations inside its training range, below the oracle", verdict, summary, table,
                       numbers)

    def _cincgan(self, spec: CincganSpec) -> Finding:
        """CHI by degradation of CinCGAN's SR-network features against the baseline's, same layer.

        Rule: reproduced when CinCGAN's CHI is clearly above the baseline's (intervals apart) and
        its deep features separate degradations more than content; partly when only one holds.
        """
        model, base = self.chi_by(spec.model, spec.sets), self.chi_by(spec.baseline, spec.sets)
        content = self.chi_by(spec.model, spec.sets, "content")
        above, by_degradation = clearly_above(model, base), model.value > content.value
        verdict = Verdict.REPRODUCED if above and by_degradation else Verdict.PARTLY if above or by_degradation else Verdict.NOT
        table = [{"model": spec.model, "CHI (degradation)": _ci(model), "CHI (content)": _ci(content),
                  "PSNR (clean, dB)": self.psnr(spec.model)},
                 {"model": spec.baseline, "CHI (degradation)": _ci(base), "CHI (content)": "",
                  "PSNR (clean, dB)": self.psnr(spec.baseline)}]
        summary = (f"CHI by degradation {model.value:.3g} for {spec.model} vs {base.value:.3g} for {spec.baseline} "
                   f"({model.value / max(base.value, 1e-12):.1f}x{', intervals apart' if above else ''}); "
                   f"by content {content.value:.3g}.")
        return Finding("cincgan", "CinCGAN's SR features cluster by degradation",
                       "CinCGAN's deep SR features separate degradations (above a pixel-loss net without GR)",
                       verdict, summary, table, {"chi": model.value, "chi_baseline": base.value,
                                                 "chi_content": content.value})

    def _patch_quality(self, label: str, set_name: str) -> dict[str, np.ndarray]:
        """Y-channel PSNR and SSIM per patch (crop border = scale) of ``label`` on ``set_name``;
        an oracle-conditioned model is told the set's true blur and noise sigmas first."""
        from ddr_eval.degradations.chain import blur_and_noise_sigmas
        from ddr_eval.features import select_device
        from ddr_eval.metrics.quality import psnr, ssim, to_uint8

        source = self._source(label)
        module = source.descriptor.module
        dataset = self.result.inputs.eval_sets[set_name]
        if getattr(module, "condition", None) == "oracle":
            (chain,) = [d.chain for d in self.result.suite.degradations if d.name == set_name]
            module.set_condition(blur_and_noise_sigmas(chain))
        runtime = self.result.suite.runtime
        outputs = source.extract(dataset.lr, self.pooling, runtime.batch_size, select_device(runtime.device),
                                 runtime.amp_dtype, outputs=True).outputs
        scale = self.result.loaded.scale
        pairs = [(to_uint8(sr), to_uint8(hr)) for sr, hr in zip(outputs, dataset.patches.hr)]
        return {"psnr": np.array([psnr(a, b, crop_border=scale, test_y_channel=True) for a, b in pairs]),
                "ssim": np.array([ssim(a, b, crop_border=scale, test_y_channel=True) for a, b in pairs])}

    def _mean_interval(self, values: np.ndarray, images: np.ndarray) -> tuple[float, float | None, float | None]:
        """The mean of per-patch values and its 95% interval from a bootstrap over source
        photographs (patches of one photograph are not independent), seeded by the suite."""
        from ddr_eval.metrics.bootstrap import cluster_bootstrap_mean_interval, image_bootstrap_rng

        values = np.asarray(values, dtype=np.float64)
        low, high = cluster_bootstrap_mean_interval(values, images, None, self.spec.bootstrap,
                                                    image_bootstrap_rng(self.result.suite.seed))
        return float(values.mean()), low, high


def _row_ci(row) -> str:
    """:func:`_ci` of a result row (its image interval and image count are in ``extra``)."""
    return _ci(SimpleNamespace(value=row.value, ci_low=row.ci_low, ci_high=row.ci_high,
                               ci_images=row.extra.get("ci_images"), n_source_images=row.extra.get("n_images")))


def _variant(row) -> str:
    """A probe variant in words: model, layer(s) and the metric's parameters."""
    return f"{row.model} / {row.layer} / {row.metric}"


def _mean_ci_text(mean: float, low: float | None, high: float | None, digits: int = 2, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if low is None:
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def findings_markdown(findings: list[Finding]) -> str:
    from tabulate import tabulate

    lines = ["# What DDR looks like: the paper's findings on the shipped zoo", "",
             "| # | finding | expected | verdict | measured |", "|---|---|---|---|---|"]
    lines += [f"| {i} | {f.title} | {f.expected} | **{f.verdict}** | {f.summary} |" for i, f in enumerate(findings, 1)]
    included = {f.suite["file"]: [i for i, g in enumerate(findings, 1) if g.suite == f.suite]
                for f in findings if f.suite}
    if included:
        lines += ["", "Included suites (`findings.include`): " + "; ".join(
            f"{'finding' if len(ns) == 1 else 'findings'} {', '.join(map(str, ns))} by {file}"
            for file, ns in included.items()) + "."]
    for i, finding in enumerate(findings, 1):
        lines += ["", f"## {i}. {finding.title}", ""]
        if finding.suite:
            lines += [_origin_text(finding.suite), ""]
        lines += [f"Expected: {finding.expected}.", "", f"Measured: {finding.summary} Verdict: **{finding.verdict}**.", ""]
        if finding.table:
            lines.append(tabulate(finding.table, headers="keys", tablefmt="github"))
        if finding.plots:
            lines += ["", *(f"![{caption}]({name})" for name, caption in finding.plots)]
    return "\n".join(lines) + "\n"


def compute_findings(result) -> list[Finding]:
    """The findings a run's suite asks for (none when it has no ``findings:`` section)."""
    if result.loaded.findings is None:
        return []
    return FindingsComputer(result, result.loaded.findings).compute()


def findings_files(findings: list[Finding]) -> dict[str, str]:
    """``findings.md`` and ``findings.json`` for the report directory."""
    if not findings:
        return {}
    import json

    document = [{"key": f.key, "title": f.title, "expected": f.expected, "verdict": f.verdict,
                 "summary": f.summary, "table": f.table, "numbers": f.numbers, "suite": f.suite,
                 "plots": [{"file": name, "caption": caption} for name, caption in f.plots]} for f in findings]
    return {"findings.md": findings_markdown(findings),
            "findings.json": json.dumps(document, indent=2, default=float) + "\n"}


def findings_sections(findings: list[Finding], images: dict[str, bytes] | None = None) -> list:
    """Each finding as a titled table in leaderboard.md and report.html, with its plots
    (``images``: file name -> PNG bytes of the plots the findings name)."""
    import pandas as pd

    images = images or {}
    return [ReportSection(f"Finding {i}: {f.title} — {f.verdict}",
                          (_origin_text(f.suite) + "\n\n" if f.suite else "")
                          + f"Expected: {f.expected}. Measured: {f.summary}",
                          pd.DataFrame(f.table) if f.table else None,
                          images=tuple((name, caption, images[name]) for name, caption in f.plots if name in images))
            for i, f in enumerate(findings, 1)]
