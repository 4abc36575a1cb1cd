"""Finding 1: a global residual (the input added back to the output) makes DDR emerge."""

from __future__ import annotations

from ddr_eval.findings.base import Finding, FindingResult, Verdict, register_finding
from ddr_eval.config.findings_spec import GlobalResidualSpec


def gr_part_name(half: str, spec: GlobalResidualSpec, threshold: float) -> str:
    """One half of finding 1's ratio rule, named by its models: ``finished`` (the GR net) or
    ``matched fit`` (the GR snapshot at the no-GR net's PSNR), each against the no-GR net."""
    model = spec.with_gr if half == "finished" else spec.matched_fit
    return f"{half} {model} / {spec.without_gr} >= {threshold:g}x"


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} dB"


@register_finding
class GlobalResidual(Finding):
    """CHI with vs without GR; with ``matched_fit``, also a GR snapshot at the no-GR net's PSNR.

    Rule: reproduced when CHI with GR is >= ``thresholds.gr_ratio`` (10) x CHI without (at matched
    fit too, if given); partly when the intervals are apart (every comparison); otherwise not
    reproduced. The two halves of the ratio rule (finished GR net vs no-GR net; matched-fit
    snapshot vs no-GR net) are also reported one by one in ``parts`` (half -> holds) and the
    summary, so a verdict that fails on one half says which.
    """

    key = "global_residual"
    title = "Global residual makes DDR emerge"
    expected = "CHI with GR an order of magnitude above CHI without"
    spec = GlobalResidualSpec
    strength_sets = ("reference", "level")
    curve_label = "1: CHI (degradation)"

    @classmethod
    def strength_note(cls, thresholds) -> str:
        return ("Finding 1's rule has two halves (the finished GR net's CHI >= "
                f"{thresholds.gr_ratio:g}x the no-GR net's, and the matched-fit snapshot's "
                "CHI >= that ratio too): each half is located on its own by the same seed rule (a half holds at a level "
                "when enough seeds meet it there) and named after the range; the finding holds at a level only where "
                "both do.")

    def compute(self, context) -> FindingResult:
        spec: GlobalResidualSpec = self.part
        without = context.chi_by(spec.without_gr, spec.sets)
        compared = [(spec.with_gr, context.chi_by(spec.with_gr, spec.sets))]
        if spec.matched_fit:
            compared.append((spec.matched_fit, context.chi_by(spec.matched_fit, spec.sets)))
        ratios = {m: r.value / max(without.value, 1e-12) for m, r in compared}
        apart = all(r.clearly_above(without) for _, r in compared)
        threshold = context.thresholds.gr_ratio
        verdict = Verdict.REPRODUCED if min(ratios.values()) >= threshold else Verdict.PARTLY if apart else Verdict.NOT
        parts = {gr_part_name("finished", spec, threshold): ratios[spec.with_gr] >= threshold}
        if spec.matched_fit:
            parts[gr_part_name("matched fit", spec, threshold)] = ratios[spec.matched_fit] >= threshold
        measured = (*compared, (spec.without_gr, without))
        table = [{"model": m, "CHI (degradation)": r, "PSNR (clean, dB)": context.psnr(m)} for m, r in measured]
        with_gr, ratio = compared[0][1], ratios[spec.with_gr]
        summary = f"CHI {with_gr.value:.3g} with GR vs {without.value:.3g} without: {ratio:.1f}x."
        numbers = {"chi_with": with_gr.value, "chi_without": without.value, "ratio": ratio}
        if spec.matched_fit:
            matched = compared[1][1]
            summary += (f" At matched fit ({spec.matched_fit}, PSNR {_db(context.psnr(spec.matched_fit))} vs "
                        f"{_db(context.psnr(spec.without_gr))}): CHI {matched.value:.3g}, "
                        f"{ratios[spec.matched_fit]:.1f}x.")
            numbers.update({"chi_matched_fit": matched.value, "ratio_matched_fit": ratios[spec.matched_fit]})
        summary += " " + "; ".join(f"{name}: {'holds' if ok else 'does not hold'}" for name, ok in parts.items()) + "."
        rule = (f"reproduced when CHI with GR >= {threshold:g}x CHI without"
                + (f" for {spec.with_gr} and {spec.matched_fit}" if spec.matched_fit else "")
                + "; partly when every CHI with GR is clearly above (intervals apart); else not reproduced")
        return self.result(verdict, summary, rule, table=table, numbers=numbers,
                           series={m: r.value for m, r in measured}, parts=parts)
