"""End to end: `ddr-eval run suites/smoke.yaml` through the CLI writes a complete, sane report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from ddr_eval.models.zoo import Zoo
from cli_exit import exit_code

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "suites" / "smoke.yaml"


def _zoo_has(*names: str) -> bool:
    zoo = Zoo.load()
    return all(name in zoo.names() for name in names)


pytestmark = pytest.mark.skipif(not _zoo_has("srresnet-gr", "srresnet-nogr"), reason="smoke models not trained yet")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    assert exit_code(["run", str(SMOKE), "--out", str(out), "--quiet"]) == 0
    return out


def test_report_files_exist(smoke_report):
    for name in ("leaderboard.md", "results.csv", "results.json", "report.html"):
        assert (smoke_report / name).stat().st_size > 0, name
    assert list(smoke_report.glob("tsne_*_degradation.png"))
    assert not list(smoke_report.glob(".tmp*"))


def test_results_json_records_provenance(smoke_report):
    document = json.loads((smoke_report / "results.json").read_text())
    provenance = document["provenance"]
    assert len(provenance["suite_sha256"]) == 64
    assert provenance["seed"] == 0
    assert provenance["code"]["commit"]
    assert {"torch", "numpy", "ddr_eval"} <= set(provenance["versions"])
    assert document["timings"]["total"] > 0
    assert document["suite"]["name"] == "smoke"


def test_numbers_have_sane_types_and_ranges(smoke_report):
    rows = pd.read_csv(smoke_report / "results.csv")
    assert set(rows["model"]) == {"srresnet-gr", "srresnet-nogr"}
    values = rows.set_index(["model", "type", "set"])["value"]
    for model in ("srresnet-gr", "srresnet-nogr"):
        chi = values[(model, "chi", "all")]
        assert math.isfinite(chi) and chi >= 0
        silhouette = values[(model, "silhouette", "all")]
        assert -1 <= silhouette <= 1
        for name in ("blur", "noise"):
            assert 0 <= values[(model, "srga", name)] < 10
        clean_psnr = values[(model, "psnr", "clean")]
        assert 25 < clean_psnr < 50
        assert values[(model, "psnr", "noise")] < clean_psnr  # noise costs PSNR
    directions = rows.drop_duplicates("type").set_index("type")["higher_is_better"]
    assert bool(directions["chi"]) and not bool(directions["srga"])


def test_global_residual_separates_degradations_better(smoke_report):
    rows = pd.read_csv(smoke_report / "results.csv")
    chi = rows[(rows["type"] == "chi") & (rows["set"] == "all")].set_index("model")["value"]
    assert chi["srresnet-gr"] > chi["srresnet-nogr"]


def test_same_suite_gives_same_numbers(smoke_report, tmp_path):
    again = tmp_path / "again"
    assert exit_code(["run", str(SMOKE), "--out", str(again), "--quiet", "--no-cache"]) == 0
    first = pd.read_csv(smoke_report / "results.csv")
    second = pd.read_csv(again / "results.csv")
    pd.testing.assert_series_equal(first["value"], second["value"])


def test_bad_suite_exits_2_without_report(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("sigma: 2.0", "sigma: -2.0"))
    out = tmp_path / "out"
    assert exit_code(["run", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "degradations[1].chain[0]" in err and "Traceback" not in err
    assert not out.exists()


def test_the_terminal_summary_fits_120_columns_and_ends_with_the_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    assert exit_code(["run", str(SMOKE), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert max(len(line) for line in lines) <= 120, max(lines, key=len)
    assert lines[-1] == f"report: {tmp_path / 'out' / 'report.html'}"
    assert "Best: " in out or "No ranking metric separates" in out
