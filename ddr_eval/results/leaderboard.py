"""The leaderboard: one row per (model, layer), computed once per run and read by every consumer.

``leaderboard.md``, ``report.html``, the console summary, ``compare`` and ``check`` all show
the same :class:`Leaderboard`, which ``results.json`` stores as a list of rows
``{model, layer, rank, <metric>: value, ...}`` beside its column descriptions.

What ranks is the suite's question, not every number it shows. A suite names its ranking
metrics (``rank_by:``, optionally weighted); without it a metric ranks when its class says its
direction is the same whatever the question (``ranked_by_default``: SRGA, PSNR, identification
accuracy…). Separability by degradation or by content is "better" high for one question and
low for another, and efficiency is a cost to read beside quality, not a quality: both are
shown, not ranked, unless a suite names them. Wall-clock metrics (latency) never rank: their
noise would reorder the board run to run.

A model's rank is the weighted mean of its per-metric ranks (ties share the best rank; a
missing value ranks last), itself ranked. Values in the board are in each column's display
unit (GFLOPs, M parameters…); the per-set rows keep the raw numbers.

Every place the board is shown says what a reader would otherwise have to guess: a shared rank
reads ``=2`` (:meth:`Leaderboard.rank_label`); a board none of whose ranking metrics tells its
models apart says so instead of ranking them all first (:meth:`Leaderboard.separates`); a per-set
metric's header names its summary (``psnr, mean of 4 degraded sets (dB)``), and when such a metric
ranks, its value on the reference set is a column of its own (``psnr, clean set (dB)``), shown,
not ranked, so a model that is good only on clean input is visible as such.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from ddr_eval.core.errors import UserError
from ddr_eval.metrics.results import POOLED_SET, WHOLE_NETWORK_LAYERS, RowScope
from ddr_eval.results.rows import row_scope


@dataclass(frozen=True)
class RankKey:
    """One ranking metric of a suite, resolved to a metric name: its weight and direction."""

    metric: str
    weight: float = 1.0
    higher_is_better: bool = True


@dataclass(frozen=True)
class MetricInfo:
    """What the leaderboard needs to know about one metric of a suite."""

    name: str
    type: str
    higher_is_better: bool
    unit: str = ""
    unit_scale: float = 1.0
    ranked_by_default: bool = True
    wall_clock: bool = False

    @classmethod
    def of(cls, metric: Any) -> "MetricInfo":
        """From a built metric object (``ddr_eval.metrics.Metric``)."""
        kind = type(metric)
        return cls(metric.name, metric.metric_type, bool(kind.higher_is_better), getattr(kind, "unit", ""),
                   float(getattr(kind, "unit_scale", 1.0)), bool(getattr(kind, "ranked_by_default", True)),
                   bool(getattr(kind, "wall_clock", False)))


def infos_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[MetricInfo]:
    """:class:`MetricInfo` s for result rows alone (a ``results.json``), from the registered metric
    classes of their types; an unregistered type ranks by default, in its rows' direction."""
    from ddr_eval.metrics import METRICS

    infos = {}
    for row in rows:
        if row["metric"] in infos:
            continue
        kind = METRICS.get(row["type"]) if row.get("type") in METRICS else None
        infos[row["metric"]] = MetricInfo(
            row["metric"], row.get("type") or row["metric"], bool(row["higher_is_better"]),
            getattr(kind, "unit", ""), float(getattr(kind, "unit_scale", 1.0)),
            bool(getattr(kind, "ranked_by_default", True)), bool(getattr(kind, "wall_clock", False)))
    return list(infos.values())


def resolve_ranking(rank_by: Sequence[Any] | None, metrics: Sequence[MetricInfo],
                    where: str = "rank_by") -> tuple[RankKey, ...]:
    """The suite's ``rank_by`` entries as :class:`RankKey` s, or the default ranking.

    An entry names a metric by its full name (``chi[content,raw]``) or by its type when one
    metric of the suite has it (``srga``). Entries have ``metric``, ``weight`` and ``better``
    attributes (``ddr_eval.config.schema.RankBy``); ``better`` overrides the declared direction.
    """
    metrics = list(metrics)
    if rank_by is None:
        return tuple(RankKey(m.name, 1.0, m.higher_is_better) for m in metrics
                     if m.ranked_by_default and not m.wall_clock)
    keys, seen = [], set()
    for index, entry in enumerate(rank_by):
        info = _find_metric(entry.metric, metrics, f"{where}[{index}]")
        if info.wall_clock:
            raise UserError(f"{where}[{index}]: {info.name!r} measures this machine, not the model; "
                            "it is shown but cannot rank")
        if info.name in seen:
            raise UserError(f"{where}[{index}]: {info.name!r} is named twice")
        seen.add(info.name)
        better = info.higher_is_better if entry.better is None else entry.better == "higher"
        keys.append(RankKey(info.name, float(entry.weight), better))
    return tuple(keys)


def _find_metric(name: str, metrics: list[MetricInfo], where: str) -> MetricInfo:
    exact = [m for m in metrics if m.name == name]
    by_type = [m for m in metrics if m.type == name]
    if exact:
        return exact[0]
    if len(by_type) == 1:
        return by_type[0]
    known = ", ".join(m.name for m in metrics)
    if by_type:
        raise UserError(f"{where}: {name!r} is ambiguous, the suite has {', '.join(m.name for m in by_type)}; "
                        "name one of them")
    raise UserError(f"{where}: {name!r} is not a metric of this suite; known: {known}")


@dataclass(frozen=True)
class Column:
    """One metric column of the board: its header (with unit), direction and ranking weight."""

    metric: str
    header: str
    unit: str
    higher_is_better: bool
    weight: float | None  # None: shown, not ranked
    summary: str | None = None  # per-set metrics: what the value summarises ("mean of 4 degraded sets")

    @property
    def ranked(self) -> bool:
        return self.weight is not None


@dataclass(frozen=True)
class Leaderboard:
    """Ranked summary rows; ``rows[i]`` maps ``model``, ``layer``, ``rank`` and each column's metric."""

    columns: tuple[Column, ...]
    rows: tuple[dict[str, Any], ...]

    @property
    def ranked_by(self) -> list[Column]:
        return [c for c in self.columns if c.ranked]

    def directions(self) -> dict[str, bool]:
        return {c.metric: c.higher_is_better for c in self.columns}

    def headers(self) -> dict[str, str]:
        return {c.metric: c.header for c in self.columns}

    def row(self, model: str, layer: str | None = None) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["model"] == model and (layer is None or r["layer"] == layer)), None)

    def ranks(self) -> dict[tuple[str, str], int | None]:
        return {(r["model"], r["layer"]): r["rank"] for r in self.rows}

    def rank_label(self, row: Mapping[str, Any]) -> str:
        """A row's rank as shown: ``2``, or ``=2`` when another row shares it; ``—`` when unranked."""
        rank = row.get("rank")
        if rank is None:
            return "—"
        shared = sum(1 for other in self.rows if other.get("rank") == rank) > 1
        return f"={rank}" if shared else str(rank)

    def separates(self) -> bool:
        """Whether some ranking metric tells the rows apart (False: every ranked column is one value)."""
        if len(self.rows) < 2:
            return True
        return any(len({_tie_key(r.get(c.metric)) for r in self.rows}) > 1 for c in self.ranked_by)

    def best_by_metric(self) -> dict[str, list[str]]:
        """Ranked column header -> the rows ("model" or "model / layer") holding its best value."""
        best = {}
        for column in self.ranked_by:
            values = [r[column.metric] for r in self.rows if r.get(column.metric) is not None]
            if not values:
                continue
            top = max(values) if column.higher_is_better else min(values)
            layers = {r["layer"] for r in self.rows}
            best[column.header] = [r["model"] if len(layers) == 1 else f"{r['model']} / {r['layer']}"
                                   for r in self.rows if r.get(column.metric) is not None
                                   and _tie_key(r[column.metric]) == _tie_key(top)]
        return best

    def explain(self) -> str:
        """One sentence on how the rank is computed, for every place the board is shown."""
        ranked = self.ranked_by
        if not ranked:
            return "No metric ranks in this suite (set `rank_by:`); rows are in suite order."
        if self.ranked_by and not self.separates():
            return (f"No ranking metric separates these models: {', '.join(c.header for c in ranked)} "
                    "take one value on every row, so all share rank 1.")
        weights = {c.weight for c in ranked}
        parts = [f"{c.header} {'↑' if c.higher_is_better else '↓'}" + ("" if len(weights) == 1 else f" ×{c.weight:g}")
                 for c in ranked]
        shown = [c.metric for c in self.columns if not c.ranked]
        text = ("Rank = " + ("weighted " if len(weights) > 1 else "") + "mean of per-metric ranks over "
                + ", ".join(parts) + ".")
        return text + (f" Shown, not ranked: {', '.join(shown)}." if shown else "")

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns], "rows": [dict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Leaderboard":
        return cls(tuple(Column(**c) for c in data["columns"]), tuple(dict(r) for r in data["rows"]))

    @classmethod
    def build(cls, rows: Iterable[Mapping[str, Any]], metrics: Sequence[MetricInfo],
              ranking: Sequence[RankKey], reference: str | None = None) -> "Leaderboard":
        """The board of result ``rows`` (dicts with model, layer, metric, set, value, scope): its
        pooled and summary rows (:attr:`RowScope.headline`).

        ``reference``: the suite's reference set; a ranked per-set metric then also shows its
        value there, in a column of its own."""
        rows = list(rows)
        summaries = [r for r in rows if row_scope(r).headline]
        summaries += _reference_rows(rows, summaries, ranking, reference)
        columns = _columns(summaries, metrics, ranking, reference)
        table = _spread_whole_network(_pivot(summaries))
        scale = {m.name: m.unit_scale for m in metrics}
        scale.update({_reference_metric(m.name, reference): m.unit_scale for m in metrics if reference})
        board = [{"model": model, "layer": layer, "rank": None,
                  **{c.metric: _scaled(values.get(c.metric), scale.get(c.metric, 1.0)) for c in columns}}
                 for (model, layer), values in table.items()]
        _rank(board, [c for c in columns if c.ranked])
        board.sort(key=lambda r: math.inf if r["rank"] is None else r["rank"])
        return cls(tuple(columns), tuple(board))


def _reference_metric(name: str, reference: str | None) -> str:
    return f"{name}@{reference}"


def _reference_rows(rows: list[Mapping[str, Any]], summaries: list[Mapping[str, Any]], ranking: Sequence[RankKey],
                    reference: str | None) -> list[dict[str, Any]]:
    """Pseudo summary rows holding each ranked per-set metric's value on the reference set."""
    if reference is None:
        return []
    ranked = {k.metric for k in ranking}
    per_set = {r["metric"] for r in summaries if row_scope(r) is RowScope.SUMMARY and r["metric"] in ranked}
    return [{**r, "metric": _reference_metric(r["metric"], reference), "set": POOLED_SET,
             "scope": RowScope.POOLED.value, "reference_of": r["metric"]}
            for r in rows if r["metric"] in per_set and row_scope(r) is RowScope.SET and r["set"] == reference
            and r.get("value") is not None]


def _columns(summaries: list[Mapping[str, Any]], metrics: Sequence[MetricInfo],
             ranking: Sequence[RankKey], reference: str | None = None) -> list[Column]:
    info = {m.name: m for m in metrics}
    weights = {k.metric: k for k in ranking}
    present = list(dict.fromkeys(r["metric"] for r in summaries))
    columns = []
    for name in present:
        first = _first(summaries, name)
        base = first.get("reference_of", name)
        meta = info.get(base) or MetricInfo(base, base, bool(first["higher_is_better"]))
        key = weights.get(name)
        unit = meta.unit
        summary = f"{reference} set" if "reference_of" in first else _summary_text(summaries, name)
        label = f"{base}, {summary}" if summary else base
        columns.append(Column(name, f"{label} ({unit})" if unit else label, unit,
                              key.higher_is_better if key else meta.higher_is_better, key.weight if key else None,
                              summary))
    # the reference column sits right after its metric's summary column
    ordered = [c for c in columns if c.metric not in {_reference_metric(m, reference) for m in present}]
    for column in [c for c in columns if c not in ordered]:
        base = column.metric.rsplit("@", 1)[0]
        at = next((i for i, c in enumerate(ordered) if c.metric == base), len(ordered) - 1)
        ordered.insert(at + 1, column)
    return ordered


def _summary_text(summaries: list[Mapping[str, Any]], name: str) -> str | None:
    """``mean of 4 degraded sets`` for a per-set metric's summary column; None for pooled metrics."""
    mine = [r for r in summaries if r["metric"] == name]
    if row_scope(mine[0]) is not RowScope.SUMMARY:
        return None
    aggregation = mine[0]["set"]  # a summary row's set is its aggregation's name
    counts = sorted({int(r["n_sets"]) for r in mine if r.get("n_sets") is not None})
    if not counts:
        return f"{aggregation} of the degraded sets"
    count = counts[-1] if len(counts) == 1 else f"up to {counts[-1]}"
    plural = "" if counts[-1] == 1 else "s"
    return f"{aggregation} of {count} degraded set{plural}"


def _first(rows, name):
    return next(r for r in rows if r["metric"] == name)


def _pivot(summaries: list[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, float | None]]:
    table: dict[tuple[str, str], dict[str, float | None]] = {}
    for row in summaries:
        values = table.setdefault((row["model"], row["layer"]), {})
        if values.get(row["metric"]) is None:
            values[row["metric"]] = row.get("value")
    return table


def _spread_whole_network(table: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """Whole-network values (quality on ``output``, efficiency on ``model``) join every feature-layer
    row of their model; a model with no feature layer keeps one such row."""
    feature_layers = {(m, layer) for m, layer in table if layer not in WHOLE_NETWORK_LAYERS}
    models_with_layers = {m for m, _ in feature_layers}
    merged: dict[tuple[str, str], dict] = {}
    for (model, layer), values in table.items():
        if layer in WHOLE_NETWORK_LAYERS and model in models_with_layers:
            continue
        merged[(model, layer)] = dict(values)
    for (model, layer), values in table.items():
        if layer not in WHOLE_NETWORK_LAYERS or model not in models_with_layers:
            continue
        for key, target in merged.items():
            if key[0] == model and key[1] not in WHOLE_NETWORK_LAYERS:
                for metric, value in values.items():
                    if target.get(metric) is None:
                        target[metric] = value
    return merged


def _scaled(value: float | None, scale: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value / scale if scale != 1.0 else value


def _rank(board: list[dict[str, Any]], ranked: list[Column]) -> None:
    """Weighted mean of per-metric ranks (method "min", missing last), ranked again with ties shared."""
    if not ranked or not board:
        return
    total = sum(c.weight for c in ranked)
    scores = [0.0] * len(board)
    for column in ranked:
        values = [r[column.metric] for r in board]
        for i, rank in enumerate(_min_ranks(values, column.higher_is_better)):
            scores[i] += column.weight * rank / total
    for row, rank in zip(board, _min_ranks(scores, higher_is_better=False)):
        row["rank"] = int(rank)


def _tie_key(value: float | None) -> float | None:
    """Values equal up to float noise compare equal (as ranking treats them)."""
    return None if value is None else round(float(value), 9)


def _min_ranks(values: Sequence[float | None], higher_is_better: bool) -> list[int]:
    """Competition ranks ("1224"): ties share the best rank; missing values rank after all others."""
    def order(value):
        if value is None:
            return math.inf
        return -value if higher_is_better else value

    keys = [order(v) for v in values]
    # round away float noise from weighted means, so equal scores tie
    keys = [round(k, 9) if math.isfinite(k) else k for k in keys]
    return [1 + sum(other < key for other in keys) for key in keys]
