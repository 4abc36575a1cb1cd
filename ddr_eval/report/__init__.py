"""The report of a run: leaderboard.md, results.csv, results.json, plots, report.html.

Other parts of the package use only the names below (and the types in ``ddr_eval.results``);
the modules here are the report's own internals. ``write_report`` writes a run's report; the
findings functions render :class:`~ddr_eval.findings.FindingResult` s as text (``findings.md``,
``findings.json``, report sections, a table's shown cells) for reports built elsewhere
(``ddr_eval.workflows.robustness``).
"""

import importlib

_PUBLIC = {
    "write_report": "ddr_eval.report.writer",
    "findings_files": "ddr_eval.report.findings",
    "findings_markdown": "ddr_eval.report.findings",
    "findings_sections": "ddr_eval.report.findings",
    "finding_numbers": "ddr_eval.report.findings",
    "finding_table": "ddr_eval.report.findings",
    "markdown_table": "ddr_eval.report.findings",
    "training_curves_plot": "ddr_eval.report.plots",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):  # the writer pulls in matplotlib; import each module only when a name of it is asked for
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(name)
