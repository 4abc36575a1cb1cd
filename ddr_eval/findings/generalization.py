"""Finding 6: training on degradations generalizes to them."""

from __future__ import annotations

from ddr_eval.core.errors import UserError
from ddr_eval.findings.base import Finding, FindingResult, Rounded, Verdict, register_finding
from ddr_eval.config.findings_spec import GeneralizationSpec

METRIC_TYPES = ("srga", "ddr_chi_to_reference", "psnr_drop")


@register_finding
class Generalization(Finding):
    """SRGA, DDR-CHI to the clean set and PSNR drop of the degraded-trained net against its
    clean-trained twin, on every set named (a comparison per metric the suite computes and set).

    Rule: reproduced when every comparison favours the degraded-trained net (lower), partly
    when more than ``thresholds.generalization_partly`` of them do, otherwise not reproduced.
    Its series are ``model / metric``: one panel per metric in the strength figure.
    """

    key = "generalization"
    title = "Training on degradations generalizes to them"
    expected = "lower SRGA, DDR-CHI-to-clean and PSNR drop for the model trained on degraded inputs"
    spec = GeneralizationSpec
    strength_sets = ("level",)

    def compute(self, context) -> FindingResult:
        spec: GeneralizationSpec = self.part
        table, better, total, series = [], 0, 0, {}
        for metric in METRIC_TYPES:
            for name in spec.sets:
                trained = context.row_value(spec.trained, metric, name)
                base = context.row_value(spec.baseline, metric, name)
                if trained is None or base is None:
                    continue
                total += 1
                better += trained < base
                table.append({"metric": metric, "set": name, spec.trained: Rounded(trained, 4),
                              spec.baseline: Rounded(base, 4), "lower for degraded-trained": trained < base})
                series.update({f"{spec.trained} / {metric}": trained, f"{spec.baseline} / {metric}": base})
        if not total:
            raise UserError("findings.generalization: the suite computes none of srga, ddr_chi_to_reference, psnr_drop")
        partly = context.thresholds.generalization_partly
        verdict = (Verdict.REPRODUCED if better == total
                   else Verdict.PARTLY if better > total * partly else Verdict.NOT)
        return self.result(verdict, f"{better} of {total} comparisons favour {spec.trained}.",
                           f"reproduced when every comparison ({', '.join(METRIC_TYPES)} per set) is lower for the "
                           f"degraded-trained net; partly when more than {partly:g} of them are; else not reproduced",
                           table=table, numbers={"better": better, "total": total}, series=series)

    @classmethod
    def curve(cls, series: str) -> tuple[str, str]:
        model, _, metric = series.rpartition(" / ")
        return model, f"6: {metric}"
