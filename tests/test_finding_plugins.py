"""Findings are plug-ins: a finding defined in this file only (one class, its spec, the decorator)
is computed by a suite that names it and located over strength by the robustness report, with no
edit to ddr_eval; the registry holds the paper's nine; an unknown key is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ddr_eval.core.errors import UserError
from ddr_eval.findings import FINDINGS, Estimate, Finding, FindingContext, Verdict, register_finding, unregister_finding
from ddr_eval.config.findings_spec import FINDING_SPECS, FindingPart
from ddr_eval.config.loader import compile_suite
from cli_exit import exit_code

PAPER = ["global_residual", "adversarial", "training", "sr_vs_classification", "spectrum", "generalization",
         "identification", "blind_sr", "cincgan"]


class ToySpec(FindingPart):
    model: str
    above: float = 1.0
    sets: tuple[str, ...] = ()

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)


@pytest.fixture
def toy():
    """A finding registered for one test: CHI of one model's features over its sets above ``above``."""

    @register_finding
    class ToyFinding(Finding):
        key = "toy_chi"
        title = "A toy finding: the statistics separate degradations"
        expected = "CHI above the spec's threshold"
        spec = ToySpec
        strength_sets = ("reference", "level")
        curve_label = "toy: CHI"

        def compute(self, context):
            chi = context.chi_by(self.part.model, self.part.sets)
            verdict = Verdict.REPRODUCED if chi.value > self.part.above else Verdict.NOT
            return self.result(verdict, f"CHI {chi.value:.3g}.", f"reproduced when CHI > {self.part.above:g}",
                               table=[{"model": self.part.model, "CHI": chi}], numbers={"chi": chi.value},
                               series={self.part.model: chi.value})

    yield ToyFinding
    unregister_finding("toy_chi")
    assert "toy_chi" not in FINDINGS and "toy_chi" not in FINDING_SPECS


def _suite(findings: dict) -> dict:
    return {"name": "toy-findings", "seed": 0, "reference": "clean",
            "data": {"source": "embedded", "patch_size": 16, "patches_per_image": 2, "eval_split": "test"},
            "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                             {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": {"sweep": [1, 3, 2]}},
                                                        {"type": "bicubic", "scale": 2}]}],
            "models": [{"baseline": "image_statistics"}],
            "metrics": [{"type": "chi", "label": "degradation", "bootstrap": 0}],
            "outputs": {"tsne_plots": False, "html": False}, "findings": {"bootstrap": 0, **findings}}


def test_the_registry_holds_the_papers_nine_findings_in_order():
    assert [key for key, _ in FINDINGS.in_registration_order()][:9] == PAPER
    for key, cls in FINDINGS.items():
        assert cls.key == key and FINDING_SPECS.get(key) is cls.spec and cls.title and cls.expected


def test_an_unknown_finding_key_is_refused_in_one_line():
    with pytest.raises(UserError) as info:
        compile_suite(_suite({"toy_chi": {"model": "image_statistics", "sets": ["clean", "blur_sigma1"]}}), "s.yaml")
    message = str(info.value)
    assert message.startswith("s.yaml: findings.toy_chi: unknown finding 'toy_chi'; known: global_residual")
    assert "\n" not in message
    robust = {"robustness": {"seeds": [0], "reference": "clean", "strength": [{"sweep": "blur"}], "toy_chi": {}}}
    with pytest.raises(UserError, match=r"^s\.yaml: findings\.robustness\.toy_chi: unknown finding"):
        compile_suite(_suite(robust), "s.yaml")


def test_a_finding_declares_the_rows_it_reads_and_the_loader_checks_them():
    raw = _suite({"generalization": {"trained": "image_statistics", "baseline": "image_statistics", "sets": ["clean"]}})
    with pytest.raises(UserError, match=r"^s\.yaml: findings\.generalization: reads metric rows of type srga or "
                                        r"ddr_chi_to_reference or psnr_drop; the suite's metrics compute none of them$"):
        compile_suite(raw, "s.yaml")


def test_a_finding_defined_in_a_test_file_is_computed_by_a_suite_that_names_it(toy, tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(_suite({"toy_chi": {"model": "image_statistics", "sets": ["clean", "blur_sigma3"]}})))
    out = tmp_path / "report"
    assert exit_code(["run", str(suite), "--out", str(out), "--no-cache", "-q"]) == 0
    (document,) = json.loads((out / "findings.json").read_text())
    assert document["key"] == "toy_chi" and document["verdict"] in ("reproduced", "not reproduced")
    assert document["table"][0]["CHI"] == f"{document['numbers']['chi']:.3g}"  # an Estimate without interval
    assert "## 1. A toy finding: the statistics separate degradations" in (out / "findings.md").read_text()
    assert "Finding 1: A toy finding" in (out / "leaderboard.md").read_text()


def test_a_finding_defined_in_a_test_file_is_located_over_strength(toy, tmp_path: Path):
    from ddr_eval.api import evaluate
    from ddr_eval.workflows.robustness import robustness_files, robustness_findings, run_robustness

    raw = _suite({"robustness": {"seeds": [0, 1], "reference": "clean", "strength": [{"sweep": "blur", "label": "blur sigma"}],
                                 "toy_chi": {"model": "image_statistics", "above": 0.0}}})
    loaded = compile_suite(raw, "toy-robustness.yaml")
    robust = run_robustness(loaded, lambda seeded: evaluate(seeded, cache_dir=tmp_path).run)
    files = robustness_files(robust, robustness_findings(robust))
    assert "| A toy finding: the statistics separate degradations, over strength | **reproduced** |" in files["robustness.md"]
    assert "holds (>= 2 of 2 seeds reproduce it) at every blur sigma tested (1 to 3)." in files["robustness.md"]
    points = [p for p in json.loads(files["robustness.json"])["points"] if p["finding"] == "toy_chi"]
    assert sorted({(p["seed"], p["x"]) for p in points}) == [(s, x) for s in (0, 1) for x in (1.0, 3.0)]
    for run in robust.runs:  # the curve holds the finding's own full-precision number at each level
        context = FindingContext(run, loaded.findings)
        for p in (p for p in points if p["seed"] == run.suite.seed):
            expected = context.chi_by("image_statistics", ("clean", p["set"]))
            assert isinstance(expected, Estimate) and p["values"] == {"image_statistics": expected.value}
    from ddr_eval.workflows.robustness import strength_curves

    curves = strength_curves(robust)
    assert set(curves["metric"]) == {"toy: CHI"} and set(curves["series"]) == {"image_statistics"}
    means = curves.sort_values("x")["value"].to_numpy()
    assert np.allclose(means, [np.mean([p["values"]["image_statistics"] for p in points if p["x"] == x])
                               for x in (1.0, 3.0)])


def test_a_finding_without_strength_sets_is_refused_over_strength_before_any_run():
    raw = _suite({"robustness": {"seeds": [0], "reference": "clean", "strength": [{"sweep": "blur"}],
                                 "training": {"series": "image_statistics", "sets": ["clean"]}}})
    loaded = compile_suite(raw, "s.yaml")
    from ddr_eval.workflows.robustness import run_robustness

    def never(_):
        raise AssertionError("no run may start")

    with pytest.raises(UserError, match=r"^findings\.robustness\.training: finding 'training' is not located over strength"):
        run_robustness(loaded, never)


def test_a_findings_section_pickles_though_its_class_is_built_from_the_registry():
    import pickle

    loaded = compile_suite(_suite({"robustness": {"seeds": [0], "reference": "clean", "strength": [{"sweep": "blur"}],
                                                  "sr_vs_classification": {"sr": ["image_statistics"], "classification": []}}}),
                           "s.yaml")
    again = pickle.loads(pickle.dumps(loaded.findings))
    assert again == loaded.findings and list(again.robustness.parts()) == ["sr_vs_classification"]
