"""What a metric produces: its result types and the draft rows the reducer turns into result rows.

:class:`MetricResult` (and :class:`IdentificationResult`) is one computed value with its
interval and caveats, what ``compute`` returns; :class:`MetricOutput` collects what ``reduce``
returns for one model: draft :class:`MetricRow` s, confusion matrices and embeddings. The
reducer (``pipeline/reduce.py``) stamps the model and the metric's identity on each draft to
make a :class:`~ddr_eval.results.rows.ResultRow`.

**What a row is about** is explicit, never read back from the text of its ``set``: every row
has a :class:`RowScope`. ``SET`` rows hold a value on one degradation set; ``POOLED`` rows a
value computed on all evaluated sets pooled (separability, identification, efficiency); a
``SUMMARY`` row a per-set metric's aggregation over the non-reference sets. A metric says
which when it adds a row: a set's name, :data:`POOLED`, or :meth:`SetRef.summary` of its
aggregation. The ``set`` text (``all`` for pooled rows, the aggregation's name, ``mean`` or
``median``, for a summary) is only how the published results.csv spells the scope; the suite
loader refuses degradation sets of those names, so the text stays unambiguous there too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Sequence

import numpy as np

from ddr_eval.core.errors import DegenerateInputError

# Row layers of rows that are not about one tapped layer.
OUTPUT_LAYER = "output"  # rows about the SR output image (quality metrics)
MODEL_LAYER = "model"  # rows about the whole network (efficiency metrics)
WHOLE_NETWORK_LAYERS = (OUTPUT_LAYER, MODEL_LAYER)
"""The row layers that are not a tapped layer: reports set them apart from the per-layer rows."""

POOLED_SET = "all"
"""The ``set`` text of a pooled row (results.csv, results.json): a name no degradation set may take."""


class RowScope(Enum):
    """What a result row's ``set`` stands for (see the module docstring)."""

    SET = "set"  # the value on the one degradation set the row names
    POOLED = "pooled"  # computed on all evaluated sets pooled; ``set`` reads ``all``
    SUMMARY = "summary"  # a per-set metric's aggregation over the non-reference sets; ``set`` is its name

    @property
    def headline(self) -> bool:
        """Whether the leaderboard shows it: a metric's one number per (model, layer), pooled
        or summarised, as opposed to its value on one set."""
        return self is not RowScope.SET


@dataclass(frozen=True)
class SetRef:
    """Where a draft row sits on the set axis: the text of its ``set`` and its :class:`RowScope`.

    A metric passes a degradation set's name (a ``SET`` row), :data:`POOLED`, or
    :meth:`summary` to :class:`MetricOutput`'s methods.
    """

    name: str
    scope: RowScope

    @classmethod
    def of(cls, where: str | SetRef) -> SetRef:
        """``where`` as a reference: a plain string names one degradation set."""
        return where if isinstance(where, SetRef) else cls(str(where), RowScope.SET)

    @classmethod
    def summary(cls, aggregation: str) -> SetRef:
        """A per-set metric's summary row, shown under its aggregation's name (``mean``)."""
        return cls(aggregation, RowScope.SUMMARY)


POOLED = SetRef(POOLED_SET, RowScope.POOLED)
"""The set reference of a value computed on all evaluated sets pooled."""


@dataclass(frozen=True)
class MetricResult:
    """One metric value with an optional 95% percentile-bootstrap interval.

    ``extra`` carries what a reader needs to interpret the number: sample counts, the
    projection actually used, and ``warnings`` for any documented fallback that was taken.
    ``ci_low``/``ci_high`` is the interval the metric's ``interval`` names; with ``interval:
    both`` the image-cluster interval is ``ci_images`` too. ``n_source_images`` is the number of
    distinct source photographs behind the value, set whenever images were resampled.
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ci_images: tuple[float | None, float | None] | None = None
    n_source_images: int | None = None


@dataclass(frozen=True)
class IdentificationResult:
    """Degradation identification scores; ``ci_*`` is the bootstrap interval of ``accuracy``.

    ``confusion[i, j]`` counts test samples of class ``classes[i]`` predicted as ``classes[j]``.
    """

    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    classes: list[str]
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ci_images: tuple[float | None, float | None] | None = None
    n_source_images: int | None = None

    @property
    def value(self) -> float:
        """The headline number (accuracy), so ranking can treat every result alike."""
        return self.accuracy



@dataclass(frozen=True)
class MetricRow:
    """A metric's draft row for one (layer, set): value, interval, caveats and extra fields.

    ``set`` is the row's set text and ``scope`` what it stands for (:class:`RowScope`).

    The reducer turns it into a :class:`~ddr_eval.results.rows.ResultRow` by adding the model
    and the metric's identity; ``unavailable`` (a reason) becomes an ``unavailable`` status and
    ``warnings`` a ``fallback`` status. A non-finite value becomes an unavailable row there.
    """

    layer: str
    set: str
    value: float | None = None
    ci: tuple[float | None, float | None] = (None, None)
    unavailable: str | None = None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    scope: RowScope = RowScope.SET

    @property
    def usable_value(self) -> float | None:
        """The value a summary may aggregate: finite and not unavailable, else None."""
        if self.unavailable is not None or self.value is None or not math.isfinite(float(self.value)):
            return None
        return float(self.value)


@dataclass
class MetricOutput:
    """What one metric produced for one model: draft rows, confusion matrices, embeddings.

    ``confusions`` are dicts with a ``layer`` key (the reducer adds model and metric);
    ``embeddings`` maps a layer to the arrays the report plots (``xy`` and per-point labels).
    """

    rows: list[MetricRow] = field(default_factory=list)
    confusions: list[dict[str, Any]] = field(default_factory=list)
    embeddings: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    # ``where`` in every method: a degradation set's name, :data:`POOLED` or ``SetRef.summary(...)``.
    def add(self, layer: str, where: str | SetRef, value: float | None = None, ci=(None, None),
            warnings: Sequence[str] = (), **extra: Any) -> MetricRow:
        ref = SetRef.of(where)
        row = MetricRow(layer, ref.name, value, tuple(ci), None, tuple(str(w) for w in warnings), extra, ref.scope)
        self.rows.append(row)
        return row

    def unavailable(self, layer: str, where: str | SetRef, reason: str) -> MetricRow:
        ref = SetRef.of(where)
        row = MetricRow(layer, ref.name, unavailable=str(reason), scope=ref.scope)
        self.rows.append(row)
        return row

    def result(self, layer: str, where: str | SetRef, result: Any, ci: bool = True, **extra: Any) -> MetricRow:
        """The row of a :class:`MetricResult` (or any result with ``value``, ``ci_*``, ``extra``):
        its documented fallbacks (``extra["warnings"]``) become the row's warnings and an
        image-cluster interval its ``ci_images`` / ``n_images`` fields."""
        interval = (getattr(result, "ci_low", None), getattr(result, "ci_high", None)) if ci else (None, None)
        warnings = (getattr(result, "extra", None) or {}).get("warnings") or ()
        return self.add(layer, where, result.value, interval, warnings, **extra, **image_interval_fields(result))

    def guarded(self, layer: str, where: str | SetRef, compute: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``compute(*args, **kwargs)``, or None after an unavailable row when the data is
        degenerate or an optional package is missing (a cell that says why, never a crash or a NaN)."""
        try:
            return compute(*args, **kwargs)
        except (DegenerateInputError, ImportError) as exc:
            self.unavailable(layer, where, str(exc))
            return None


def image_interval_fields(result: Any) -> dict[str, Any]:
    """The row fields of an image-cluster interval: ``ci_images: [low, high]`` (``interval:
    both``), ``n_images`` (whenever images were resampled) and ``bootstrap_dropped_images`` (how
    many image resamples were left out for an empty class, when any); nothing for a patch interval."""
    fields: dict[str, Any] = {}
    ci_images = getattr(result, "ci_images", None)
    if ci_images is not None:
        fields["ci_images"] = [ci_images[0], ci_images[1]]
    n_images = getattr(result, "n_source_images", None)
    if n_images is not None:
        fields["n_images"] = int(n_images)
    dropped = (getattr(result, "extra", None) or {}).get("bootstrap_dropped_images")
    if dropped:  # image resamples left out of the interval (an empty class: separability by content)
        fields["bootstrap_dropped_images"] = int(dropped)
    return fields
