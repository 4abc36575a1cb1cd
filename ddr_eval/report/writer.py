"""Write a run's report directory: leaderboard.md, results.csv, results.json and plots.

All files are first written to a temporary directory next to the report, then moved into
place one ``os.replace`` at a time with ``results.json`` last, so an interrupted run never
leaves a half-written file, and files the run does not produce (``baseline.json``) survive.
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

from ddr_eval.report.plots import tsne_plot_name, tsne_scatter
from ddr_eval.report.tables import directions, format_value, leaderboard, per_set_table, rows_frame

RESULTS_JSON = "results.json"


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def results_document(result) -> dict[str, Any]:
    """Everything needed to reproduce and compare a run: suite, its hash, code commit, rows."""
    return {
        "format": "ddr-eval/results@1",
        "provenance": result.provenance,
        "timings": result.timings,
        "suite": result.suite.model_dump(mode="json"),
        "rows": result.rows,
        "confusions": result.confusions,
    }


def _markdown_table(frame, best: dict[str, Any] | None = None) -> str:
    if frame.empty:
        return "_no values_"
    best = best or {}
    body = [[("**" + format_value(v) + "**") if c in best and v == best[c] else format_value(v)
             for c, v in row.items()] for row in frame.to_dict("records")]
    return tabulate(body, headers=list(frame.columns), tablefmt="github")


def leaderboard_markdown(result) -> str:
    frame = rows_frame(result.rows)
    higher = directions(frame) if not frame.empty else {}
    board = leaderboard(frame) if not frame.empty else frame
    best = {c: (board[c].max() if higher[c] else board[c].min()) for c in higher if c in board}
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
        "- direction: " + ", ".join(f"{m} {'↑' if h else '↓'}" for m, h in higher.items()),
        "",
        "## Leaderboard",
        "",
        "Summary per model: pooled metrics over all degradation sets; per-set metrics averaged over the "
        f"non-reference sets (reference: `{result.suite.reference_set}`). Rank = mean of per-metric ranks. "
        "Best value per column in bold.",
        "",
        _markdown_table(board, best),
    ]
    per_set = per_set_table(frame) if not frame.empty else frame
    if not per_set.empty:
        lines += ["", "## Per degradation set", "", _markdown_table(per_set)]
    notes = [r for r in result.rows if r.get("note", "").startswith("unavailable")]
    if notes:
        lines += ["", "## Not computed", ""] + [f"- {r['model']} / {r['metric']} / {r['set']}: {r['note']}" for r in notes]
    for confusion in result.confusions:
        lines += ["", f"### Confusion: {confusion['model']} / {confusion['layer']} / {confusion['metric']}", ""]
        header = ["true \\ predicted", *confusion["classes"]]
        body = [[c, *row] for c, row in zip(confusion["classes"], confusion["matrix"])]
        lines.append(tabulate(body, headers=header, tablefmt="github"))
    return "\n".join(lines) + "\n"


def _write_plots(result, tmp: Path) -> list[str]:
    names = []
    if not result.suite.outputs.tsne_plots:
        return names
    for (model, layer), data in result.embeddings.items():
        for label in ("degradation", "content"):
            if label in data:
                name = tsne_plot_name(model, layer, label)
                tsne_scatter(data["xy"], data[label], f"{model} / {layer}: t-SNE by {label}", tmp / name)
                names.append(name)
    return names


def write_report(result, out_dir: Path, extra_files: dict[str, str] | None = None) -> Path:
    """Write the report for ``result`` into ``out_dir`` atomically, file by file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-report-", dir=out_dir))
    try:
        frame = rows_frame(result.rows)
        (tmp / "leaderboard.md").write_text(leaderboard_markdown(result))
        frame.to_csv(tmp / "results.csv", index=False)
        plots = _write_plots(result, tmp)
        document = results_document(result)
        document["plots"] = plots
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        (tmp / RESULTS_JSON).write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
        ordered = sorted(p.name for p in tmp.iterdir() if p.name != RESULTS_JSON) + [RESULTS_JSON]
        for name in ordered:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
