"""Rank one user model against the zoo: ``ddr-eval compare --model PATH``.

The user's checkpoint is appended to a suite's models and the suite is run as usual. The zoo
models' features come from the feature cache (their cells' keys do not change when a model is
added), so after the zoo has been run once a compare costs the forward passes of one model.
The result is the suite's leaderboard with the new model in it, the new model's rank, and its
per-metric differences to its neighbours on the leaderboard (the nearest zoo entries above
and below it), printed and written into the report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from ddr_eval.core.errors import UserError
from ddr_eval.results import Leaderboard, ReportSection, format_value
from ddr_eval.results.format import slug
from ddr_eval.results.leaderboard import infos_from_rows, resolve_ranking
from ddr_eval.results.run import RunResult
from ddr_eval.config.errors import load_yaml_mapping
from ddr_eval.config.loader import LoadedSuite, compile_suite
from ddr_eval.config.overrides import Overrides, apply_overrides

@dataclass(frozen=True)
class Neighbour:
    model: str
    layer: str
    rank: int | None
    position: str  # "above" (ranked better or tied) or "below"

    @property
    def title(self) -> str:
        return f"{self.model} / {self.layer} (#{self.rank})"


@dataclass(frozen=True)
class Placement:
    """Where one (model, layer) row of the new model landed, and its deltas to its neighbours."""

    model: str
    layer: str
    rank: int | None
    of: int
    values: dict[str, float | None]
    neighbours: tuple[Neighbour, ...]
    deltas: tuple[dict[str, float], ...]  # per neighbour: metric -> new model's value minus the neighbour's


@dataclass(frozen=True)
class Comparison:
    model: str
    suite: str
    board: Leaderboard
    higher_is_better: dict[str, bool]
    placements: tuple[Placement, ...]

    def delta_table(self, placement: Placement) -> pd.DataFrame:
        """metric | direction | the model's value | one column of signed deltas per neighbour."""
        records = []
        for metric, higher in self.higher_is_better.items():
            if metric not in placement.values:
                continue
            record = {"metric": self.board.headers().get(metric, metric), "better": "↑" if higher else "↓",
                      placement.model: format_value(placement.values[metric])}
            for neighbour, deltas in zip(placement.neighbours, placement.deltas):
                record[f"Δ vs {neighbour.title}"] = _describe_delta(deltas.get(metric), higher)
            records.append(record)
        return pd.DataFrame.from_records(records)

    def headline(self, placement: Placement) -> str:
        row = self.board.row(placement.model, placement.layer)
        rank = self.board.rank_label(row) if row is not None else placement.rank  # "=2": shared with another row
        text = f"{placement.model} / {placement.layer}: rank {rank} of {placement.of} in suite {self.suite}"
        return text if self.board.separates() else f"{text} (no ranking metric separates these models)"

    def text(self) -> str:
        blocks = []
        for placement in self.placements:
            table = self.delta_table(placement)
            body = tabulate(table.values.tolist(), headers=list(table.columns), tablefmt="simple",
                            disable_numparse=True)
            blocks.append(f"{self.headline(placement)}\n{body}")
        return "\n\n".join(blocks)

    def sections(self) -> list[ReportSection]:
        return [ReportSection(
            title=f"Compare: {placement.model} / {placement.layer}",
            text=(f"{self.headline(placement)}. Deltas are {placement.model} minus each neighbour "
                  "on the leaderboard (the nearest other models ranked above and below it)."),
            table=self.delta_table(placement),
        ) for placement in self.placements]


def _describe_delta(delta: float | None, higher_is_better: bool) -> str:
    if delta is None or pd.isna(delta):
        return "—"
    if delta == 0:
        return "0 (same)"
    better = delta > 0 if higher_is_better else delta < 0
    return f"{delta:+.4g} ({'better' if better else 'worse'})"


def _nearest(rows: tuple[dict[str, Any], ...], index: int, model: str, step: int) -> int | None:
    i = index + step
    while 0 <= i < len(rows):
        if rows[i]["model"] != model:
            return i
        i += step
    return None


def _difference(new: Any, old: Any) -> float | None:
    return None if new is None or old is None else new - old


def compare_board(board: Leaderboard, model: str, suite: str = "") -> Comparison:
    """Place ``model`` on ``board`` (the run's one leaderboard) and diff it against its nearest neighbours."""
    rows = board.rows
    if not any(r["model"] == model for r in rows):
        raise UserError(f"compare: the run produced no leaderboard row for model {model!r}")
    higher = board.directions()
    placements = []
    for index, row in enumerate(rows):
        if row["model"] != model:
            continue
        neighbours, deltas = [], []
        for step, position in ((-1, "above"), (1, "below")):
            other = _nearest(rows, index, model, step)
            if other is None:
                continue
            neighbour = rows[other]
            neighbours.append(Neighbour(neighbour["model"], neighbour["layer"], neighbour["rank"], position))
            deltas.append({m: _difference(row.get(m), neighbour.get(m)) for m in higher})
        placements.append(Placement(model, row["layer"], row["rank"], len(rows), {m: row.get(m) for m in higher},
                                    tuple(neighbours), tuple(deltas)))
    return Comparison(model, suite, board, higher, tuple(placements))


def compare_rows(rows: list[dict[str, Any]], model: str, suite: str = "", rank_by=None) -> Comparison:
    """:func:`compare_board` on the leaderboard of plain result rows (``results.json``'s ``rows``)."""
    infos = infos_from_rows(rows)
    return compare_board(Leaderboard.build(rows, infos, resolve_ranking(rank_by, infos)), model, suite)


def suite_with_model(suite_path: str | Path, model_path: str | Path, arch: str | None = None,
                     name: str | None = None, arch_kwargs: dict[str, Any] | None = None,
                     layers: list[str] | None = None, overrides: Overrides | None = None
                     ) -> tuple[LoadedSuite, LoadedSuite, str]:
    """The suite as written (with the command line's ``overrides``) and the suite with the user's
    checkpoint appended (with its ``arch``, ``arch_kwargs`` and own ``layers`` when given); plus
    the model's label."""
    raw = apply_overrides(load_yaml_mapping(suite_path), overrides)
    base = compile_suite(raw, str(suite_path))
    model_path = Path(model_path)
    if not model_path.is_file():
        raise UserError(f"--model {model_path}: no such checkpoint file")
    label = name or model_path.stem
    existing = [m.label for m in base.suite.models]
    if label in existing:
        raise UserError(f"--model {model_path}: the suite already has a model named {label!r}; "
                        "pick another with --name")
    augmented = copy.deepcopy(raw)
    spec: dict[str, Any] = {"path": str(model_path.resolve()), "as": label}
    if arch:
        spec["arch"] = arch
    if arch_kwargs:
        spec["arch_kwargs"] = dict(arch_kwargs)
    if layers:
        spec["layers"] = list(layers)
    augmented["models"] = list(augmented.get("models") or []) + [spec]
    # findings.include paths stay relative to the suite file's folder
    return base, compile_suite(augmented, f"{suite_path} (+ {label})", Path(suite_path).parent), label


@dataclass(frozen=True)
class CompareOutcome:
    comparison: Comparison
    result: RunResult
    out_dir: Path


def suite_for_model(model_path: str | Path, arch: str | None = None, arch_kwargs: dict[str, Any] | None = None) -> Path:
    """The shipped generalization suite of the checkpoint's scale (its models are the neighbours)."""
    from ddr_eval.models.checkpoint import load_model
    from ddr_eval.config.shipped import shipped_suite

    model_path = Path(model_path)
    if not model_path.is_file():
        raise UserError(f"--model {model_path}: no such checkpoint file")
    descriptor = load_model(model_path, arch=arch, **(arch_kwargs or {}))
    if descriptor.purpose != "sr":
        raise UserError(f"--model {model_path}: a {descriptor.purpose} model has no SR scale; pass --suite")
    suite = shipped_suite(descriptor.scale)
    if suite is None:
        raise UserError(f"--model {model_path}: it is x{descriptor.scale} and no shipped generalization suite is; "
                        f"pass --suite with a suite of `scale: {descriptor.scale}`")
    return suite


def compare_model(model_path: str | Path, suite_path: str | Path | None = None, *, arch: str | None = None,
                  name: str | None = None, out_dir: Path | None = None, use_cache: bool = True,
                  cache_dir: Path | None = None, progress: bool = True, arch_kwargs: dict[str, Any] | None = None,
                  layers: list[str] | None = None, timestamp: bool = False,
                  overrides: Overrides | None = None, record: dict[str, Any] | None = None) -> CompareOutcome:
    """Run ``suite_path`` with the user's model added and write the report with its placement.

    Without ``suite_path`` the shipped generalization suite of the model's scale is used
    (:func:`suite_for_model`). The report goes to ``reports/<suite>/compare-<model>/`` unless
    ``out_dir`` is given; with ``timestamp`` into a new ``<UTC time>/`` directory below it.
    ``arch`` / ``arch_kwargs`` build the model (a built-in name or the user's
    ``package.module:Class``); ``layers`` are the model's own layers (the suite's otherwise).
    ``overrides`` change the suite as ``ddr-eval run`` does; ``record`` joins the run's provenance.
    """
    from ddr_eval.api import evaluate
    from ddr_eval.core.outdir import timestamped
    from ddr_eval.pipeline.runner import check_report_dir

    suite_path = suite_path or suite_for_model(model_path, arch, arch_kwargs)
    base, loaded, label = suite_with_model(suite_path, model_path, arch, name, arch_kwargs, layers, overrides)
    target = Path(out_dir or base.suite.output_dir() / f"compare-{slug(label)}")
    target = timestamped(target) if timestamp else target
    check_report_dir(target)  # before the run, not after it
    results = evaluate(loaded, use_cache=use_cache, cache_dir=cache_dir, progress=progress)
    comparison = compare_board(results.run.leaderboard, label, base.suite.name)
    results.run.provenance.update(record or {})  # the command line, for results.json
    results.write(target, sections=comparison.sections())
    return CompareOutcome(comparison, results.run, Path(target))
