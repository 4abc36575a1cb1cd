"""The shipped robustness suites (``findings.robustness``: paper-robustness x2, paper-x4-robustness
x4) and their committed reports: each suite has a committed report made from the suite as it is
now, by a cold run (the wall time a reader sees is not a warm re-run), with findings 3 and 7 over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ddr_eval.workflows.robustness import cache_state
from ddr_eval.config.loader import compile_suite

ROOT = Path(__file__).resolve().parents[1]


def _robustness_suites() -> list[Path]:
    return [p for p in sorted((ROOT / "suites").glob("*.yaml"))
            if (yaml.safe_load(p.read_text()).get("findings") or {}).get("robustness")]


def test_both_scales_ship_a_robustness_suite():
    scales = {compile_suite(yaml.safe_load(p.read_text()), str(p)).scale for p in _robustness_suites()}
    assert scales == {2, 4}


@pytest.mark.parametrize("suite_file", _robustness_suites(), ids=lambda p: p.name)
def test_committed_robustness_report_is_a_cold_run_of_the_suite_as_it_is(suite_file):
    loaded = compile_suite(yaml.safe_load(suite_file.read_text()), str(suite_file))
    name = loaded.suite.name
    report = ROOT / "reports" / name
    assert f"!/reports/{name}/*" in (ROOT / ".gitignore").read_text().splitlines(), "report not committed"
    results = json.loads((report / "results.json").read_text())
    assert results["provenance"]["suite_sha256"] == loaded.suite.sha256(), f"{report} is older than {suite_file.name}"
    document = json.loads((report / "robustness.json").read_text())
    assert document["seeds"] == list(loaded.findings.robustness.seeds)
    state = cache_state(document["cache"])
    assert state.startswith("cold"), state
    assert f"Measured time: {document['seconds']:.0f} s, {state}." in (report / "findings.md").read_text()
    keys = {f["key"] for f in document["findings"]}
    assert {"global_residual@strength", "training@seeds", "identification@seeds", "sample_size"} <= keys, keys
    finding_7 = next(f for f in document["findings"] if f["key"] == "identification@seeds")
    per_seed = [row for row in finding_7["table"] if row["seed"] in loaded.findings.robustness.seeds]
    assert len(per_seed) == len(loaded.findings.robustness.seeds)
    assert all(row["chosen_ddr"] and row["chosen_baseline"] and 0 < row["ddr_accuracy"] <= 1 for row in per_seed)
    finding_1 = next(f for f in document["findings"] if f["key"] == "global_residual@strength")
    assert set(finding_1["numbers"]["parts"]) == {g.label for g in loaded.findings.robustness.strength}
