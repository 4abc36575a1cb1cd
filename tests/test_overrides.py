"""Command-line overrides: --set / --seed / --limit change the suite (and its hash); --device and
--batch-size are runtime settings that never do; results.json records how it was made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddr_eval.core.errors import UserError
from ddr_eval.config.loader import load_suite
from ddr_eval.config.overrides import Overrides, parse_assignment
from cli_exit import exit_code

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "suites" / "smoke.yaml"


def test_values_are_read_as_yaml():
    assert parse_assignment("data.patch_size=32") == ("data.patch_size", 32)
    assert parse_assignment("data.test_images=[a, b]") == ("data.test_images", ["a", "b"])
    assert parse_assignment("reference=null") == ("reference", None)
    assert parse_assignment("description=a=b") == ("description", "a=b")
    for bad in ("patch_size", "=3", "data..x=1", "a=[unclosed"):
        with pytest.raises(UserError, match="--set"):
            parse_assignment(bad)


def test_runtime_settings_keep_the_hash_and_numeric_overrides_change_it():
    plain = load_suite(SMOKE).suite
    runtime = load_suite(SMOKE, Overrides(device="cpu", batch_size=3, sets=("runtime.cache=false",))).suite
    assert (runtime.runtime.device, runtime.runtime.batch_size, runtime.runtime.cache) == ("cpu", 3, False)
    assert runtime.sha256() == plain.sha256()
    for changed in (Overrides(seed=plain.seed + 1), Overrides(limit=5), Overrides(sets=("data.patch_size=16",)),
                    Overrides(sets=("runtime.amp_dtype=bf16",))):
        assert load_suite(SMOKE, changed).suite.sha256() != plain.sha256(), changed


def test_a_bad_override_is_one_line_naming_the_field(tmp_path, capsys):
    assert exit_code(["run", str(SMOKE), "--out", str(tmp_path / "o"), "--set", "data.patch_size=-4", "-q"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "data.patch_size" in err[0]
    assert exit_code(["run", str(SMOKE), "--set", "metrics.99.type=chi", "-q"]) == 2
    assert "metrics.99" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_check_with_a_runtime_override_still_compares_with_the_baseline(tmp_path):
    baseline = ROOT / "reports" / "smoke" / "baseline.json"
    assert exit_code(["check", str(SMOKE), "--baseline", str(baseline), "--batch-size", "5", "--device", "cpu", "-q"]) == 0


def test_limit_cuts_each_set_and_results_json_records_how_it_was_made(tmp_path):
    out = tmp_path / "quick"
    assert exit_code(["run", str(SMOKE), "--out", str(out), "-q", "--limit", "6", "--seed", "3",
                 "--set", "outputs.tsne_plots=false"]) == 0
    document = json.loads((out / "results.json").read_text())
    prov = document["provenance"]
    assert prov["command"].startswith("ddr-eval run ") and "--limit 6" in prov["command"]
    assert prov["overrides"] == ["seed=3", "data.limit_patches=6", "outputs.tsne_plots=false"]
    assert prov["limit_patches"] == 6 and document["suite"]["data"]["limit_patches"] == 6
    assert prov["started"].endswith("Z") and prov["finished"] >= prov["started"]
    srga = [row["status"] for row in document["rows"] if row["type"] == "srga" and row["set"] not in ("mean", "all")]
    assert srga and all("n_samples=6," in status for status in srga)  # each set holds 6 patches (PCA clipped to 6)
    assert "QUICK LOOK" in (out / "leaderboard.md").read_text() and "QUICK LOOK" in (out / "report.html").read_text()
