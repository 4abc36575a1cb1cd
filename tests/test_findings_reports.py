"""Every report of a suite with findings carries them, whichever command writes it (run, check --out)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ddr_eval.models.zoo import Zoo
from cli_exit import exit_code

pytestmark = pytest.mark.skipif(not {"srresnet-gr", "srresnet-nogr"} <= set(Zoo.load().names()),
                                reason="zoo not trained")

SUITE = {
    "name": "tiny-findings",
    "data": {"source": "embedded", "patch_size": 16, "patches_per_image": 2},
    "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                     {"name": "blur", "chain": [{"type": "gaussian_blur", "sigma": 2.0}, {"type": "bicubic", "scale": 2}]}],
    "models": ["srresnet-gr", "srresnet-nogr"],
    "metrics": [{"type": "chi", "label": "degradation", "projection": "raw", "bootstrap": 0}],
    "findings": {"bootstrap": 0, "global_residual": {"with": "srresnet-gr", "without": "srresnet-nogr",
                                                     "sets": ["clean", "blur"]}},
    "outputs": {"tsne_plots": False, "html": False},
}


def test_check_out_writes_the_findings(tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    baseline = tmp_path / "baseline.json"
    assert exit_code(["baseline", str(suite), "--out", str(baseline), "-q"]) == 0
    out = tmp_path / "check-report"
    assert exit_code(["check", str(suite), "--baseline", str(baseline), "--out", str(out), "-q"]) == 0
    assert "Global residual makes DDR emerge" in (out / "findings.md").read_text()
    assert "Finding 1: Global residual" in (out / "leaderboard.md").read_text()


def test_run_writes_each_finding_section_once(tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    out = tmp_path / "report"
    assert exit_code(["run", str(suite), "--out", str(out), "-q"]) == 0
    assert (out / "leaderboard.md").read_text().count("## Finding 1: Global residual") == 1
