"""Turning YAML and validation problems into one-line messages that name the culprit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from ddr_eval.errors import UserError


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_location(loc: Iterable[Any]) -> str:
    """``("degradations", 2, "chain", 0, "sigma")`` -> ``degradations[2].chain[0].sigma``.

    Keys that are not plain names (a YAML key can hold spaces, newlines, anything) are shown
    quoted, ``data['odd key']``, so the location stays on one unambiguous line.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "<root>"


def one_line(text: str) -> str:
    """Collapse line breaks so a message from anywhere (a validator, a library) stays one line."""
    return " ".join(str(text).splitlines())


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
        return UserError(one_line(f"{source}: {exc}"))
    errors = exc.errors()
    first = errors[0]
    where = format_location([*prefix, *first["loc"]])
    more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return UserError(one_line(f"{source}: {where}: {describe_error(first)}{more}"))


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
