"""A run's results as data: typed rows with a status, the one leaderboard, extra report sections.

Everything that reads a run (the report writer, ``compare``, ``check``, findings, the console
summary) reads these types; none of them reaches into another's internals.
"""

from ddr_eval.results.format import format_value
from ddr_eval.results.leaderboard import Column, Leaderboard, MetricInfo, RankKey, resolve_ranking
from ddr_eval.metrics.results import RowScope
from ddr_eval.results.rows import OK, ResultRow, Status, row_scope
from ddr_eval.results.sections import ReportSection

__all__ = ["OK", "Column", "Leaderboard", "MetricInfo", "RankKey", "ReportSection", "ResultRow", "RowScope", "Status",
           "format_value", "resolve_ranking", "row_scope"]
