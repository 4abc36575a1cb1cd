"""Write a run's report directory: leaderboard.md, results.csv, results.json, plots, report.html.

All files are first written to a temporary directory next to the report, then moved into
place one ``os.replace`` at a time with ``results.json`` last, so an interrupted run never
leaves a half-written file (an interruption while the report is being *rendered* leaves the
previous report untouched), and files the run does not produce (``baseline.json``) survive.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from ddr_eval.core.atomic import REPORT_TEMP_PREFIX, remove_orphan_temps
from ddr_eval.findings import compute_findings
from ddr_eval.report.depth import with_depth_plots
from ddr_eval.report.findings import findings_files, findings_sections
from ddr_eval.report.html import render_report, report_colors, tsne_pngs
from ddr_eval.report.plots import tsne_plot_name
from ddr_eval.report.tables import board_best, board_frame, format_value, per_set_table, rows_frame, run_notes
from ddr_eval.core.outdir import mark_report_dir
from ddr_eval.results import ReportSection

RESULTS_JSON = "results.json"
REPORT_HTML = "report.html"


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def results_document(result) -> dict[str, Any]:
    """Everything needed to reproduce and compare a run: suite, its hash, code commit, rows, and
    the leaderboard every report and command shows (``leaderboard.rows``: one dict per
    (model, layer) with its rank and summary values, in the units of ``leaderboard.columns``)."""
    return {
        "format": "ddr-eval/results@2",
        "provenance": result.provenance,
        "timings": result.timings,
        "suite": result.suite.model_dump(mode="json"),
        "leaderboard": result.leaderboard.to_dict(),
        "rows": [row.to_dict() for row in result.rows],
        "confusions": result.confusions,
    }


def _markdown_table(frame, best: dict[str, Any] | None = None) -> str:
    if frame.empty:
        return "_no values_"
    best = best or {}
    body = [[("**" + format_value(v) + "**") if c in best and v == best[c] else format_value(v)
             for c, v in row.items()] for row in frame.to_dict("records")]
    return tabulate(body, headers=list(frame.columns), tablefmt="github")


def section_markdown(section: ReportSection) -> list[str]:
    lines = ["", f"## {section.title}", ""]
    if section.text:
        lines += [section.text, ""]
    if section.table is not None:
        lines.append(_markdown_table(section.table, section.best))
    if section.images:
        lines += ["", *(f"![{caption}]({name})" for name, caption, _ in section.images)]
    return lines


def leaderboard_markdown(result, sections: tuple[ReportSection, ...] = ()) -> str:
    frame = rows_frame(result.rows)
    board = result.leaderboard
    prov = result.provenance
    code = prov["code"]
    lines = [
        f"# ddr-eval: {result.suite.name}",
        "",
        result.suite.description,
        "",
        f"- suite sha256: `{prov['suite_sha256']}` (seed {prov['seed']})",
        f"- code commit: `{code['commit']}`" + (" (with uncommitted changes)" if code.get("dirty") else ""),
        f"- device: {prov['device']}; cells: {prov['cells']}; time: {result.timings.get('total', 0):.1f} s",
        "- direction: " + ", ".join(f"{c.header} {'↑' if c.higher_is_better else '↓'}" for c in board.columns),
        *(f"- {note}" for note in run_notes(result)),
        "",
        "## Leaderboard",
        "",
        "Summary per model: pooled metrics over all degradation sets; per-set metrics aggregated over the "
        f"non-reference sets (reference: `{result.suite.reference_set}`). {board.explain()} "
        "Best value per column in bold.",
        "",
        _markdown_table(board_frame(board), board_best(board)),
    ]
    for section in sections:
        lines += section_markdown(section)
    per_set = per_set_table(frame) if not frame.empty else frame
    if not per_set.empty:
        lines += ["", "## Per degradation set", "", _markdown_table(per_set)]
    skipped = prov.get("skipped_unreadable") or {}
    if skipped:
        lines += ["", "## Skipped unreadable files", ""]
        lines += [f"- {name}: {', '.join(files)}" for name, files in skipped.items()]
    notes = [r for r in result.rows if not r.status.ok]
    if notes:
        lines += ["", "## Not computed, or computed another way", ""]
        lines += [f"- {r.model} / {r.metric} / {r.set}: {r.status}" for r in notes]
    for confusion in result.confusions:
        lines += ["", f"### Confusion: {confusion['model']} / {confusion['layer']} / {confusion['metric']}", ""]
        header = ["true \\ predicted", *confusion["classes"]]
        body = [[c, *row] for c, row in zip(confusion["classes"], confusion["matrix"])]
        lines.append(tabulate(body, headers=header, tablefmt="github"))
    return "\n".join(lines) + "\n"


def _write_plots(pngs: dict, tmp: Path) -> list[str]:
    names = []
    for (model, layer, label), png in pngs.items():
        name = tsne_plot_name(model, layer, label)
        (tmp / name).write_bytes(png)
        names.append(name)
    return names


def tsne_files(result, previous_dir: Path | None = None, models=None, prefix: str = "") -> dict[str, tuple[str, bytes]]:
    """The t-SNE scatters of ``result`` (of ``models`` only, when given) as report files:
    ``prefix`` + the usual file name -> (caption, PNG bytes); a file of that name in
    ``previous_dir`` drawn from the same inputs is reused. ``Results.write`` puts an included
    suite's scatters into the including report this way."""
    pngs = tsne_pngs(result, previous_dir, models=models, prefix=prefix)
    return {prefix + tsne_plot_name(model, layer, label): (f"{model} / {layer}: t-SNE by {label}", png)
            for (model, layer, label), png in pngs.items()}


def write_report(result, out_dir: Path, extra_files: dict[str, str] | None = None,
                 sections: tuple[ReportSection, ...] | list[ReportSection] = (), findings=None,
                 images: dict[str, bytes] | None = None) -> Path:
    """Write the report for ``result`` into ``out_dir`` atomically, file by file.

    ``sections`` are extra titled tables (``compare`` adds the new model's placement) shown
    after the leaderboard in both ``leaderboard.md`` and ``report.html``. The suite's findings
    (``findings.md``/``.json`` and their sections) are part of every report of it, whichever
    command writes it; pass ``findings`` when they are computed already, and ``images`` (file
    name -> PNG) for the plots they name (``FindingResult.plots``). Every section's images are
    written as files beside ``leaderboard.md``, and every figure of ``report.html`` as
    ``fig_*.png`` and ``fig_*.svg``; all of them are listed in results.json ``plots``. Every
    figure colours a model alike (``report_colors``, in the leaderboard's order).
    """
    findings = compute_findings(result) if findings is None else findings
    colors = report_colors(result, sections)  # one colour per model in every figure of the report
    findings, images, depth_files = with_depth_plots(findings, images, result, previous_dir=Path(out_dir), colors=colors)
    extra_files = {**findings_files(findings), **(extra_files or {})}
    sections = (*findings_sections(findings, images), *sections)
    out_dir = Path(out_dir)
    mark_report_dir(out_dir)  # what makes it safe to rewrite on the next run (ddr_eval/core/outdir.py)
    remove_orphan_temps(out_dir, recursive=False, legacy=False)  # what a killed earlier run left
    previous_plots = _listed_plots(out_dir / RESULTS_JSON)
    tmp = Path(tempfile.mkdtemp(prefix=f"{REPORT_TEMP_PREFIX}pid{os.getpid()}-", dir=out_dir))
    try:
        frame = rows_frame(result.rows)
        (tmp / "leaderboard.md").write_text(leaderboard_markdown(result, sections))
        frame.to_csv(tmp / "results.csv", index=False)
        wants_tsne = result.suite.outputs.tsne_plots
        pngs = tsne_pngs(result, previous_dir=out_dir) if wants_tsne else {}  # unchanged plots are reused
        plots = _write_plots(pngs, tmp)
        for name, _, png in (image for section in sections for image in section.images):
            (tmp / name).write_bytes(png)
            plots.append(name)
        if result.suite.outputs.html:
            report = render_report(result, sections, tsne=pngs, previous_dir=out_dir, colors=colors)
            (tmp / REPORT_HTML).write_text(report.html, encoding="utf-8")
            for name, data in report.files.items():  # the page's figures, as PNG and SVG files
                (tmp / name).write_bytes(data)
                plots.append(name)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        for name, data in depth_files.items():  # the PNGs are section images too; their SVGs beside them
            if not (tmp / name).exists():
                (tmp / name).write_bytes(data)
                plots.append(name)
        document = {**results_document(result), "plots": plots}
        (tmp / RESULTS_JSON).write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
        ordered = sorted(p.name for p in tmp.iterdir() if p.name != RESULTS_JSON) + [RESULTS_JSON]
        for name in ordered:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for name in sorted(previous_plots - set(plots)):  # the previous report's plots (another suite's, say)
        (out_dir / name).unlink(missing_ok=True)
    return out_dir


def _listed_plots(results_json: Path) -> set[str]:
    """The plot files an earlier report in the same directory listed (plain names only)."""
    try:
        plots = json.loads(results_json.read_text(encoding="utf-8")).get("plots") or []
    except (OSError, ValueError, AttributeError):
        return set()
    return {name for name in plots if isinstance(name, str) and name == Path(name).name and name.endswith(".png")}
