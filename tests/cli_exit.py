"""What the tests need to drive the command line in-process: its exit status."""

from __future__ import annotations

import pytest

from ddr_eval.cli import main


def exit_code(argv: list[str]) -> int:
    """Run ``ddr-eval ARGV`` in this process and return its exit status (typer always exits)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code or 0
