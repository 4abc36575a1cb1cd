"""Finding 4: SR features cluster by degradation, classification features by content."""

from __future__ import annotations

from ddr_eval.findings.base import Finding, FindingResult, Rounded, Verdict, register_finding
from ddr_eval.config.findings_spec import ContentSpec


@register_finding
class SrVsClassification(Finding):
    """CHI by degradation and by content at every layer of each SR and classification net
    (``numbers["curves"]``: the depth figure), read at ``findings.layer`` (else the last layer).

    Rule: reproduced when every SR net's CHI by degradation is above its CHI by content and
    every classifier's the other way round; partly when some are; otherwise not reproduced.
    Its series (what a strength curve plots) is each net's ratio degradation / content.
    """

    key = "sr_vs_classification"
    title = "SR features cluster by degradation, classification features by content"
    expected = "SR: CHI by degradation >> by content; classifier: the opposite"
    spec = ContentSpec
    strength_sets = ("reference", "level")
    curve_label = "4: CHI deg / content"
    crossing = 1.0

    def compute(self, context) -> FindingResult:
        spec: ContentSpec = self.part
        table, ok_sr, ok_cls, curves, series = [], 0, 0, {}, {}
        for model in (*spec.sr, *spec.classification):
            source = context.source(model)
            curve = []
            for layer in source.layers:
                deg = context.chi_by(model, spec.sets, "degradation", layer)
                con = context.chi_by(model, spec.sets, "content", layer)
                curve.append((layer, deg.value, con.value))
            curves[model] = curve
            layer, deg_v, con_v = curve[-1] if context.layer not in source.layers else next(
                c for c in curve if c[0] == context.layer)
            is_sr = model in spec.sr
            ok_sr += is_sr and deg_v > con_v
            ok_cls += (not is_sr) and con_v > deg_v
            series[model] = deg_v / max(con_v, 1e-12)
            table.append({"model": model, "kind": "SR" if is_sr else "classification", "layer": layer,
                          "CHI by degradation": Rounded(deg_v, 3), "CHI by content": Rounded(con_v, 3),
                          "degradation / content": Rounded(series[model], 2)})
        total = len(spec.sr) + len(spec.classification)
        verdict = Verdict.REPRODUCED if ok_sr + ok_cls == total else Verdict.PARTLY if ok_sr + ok_cls else Verdict.NOT
        return self.result(verdict, f"{ok_sr} of {len(spec.sr)} SR nets cluster by degradation; {ok_cls} of "
                           f"{len(spec.classification)} classifiers by content.",
                           "reproduced when every SR net's CHI by degradation exceeds its CHI by content and every "
                           "classifier's CHI by content exceeds its CHI by degradation; partly when some do; "
                           "else not reproduced", table=table, numbers={"curves": curves}, series=series)
