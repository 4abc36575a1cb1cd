"""The direction of the DDR paper's findings 1-4 on the shipped zoo, so a regression that breaks
the science fails CI. A smaller version of suites/paper.yaml (fewer patches) keeps it fast; the
full numbers with intervals are in reports/paper/."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ddr_eval.findings import compute_findings
from ddr_eval.models.zoo import Zoo
from ddr_eval.pipeline.runner import run_suite
from ddr_eval.config.loader import compile_suite

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("srresnet-gr", "srresnet-nogr", "srgan-gr", "srgan-nogr", "content-cnn")

pytestmark = pytest.mark.skipif(not all(n in Zoo.load().names() for n in NEEDED), reason="zoo not trained")


@pytest.fixture(scope="module")
def findings():
    raw = yaml.safe_load((ROOT / "suites" / "paper.yaml").read_text())
    small = copy.deepcopy(raw)
    small["data"]["patches_per_image"] = 12
    keep_sets = {"clean", "blur", "noise", "blur+noise"}
    small["degradations"] = [d for d in raw["degradations"] if d["name"] in keep_sets]
    small["models"] = [
        "srresnet-gr", "srresnet-nogr", "srgan-gr", "srgan-nogr",
        {"name": "srresnet-gr", "layers": ["sweep"], "as": "srresnet-gr-sweep"},
        {"name": "content-cnn", "layers": ["deep", "sweep"]},
        *({"name": "srresnet-gr", "iteration": it} for it in (0, 250, 1000, 2000)),
    ]
    small["metrics"] = [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0},
                        {"type": "psnr"}]
    findings = {k: v for k, v in raw["findings"].items()
                if k in ("layer", "global_residual", "adversarial", "training", "sr_vs_classification")}
    findings["bootstrap"] = 50
    small["findings"] = findings
    result = run_suite(compile_suite(small, "paper-small"), progress=False)
    return {f.key: f for f in compute_findings(result)}


def test_global_residual_raises_chi_by_an_order_of_magnitude(findings):
    numbers = findings["global_residual"].numbers
    assert numbers["ratio"] > 10, numbers


def test_gan_training_raises_chi_without_global_residual(findings):
    ratios = findings["adversarial"].numbers["ratios"]
    assert ratios["srgan-nogr/srresnet-nogr"] > 1.5, ratios  # 3.6x on the full paper suite


def test_chi_rises_during_training(findings):
    numbers = findings["training"].numbers
    assert numbers["spearman"] > 0.5, numbers
    assert numbers["chi"][-1] > 10 * numbers["chi"][0], numbers


def test_sr_clusters_by_degradation_classifier_by_content(findings):
    rows = {row["model"]: row for row in findings["sr_vs_classification"].table}
    sr, cnn = rows["srresnet-gr-sweep"], rows["content-cnn"]
    assert sr["CHI by degradation"].value > sr["CHI by content"].value, sr
    assert cnn["CHI by content"].value > cnn["CHI by degradation"].value, cnn


NEEDED_X4 = ("srresnet-gr-x4", "srresnet-nogr-x4", "srresnet-gr-real-x4")


@pytest.fixture(scope="module")
def findings_x4():
    if not all(n in Zoo.load().names() for n in NEEDED_X4):
        pytest.skip("x4 zoo not trained")
    raw = yaml.safe_load((ROOT / "suites" / "paper-x4.yaml").read_text())
    small = copy.deepcopy(raw)
    small["data"]["patches_per_image"] = 8
    small["degradations"] = [d for d in raw["degradations"] if d["name"] in {"clean", "blur", "noise", "blur+noise"}]
    small["models"] = ["srresnet-gr-x4", "srresnet-nogr-x4", "srresnet-gr-real-x4",
                       *({"name": "srresnet-gr-x4", "iteration": it} for it in (0, 250, 1000))]
    small["metrics"] = [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0},
                        {"type": "psnr"}, {"type": "psnr_drop"}, {"type": "ddr_chi_to_reference"}]
    small["findings"] = {"layer": "deep", "bootstrap": 50,
                         **{k: raw["findings"][k] for k in ("global_residual", "training")},
                         "generalization": {**raw["findings"]["generalization"]}}
    result = run_suite(compile_suite(small, "paper-x4-small"), progress=False)
    return {f.key: f for f in compute_findings(result)}


def test_x4_global_residual_raises_chi_but_not_at_matched_fit(findings_x4):
    numbers = findings_x4["global_residual"].numbers
    assert numbers["ratio"] > 4, numbers  # 159x on the full paper-x4 suite (8 held-out photographs)
    # the 250-step GR snapshot: 5.2x on the full suite, below the rule's 10x (0.4x on the former 4 photographs)
    assert numbers["ratio_matched_fit"] < 10, numbers


def test_x4_chi_rises_during_training(findings_x4):
    assert findings_x4["training"].numbers["spearman"] > 0.5


def test_x4_training_on_degradations_generalizes(findings_x4):
    assert findings_x4["generalization"].verdict == "reproduced"
