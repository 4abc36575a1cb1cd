"""Finding 3: DDR grows during training (CHI over a training series' snapshots)."""

from __future__ import annotations

from ddr_eval.core.errors import UserError
from ddr_eval.findings.base import Finding, FindingResult, Verdict, register_finding
from ddr_eval.config.findings_spec import TrainingSpec


@register_finding
class Training(Finding):
    """CHI of every ``series@iteration`` snapshot the suite lists.

    Rule: reproduced when Spearman's rho(iteration, CHI) is above ``thresholds.spearman``,
    partly when above 0, otherwise not reproduced.
    """

    key = "training"
    title = "DDR grows during training"
    expected = "CHI rises with iterations (Spearman > 0)"
    spec = TrainingSpec

    def compute(self, context) -> FindingResult:
        spec: TrainingSpec = self.part
        points = context.snapshots(spec.series)
        if len(points) < 3:
            raise UserError(f"findings.training: the suite lists {len(points)} snapshots of {spec.series}; need >= 3")
        chis = [context.chi_by(label, spec.sets) for _, label in points]
        iterations = [it for it, _ in points]
        from scipy.stats import spearmanr  # lazy: scipy.stats costs a second of start-up

        rho, p = spearmanr(iterations, [c.value for c in chis])
        table = [{"iteration": it, "CHI (degradation)": c, "PSNR (clean, dB)": context.psnr(label)}
                 for (it, label), c in zip(points, chis)]
        threshold = context.thresholds.spearman
        verdict = Verdict.REPRODUCED if rho > threshold else Verdict.PARTLY if rho > 0 else Verdict.NOT
        return self.result(verdict, f"Spearman rho(iteration, CHI) = {rho:.2f} (p = {p:.3f}) over {len(points)} snapshots.",
                           f"reproduced when Spearman rho(iteration, CHI) > {threshold:g}; partly when > 0; "
                           "else not reproduced", table=table,
                           numbers={"spearman": float(rho), "p": float(p), "iterations": iterations,
                                    "chi": [c.value for c in chis], "psnr": [context.psnr(label) for _, label in points]},
                           series={label: c.value for (_, label), c in zip(points, chis)})
