"""Extra titled tables a caller adds to a report (``compare``'s placement, the paper's findings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReportSection:
    """A section shown after the leaderboard in ``leaderboard.md`` and ``report.html``.

    ``table`` is a pandas DataFrame (or None); ``best`` marks, per column, the value to show as best.
    ``images`` are ``(file name, caption, PNG bytes)``: the report writes each file beside
    ``leaderboard.md`` (which links it) and embeds it in ``report.html``.
    """

    title: str
    text: str = ""
    table: Any = None
    best: dict[str, Any] | None = None
    curves: Any = None  # a DataFrame of strength-curve points (series, sweep, parameter, x, metric, value,
    #                     ci_low, ci_high), drawn in report.html like the swept sets' metric curves
    images: tuple[tuple[str, str, bytes], ...] = ()
