"""Reports and the leaderboard read what metrics declare, not names they recognise.

* A row says what it is about (``RowScope``: one set, all sets pooled, a per-set summary);
  no consumer reads that from the text of its ``set``.
* A per-set metric of a kind no report knows gets its per-set table in leaderboard.md and
  report.html: the metric below exists only in this file, with a kind nothing else names.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from ddr_eval.cli import main
from ddr_eval.metrics import METRICS
from ddr_eval.metrics.base import Metric, MetricInputs, register_metric
from ddr_eval.metrics.checks import check_features
from ddr_eval.metrics.results import POOLED, MetricOutput, MetricResult, RowScope, SetRef
from ddr_eval.models.archs import build_arch
from ddr_eval.models.checkpoint import save_model
from ddr_eval.report.tables import per_set_table, rows_frame
from ddr_eval.results import Leaderboard, MetricInfo, ResultRow, row_scope

TINY_SR = {"num_feat": 8, "num_block": 2, "upscale": 2}


class ActivationLevel(Metric):
    """Mean absolute activation of a layer, per degradation set (a kind no report names)."""

    metric_type: ClassVar[str] = "activation_level"
    kind: ClassVar[str] = "activation"
    higher_is_better: ClassVar[bool] = True
    per_set: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"features"})

    def compute(self, features: np.ndarray) -> MetricResult:
        return MetricResult(float(np.abs(check_features(features)).mean()))

    def reduce(self, inputs: MetricInputs) -> MetricOutput:
        output = MetricOutput()
        for layer in inputs.layers:
            values = []
            for name in inputs.sets:
                result = output.guarded(layer, name, self.compute, inputs.features(layer, name))
                value = output.result(layer, name, result).usable_value if result is not None else None
                if name != inputs.reference and value is not None:
                    values.append(value)
            self.summarise(output, inputs, layer, values)
        return output


@pytest.fixture()
def activation_level():
    register_metric(ActivationLevel)
    yield ActivationLevel
    METRICS.unregister(ActivationLevel.metric_type)


def _run_report(tmp_path) -> tuple:
    checkpoint = tmp_path / "tiny.safetensors"
    torch.manual_seed(0)
    save_model(checkpoint, build_arch("MSRResNet", **TINY_SR), "MSRResNet", TINY_SR)
    suite = {
        "name": "declarations", "seed": 0,
        "data": {"source": "embedded", "images": ["astronaut", "camera"], "eval_split": "all",
                 "patch_size": 16, "patches_per_image": 3},
        "degradations": [
            {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
            {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
            {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 0.1}]},
        ],
        "models": [{"path": str(checkpoint), "as": "tiny"}],
        "metrics": [{"type": "activation_level"}, {"type": "chi", "label": "degradation", "bootstrap": 0}],
        "outputs": {"tsne_plots": False},
        "runtime": {"device": "cpu"},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(path), "--out", str(out), "--quiet"])
    assert (exit_info.value.code or 0) == 0
    return out, json.loads((out / "results.json").read_text())


def test_a_new_per_set_metric_kind_gets_its_table_in_both_reports(activation_level, tmp_path):
    out, document = _run_report(tmp_path)
    rows = [ResultRow.from_dict(r) for r in document["rows"]]
    mine = [r for r in rows if r.type == "activation_level"]
    assert {(r.set, r.scope) for r in mine} == {("clean", RowScope.SET), ("blur", RowScope.SET),
                                                ("noise", RowScope.SET), ("mean", RowScope.SUMMARY)}
    assert {r.scope for r in rows if r.type == "chi"} == {RowScope.POOLED}
    values = {r.set: r.value for r in mine}

    markdown = (out / "leaderboard.md").read_text()
    per_set = markdown.split("## Per degradation set", 1)[1]
    line = next(line for line in per_set.splitlines() if line.startswith("| activation_level"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    header = next(line for line in per_set.splitlines() if line.startswith("| metric"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns == ["metric", "model", "layer", "clean", "blur", "noise", "mean"]  # the summary last
    assert cells[:3] == ["activation_level", "tiny", "deep"] and all(cells[3:])
    assert "chi" not in per_set.split("##", 1)[0]  # a pooled metric has no per-set table

    html = (out / "report.html").read_text(encoding="utf-8")
    section = html.split('id="per-set"', 1)[1].split("<h2", 1)[0]
    assert "<h3>activation_level ↑</h3>" in section
    table = section.split("<h3>activation_level ↑</h3>", 1)[1]
    headers = re.findall(r"<th>(\w+)\s*</th>", table.split("</thead>", 1)[0])
    assert headers == ["model", "layer", "clean", "blur", "noise", "mean"]
    assert values["mean"] == pytest.approx(np.mean([values["blur"], values["noise"]]))


def test_rows_refuse_a_scope_their_set_contradicts():
    base = dict(model="m", layer="deep", metric="x", type="x", kind="k", value=1.0, higher_is_better=True)
    assert ResultRow(**base, set="blur").scope is RowScope.SET
    assert ResultRow(**base, set="all", scope=RowScope.POOLED).scope is RowScope.POOLED
    assert ResultRow(**base, set="median", aggregation="median", scope=RowScope.SUMMARY).scope is RowScope.SUMMARY
    with pytest.raises(ValueError, match="names a pooled or summary row"):
        ResultRow(**base, set="mean")  # a summary needs its scope said
    with pytest.raises(ValueError, match="a summary row's set is 'median'"):
        ResultRow(**base, set="mean", aggregation="median", scope=RowScope.SUMMARY)
    with pytest.raises(ValueError, match="a pooled row's set is 'all'"):
        ResultRow(**base, set="blur", scope=RowScope.POOLED)


def test_the_json_form_carries_the_scope_and_older_documents_are_read_by_their_set_names():
    base = dict(model="m", layer="deep", metric="x", type="x", kind="k", value=1.0, higher_is_better=True)
    for row in (ResultRow(**base, set="blur"), ResultRow(**base, set="all", scope=RowScope.POOLED),
                ResultRow(**base, set="mean", scope=RowScope.SUMMARY)):
        data = row.to_dict()
        assert data["scope"] == row.scope.value and ResultRow.from_dict(data) == row
        legacy = {k: v for k, v in data.items() if k != "scope"}  # a results.json from before the field
        assert ResultRow.from_dict(legacy) == row and row_scope(legacy) is row.scope


def test_draft_rows_say_their_scope_where_the_metric_adds_them():
    output = MetricOutput()
    output.add("deep", "blur", 1.0)
    output.add("deep", POOLED, 2.0)
    output.unavailable("deep", SetRef.summary("median"), "no set has a value")
    assert [(r.set, r.scope) for r in output.rows] == [
        ("blur", RowScope.SET), ("all", RowScope.POOLED), ("median", RowScope.SUMMARY)]


def test_the_leaderboard_and_the_per_set_table_read_the_scope():
    rows = [ResultRow("m", "deep", "x", "x", "k", "blur", 1.0, True),
            ResultRow("m", "deep", "x", "x", "k", "noise", 3.0, True),
            ResultRow("m", "deep", "x", "x", "k", "mean", 2.0, True, scope=RowScope.SUMMARY),
            ResultRow("m", "deep", "p", "p", "k", "all", 5.0, True, scope=RowScope.POOLED)]
    infos = [MetricInfo("x", "x", True), MetricInfo("p", "p", True)]
    board = Leaderboard.build([r.to_dict() for r in rows], infos, ())
    assert board.rows[0]["x"] == 2.0 and board.rows[0]["p"] == 5.0
    frame = rows_frame(rows)
    assert list(frame.columns)[:13] == ["model", "layer", "metric", "type", "kind", "set", "value", "ci_low",
                                        "ci_high", "higher_is_better", "aggregation", "unit", "status"]
    assert "scope" not in frame.columns  # results.csv is this frame: the published columns only
    table = per_set_table(frame)
    assert list(table.columns) == ["metric", "model", "layer", "blur", "noise", "mean"]
    assert table["metric"].tolist() == ["x"]
    assert per_set_table(rows_frame(rows[3:])).empty
    assert isinstance(frame, pd.DataFrame)
