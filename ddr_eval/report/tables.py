"""Metric rows -> leaderboards. Directions come from each row's ``higher_is_better``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ddr_eval.metrics import wall_clock_types

SUMMARY_SETS = ("all", "mean")


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def directions(frame: pd.DataFrame) -> dict[str, bool]:
    """metric name -> higher_is_better, as declared by the metric."""
    return dict(zip(frame["metric"], frame["higher_is_better"]))


def leaderboard(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, layer), one column per metric summary, ranked by mean per-metric rank
    (wall-clock metrics such as latency are shown, not ranked).

    A model's row uses its summary values: ``all`` for pooled metrics and ``mean`` over the
    non-reference sets for per-set metrics. Ranks follow each metric's declared direction;
    a missing value ranks last for that metric. Every (model, layer) and every metric with a
    summary row appears, even when all its values are missing (the rows' notes say why), so a
    model whose metrics could not be computed is shown as such instead of vanishing.
    """
    summary = frame[frame["set"].isin(SUMMARY_SETS)]
    if summary.empty:
        return pd.DataFrame()
    table = summary.pivot_table(index=["model", "layer"], columns="metric", values="value", aggfunc="first",
                                sort=False)
    # only (model, layer) pairs that exist (no cross product), including all-missing ones
    table = table.reindex(pd.MultiIndex.from_frame(summary[["model", "layer"]].drop_duplicates()))
    missing = [m for m in dict.fromkeys(summary["metric"]) if m not in table.columns]
    for metric in missing:  # a metric with no value anywhere still gets its (empty) column
        table[metric] = np.nan
    table = _merge_output_layer(table)
    higher = directions(frame)
    # a wall-clock column (latency) is shown but not ranked: its noise would reorder the board run to run
    wall_clock = set(frame.loc[frame["type"].isin(wall_clock_types()), "metric"]) if "type" in frame else set()
    ranks = pd.DataFrame({m: table[m].rank(ascending=not higher[m], na_option="bottom", method="min")
                          for m in table.columns if m not in wall_clock})
    table.insert(0, "rank", ranks.mean(axis=1).rank(method="min").astype(int))
    return table.sort_values("rank").reset_index()


WHOLE_NETWORK_LAYERS = ("output", "model")  # quality rows (SR outputs) and efficiency rows (the network)


def _merge_output_layer(table: pd.DataFrame) -> pd.DataFrame:
    """Whole-network rows (quality on 'output', efficiency on 'model') are shown on every
    feature layer of the same model; a model with no feature layer keeps one such row."""
    for whole in WHOLE_NETWORK_LAYERS:
        table = _spread_layer(table, whole)
    return table


def _spread_layer(table: pd.DataFrame, whole: str) -> pd.DataFrame:
    layers = table.index.get_level_values("layer")
    if whole not in set(layers) or set(layers) == {whole}:
        return table
    out = table.xs(whole, level="layer")
    with_others = set(table.index[layers != whole].get_level_values("model"))
    keep = (layers != whole) | ~table.index.get_level_values("model").isin(with_others)
    merged = table[keep].copy()
    for metric in out.columns:
        filled = out[metric].dropna()
        if filled.empty:
            continue
        models = merged.index.get_level_values("model")
        merged[metric] = merged[metric].where(merged[metric].notna(), models.map(filled).to_numpy())
    return merged


def per_set_table(frame: pd.DataFrame, kinds: tuple[str, ...] = ("generalization", "quality")) -> pd.DataFrame:
    """The generalization view: rows (model, layer, metric), one column per degradation set, plus mean."""
    subset = frame[frame["kind"].isin(kinds) & frame["value"].notna()]
    if subset.empty:
        return pd.DataFrame()
    table = subset.pivot_table(index=["metric", "model", "layer"], columns="set", values="value", aggfunc="first",
                               sort=False)
    ordered = [c for c in table.columns if c != "mean"] + (["mean"] if "mean" in table.columns else [])
    return table[ordered].reset_index()


def best_per_column(table: pd.DataFrame, higher_is_better: dict[str, bool]) -> dict[str, Any]:
    """For each metric column of a leaderboard, the best value (used to mark it in reports)."""
    best = {}
    for column, higher in higher_is_better.items():
        if column in table.columns and table[column].notna().any():
            best[column] = table[column].max() if higher else table[column].min()
    return best


def format_value(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))  # counts (parameters, FLOPs) stay exact
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}" if abs(value) >= 1e4 or abs(value) < 1e-3 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)
