"""Finding 7: DDR identifies distortions (a probe on DDR, chosen on the training split, beats the baselines)."""

from __future__ import annotations

from ddr_eval.core.errors import UserError
from ddr_eval.findings.base import Estimate, Finding, FindingResult, Rounded, Verdict, register_finding
from ddr_eval.config.findings_spec import IdentificationSpec


def variant(row) -> str:
    """A probe variant in words: model, layer(s) and the metric's parameters."""
    return f"{row.model} / {row.layer} / {row.metric}"


@register_finding
class Identification(Finding):
    """Every probe variant the suite computed (backbone x layers x pooling x classifier grid)
    on the named DDR models and baselines, each with its cross-validated accuracy on the
    training split and its accuracy on the (content-disjoint) test split.

    Rule: the DDR variant and the baseline variant with the best *training-split*
    cross-validated accuracy are chosen (the test split plays no part in the choice);
    reproduced when the chosen DDR probe's test accuracy is above the chosen baseline's,
    otherwise not reproduced. The best test accuracies are shown beside it, not used.
    """

    key = "identification"
    title = "DDR identifies distortions"
    expected = "a probe on DDR, chosen on the training split, beats the baselines"
    spec = IdentificationSpec
    seeds_note = ("finding 7 (identification) is recomputed in full per seed: each seed's run chooses its DDR and its "
                  "baseline probe by cross-validation on that seed's training split, then reads the test split (the "
                  "chosen variants are named per seed)")

    def compute(self, context) -> FindingResult:
        spec: IdentificationSpec = self.part
        roles = {**{m: "DDR" for m in spec.ddr}, **{m: "baseline" for m in spec.baselines}}
        rows = [r for r in context.rows("identification") if r.model in roles]
        missing = [m for m in roles if not any(r.model == m for r in rows)]
        if missing:
            raise UserError(f"findings.identification: no identification result for {missing}")
        sets_of = {m.name: m.sets for m in context.result.loaded.metrics}  # a metric's `sets:`: its classes
        tasks = {None if sets_of.get(r.metric) is None else frozenset(sets_of[r.metric]) for r in rows}
        if len(tasks) > 1:
            named = sorted({f"{r.metric} on {', '.join(sets_of.get(r.metric) or ['every set'])}" for r in rows})
            raise UserError(f"findings.identification: its probes are scored on different degradation sets "
                            f"({'; '.join(named)}); compare probes on one task (one `sets:`)")
        (task,) = tasks
        classes = [name for name in context.result.inputs.eval_sets if task is None or name in task]
        unselected = sorted({r.metric for r in rows if r.extra.get("cv_accuracy") is None})
        if unselected:
            raise UserError(f"findings.identification: {unselected[0]} has no training-split cross-validation; "
                            f"give it cv_folds >= 2 (the finding chooses probes on the training split only)")
        chosen = {role: max((r for r in rows if roles[r.model] == role), key=lambda r: r.extra["cv_accuracy"])
                  for role in ("DDR", "baseline")}
        table = [{"features": r.model, "role": roles[r.model], "layer": r.layer, "probe": r.metric,
                  "C": r.extra.get("C_chosen") or "", "train CV accuracy": Rounded(r.extra["cv_accuracy"], 4),
                  "test accuracy": Estimate.of_row(r),
                  "chosen": "yes" if r is chosen[roles[r.model]] else ""}
                 for r in sorted(rows, key=lambda r: (roles[r.model] != "DDR", -r.extra["cv_accuracy"]))]
        ddr, base = chosen["DDR"], chosen["baseline"]
        verdict = Verdict.REPRODUCED if ddr.value > base.value else Verdict.NOT
        best_test = {role: max(r.value for r in rows if roles[r.model] == role) for role in ("DDR", "baseline")}
        folds = f"{ddr.extra.get('cv_folds')}-fold cross-validation on the training split" + (
            ", folds grouped by photograph" if ddr.extra.get("cv_grouped") else "")
        summary = (f"chosen by {folds}: DDR probe "
                   f"{variant(ddr)} {ddr.value:.3f} on the test split vs baseline {variant(base)} {base.value:.3f}; "
                   f"{len(rows)} variants tried (best test accuracy: DDR {best_test['DDR']:.3f}, "
                   f"baselines {best_test['baseline']:.3f}).")
        numbers = {"ddr_accuracy": ddr.value, "baseline_accuracy": base.value, "chosen_ddr": variant(ddr),
                   "chosen_baseline": variant(base), "variants": len(rows),
                   "best_test": best_test, "classes": classes}
        return self.result(verdict, summary, "the DDR and the baseline probe with the best training-split "
                           "cross-validated accuracy are chosen; reproduced when the chosen DDR probe's test accuracy "
                           "is above the chosen baseline's; else not reproduced", table=table, numbers=numbers,
                           series={"DDR": ddr.value, "baseline": base.value})
