"""Findings as report text: ``findings.md``, ``findings.json`` and the sections of leaderboard.md
and report.html, rendered from the typed :class:`~ddr_eval.findings.FindingResult`.

A table cell is written as the report has always shown it: an :class:`~ddr_eval.findings.Estimate`
as ``value [patch interval] {image interval} (n images)`` at three significant digits (or
fixed-point, as it says), a :class:`~ddr_eval.findings.Rounded` number rounded, anything else as
it is. ``findings.json`` holds the same cells and the finding's ``numbers`` at full precision.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ddr_eval.findings import Cell, Estimate, FindingResult, Rounded
from ddr_eval.results import ReportSection


def estimate_text(estimate: Estimate) -> str:
    """``29.7 [24.7, 36.2] {22.1, 38.0} (8 images)``, or fixed-point ``+0.31 [+0.12, +0.50]``."""
    if estimate.decimals is not None:
        fmt = f"{'+' if estimate.signed else ''}.{estimate.decimals}f"
        if estimate.low is None:
            return f"{estimate.value:{fmt}}"
        return f"{estimate.value:{fmt}} [{estimate.low:{fmt}}, {estimate.high:{fmt}}]"
    if estimate.low is None:
        return f"{estimate.value:.3g}"
    text = f"{estimate.value:.3g} [{estimate.low:.3g}, {estimate.high:.3g}]"
    if estimate.has_images:
        n = "?" if estimate.n_images is None else estimate.n_images
        text += f" {{{estimate.image_low:.3g}, {estimate.image_high:.3g}}} ({n} images)"
    return text


def cell_value(cell: Cell) -> Any:
    """What a table cell shows (and ``findings.json`` holds)."""
    if isinstance(cell, Estimate):
        return estimate_text(cell)
    if isinstance(cell, Rounded):
        return round(cell.value, cell.digits)
    return cell


def finding_table(finding: FindingResult) -> list[dict[str, Any]]:
    """The finding's table with every cell as shown."""
    return [{name: cell_value(cell) for name, cell in row.items()} for row in finding.table]


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub markdown table of already-shown rows (the findings' and robustness' tables)."""
    from tabulate import tabulate

    return tabulate(list(rows), headers="keys", tablefmt="github")


def origin_text(origin: dict[str, Any]) -> str:
    """Which included suite computed a finding, and where its own report goes."""
    return (f"Computed by {origin['file']} (seed {origin['seed']}), a suite this one includes, on its own run; "
            f"full report: {origin['report']} (written by `ddr-eval run {origin['file']}`, not by this report).")


def findings_markdown(findings: list[FindingResult]) -> str:
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
            lines += [origin_text(finding.suite), ""]
        lines += [f"Expected: {finding.expected}.", "", f"Measured: {finding.summary} Verdict: **{finding.verdict}**.", ""]
        if finding.table:
            lines.append(markdown_table(finding_table(finding)))
        if finding.plots:
            lines += ["", *(f"![{caption}]({name})" for name, caption in finding.plots)]
    return "\n".join(lines) + "\n"


def finding_numbers(finding: FindingResult) -> dict[str, Any]:
    """``numbers`` as ``findings.json`` writes them: the halves of a rule with halves last."""
    return {**finding.numbers, **({"parts": finding.parts} if finding.parts else {})}


def findings_files(findings: list[FindingResult]) -> dict[str, str]:
    """``findings.md`` and ``findings.json`` for the report directory."""
    if not findings:
        return {}
    document = [{"key": f.key, "title": f.title, "expected": f.expected, "verdict": f.verdict,
                 "summary": f.summary, "table": finding_table(f), "numbers": finding_numbers(f), "suite": f.suite,
                 "plots": [{"file": name, "caption": caption} for name, caption in f.plots]} for f in findings]
    return {"findings.md": findings_markdown(findings),
            "findings.json": json.dumps(document, indent=2, default=float) + "\n"}


def findings_sections(findings: list[FindingResult], images: dict[str, bytes] | None = None) -> list[ReportSection]:
    """Each finding as a titled table in leaderboard.md and report.html, with its plots
    (``images``: file name -> PNG bytes of the plots the findings name)."""
    import pandas as pd

    images = images or {}
    return [ReportSection(f"Finding {i}: {f.title} — {f.verdict}",
                          (origin_text(f.suite) + "\n\n" if f.suite else "")
                          + f"Expected: {f.expected}. Measured: {f.summary}",
                          pd.DataFrame(finding_table(f)) if f.table else None,
                          images=tuple((name, caption, images[name]) for name, caption in f.plots if name in images))
            for i, f in enumerate(findings, 1)]
