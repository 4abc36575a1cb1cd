"""Result rows and the leaderboard as pandas tables for the report. Directions come from each
row's ``higher_is_better``; the ranking itself is computed once, in ``ddr_eval.results.leaderboard``.

What a row is about (its :class:`~ddr_eval.metrics.results.RowScope`: one degradation set, all
sets pooled, or a per-set metric's summary) is read from the row, never from its set's name:
:func:`rows_frame` keeps it in the frame's index, :func:`row_scopes` reads it back, and the
per-set table shows every metric that wrote per-set rows, whatever its kind.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ddr_eval.metrics.results import RowScope
from ddr_eval.results import Leaderboard, ResultRow, format_value  # noqa: F401  (format_value: re-exported for the report)
from ddr_eval.results.rows import row_scope

SCOPE = "scope"


def rows_frame(rows: list[ResultRow] | list[dict[str, Any]]) -> pd.DataFrame:
    """Result rows (typed, or their JSON dicts) as a frame, one column per field.

    Each row's :class:`RowScope` is the index level ``scope`` (beside ``row``, its position),
    not a column: this frame is what results.csv writes, and that published format has none.
    """
    records = [r.to_dict() if isinstance(r, ResultRow) else dict(r) for r in rows]
    frame = pd.DataFrame([{k: v for k, v in record.items() if k != SCOPE} for record in records])
    if frame.empty:
        return frame
    frame.index = pd.MultiIndex.from_arrays([range(len(records)), [row_scope(r) for r in records]],
                                            names=["row", SCOPE])
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def row_scopes(frame: pd.DataFrame) -> pd.Series:
    """The :class:`RowScope` of each row of a rows frame: :func:`rows_frame`'s index level, else
    a ``scope`` column (a frame of JSON rows, such as ``DDRMonitor.frame()``), else read from
    the set's published name (:func:`~ddr_eval.results.rows.row_scope`)."""
    if SCOPE in frame.index.names:
        scopes = list(frame.index.get_level_values(SCOPE))
    else:
        records = frame[[c for c in ("set", SCOPE) if c in frame.columns]].to_dict("records")
        scopes = [row_scope(r) for r in records]
    return pd.Series(scopes, index=frame.index, dtype=object)


def headline_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a value that a leaderboard shows: pooled values and per-set summaries."""
    if frame.empty:
        return frame
    return frame[row_scopes(frame).map(lambda scope: scope.headline) & frame["value"].notna()]


def set_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a value on one degradation set."""
    if frame.empty:
        return frame
    return frame[(row_scopes(frame) == RowScope.SET) & frame["value"].notna()]


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


def per_set_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every metric with values per degradation set (a metric class declaring ``per_set``, of any
    kind: generalization, quality, or one registered since): rows (metric, model, layer), one
    column per set, then the summary columns (``mean``)."""
    if frame.empty:
        return pd.DataFrame()
    per_set = set_rows(frame)
    scopes = row_scopes(frame)
    subset = frame[frame["metric"].isin(set(per_set["metric"])) & (scopes != RowScope.POOLED)
                   & frame["value"].notna()]
    if subset.empty:
        return pd.DataFrame()
    table = subset.pivot_table(index=["metric", "model", "layer"], columns="set", values="value", aggfunc="first",
                               sort=False)
    summaries = set(subset.loc[row_scopes(subset) == RowScope.SUMMARY, "set"])
    ordered = [c for c in table.columns if c not in summaries] + [c for c in table.columns if c in summaries]
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
