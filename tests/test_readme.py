"""The README states what the committed reports computed, not numbers typed by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("readme_findings", ROOT / "scripts" / "readme_findings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_findings_table_matches_the_committed_reports():
    script = _script()
    assert script.block((ROOT / "README.md").read_text()) == script.render(), (
        "README's findings table is stale: run `python scripts/readme_findings.py`")


def test_the_table_shows_both_scales_per_finding():
    table = _script().render()
    assert "x2 verdict" in table and "x4 verdict" in table
    assert all(line.count("**") >= 4 for line in table.splitlines()[2:] if "| 1 |" in line)


def test_included_findings_get_rows_naming_their_suite(tmp_path):
    def finding(key, verdict, suite=None):
        return {"key": key, "title": key.title(), "expected": "e", "verdict": verdict, "summary": f"{key} {verdict}",
                "suite": suite}

    x2, x4 = tmp_path / "x2.json", tmp_path / "x4.json"
    x2.write_text(json.dumps([finding("training", "reproduced"),
                              finding("cincgan", "not reproduced", {"name": "cincgan", "file": "suites/cincgan.yaml"})]))
    x4.write_text(json.dumps([finding("training", "reproduced")]))
    rows = _script().render({"x2": x2, "x4": x4}).splitlines()[2:]
    assert rows[0].startswith("| 1 | Training | e | **reproduced** | **reproduced** |")
    assert rows[1] == "| 2 | Cincgan (suite `cincgan`) | e | **not reproduced** | — | cincgan not reproduced | — |"


def test_readme_zoo_tables_match_zoo_yaml():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_zoo", ROOT / "scripts" / "readme_zoo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.render(text) == text, "README's zoo numbers are stale: run `python scripts/readme_zoo.py`"
    assert text.count("| `srresnet-gr") >= 4  # the rows the script rewrites are there


def _public_script():
    spec = importlib.util.spec_from_file_location("readme_public", ROOT / "scripts" / "readme_public.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_released_networks_table_matches_the_committed_report():
    script = _public_script()
    assert script.block((ROOT / "README.md").read_text()) == script.render(), (
        "README's released-networks table is stale: run `python scripts/readme_public.py`")


def test_the_released_networks_figure_the_readme_shows_is_committed():
    figure = ROOT / "reports" / "public-x4" / "sr_vs_classification_depth.png"
    assert f"]({figure.relative_to(ROOT)})" in (ROOT / "README.md").read_text()
    assert figure.read_bytes().startswith(b"\x89PNG")
