"""Report directories: never a folder of the user's; `--timestamp` keeps every run beside a `latest` pointer."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ddr_eval.core.errors import UserError
from ddr_eval.core.outdir import REPORT_MARKER, point_latest, require_report_dir, timestamped, utc_stamp
from cli_exit import exit_code

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "suites" / "smoke.yaml"


def test_a_folder_of_the_users_is_refused_before_any_work(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert exit_code(["run", str(SMOKE), "--out", str(mine), "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(mine) in err[0] and "ddr-eval did not write" in err[0]
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_empty_new_and_marked_directories_are_report_directories(tmp_path):
    require_report_dir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    require_report_dir(tmp_path / "empty")
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / "leaderboard.md").write_text("old")
    with pytest.raises(UserError, match="did not write"):
        require_report_dir(marked)
    (marked / REPORT_MARKER).write_text("")
    require_report_dir(marked)


def test_the_committed_report_directories_are_marked():
    for report in ("paper", "paper-x4", "realworld", "blind-sr", "cincgan", "smoke"):
        require_report_dir(ROOT / "reports" / report)


def test_a_run_marks_its_directory_and_may_rewrite_it(tmp_path):
    out = tmp_path / "report"
    assert exit_code(["run", str(SMOKE), "--out", str(out), "--quiet"]) == 0
    assert (out / REPORT_MARKER).is_file() and (out / "results.json").is_file()
    assert exit_code(["run", str(SMOKE), "--out", str(out), "--quiet"]) == 0


def test_timestamp_keeps_each_run_and_points_latest_at_the_newest(tmp_path):
    base = tmp_path / "reports"
    (base).mkdir()
    (base / "unrelated.txt").write_text("the base may hold anything: runs go into new subfolders")
    assert exit_code(["run", str(SMOKE), "--out", str(base), "--quiet", "--timestamp"]) == 0
    first = (base / "latest").resolve()
    assert exit_code(["run", str(SMOKE), "--out", str(base), "--quiet", "--timestamp"]) == 0
    second = (base / "latest").resolve()
    assert first != second and first.parent == second.parent == base.resolve()
    assert (first / "results.json").is_file() and (second / "report.html").is_file()
    assert os.path.islink(base / "latest") and os.readlink(base / "latest") == second.name


def test_utc_stamps_sort_and_never_collide(tmp_path):
    moment = datetime(2026, 1, 31, 9, 15, 2, tzinfo=timezone.utc)
    assert utc_stamp(moment) == "2026-01-31T09-15-02Z"
    first = timestamped(tmp_path, moment)
    first.mkdir()
    assert timestamped(tmp_path, moment).name == "2026-01-31T09-15-02Z-2"
    assert point_latest(first).resolve() == first.resolve()
