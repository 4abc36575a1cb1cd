"""One result row type: a metric's value for one (model, layer, set), and whether to trust it.

A row's :class:`Status` says what the number is, in one of three states, instead of string
sentinels in a free-text note:

* ``ok`` – computed as asked;
* ``unavailable: <reason>`` – no value (one class, constant features, a missing optional
  package, no HR images for a set); the value is ``None``, never NaN, so nothing ranks it;
* ``fallback: <what>`` – a value, computed a documented other way than asked (a PCA
  dimension clipped to the sample count): worth reading, with that caveat.

A row's :class:`~ddr_eval.metrics.results.RowScope` says what its ``set`` stands for: one
degradation set, all sets pooled (``set`` reads ``all``) or a per-set metric's summary (``set``
reads its aggregation, ``mean``/``median``). Consumers read the scope, never the set's text;
the text stays what results.csv (the published format, which has no scope column) shows.

Rows are immutable; ``to_dict``/``from_dict`` are the JSON form (``results.json``, the result
cache), where the status is its one-line text and the scope its value (``set``, ``pooled``,
``summary``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

from ddr_eval.metrics.base import AGGREGATIONS, DEFAULT_AGGREGATION, summary_set_names
from ddr_eval.metrics.results import POOLED_SET, RowScope

State = Literal["ok", "unavailable", "fallback"]
STATES: tuple[State, ...] = ("ok", "unavailable", "fallback")


@dataclass(frozen=True)
class Status:
    """``ok``, ``unavailable: reason`` or ``fallback: what``."""

    state: State = "ok"
    detail: str = ""

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown result status {self.state!r}")
        if self.state != "ok" and not self.detail:
            raise ValueError(f"a {self.state} status says why")

    @classmethod
    def unavailable(cls, reason: str) -> "Status":
        return cls("unavailable", _one_line(reason))

    @classmethod
    def fallback(cls, what: str) -> "Status":
        return cls("fallback", _one_line(what))

    @classmethod
    def parse(cls, text: str | None) -> "Status":
        if not text or text == "ok":
            return OK
        state, _, detail = str(text).partition(": ")
        if state in ("unavailable", "fallback") and detail:
            return cls(state, detail)
        raise ValueError(f"not a result status: {text!r}")

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def is_unavailable(self) -> bool:
        return self.state == "unavailable"

    def __str__(self) -> str:
        return self.state if self.ok else f"{self.state}: {self.detail}"


OK = Status()

_CORE = ("model", "layer", "metric", "type", "kind", "set", "value", "ci_low", "ci_high", "higher_is_better",
         "aggregation", "unit", "status")


@dataclass(frozen=True)
class ResultRow:
    """One metric value with its bootstrap interval, direction and status.

    ``extra`` holds what some kinds add (``label`` and ``projection`` for separability,
    ``macro_f1`` for identification, ``n_sets`` for a summary). ``scope`` must agree with
    ``set``: a pooled row's set is ``all``, a summary's its ``aggregation``, and a set row's
    never one of those names.
    """

    model: str
    layer: str
    metric: str
    type: str
    kind: str
    set: str
    value: float | None
    higher_is_better: bool
    ci_low: float | None = None
    ci_high: float | None = None
    aggregation: str = DEFAULT_AGGREGATION
    unit: str = ""
    status: Status = OK
    extra: Mapping[str, Any] = field(default_factory=dict)
    scope: RowScope = RowScope.SET

    def __post_init__(self) -> None:
        _check_scope(self.scope, self.set, self.aggregation, f"row {self.model}/{self.metric}/{self.set}")
        value = _finite_or_none(self.value)
        status = self.status
        if self.value is not None and value is None:  # NaN/inf: never a number in a leaderboard
            status = Status.unavailable(f"{self.metric} is not finite ({float(self.value)})")
        if status.is_unavailable:
            value = None
        if value is None and not status.is_unavailable:
            raise ValueError(f"row {self.model}/{self.metric}/{self.set}: no value needs an unavailable status")
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "status", status)
        for bound in ("ci_low", "ci_high"):
            object.__setattr__(self, bound, _finite_or_none(getattr(self, bound)) if value is not None else None)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.model, self.layer, self.metric, self.set)

    def with_status(self, status: Status) -> "ResultRow":
        return replace(self, status=status)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _CORE}
        data["status"] = str(self.status)
        data["scope"] = self.scope.value
        data.update({k: _finite_or_none(v) if isinstance(v, float) else v for k, v in self.extra.items()})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ResultRow":
        core = {name: data[name] for name in _CORE if name in data}
        core["status"] = Status.parse(core.get("status"))
        extra = {k: v for k, v in data.items() if k not in _CORE and k != "scope"}
        return cls(**core, extra=extra, scope=row_scope(data))


def row_scope(row: Mapping[str, Any]) -> RowScope:
    """The :class:`RowScope` of a row in its JSON form: its ``scope`` field.

    Rows written before rows had one (an older results.json, a results.csv, hand-made rows)
    are read by the published spelling: set ``all`` is pooled, an aggregation's name a summary
    (names the suite loader refuses for degradation sets), anything else one set.
    """
    if row.get("scope") is not None:
        return RowScope(row["scope"])
    name = row.get("set")
    if name == POOLED_SET:
        return RowScope.POOLED
    return RowScope.SUMMARY if name in AGGREGATIONS else RowScope.SET


def _check_scope(scope: RowScope, set_name: str, aggregation: str, what: str) -> None:
    if not isinstance(scope, RowScope):
        raise TypeError(f"{what}: scope must be a RowScope, got {scope!r}")
    expected = {RowScope.POOLED: POOLED_SET, RowScope.SUMMARY: aggregation}.get(scope)
    if expected is not None and set_name != expected:
        raise ValueError(f"{what}: a {scope.value} row's set is {expected!r}")
    if scope is RowScope.SET and set_name in summary_set_names():
        raise ValueError(f"{what}: {set_name!r} names a pooled or summary row, not a degradation set; give its scope")


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
