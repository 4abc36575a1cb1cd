"""Finding 5: blur strengths form an ordered path in DDR space."""

from __future__ import annotations

from ddr_eval.core.errors import UserError
from ddr_eval.findings.base import Finding, FindingResult, Rounded, Verdict, register_finding
from ddr_eval.config.findings_spec import SpectrumSpec


@register_finding
class Spectrum(Finding):
    """CHI between every two blur levels against their sigma distance.

    Rule: reproduced when Spearman's rho(sigma distance, pairwise CHI) is above
    ``thresholds.spearman``, partly when above 0, otherwise not reproduced.
    """

    key = "spectrum"
    title = "Blur strengths form an ordered path in DDR space"
    expected = "CHI between two blur levels grows with their sigma distance"
    spec = SpectrumSpec

    def compute(self, context) -> FindingResult:
        spec: SpectrumSpec = self.part
        if len(spec.sets) != len(spec.sigmas):
            raise UserError("findings.spectrum: sets and sigmas must have the same length")
        pairs = []
        for i in range(len(spec.sets)):
            for j in range(i + 1, len(spec.sets)):
                chi = context.chi_by(spec.model, (spec.sets[i], spec.sets[j]))
                pairs.append((abs(spec.sigmas[j] - spec.sigmas[i]), spec.sets[i], spec.sets[j], chi.value))
        from scipy.stats import spearmanr  # lazy: scipy.stats costs a second of start-up

        rho, p = spearmanr([d for d, *_ in pairs], [c for *_, c in pairs])
        neighbours = [round(c, 3) for d, a, b, c in pairs if spec.sets.index(b) == spec.sets.index(a) + 1]
        threshold = context.thresholds.spearman
        verdict = Verdict.REPRODUCED if rho > threshold else Verdict.PARTLY if rho > 0 else Verdict.NOT
        table = [{"pair": f"{a} vs {b}", "sigma distance": d, "CHI": Rounded(c, 3)} for d, a, b, c in pairs]
        return self.result(verdict, f"Spearman rho(sigma distance, pairwise CHI) = {rho:.2f} (p = {p:.3f}); "
                           f"neighbouring levels: {neighbours}.",
                           f"reproduced when Spearman rho(sigma distance, pairwise CHI) > {threshold:g}; partly when "
                           "> 0; else not reproduced", table=table,
                           numbers={"spearman": float(rho), "pairs": [list(p_) for p_ in pairs]},
                           series={f"{a} vs {b}": c for d, a, b, c in pairs})
