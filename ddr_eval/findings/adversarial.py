"""Finding 2: adversarial training makes features discriminative, even without a global residual."""

from __future__ import annotations

from ddr_eval.findings.base import Finding, FindingResult, Verdict, register_finding
from ddr_eval.config.findings_spec import AdversarialSpec


@register_finding
class Adversarial(Finding):
    """Each (GAN, pixel-loss) pair; snapshots of the GAN's fine-tuning the suite lists
    (``name@iteration``) are shown beside it but do not enter the verdict.

    Rule: reproduced when every GAN's CHI is clearly above its pixel-loss counterpart's
    (intervals apart), partly when some are, otherwise not reproduced.
    """

    key = "adversarial"
    title = "Adversarial training makes features discriminative"
    expected = "GAN-trained CHI above its pixel-loss counterpart's, even without GR"
    spec = AdversarialSpec
    strength_sets = ("reference", "level")
    curve_label = "2: CHI (degradation)"

    def compute(self, context) -> FindingResult:
        spec: AdversarialSpec = self.part
        table, wins, ratios, snapshots, series = [], 0, {}, {}, {}
        for gan, mse in spec.pairs:
            g, m = context.chi_by(gan, spec.sets), context.chi_by(mse, spec.sets)
            ratios[f"{gan}/{mse}"] = g.value / max(m.value, 1e-12)
            wins += g.clearly_above(m)
            measured = [(label, context.chi_by(label, spec.sets)) for _, label in context.snapshots(gan)]
            snapshots.update({label: chi.value for label, chi in measured})
            for label, chi in [*measured, (gan, g), (mse, m)]:
                table.append({"model": label, "CHI (degradation)": chi, "PSNR (clean, dB)": context.psnr(label)})
                series[label] = chi.value
        verdict = Verdict.REPRODUCED if wins == len(spec.pairs) else Verdict.PARTLY if wins else Verdict.NOT
        text = "; ".join(f"{k}: {v:.2f}x" for k, v in ratios.items())
        return self.result(verdict, f"CHI ratio GAN / pixel-loss: {text} ({wins} of {len(spec.pairs)} pairs clearly higher).",
                           "reproduced when every GAN's CHI is clearly above (intervals apart) its pixel-loss "
                           "counterpart's; partly when some are; else not reproduced",
                           table=table, numbers={"ratios": ratios, "snapshots": snapshots}, series=series)
