"""Turning YAML and validation problems into one-line messages that name the culprit (the
formatting itself is ``ddr_eval.core.specs``, shared by every ``{type: ...}`` builder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from ddr_eval.core.errors import UserError
from ddr_eval.core.specs import check_bounded, describe_error, format_location, one_line, validation_message  # noqa: F401


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
    message = validation_message(exc, prefix)
    if not exc.errors()[0]["loc"] and not tuple(prefix):
        message = f"<root>: {message}"
    return UserError(f"{source}: {message}")


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
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to read (lists or mappings inside each other "
                        "thousands of levels deep)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise UserError(one_line(f"{path}: unreadable value: {str(exc).split(';')[0]}")) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    check_bounded(data, str(path))
    return data
