"""What a finding is: a registered class that reads a run and returns a typed :class:`FindingResult`.

A finding (``ddr_eval.findings.global_residual`` and its eight siblings) is one module: a
:class:`Finding` subclass that names its key, title, what the paper expects, its spec model (the
YAML it takes, in ``ddr_eval.config.findings_spec``, which also declares the rows it reads for
the suite loader) and, when it can be located along a strength sweep, which sets it reads per
level (:attr:`Finding.strength_sets`). ``@register_finding`` puts it into :data:`FINDINGS` (and
its spec into the config layer's registry, so ``findings:`` accepts its key); the package
``__init__`` imports every module. A run's findings are ``compute_findings(result)``.

The result is data, not text: numbers with their intervals (:class:`Estimate`), table cells
that are numbers, estimates or words, the per-model numbers a strength curve plots
(``series``), the verdict (:class:`Verdict`) and the rule that decided it. ``ddr_eval.report``
renders it (markdown, HTML, JSON); ``ddr_eval.workflows.robustness`` reads its numbers over seeds and
strength levels without knowing which finding it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Union

from ddr_eval.core.errors import UserError
from ddr_eval.core.registry import Registry
from ddr_eval.config.findings_spec import FINDING_SPECS, FindingPart, FindingsSpec

if TYPE_CHECKING:
    from ddr_eval.findings.context import FindingContext
    from ddr_eval.results.run import RunResult


class Verdict(str, Enum):
    """What a finding's rule says about the paper's claim; the value is the text reports show.

    A ``str`` enum, so ``findings.json`` holds the plain text and a verdict equals its text
    (``Verdict.NOT == "not reproduced"``); ``str()`` and f-strings give the text too, not
    ``Verdict.NOT``, so the markdown and HTML reports read the same as with plain strings.
    """

    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"
    NOT = "not reproduced"
    MEASURED = "measured"  # a finding that reports a number and makes no claim (robustness: sample size)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval, at full precision.

    ``low``/``high`` is the interval the number was computed with (the patch bootstrap for a
    CHI; for a mean over patches, the bootstrap over source photographs); ``image_low`` /
    ``image_high`` the cluster bootstrap over source photographs when both were computed
    (``interval: both``), with ``n_images`` photographs behind it. ``decimals`` and ``signed``
    say how the report writes it: None, three significant digits; else fixed-point.
    """

    value: float
    low: float | None = None
    high: float | None = None
    image_low: float | None = None
    image_high: float | None = None
    n_images: int | None = None
    decimals: int | None = None
    signed: bool = False

    @classmethod
    def of(cls, result) -> "Estimate":
        """From a :class:`~ddr_eval.metrics.results.MetricResult`."""
        images = result.ci_images if result.ci_images is not None and None not in result.ci_images else (None, None)
        return cls(result.value, result.ci_low, result.ci_high, *images, result.n_source_images)

    @classmethod
    def of_row(cls, row) -> "Estimate":
        """From a :class:`~ddr_eval.results.ResultRow` (its image interval and count are in ``extra``)."""
        images = row.extra.get("ci_images")
        images = images if images is not None and None not in images else (None, None)
        return cls(row.value, row.ci_low, row.ci_high, images[0], images[1], row.extra.get("n_images"))

    @property
    def has_images(self) -> bool:
        return self.image_low is not None and self.image_high is not None

    def verdict_interval(self) -> tuple[float | None, float | None]:
        """The interval verdicts read: over source images when computed, else the patch interval."""
        return (self.image_low, self.image_high) if self.has_images else (self.low, self.high)

    def clearly_above(self, other: "Estimate") -> bool:
        """This number is above ``other``: their verdict intervals are disjoint when both have one
        (a suite with ``bootstrap: 0`` has none), else the point values are compared."""
        (own_low, _), (_, other_high) = self.verdict_interval(), other.verdict_interval()
        if own_low is None or other_high is None:
            return self.value > other.value
        return own_low > other_high


@dataclass(frozen=True)
class Rounded:
    """A full-precision number the report shows rounded to ``digits`` decimals."""

    value: float
    digits: int


Cell = Union[Estimate, Rounded, Verdict, float, int, bool, str, None]


@dataclass
class FindingResult:
    """One finding computed from one run: what ``findings.md``/``.json`` and the robustness
    report are rendered from.

    ``numbers``: the finding's headline numbers (JSON-ready, full precision; ``findings.json``
    writes them as they are); ``series``: line -> the number its curve over strength plots at
    this run's sets; ``parts``: each half of a rule with halves -> whether it holds.
    """

    key: str
    title: str
    expected: str
    verdict: Verdict
    rule: str
    summary: str
    table: list[dict[str, Cell]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    series: dict[str, float] = field(default_factory=dict)
    parts: dict[str, bool] = field(default_factory=dict)
    # the included suite that computed it (:func:`suite_origin`); None: the report's own suite
    suite: dict[str, Any] | None = None
    plots: tuple[tuple[str, str], ...] = ()  # (file name in the report directory, caption)


class Finding:
    """A finding: subclass it, set the class variables, implement :meth:`compute`, decorate the
    class with :func:`register_finding`.

    ``strength_sets``: how the robustness report pairs it with one strength level, as the
    ``sets`` of its spec: names ``"reference"`` (the clean set) and ``"level"`` (the swept
    set), e.g. ``("reference", "level")`` for a CHI between them, ``("level",)`` for a
    per-set comparison; None: it is not located over strength. ``curve_label``: the panel of
    its strength curve (default: its key); ``crossing``: a value of its series whose crossing
    along a sweep the report locates (finding 4: a ratio crossing 1). :meth:`strength_note` and
    ``seeds_note``: what the robustness report's rules add for it (finding 1: its halves; finding
    7: how its probes are chosen per seed).
    """

    key: ClassVar[str]
    title: ClassVar[str]
    expected: ClassVar[str]
    spec: ClassVar[type[FindingPart]]
    strength_sets: ClassVar[tuple[str, ...] | None] = None
    curve_label: ClassVar[str | None] = None
    crossing: ClassVar[float | None] = None
    seeds_note: ClassVar[str] = ""

    def __init__(self, part: FindingPart):
        self.part = part

    def compute(self, context: "FindingContext") -> FindingResult:
        raise NotImplementedError

    def result(self, verdict: Verdict, summary: str, rule: str, **fields: Any) -> FindingResult:
        """A :class:`FindingResult` with this finding's key, title and expectation."""
        return FindingResult(self.key, self.title, self.expected, verdict, rule, summary, **fields)

    @classmethod
    def at_level(cls, part: FindingPart, reference: str, level: str) -> "Finding":
        """This finding on one strength level: its spec with the sets :attr:`strength_sets` names."""
        if cls.strength_sets is None:
            raise UserError(f"findings.robustness.{cls.key}: finding {cls.key!r} is not located over strength")
        sets = tuple(reference if name == "reference" else level for name in cls.strength_sets)
        return cls(part.model_copy(update={"sets": sets}))

    @classmethod
    def strength_note(cls, thresholds) -> str:
        """A sentence for the robustness report's rules when it is swept over strength (default: none)."""
        return ""

    @classmethod
    def curve(cls, series: str) -> tuple[str, str]:
        """(line, panel) of one of its series in the strength-curve figure."""
        return series, cls.curve_label or cls.key


FINDINGS: Registry[type[Finding]] = Registry("finding")
"""Finding key -> its class, filled by :func:`register_finding` as each module is imported."""


def register_finding(cls: type[Finding]) -> type[Finding]:
    """Register a finding class under its key, and its spec model in the config layer (the
    paper's specs are registered there already, so a suite loads without this package)."""
    if cls.key in FINDING_SPECS:
        if FINDING_SPECS.get(cls.key) is not cls.spec:
            raise KeyError(f"finding {cls.key!r}: spec {cls.spec.__name__} differs from the registered "
                           f"{FINDING_SPECS.get(cls.key).__name__}")
    else:
        FINDING_SPECS.register(cls.key)(cls.spec)
    return FINDINGS.register(cls.key)(cls)


def unregister_finding(key: str) -> None:
    """Remove a finding and its spec (a plug-in or a test that registered one for a while)."""
    FINDINGS.unregister(key)
    FINDING_SPECS.unregister(key)


def compute_findings(result: "RunResult", spec: FindingsSpec | None = None) -> list[FindingResult]:
    """The findings a run's suite asks for (``spec``: its ``findings:`` section by default; none
    when it has none), in registration order."""
    from ddr_eval.findings.context import FindingContext

    spec = result.loaded.findings if spec is None else spec
    if spec is None:
        return []
    context = FindingContext(result, spec)
    return [FINDINGS.get(key)(part).compute(context) for key, part in spec.parts().items()]


def suite_origin(result: "RunResult") -> dict[str, Any]:
    """Which run computed a finding: the suite file, its name, seed and hash, and where its own
    report goes (``ddr-eval run FILE`` writes it; a report that includes the suite does not)."""
    return {"file": result.loaded.source, "name": result.suite.name, "seed": result.suite.seed,
            "suite_sha256": result.provenance.get("suite_sha256"), "report": f"{result.suite.output_dir()}/"}
