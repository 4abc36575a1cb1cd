"""Where reports go: only into new directories or ones ddr-eval made, and optionally one per run.

A report directory is rewritten file by file on every run, so ``--out`` pointed at a folder of
one's own (the repository root, a data folder) would scatter report files among the user's. Every
report directory ddr-eval writes gets a marker file (:data:`REPORT_MARKER`); an existing
directory may be reused as a report directory only when it is empty or carries the marker.

``--timestamp`` keeps every run: the report goes to ``<dir>/<UTC time>/`` and ``<dir>/latest``
points at the newest one (a symlink; a one-line text file where symlinks cannot be made).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from ddr_eval.core.errors import UserError

REPORT_MARKER = ".ddr-eval-report"
MARKER_TEXT = ("This directory holds a ddr-eval report; ddr-eval rewrites its files on each run of the suite.\n"
               "Delete this file and ddr-eval will refuse to write here.\n")
LATEST = "latest"


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` is a directory ddr-eval made (it carries :data:`REPORT_MARKER`)."""
    return (Path(path) / REPORT_MARKER).is_file()


def require_report_dir(path: Path, what: str = "report directory") -> None:
    """Refuse an existing directory with other content that ddr-eval did not make (one line)."""
    path = Path(path)
    if path.is_dir() and not is_report_dir(path) and any(path.iterdir()):
        raise UserError(f"{what} {path}: exists and holds files ddr-eval did not write (no {REPORT_MARKER}); "
                        "choose a new directory, or an empty one")


def mark_report_dir(path: Path) -> None:
    """Write the marker into a report directory (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / REPORT_MARKER
    if not marker.is_file():
        marker.write_text(MARKER_TEXT)


def utc_stamp(now: datetime | None = None) -> str:
    """``2026-01-31T09-15-02Z``: sortable, and legal in file names on every system (no colons)."""
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H-%M-%SZ")


def timestamped(base: Path, now: datetime | None = None) -> Path:
    """A new ``base/<UTC time>`` directory path (a suffix when two runs start in one second)."""
    stamp = utc_stamp(now)
    target, n = Path(base) / stamp, 1
    while target.exists():
        n += 1
        target = Path(base) / f"{stamp}-{n}"
    return target


def point_latest(report: Path) -> Path:
    """Make ``<parent>/latest`` point at ``report`` (relative symlink, else a text file naming it)."""
    report = Path(report)
    link = report.parent / LATEST
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        raise UserError(f"{link}: exists and is not a link ddr-eval made; remove it to keep a `latest` pointer")
    try:
        os.symlink(report.name, link, target_is_directory=True)
    except OSError:
        link.write_text(report.name + "\n")
    return link
