"""Benchmarks (``pytest bench`` / ``tox -e bench`` / ``ddr-eval bench``), kept out of the test suite.

The files are named ``bench_*.py`` and collected by the hook below, which only exists for a
run that reaches this directory: the main ``pytest`` run (``testpaths = tests``) never sees
them, and no test-file naming pattern matches them by accident.

Every benchmark stores what it measured (ratios, exponents, timings) in pytest-benchmark's
``extra_info``, so one ``--benchmark-json`` file holds all results; ``ddr_eval_bench.runner`` turns it
into ``reports/bench/summary.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # benchlib, whatever pytest's import mode


def pytest_collect_file(file_path: Path, parent):
    explicit = parent.session.isinitpath(file_path)  # a file named on the command line is collected anyway
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not explicit:
        return pytest.Module.from_parent(parent, path=file_path)
    return None
