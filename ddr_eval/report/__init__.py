"""The report of a run: leaderboard.md, results.csv, results.json, plots, report.html.

Other parts of the package use only :func:`write_report` (and the types in
``ddr_eval.results``); the modules here are the report's own internals.
"""

__all__ = ["write_report"]


def __getattr__(name):  # the writer pulls in matplotlib; import it only when a report is written
    if name == "write_report":
        from ddr_eval.report.writer import write_report

        return write_report
    raise AttributeError(name)
