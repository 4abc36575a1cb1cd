"""Finding 8: DDR-guided blind SR beats the same generator without the condition, below the oracle."""

from __future__ import annotations

from typing import Any

import numpy as np

from ddr_eval.findings.base import Finding, FindingResult, Verdict, register_finding
from ddr_eval.config.findings_spec import BlindSrSpec


@register_finding
class BlindSr(Finding):
    """Y-PSNR/SSIM per patch of the blind, unconditioned and oracle models on every set named,
    with 95% intervals from a bootstrap over source photographs, and blind SR's paired PSNR
    gain over the unconditioned model (same patches, same photographs resampled).

    Rule: reproduced when the gain's interval lies above 0 on every set inside the training
    ranges; partly when on some of them; otherwise not reproduced. Sets outside the training
    ranges and the gap to the oracle are reported beside the verdict, not in it.
    """

    key = "blind_sr"
    title = "DDR-guided blind SR"
    expected = ("conditioning on DDR beats the same generator without it on degradations inside its training "
                "range, below the oracle")
    spec = BlindSrSpec

    def compute(self, context) -> FindingResult:
        spec: BlindSrSpec = self.part
        roles = {"blind": spec.blind, "unconditioned": spec.unconditioned, "oracle": spec.oracle}
        table, gains, regions = [], {}, {}
        for region, sets in (("inside", spec.inside), ("outside", spec.outside)):
            for name in sets:
                scores = {role: context.patch_quality(label, name) for role, label in roles.items()}
                images = context.image_names(name)
                gains[name] = context.mean_interval(scores["blind"]["psnr"] - scores["unconditioned"]["psnr"], images,
                                                    signed=True)
                regions[name] = region
                row = {"set": name, "strengths": region, "images": len(set(images))}
                for role, label in roles.items():
                    row[f"{label} PSNR (dB)"] = context.mean_interval(scores[role]["psnr"], images)
                    row[f"{label} SSIM"] = context.mean_interval(scores[role]["ssim"], images, decimals=4)
                row["blind - unconditioned (dB)"] = gains[name]
                table.append(row)
        inside = [g for name, g in gains.items() if regions[name] == "inside"]
        outside = [g for name, g in gains.items() if regions[name] == "outside"]
        wins = sum(g.low is not None and g.low > 0 for g in inside)
        verdict = Verdict.REPRODUCED if inside and wins == len(inside) else Verdict.PARTLY if wins else Verdict.NOT
        summary = (f"blind SR's PSNR gain over {spec.unconditioned} has its interval above 0 on {wins} of "
                   f"{len(inside)} sets inside the training ranges (mean gain "
                   f"{np.mean([g.value for g in inside]):+.2f} dB)")
        if outside:
            summary += f"; outside them, mean gain {np.mean([g.value for g in outside]):+.2f} dB"
        summary += "."
        numbers: dict[str, Any] = {name: {"range": regions[name], "gain_db": g.value, "gain_ci": [g.low, g.high]}
                                   for name, g in gains.items()}
        # the headline numbers, flat, so a table over seeds can show their spread
        numbers["sets_won_inside"] = int(wins)
        numbers["mean_gain_inside_db"] = float(np.mean([g.value for g in inside])) if inside else None
        if outside:
            numbers["mean_gain_outside_db"] = float(np.mean([g.value for g in outside]))
        return self.result(verdict, summary, "reproduced when the PSNR gain's interval (bootstrap over source "
                           "photographs) lies above 0 on every set inside the training ranges; partly when on some; "
                           "else not reproduced", table=table, numbers=numbers,
                           series={name: g.value for name, g in gains.items()})
