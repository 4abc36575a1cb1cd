"""Result rows and the leaderboard as pandas tables for the report. Directions come from each
row's ``higher_is_better``; the ranking itself is computed once, in ``ddr_eval.results.leaderboard``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ddr_eval.results import Leaderboard, ResultRow, format_value  # noqa: F401  (format_value: re-exported for the report)
from ddr_eval.results.leaderboard import summary_sets

SUMMARY_SETS = summary_sets()


def rows_frame(rows: list[ResultRow] | list[dict[str, Any]]) -> pd.DataFrame:
    """Result rows (typed, or their JSON dicts) as a frame, one column per field."""
    frame = pd.DataFrame([r.to_dict() if isinstance(r, ResultRow) else r for r in rows])
    if frame.empty:
        return frame
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def directions(frame: pd.DataFrame) -> dict[str, bool]:
    """metric name -> higher_is_better, as declared by the metric."""
    return dict(zip(frame["metric"], frame["higher_is_better"]))


def board_frame(board: Leaderboard, headers: bool = True) -> pd.DataFrame:
    """The leaderboard as a table: model, layer, rank (``=2`` when shared), then one column per
    metric, headed with its unit (``psnr, mean of 4 degraded sets (dB)``) unless ``headers`` is False."""
    columns = ["model", "layer", "rank", *(c.metric for c in board.columns)]
    frame = pd.DataFrame([{**{name: row.get(name) for name in columns}, "rank": board.rank_label(row)}
                          for row in board.rows], columns=columns)
    return frame.rename(columns=board.headers()) if headers else frame


def board_best(board: Leaderboard) -> dict[str, Any]:
    """Per displayed column of :func:`board_frame`, the best value (marked in reports)."""
    best = {}
    for column in board.columns:
        values = [r[column.metric] for r in board.rows if r.get(column.metric) is not None]
        if values:
            best[column.header] = max(values) if column.higher_is_better else min(values)
    return best


def per_set_table(frame: pd.DataFrame, kinds: tuple[str, ...] = ("generalization", "quality")) -> pd.DataFrame:
    """The generalization view: rows (model, layer, metric), one column per degradation set, plus mean."""
    subset = frame[frame["kind"].isin(kinds) & frame["value"].notna()]
    if subset.empty:
        return pd.DataFrame()
    table = subset.pivot_table(index=["metric", "model", "layer"], columns="set", values="value", aggfunc="first",
                               sort=False)
    summaries = [c for c in table.columns if c in SUMMARY_SETS]
    ordered = [c for c in table.columns if c not in SUMMARY_SETS] + summaries
    return table[ordered].reset_index()


def best_per_column(table: pd.DataFrame, higher_is_better: dict[str, bool]) -> dict[str, Any]:
    """For each metric column of a leaderboard, the best value (used to mark it in reports)."""
    best = {}
    for column, higher in higher_is_better.items():
        if column in table.columns and table[column].notna().any():
            best[column] = table[column].max() if higher else table[column].min()
    return best


def run_notes(result) -> list[str]:
    """Lines on how a run was made that a reader must see beside its numbers: a ``--limit`` quick
    look (flagged: not comparable with a full run), the command line, overrides, start and end."""
    prov = result.provenance
    notes = []
    limit = result.suite.data.limit_patches
    if limit is not None:
        notes.append(f"QUICK LOOK: at most {limit} patches per degradation set (--limit {limit}); "
                     "not comparable with a full run of the suite")
    if prov.get("command"):
        notes.append(f"command: {prov['command']}")
    if prov.get("overrides"):
        notes.append("overrides: " + ", ".join(prov["overrides"]))
    if prov.get("started"):
        notes.append(f"run: {prov['started']} to {prov.get('finished', '?')} (UTC)")
    return notes + split_notes(result)


def split_notes(result) -> list[str]:
    """The photographs of each split the run used (``provenance.data``), one line per split."""
    splits = (result.provenance.get("data") or {}).get("splits") or {}
    notes = []
    for split, used in splits.items():
        names = sorted({name for names in used.get("images", {}).values() for name in names})
        notes.append(f"images, {split} split ({len(names)}): {', '.join(names)}")
    return notes
