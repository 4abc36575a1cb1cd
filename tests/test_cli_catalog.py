"""`ddr-eval --version`, `ddr-eval metrics` and `ddr-eval suites`: what a new user looks up first."""

from __future__ import annotations

import pytest

import ddr_eval
from ddr_eval.cli import main
from ddr_eval.metrics import METRICS


def _run(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code or 0, capsys.readouterr().out


def test_version(capsys):
    code, out = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"ddr-eval {ddr_eval.__version__}"


def test_metrics_lists_every_registered_metric_with_its_declarations(capsys):
    code, out = _run(["metrics"], capsys)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 120
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip() and not line.startswith(" ")}
    for name, cls in METRICS.items():
        assert name in lines, name
        assert (" higher " if cls.higher_is_better else " lower ") in lines[name]
        assert f" {cls.kind} " in lines[name]
        if cls.unit:
            assert f" {cls.unit} " in lines[name]
    assert " dB " in lines["psnr"] and "sr_outputs" in lines["psnr"]


def test_suites_lists_the_shipped_suites(capsys, tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("name: mine\ndescription: my own question\nscale: 3\n")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    monkeypatch.setenv("DDR_EVAL_SUITES", str(tmp_path))
    code, out = _run(["suites"], capsys)
    assert code == 0
    mine = next(line for line in out.splitlines() if "mine.yaml" in line)
    assert "my own question" in mine and " x3 " in mine
    assert "broken.yaml" in out  # listed with what could be read, not a crash
    assert max(len(line) for line in out.splitlines()) <= 120
