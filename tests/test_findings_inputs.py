"""Findings on hand-made features: no bootstrap intervals, and model names checked before the run."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

from ddr_eval.core.errors import UserError
from ddr_eval.findings import FindingResult, Verdict, compute_findings
from ddr_eval.report import findings_files, findings_sections
from ddr_eval.results.run import FeatureKey, RunResult
from ddr_eval.config.findings_spec import FindingsSpec
from ddr_eval.config.loader import compile_suite

SETS = ("clean", "blur")


def _result(separation: dict[str, float], n: int = 20):
    """A stand-in RunResult whose models' features are two Gaussian blobs ``separation`` apart."""
    rng = np.random.default_rng(0)
    patches = SimpleNamespace(patch_image_names=np.asarray(["a", "b"] * (n // 2)))
    features = {}
    for model, distance in separation.items():
        for offset, name in enumerate(SETS):
            x = rng.normal(size=(n, 4)) + offset * distance
            features[FeatureKey(model, "test", name, "gap")] = SimpleNamespace(features={"body": x})
    sources = [SimpleNamespace(label=m, layers={"deep": "body"}) for m in separation]
    inputs = SimpleNamespace(eval_sets={s: SimpleNamespace(split="test", patches=patches) for s in SETS})
    suite = SimpleNamespace(pooling="gap", seed=0, reference_set="clean")
    return RunResult(SimpleNamespace(suite=suite), [], [], {}, {}, sources=sources, batches=features, inputs=inputs)


@pytest.mark.parametrize("distance, verdict", [(1.5, Verdict.PARTLY), (4.0, Verdict.NOT)])
def test_global_residual_without_bootstrap_compares_values(distance, verdict):
    """``bootstrap: 0`` gives no intervals; the verdict then compares the point values."""
    spec = FindingsSpec.model_validate({"bootstrap": 0, "global_residual":
                                        {"with": "gr", "without": "nogr", "sets": list(SETS)}})
    result = _result({"gr": 2.5, "nogr": distance})
    finding = compute_findings(result, spec)[0]
    assert finding.verdict == verdict


SUITE = {
    "name": "t",
    "data": {"source": "embedded", "patch_size": 32, "patches_per_image": 2},
    "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                     {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 1.5}, {"type": "bicubic", "scale": 2}]}],
    "models": ["srresnet-gr", "srresnet-nogr"],
    "metrics": [{"type": "chi", "label": "degradation"}],
}


@pytest.mark.parametrize("findings, culprit", [
    ({"adversarial": {"pairs": [["srgan-nogr", "srresnet-nogr"]], "sets": ["clean"]}}, "srgan-nogr"),
    ({"sr_vs_classification": {"sr": ["srresnet-gr"], "classification": ["content-cnn"], "sets": ["clean"]}},
     "content-cnn"),
    ({"identification": {"ddr": ["srresnet-gr"], "baselines": ["image_statistics"]}}, "image_statistics"),
    ({"training": {"series": "srresnet-gr", "sets": ["clean"]}}, "snapshots of 'srresnet-gr'"),
])
def test_findings_model_names_are_checked_when_the_suite_loads(findings, culprit):
    raw = copy.deepcopy(SUITE)
    raw["findings"] = findings
    with pytest.raises(UserError, match="findings") as info:
        compile_suite(raw, "suite.yaml")
    assert culprit in str(info.value)


def test_a_verdict_renders_as_its_text_in_every_report_file():
    """Verdicts are an enum, but findings.md, findings.json and the report sections read as the
    text did when verdicts were strings (committed findings.json stay byte-identical)."""
    table = [{"seed": 1, "verdict": Verdict.PARTLY}]
    as_enum = [FindingResult("k", "t", "e", Verdict.PARTLY, "r", "s", table, {"verdicts": {"1": Verdict.NOT}})]
    as_text = [FindingResult("k", "t", "e", "partly reproduced", "r", "s", [{"seed": 1, "verdict": "partly reproduced"}],
                       {"verdicts": {"1": "not reproduced"}})]
    assert findings_files(as_enum) == findings_files(as_text)
    assert '"verdict": "partly reproduced"' in findings_files(as_enum)["findings.json"]
    assert [s.title for s in findings_sections(as_enum)] == ["Finding 1: t — partly reproduced"]
    assert f"{Verdict.NOT}|{Verdict.NOT:>15}" == "not reproduced| not reproduced"
    assert Verdict("measured") is Verdict.MEASURED and Verdict.MEASURED == "measured"
