"""A lab's own metric and finding, in a module of its own, reach a suite through
``ddr-eval run --plugin MODULE``: no edit to ddr-eval. An edited plug-in metric is recomputed,
not read from the results cache; a plug-in that cannot be imported is one line, exit 2."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

from cli_exit import exit_code
from ddr_eval.config.findings_spec import FINDING_SPECS
from ddr_eval.findings import FINDINGS, unregister_finding
from ddr_eval.metrics import METRICS

PLUGIN = '''
import numpy as np
from typing import ClassVar
from ddr_eval.config.findings_spec import FindingPart
from ddr_eval.findings import Finding, Verdict, register_finding
from ddr_eval.metrics.base import Metric, register_metric
from ddr_eval.metrics.results import MetricOutput


@register_metric
class LabScore(Metric):
    metric_type: ClassVar[str] = "lab_score"
    higher_is_better: ClassVar[bool] = True
    kind: ClassVar[str] = "lab"
    needs: ClassVar[frozenset] = frozenset({"features"})
    per_set: ClassVar[bool] = True

    def reduce(self, inputs):
        output = MetricOutput()
        for layer in inputs.layers:
            values = [SCALE * float(np.abs(inputs.features(layer, name)).mean()) for name in inputs.sets]
            for name, value in zip(inputs.sets, values):
                output.add(layer, name, value)
            self.summarise(output, inputs, layer, [v for n, v in zip(inputs.sets, values) if n != inputs.reference])
        return output


class LabSpec(FindingPart):
    model: str
    sets: tuple[str, ...]

    def model_names(self):
        return (self.model,)


@register_finding
class LabFinding(Finding):
    key = "lab_separation"
    title = "The lab's own finding"
    expected = "CHI above 1"
    spec = LabSpec

    def compute(self, context):
        chi = context.chi_by(self.part.model, self.part.sets)
        verdict = Verdict.REPRODUCED if chi.value > 1 else Verdict.NOT
        return self.result(verdict, f"CHI {chi.value:.3g}.", "reproduced when CHI > 1",
                           table=[{"model": self.part.model, "CHI": chi}], numbers={"chi": chi.value})
'''


def _suite() -> dict:
    return {"name": "lab", "seed": 0, "reference": "clean",
            "data": {"source": "embedded", "patch_size": 16, "patches_per_image": 2},
            "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                             {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0},
                                                        {"type": "bicubic", "scale": 2}]}],
            "models": [{"baseline": "image_statistics"}],
            "metrics": [{"type": "lab_score"}],
            "outputs": {"tsne_plots": False, "html": False},
            "findings": {"bootstrap": 0, "lab_separation": {"model": "image_statistics", "sets": ["clean", "blur"]}}}


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A plug-in module ``lab_plugin`` on sys.path; what it registers is removed afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))

    def write(scale: float) -> None:
        (tmp_path / "lab_plugin.py").write_text(f"SCALE = {scale}\n" + textwrap.dedent(PLUGIN))
        sys.modules.pop("lab_plugin", None)
        if "lab_score" in METRICS:
            METRICS.unregister("lab_score")
        if "lab_separation" in FINDINGS:
            unregister_finding("lab_separation")

    yield write
    sys.modules.pop("lab_plugin", None)
    if "lab_score" in METRICS:
        METRICS.unregister("lab_score")
    if "lab_separation" in FINDINGS:
        unregister_finding("lab_separation")
    assert "lab_separation" not in FINDING_SPECS


def test_a_plugin_module_adds_a_metric_and_a_finding_to_a_suite(tmp_path, lab):
    suite = tmp_path / "lab.yaml"
    suite.write_text(yaml.safe_dump(_suite()))
    lab(1.0)
    assert exit_code(["run", str(suite), "--out", str(tmp_path / "r1"), "-q", "--plugin", "lab_plugin"]) == 0
    rows = json.loads((tmp_path / "r1" / "results.json").read_text())["rows"]
    first = {r["set"]: r["value"] for r in rows if r["type"] == "lab_score"}
    assert set(first) == {"clean", "blur", "mean"} and all(v > 0 for v in first.values())
    findings = json.loads((tmp_path / "r1" / "findings.json").read_text())
    assert [f["key"] for f in findings] == ["lab_separation"]
    assert "The lab's own finding" in (tmp_path / "r1" / "findings.md").read_text()

    lab(2.0)  # the lab edits its metric: the results cache must not answer with the old numbers
    assert exit_code(["run", str(suite), "--out", str(tmp_path / "r2"), "-q", "--plugin", "lab_plugin"]) == 0
    rows = json.loads((tmp_path / "r2" / "results.json").read_text())["rows"]
    second = {r["set"]: r["value"] for r in rows if r["type"] == "lab_score"}
    assert second == pytest.approx({name: 2.0 * value for name, value in first.items()})


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path, capsys):
    suite = tmp_path / "lab.yaml"
    suite.write_text(yaml.safe_dump(_suite()))
    assert exit_code(["run", str(suite), "--out", str(tmp_path / "r"), "--plugin", "no_such_lab_module"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "plugin 'no_such_lab_module': cannot import no_such_lab_module" in err
    assert not (tmp_path / "r").exists()


def test_without_the_plugin_the_suite_names_an_unknown_metric(tmp_path, capsys):
    suite = tmp_path / "lab.yaml"
    suite.write_text(yaml.safe_dump(_suite()))
    assert exit_code(["run", str(suite), "--out", str(tmp_path / "r")]) == 2
    assert "lab_score" in capsys.readouterr().err
