"""Finding 9: CinCGAN's SR features cluster by degradation."""

from __future__ import annotations

from ddr_eval.findings.base import Finding, FindingResult, Verdict, register_finding
from ddr_eval.config.findings_spec import CincganSpec


@register_finding
class Cincgan(Finding):
    """CHI by degradation of CinCGAN's SR-network features against the baseline's, same layer.

    Rule: reproduced when CinCGAN's CHI is clearly above the baseline's (intervals apart) and
    its deep features separate degradations more than content; partly when only one holds.
    """

    key = "cincgan"
    title = "CinCGAN's SR features cluster by degradation"
    expected = "CinCGAN's deep SR features separate degradations (above a pixel-loss net without GR)"
    spec = CincganSpec
    strength_sets = ("reference", "level")

    def compute(self, context) -> FindingResult:
        spec: CincganSpec = self.part
        model, base = context.chi_by(spec.model, spec.sets), context.chi_by(spec.baseline, spec.sets)
        content = context.chi_by(spec.model, spec.sets, "content")
        above, by_degradation = model.clearly_above(base), model.value > content.value
        verdict = (Verdict.REPRODUCED if above and by_degradation
                   else Verdict.PARTLY if above or by_degradation else Verdict.NOT)
        table = [{"model": spec.model, "CHI (degradation)": model, "CHI (content)": content,
                  "PSNR (clean, dB)": context.psnr(spec.model)},
                 {"model": spec.baseline, "CHI (degradation)": base, "CHI (content)": "",
                  "PSNR (clean, dB)": context.psnr(spec.baseline)}]
        summary = (f"CHI by degradation {model.value:.3g} for {spec.model} vs {base.value:.3g} for {spec.baseline} "
                   f"({model.value / max(base.value, 1e-12):.1f}x{', intervals apart' if above else ''}); "
                   f"by content {content.value:.3g}.")
        return self.result(verdict, summary, "reproduced when CinCGAN's CHI by degradation is clearly above the "
                           "baseline's (intervals apart) and above its own CHI by content; partly when one holds; "
                           "else not reproduced", table=table,
                           numbers={"chi": model.value, "chi_baseline": base.value, "chi_content": content.value},
                           series={spec.model: model.value, spec.baseline: base.value})
