"""The suites this repository ships (``suites/*.yaml``), found by their question and scale.

``ddr-eval compare --model M`` without ``--suite`` ranks M with the shipped generalization suite
of M's scale, and a model whose scale does not fit a suite is pointed at one that does.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

SUITES_ENV = "DDR_EVAL_SUITES"


def suites_dir() -> Path:
    """``$DDR_EVAL_SUITES``, else ``suites/`` beside the package (a source checkout), else ``./suites``."""
    override = os.environ.get(SUITES_ENV)
    if override:
        return Path(override).expanduser()
    beside = Path(__file__).resolve().parents[2] / "suites"
    return beside if beside.is_dir() else Path("suites")


def declared_scale(path: Path) -> int | None:
    """A suite file's top-level ``scale:``, or the factor of its first ``bicubic`` step; None if unreadable."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(raw, dict):
        return None
    if isinstance(raw.get("scale"), int):
        return raw["scale"]
    for dset in raw.get("degradations") or []:
        for step in (dset or {}).get("chain") or [] if isinstance(dset, dict) else []:
            if isinstance(step, dict) and step.get("type") == "bicubic" and isinstance(step.get("scale"), int):
                return step["scale"]
    return None


def shipped_suite(scale: int, question: str = "generalization") -> Path | None:
    """The shipped suite asking ``question`` at ``scale`` (``generalization.yaml``, ``generalization-x4.yaml``…)."""
    root = suites_dir()
    for path in sorted(root.glob(f"{question}*.yaml")):
        stem = path.stem.removeprefix(question)
        if stem not in ("", f"-x{scale}"):
            continue
        if declared_scale(path) == scale:
            return path
    return None


def suite_hint(scale: int) -> str:
    """A clause naming a shipped suite of ``scale`` for error messages."""
    path = shipped_suite(scale)
    if path is None:
        return f"no shipped suite is x{scale}: set `scale: {scale}` in your own suite"
    return f"use a suite of that scale, e.g. {_relative(path)}"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def shipped_suites() -> list[dict[str, object]]:
    """One entry per shipped suite file: its path, name, scale and one-line description.

    Read from the YAML without validating it (``ddr-eval suites`` lists them in a second; a
    broken file still shows, with what could be read).
    """
    entries = []
    for path in sorted(suites_dir().glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            raw = None
        raw = raw if isinstance(raw, dict) else {}
        entries.append({"suite": _relative(path), "name": raw.get("name", path.stem),
                        "scale": declared_scale(path), "description": str(raw.get("description") or "")})
    return entries
