"""Baselines and ``ddr-eval check``: tolerances, verdicts, JUnit, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import torch
import yaml

from ddr_eval.cli import main
from ddr_eval.core.errors import UserError
from ddr_eval.models.archs import ARCHS
from ddr_eval.models.checkpoint import save_model
from ddr_eval.workflows.regression import (
    DEFAULT_TOLERANCE,
    IMPROVED,
    MISSING,
    NEW,
    OK,
    REGRESSED,
    SKIPPED,
    TSNE_TOLERANCE,
    UNAVAILABLE,
    Baseline,
    BaselineEntry,
    Tolerance,
    Tolerances,
    compare_to_baseline,
    judge,
)
from ddr_eval.config.loader import compile_suite
from ddr_eval.config.schema import Suite

PROVENANCE = {"suite": "s", "suite_sha256": "f" * 64, "code": {"commit": "abc", "dirty": False}}


def row(model="m", metric="chi[degradation,raw]", set_name="all", value=10.0, higher=True, type_="chi",
        layer="deep", **extra):
    return {"model": model, "layer": layer, "metric": metric, "type": type_, "set": set_name, "value": value,
            "higher_is_better": higher, **extra}


def entry(**kwargs) -> BaselineEntry:
    return BaselineEntry.from_row(row(**kwargs))


# -- tolerances -----------------------------------------------------------------------------------


def test_parse_global_and_per_metric_tolerances():
    tol = Tolerances.parse(["0.01", "chi=0.05"], ["psnr=0.001", "1e-9"])
    assert (tol.rtol, tol.atol) == (0.01, 1e-9)
    assert tol.metric_rtol == {"chi": 0.05} and tol.metric_atol == {"psnr": 0.001}


@pytest.mark.parametrize("bad", ["x", "chi=", "chi=-1", "nan", "inf"])
def test_bad_tolerances_are_user_errors(bad):
    with pytest.raises(UserError, match="--rtol"):
        Tolerances.parse([bad])


def test_tolerance_precedence_full_name_then_type_then_global_then_builtin():
    chi, tsne = entry(), entry(metric="silhouette[degradation,tsne]", type_="silhouette")
    assert Tolerances().for_entry(chi) == DEFAULT_TOLERANCE
    assert Tolerances().for_entry(tsne) == TSNE_TOLERANCE
    assert Tolerances(rtol=0.2).for_entry(tsne) == Tolerance(0.2, TSNE_TOLERANCE.atol)
    by_type = Tolerances(rtol=0.2, metric_rtol={"chi": 0.3})
    assert by_type.for_entry(chi).rtol == 0.3
    by_name = Tolerances(metric_rtol={"chi": 0.3, "chi[degradation,raw]": 0.4})
    assert by_name.for_entry(chi).rtol == 0.4
    assert by_name.for_entry(chi).atol == DEFAULT_TOLERANCE.atol


def test_per_metric_tolerance_for_an_unknown_metric_is_refused():
    with pytest.raises(UserError, match="unknown metric 'chy'"):
        Tolerances.parse(["chy=0.1"]).check_names([entry()])


# -- verdicts -------------------------------------------------------------------------------------

# old = 10, rtol 1%, atol 0: anything within 0.1 of 10 is unchanged
@pytest.mark.parametrize("new, higher, verdict", [
    (10.05, True, OK), (9.95, True, OK), (9.85, True, REGRESSED), (10.2, True, IMPROVED),
    (10.05, False, OK), (10.2, False, REGRESSED), (9.85, False, IMPROVED), (None, True, UNAVAILABLE),
])
def test_judge_regression_is_a_change_in_the_bad_direction_beyond_tolerance(new, higher, verdict):
    assert judge(10.0, new, higher, Tolerance(rtol=0.01, atol=0.0)) == verdict


def test_judge_values_absent_in_the_baseline():
    assert judge(None, None, True, DEFAULT_TOLERANCE) == OK
    assert judge(None, 1.0, True, DEFAULT_TOLERANCE) == NEW


def test_atol_matters_near_zero():
    assert judge(0.0, 0.004, False, Tolerance(rtol=0.5, atol=0.005)) == OK
    assert judge(0.0, 0.006, False, Tolerance(rtol=0.5, atol=0.005)) == REGRESSED


def test_compare_reports_missing_unavailable_and_new_keys():
    baseline = Baseline.from_rows([row(value=10.0), row(set_name="gone"), row(model="x", value=1.0)], PROVENANCE)
    new_rows = [row(value=10.0), row(model="x", value=None), row(model="added", value=3.0)]
    report = compare_to_baseline(baseline, new_rows)
    statuses = {c.key[0] + "/" + c.key[3]: c.status for c in report.checks}
    assert statuses == {"m/all": OK, "m/gone": MISSING, "x/all": UNAVAILABLE, "added/all": NEW}
    assert report.exit_code == 1
    assert {c.status for c in report.failures} == {MISSING, UNAVAILABLE, NEW}  # a new value fails by default
    allowing = compare_to_baseline(baseline, new_rows, allow_new=True)
    assert {c.status for c in allowing.failures} == {MISSING, UNAVAILABLE}


def test_new_values_fail_unless_allowed_so_an_emptied_baseline_cannot_pass():
    baseline = Baseline.from_rows([row(model="a", value=10.0)], PROVENANCE)
    rows = [row(model="a", value=10.0), row(model="b", value=3.0)]
    strict = compare_to_baseline(baseline, rows)
    assert strict.exit_code == 1 and "--allow-new" in strict.summary()
    assert ET.fromstring(strict.junit_xml()).find("testsuite").get("failures") == "1"
    assert compare_to_baseline(baseline, rows, allow_new=True).exit_code == 0


def test_improvements_pass_but_are_reported():
    baseline = Baseline.from_rows([row(value=10.0), row(metric="srga", type_="srga", higher=False, value=2.0)],
                                  PROVENANCE)
    report = compare_to_baseline(baseline, [row(value=12.0), row(metric="srga", type_="srga", higher=False, value=1.0)])
    assert report.exit_code == 0
    assert len(report.by_status(IMPROVED)) == 2
    assert "improved" in report.text() and "passed" in report.text()


def test_diff_table_lists_regressions_first_with_both_values():
    baseline = Baseline.from_rows([row(model="a", value=10.0), row(model="b", value=10.0)], PROVENANCE)
    report = compare_to_baseline(baseline, [row(model="a", value=11.0), row(model="b", value=9.0)])
    lines = report.diff_table().splitlines()
    assert "regressed" in lines[2] and lines[2].startswith("b") and "10" in lines[2] and "9" in lines[2]
    assert "improved" in lines[3]


def test_junit_has_one_testcase_per_key_and_a_failure_per_regression():
    baseline = Baseline.from_rows([row(model=m, value=10.0) for m in "abc"], PROVENANCE)
    report = compare_to_baseline(baseline, [row(model="a", value=10.0), row(model="b", value=5.0)])
    root = ET.fromstring(report.junit_xml())
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 3
    failed = {c.get("classname"): c.find("failure").get("type") for c in cases if c.find("failure") is not None}
    assert failed == {"ddr_eval.s.b.deep": REGRESSED, "ddr_eval.s.c.deep": MISSING}
    assert root.find("testsuite").get("failures") == "2"


def test_wall_clock_metrics_are_skipped_unless_a_per_metric_tolerance_asks():
    latency = dict(metric="latency", type_="latency", higher=False, layer="model")
    baseline = Baseline.from_rows([row(**latency, value=1.0)], PROVENANCE)
    slower = [row(**latency, value=3.0)]
    report = compare_to_baseline(baseline, slower, Tolerances(rtol=0.1))  # a global tolerance does not opt in
    assert [c.status for c in report.checks] == [SKIPPED] and report.exit_code == 0
    assert ET.fromstring(report.junit_xml()).find("./testsuite/testcase/skipped") is not None
    asked = compare_to_baseline(baseline, slower, Tolerances.parse(["latency=0.5"]))
    assert [c.status for c in asked.checks] == [REGRESSED]


def test_changed_checkpoint_fails_the_check():
    baseline = Baseline.from_rows([row()], PROVENANCE, models={"m": "a" * 64})
    report = compare_to_baseline(baseline, [row()], models={"m": "b" * 64})
    assert report.exit_code == 1 and "FAILED" in report.summary()
    assert any("not the one the baseline measured" in problem for problem in report.problems)
    assert "not the one the baseline measured" in ET.fromstring(report.junit_xml()).find(
        "./testsuite/testcase/failure").get("message")
    assert compare_to_baseline(baseline, [row()], models={"m": "a" * 64}).exit_code == 0


@pytest.mark.parametrize("damage, message", [
    (lambda doc: doc.update(entries=[]), "holds no values"),
    (lambda doc: doc["entries"][0].update(value=float("nan")), r"entries\[0\].value: nan"),
    (lambda doc: doc["entries"][0].update(value=float("inf")), r"entries\[0\].value: inf"),
])
def test_an_emptied_or_nan_baseline_is_refused(tmp_path, damage, message):
    path = Baseline.from_rows([row()], PROVENANCE).write(tmp_path / "baseline.json")
    document = json.loads(path.read_text())
    damage(document)
    path.write_text(json.dumps(document))  # json writes NaN/Infinity tokens, which json.loads reads back
    with pytest.raises(UserError, match=message):
        Baseline.load(path)


def test_a_baseline_that_is_a_directory_says_so(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        Baseline.load(tmp_path)


# -- baseline files -------------------------------------------------------------------------------


def test_baseline_round_trips_and_validates(tmp_path):
    baseline = Baseline.from_rows([row(), row(model="z", value=None, projection="tsne")], PROVENANCE, {"m": "sha"})
    path = baseline.write(tmp_path / "b.json")
    assert Baseline.load(path) == baseline
    document = json.loads(path.read_text())
    for broken in ({**document, "format": "other"}, {k: v for k, v in document.items() if k != "entries"}):
        (tmp_path / "bad.json").write_text(json.dumps(broken))
        with pytest.raises(UserError, match="bad.json"):
            Baseline.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="bad.json"):
        Baseline.load(tmp_path / "bad.json")


def test_duplicate_rows_cannot_make_a_baseline():
    with pytest.raises(UserError, match="two rows"):
        Baseline.from_rows([row(), row()], PROVENANCE)


def test_a_baseline_of_another_suite_is_refused():
    suite = Suite.model_validate({"name": "s", "degradations": [{"name": "c", "chain": [{"type": "bicubic"}]}],
                                  "models": ["a"], "metrics": [{"type": "psnr"}]})
    Baseline.from_rows([row()], {**PROVENANCE, "suite_sha256": suite.sha256()}).require_suite(suite)
    with pytest.raises(UserError, match="suite sha256"):
        Baseline.from_rows([row()], PROVENANCE).require_suite(suite)


# -- the CLI, end to end ----------------------------------------------------------------------------

TINY = dict(num_feat=8, num_block=2, upscale=2)
DEGRADATIONS = [
    {"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
    {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]},
    {"name": "noise", "chain": [{"type": "bicubic", "scale": 2}, {"type": "gaussian_noise", "sigma": 20}]},
]


@pytest.fixture
def suite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DDR_EVAL_FEATURE_CACHE", str(tmp_path / "cache"))
    models = []
    for i in range(2):
        torch.manual_seed(i)
        save_model(tmp_path / f"m{i}.safetensors", ARCHS.get("MSRResNet")(**TINY), "MSRResNet", TINY)
        models.append({"path": str(tmp_path / f"m{i}.safetensors")})
    suite = {
        "name": "tiny-check", "seed": 0, "data": {"patch_size": 16, "patches_per_image": 2},
        "degradations": DEGRADATIONS,
        "models": models,
        "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 10},
                    {"type": "srga", "pca_dim": 8}, {"type": "psnr"}],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


def test_baseline_then_check_passes_bit_for_bit_then_catches_a_regression(suite_file, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert run_cli("baseline", suite_file, "--out", baseline, "-q") == 0
    frozen = Baseline.load(baseline)
    assert frozen.suite == "tiny-check" and len(frozen.entries) > 0
    assert set(frozen.models) == {"m0", "m1"}

    # Same machine, same seed: identical numbers, so even zero tolerance passes.
    junit = tmp_path / "junit.xml"
    assert run_cli("check", suite_file, "--baseline", baseline, "--rtol", "0", "--atol", "0", "--junit", junit,
                   "-q") == 0
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert "passed" in capsys.readouterr().out

    # Pretend the baseline was better at PSNR on blur: the re-run now regressed there.
    document = json.loads(baseline.read_text())
    target = next(e for e in document["entries"] if e["metric"] == "psnr" and e["set"] == "blur")
    target["value"] += 1.0
    baseline.write_text(json.dumps(document))
    assert run_cli("check", suite_file, "--baseline", baseline, "--junit", junit, "--cache", "--out",
                   tmp_path / "rep", "-q") == 1
    assert (tmp_path / "rep" / "results.json").is_file()
    out = capsys.readouterr().out
    assert "FAILED" in out and "regressed" in out and f"{target['model']}" in out
    failures = [c for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["psnr [blur]"]

    # A generous per-metric tolerance lets it through again.
    assert run_cli("check", suite_file, "--baseline", baseline, "--atol", "psnr=2", "--cache", "-q") == 0

    # A value dropped from the baseline comes back as "new": it fails unless --allow-new.
    document["entries"] = [e for e in document["entries"] if e is not target]
    baseline.write_text(json.dumps(document))
    capsys.readouterr()
    assert run_cli("check", suite_file, "--baseline", baseline, "--cache", "-q") == 1
    assert "1 new" in capsys.readouterr().out
    assert run_cli("check", suite_file, "--baseline", baseline, "--cache", "--allow-new", "-q") == 0


def test_check_bad_input_exits_2(suite_file, tmp_path, capsys):
    assert run_cli("check", suite_file, "--baseline", tmp_path / "none.json", "-q") == 2
    assert "does not exist" in capsys.readouterr().err
    other = Baseline.from_rows([row()], PROVENANCE)
    other.write(tmp_path / "other.json")
    assert run_cli("check", suite_file, "--baseline", tmp_path / "other.json", "-q") == 2
    assert "suite sha256" in capsys.readouterr().err
    sha = compile_suite(yaml.safe_load(suite_file.read_text())).suite.sha256()
    Baseline.from_rows([row()], {**PROVENANCE, "suite_sha256": sha}).write(tmp_path / "same.json")
    assert run_cli("check", suite_file, "--baseline", tmp_path / "same.json", "--rtol", "oops") == 2
    assert "--rtol 'oops'" in capsys.readouterr().err


def test_baseline_from_existing_results(suite_file, tmp_path):
    results = tmp_path / "results.json"
    sha = compile_suite(yaml.safe_load(suite_file.read_text())).suite.sha256()
    results.write_text(json.dumps({"rows": [row()], "provenance": {**PROVENANCE, "suite_sha256": sha}}))
    assert run_cli("baseline", suite_file, "--from-results", results, "--out", tmp_path / "b.json") == 0
    assert [e.value for e in Baseline.load(tmp_path / "b.json").entries] == [10.0]
    results.write_text(json.dumps({"rows": [row()], "provenance": PROVENANCE}))
    assert run_cli("baseline", suite_file, "--from-results", results, "--out", tmp_path / "b.json") == 2
