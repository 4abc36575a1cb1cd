"""Turning YAML and validation problems into one-line messages that name the culprit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from ddr_eval.errors import UserError


def format_location(loc: Iterable[Any]) -> str:
    """``("degradations", 2, "chain", 0, "sigma")`` -> ``degradations[2].chain[0].sigma``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


def describe_error(error: dict[str, Any]) -> str:
    template = _MESSAGES.get(error.get("type", ""))
    if template:
        try:
            return template.format(**error.get("ctx", {}))
        except KeyError:
            pass
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def validation_error_to_user_error(
    exc: Exception, source: str | Path, prefix: Iterable[Any] = ()
) -> UserError:
    """The first problem of a pydantic error as ``source: field.path: what is wrong``.

    Only the first error is reported: one line is what a user can act on, and fixing it
    reveals the next. The count of further problems is appended so nothing is hidden.
    """
    if isinstance(exc, UserError):
        return exc
    if not isinstance(exc, ValidationError):
        return UserError(f"{source}: {exc}")
    errors = exc.errors()
    first = errors[0]
    where = format_location([*prefix, *first["loc"]])
    more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return UserError(f"{source}: {where}: {describe_error(first)}{more}")


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every failure is a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data
