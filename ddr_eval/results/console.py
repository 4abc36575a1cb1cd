"""The leaderboard in a terminal: the ranked columns within a fixed width, the best model per
ranked metric, and where the full report is.

A board of a dozen metric columns is some 250 characters wide; a terminal wraps each row into
unreadable thirds. The console shows what decides the rank (model, layer, rank, the ranking
columns, then shown columns while they fit), wraps long headers onto several lines, and names
the columns it leaves to the report rather than dropping them silently.
"""

from __future__ import annotations

import re
import textwrap

from tabulate import tabulate

from ddr_eval.results.format import format_value
from ddr_eval.results.leaderboard import Column, Leaderboard

DEFAULT_WIDTH = 120
HEADER_WIDTH = 18  # a metric header wraps onto lines of at most this many characters
NAME_WIDTH = 28  # model names wrap beyond this


def board_text(board: Leaderboard, width: int = DEFAULT_WIDTH) -> str:
    """The board as a table at most ``width`` characters wide, a line on what it leaves out,
    the best model per ranked metric and how the rank is computed."""
    if not board.rows:
        return "The leaderboard is empty."
    shown, left_out = _fit(board, width)
    lines = [_table(board, shown)]
    if left_out:
        lines.append(_wrap(f"Not shown here ({len(left_out)} column{'s' if len(left_out) > 1 else ''}, in the report): "
                           + ", ".join(c.header for c in left_out) + ".", width))
    best = board.best_by_metric()
    if best and board.separates():
        lines.append(_wrap("Best: " + "; ".join(f"{header} {_arrow(board, header)} {', '.join(models)}"
                                                for header, models in best.items()) + ".", width))
    lines.append(_wrap(board.explain(), width))
    return "\n".join(lines)


def _arrow(board: Leaderboard, header: str) -> str:
    column = next(c for c in board.columns if c.header == header)
    return "↑" if column.higher_is_better else "↓"


def _wrap(text: str, width: int) -> str:
    return textwrap.fill(text, width=width, break_on_hyphens=False)


def _fit(board: Leaderboard, width: int) -> tuple[list[Column], list[Column]]:
    """Ranked columns first (each with its reference-set column), then shown ones, as many as fit."""
    order = []
    for column in board.columns:
        if column.ranked:
            order += [column, *(c for c in board.columns if c.metric == f"{column.metric}@{_reference(c)}")]
    order += [c for c in board.columns if c not in order]
    shown: list[Column] = []
    for column in order:
        if max(len(line) for line in _table(board, [*shown, column]).splitlines()) <= width:
            shown.append(column)
        elif column.ranked and not shown:  # a ranked column always shows, however narrow the terminal
            shown.append(column)
    return shown, [c for c in order if c not in shown]


def _reference(column: Column) -> str:
    return column.metric.rsplit("@", 1)[-1] if "@" in column.metric else "\0"


def wrap_header(header: str, width: int = HEADER_WIDTH) -> str:
    """``header`` on lines of at most ``width`` characters, broken after spaces, ``[`` and ``,``
    (inside metric names like ``chi[degradation,raw]``) rather than inside words."""
    pieces = re.findall(r"[^\s\[,]*[\s\[,]*", header)
    lines = [""]
    for piece in (p for p in pieces if p):
        if lines[-1] and len(lines[-1]) + len(piece.rstrip()) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(line.rstrip() for line in lines)


def _table(board: Leaderboard, columns: list[Column]) -> str:
    layers = {row["layer"] for row in board.rows}
    keys = ["model", *(["layer"] if len(layers) > 1 else []), "rank"]
    body = [[row["model"], *([row["layer"]] if len(layers) > 1 else []), board.rank_label(row),
             *(format_value(row.get(c.metric)) for c in columns)] for row in board.rows]
    headers = [*keys, *(wrap_header(f"{c.header} {'↑' if c.higher_is_better else '↓'}") for c in columns)]
    widths = [NAME_WIDTH, *([NAME_WIDTH] if len(layers) > 1 else []), None, *([None] * len(columns))]
    return tabulate(body, headers=headers, tablefmt="simple", disable_numparse=True, maxcolwidths=widths)


def _names(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" … ({len(names) - most} more)" if len(names) > most else "")


def data_notices(provenance: dict, rows: list[dict]) -> list[str]:
    """One line per thing that changed what the user asked for, for the terminal: which
    photographs the evaluated split holds (a split scores only some), a small folder evaluated
    whole, a ``--limit``, and each distinct fallback a metric took (a PCA clipped to the sample count)."""
    notices = []
    used = provenance.get("data") or {}
    evaluated = (used.get("splits") or {}).get(used.get("eval_split"), {})
    images = sorted({name for names in evaluated.get("images", {}).values() for name in names})
    patches = sorted(set(evaluated.get("patches", {}).values()))
    if images:
        count = "/".join(map(str, patches))
        notices.append(f"data: scored on the {used['eval_split']} split: {len(images)} photograph"
                       f"{'s' if len(images) != 1 else ''} ({_names(images)}), {count} patches per set")
    if used.get("eval_split") != used.get("suite_eval_split"):
        notices.append(f"data: the folder holds fewer than 8 photographs, so all of them are scored (no "
                       f"{used.get('suite_eval_split')} split); set data.eval_split to split it anyway")
    if provenance.get("limit_patches") is not None:
        notices.append(f"data: --limit {provenance['limit_patches']}: at most {provenance['limit_patches']} patches "
                       "per set, a quick look")
    fallbacks: dict[tuple[str, str], int] = {}
    for row in rows:
        status = str(row.get("status", ""))
        if status.startswith("fallback"):
            key = (row["metric"], status.removeprefix("fallback:").strip())
            fallbacks[key] = fallbacks.get(key, 0) + 1
    for (metric, why), count in fallbacks.items():
        notices.append(f"fallback: {metric}: {why} ({count} row{'s' if count != 1 else ''})")
    return notices
