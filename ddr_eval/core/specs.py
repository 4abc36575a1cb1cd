"""``{type: name, **params}`` specs: one builder and one error formatter for every registry.

Degradation steps, metrics and anything else a suite names by ``type:`` are built by
:func:`build_typed`, and every pydantic validation problem becomes one line by
:func:`validation_message`: ``where: what is wrong`` with ``where`` a YAML path such as
``degradations[2].chain[0].sigma``. Only the first problem is reported — one line is what a
user can act on, and fixing it reveals the next — with the count of the others appended.

It also holds the vocabulary that suites, recipes and the zoo file share, each declared once at
this low layer so every schema can import it: :class:`StrictModel` (the base of every spec),
:data:`Pooling` / :data:`POOLINGS` (feature poolings) and :class:`SnapshotLabel`
(``series@iteration``, a training snapshot's model label).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterable, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from ddr_eval.core.errors import UserError
from ddr_eval.core.registry import Registry

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class StrictModel(BaseModel):
    """The base of every spec read from a file (suite, findings, recipe, zoo file).

    ``extra="forbid"``: a misspelt key is an error naming it, not a silently ignored option;
    ``frozen``: a spec is a value (hashable, never changed after validation), so caches can key on it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


Pooling = Literal["gap", "gmp", "mean_std", "flatten"]
"""How a feature map becomes one vector per patch (``ddr_eval.features.extract`` implements each).
``gap``: channel-wise mean over space (N x C); ``gmp``: channel-wise max over space;
``mean_std``: channel-wise mean and standard deviation (N x 2C: the first-and-second-order
statistics that style and texture descriptors use, which see a degradation's spread, not only
its average response); ``flatten``: the whole map (N x C*H*W), e.g. for SRGA-style analysis."""
POOLINGS: tuple[str, ...] = get_args(Pooling)

SERIES_SEPARATOR = "@"
"""Between a zoo entry's name and a snapshot's iteration in a model label: ``name@iteration``."""


@dataclass(frozen=True)
class SnapshotLabel:
    """The model label of a training snapshot, ``series@iteration`` (the zoo entry ``series`` after
    ``iteration`` training steps): the one place that label is written and read."""

    series: str
    iteration: int

    @classmethod
    def parse(cls, label: str) -> "SnapshotLabel | None":
        """``"name@100"`` -> ``SnapshotLabel("name", 100)``; None for a label that is not a snapshot's
        (no separator, nothing before it, or not a plain decimal iteration after the last one)."""
        series, separator, iteration = str(label).rpartition(SERIES_SEPARATOR)
        if not (separator and series and iteration.isascii() and iteration.isdigit()):
            return None
        return cls(series, int(iteration))

    def __str__(self) -> str:
        return f"{self.series}{SERIES_SEPARATOR}{self.iteration}"

_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


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


def describe_error(error: dict[str, Any]) -> str:
    """One pydantic error's message in plain words (``must be > 0``, ``is not a known field``)."""
    template = _MESSAGES.get(error.get("type", ""))
    if template:
        try:
            return template.format(**error.get("ctx", {}))
        except KeyError:
            pass
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def validation_message(exc: ValidationError, prefix: Iterable[Any] = ()) -> str:
    """The first problem of ``exc`` as ``field.path: what is wrong`` (+ how many more)."""
    errors = exc.errors()
    first = errors[0]
    loc = [*prefix, *first["loc"]]
    more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
    where = f"{format_location(loc)}: " if loc else ""
    return one_line(f"{where}{describe_error(first)}{more}")


def build_typed(registry: Registry, spec: Any, where: tuple = (), *, source: str | None = None,
                error: type[UserError] = UserError):
    """Build ``registry[spec["type"]]`` from ``spec``; every problem raises ``error`` in one line.

    With ``source`` (the suite file) messages read ``source: where.field: problem``, naming the
    YAML path; without, ``<kind> '<type>': field: problem``.
    """
    kind = registry.kind
    head = f"{source}: " if source else ""
    if isinstance(spec, Mapping) and "type" in spec and not isinstance(spec["type"], str):
        place = f"{format_location((*where, 'type'))}: " if (source or where) else "type: "
        raise error(f"{head}{place}must be a {kind} name, got {type(spec['type']).__name__}")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        place = f"{format_location(where)}: " if (source or where) else ""
        raise error(f"{head}{place}a {kind} spec needs a 'type' key (one of: {', '.join(registry)}), got {spec!r}")
    name = spec["type"]
    if name not in registry:
        place = f"{format_location((*where, 'type'))}: " if (source or where) else ""
        raise error(f"{head}{place}unknown {kind} {name!r}; known: {', '.join(registry)}")
    cls = registry.get(name)
    params = dict(spec) if "type" in getattr(cls, "model_fields", {}) else {k: v for k, v in spec.items() if k != "type"}
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        if source:
            raise error(f"{head}{validation_message(exc, where)}") from None
        raise error(f"{kind} {name!r}: {validation_message(exc)}") from None


# -- bounds on free-form documents ---------------------------------------------------------------

MAX_DOCUMENT_NODES = 100_000
"""Values (mappings, lists, scalars) a suite or spec document may hold once YAML aliases are
expanded. The shipped suites hold a few hundred; a 600-byte alias bomb expands to billions."""
MAX_DOCUMENT_DEPTH = 64
"""Nesting a document may have; the shipped suites nest 6 deep."""
INT64 = 2**63
UINT64 = 2**64


def check_bounded(document: Any, source: str, *, max_nodes: int = MAX_DOCUMENT_NODES,
                  max_depth: int = MAX_DOCUMENT_DEPTH) -> None:
    """Refuse a document too large, too deep or with integers beyond 64 bits, as one UserError.

    Free-form fields (``arch_kwargs``, metric and finding parameters) reach code that copies,
    hashes or allocates from them, so they are bounded here, before anything reads them. YAML
    aliases make the same object appear many times: the walk counts every appearance, so an
    alias bomb is refused after ``max_nodes`` steps, whatever it would expand to. The walk is
    iterative, so a deeply nested document cannot exhaust Python's stack either.
    """
    stack: list[tuple[Any, tuple, int]] = [(document, (), 0)]
    seen = 0
    while stack:
        node, where, depth = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise UserError(f"{source}: {format_location(where)}: the document holds more than {max_nodes} values "
                            "(YAML aliases are counted each time they are used); simplify it")
        if depth > max_depth:
            raise UserError(f"{source}: {format_location(where)}: nested more than {max_depth} levels deep")
        if isinstance(node, bool):
            continue
        if isinstance(node, int) and not -INT64 <= node < UINT64:
            raise UserError(f"{source}: {format_location(where)}: integer beyond 64 bits ({len(str(abs(node)))} digits)")
        if isinstance(node, Mapping):
            stack.extend((child, (*where, key), depth + 1) for key, child in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((child, (*where, i), depth + 1) for i, child in enumerate(node))
