"""Regression tracking: freeze a run's numbers as a baseline, re-run, fail CI when one got worse.

A baseline is the run's metric rows reduced to ``(model, layer, metric, set) -> value`` with
each metric's declared direction, plus the suite's sha256 and the code commit that produced
it. ``check`` compares a fresh run key by key; a *regression* is a change in the bad
direction beyond tolerance, ``|new - old| > atol + rtol * |old|``. Improvements pass and are
reported (so a baseline can be refreshed on purpose). A key the new run no longer produces,
or a value that became unavailable, fails too: silence is not a pass. So does a value the
baseline does not hold (``new``; ``--allow-new`` lets new values pass) and a model whose
checkpoint is not the one the baseline measured: an emptied or edited baseline must not let
a CI gate through. A baseline without entries, or with NaN values, is refused when read.

Default tolerances, and why
---------------------------
Runs are deterministic on one machine: the same suite and seed give bit-identical rows
(seeded patches, degradations and metrics; eval-mode networks; features recomputed without
the cache by ``check``; 1 and 2 threads gave the same bits too). Across machines, float32
kernels differ in summation order (SIMD width, BLAS kernels). Measured on this code by
re-running suites, the smoke suite among them, under other kernels (``OPENBLAS_CORETYPE``,
``ONEDNN_MAX_CPU_ISA``, ``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``):

* metrics that are smooth functions of the features (CHI, Davies-Bouldin, SRGA/GGD fits,
  PSNR/SSIM on uint8 outputs) moved by at most ~1e-5 relative (SRGA; CHI ~1e-7, PSNR
  ~3e-5 dB absolute). Default: ``rtol=1e-3, atol=1e-6`` -- two orders of magnitude above
  that noise, still far below any change a real regression makes (a different checkpoint,
  degradation or pooling moves these metrics by percent);
* metrics computed on a **t-SNE** embedding are not smooth: t-SNE's optimisation amplifies
  1e-7 feature noise into a different layout. A silhouette on t-SNE moved by up to 3.6e-3 on
  barely separated features and by 7.5e-3 on the smoke suite's well-separated srresnet-gr
  (absolute, on [-1, 1]). Default for them: ``rtol=0, atol=0.05`` (about seven times the
  largest measured drift; the raw-feature metrics beside them catch small real changes);
* **wall-clock** metrics (``latency``) measure the machine as much as the model: a baseline
  recorded on one runner says nothing about another. They are *skipped* (reported, never
  failing) unless a per-metric tolerance names them (``--rtol latency=0.5``) for a check on
  the machine the baseline came from.

Anything passed on the command line (a global ``--rtol 0.01`` or a per-metric
``--atol chi=0.5``) overrides these built-ins; per-metric beats global.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from tabulate import tabulate

from ddr_eval.core.atomic import atomic_write_text
from ddr_eval.core.errors import UserError
from ddr_eval.metrics import wall_clock_types
from ddr_eval.results import ResultRow, format_value
from ddr_eval.results.run import RunResult

BASELINE_FORMAT = "ddr-eval/baseline@1"
BASELINE_FILE = "baseline.json"

OK, IMPROVED, REGRESSED, MISSING, UNAVAILABLE, NEW = "ok", "improved", "regressed", "missing", "unavailable", "new"
SKIPPED = "skipped"
FAILING = (REGRESSED, MISSING, UNAVAILABLE)
WALL_CLOCK_TYPES = wall_clock_types()  # machine-dependent: checked only when a per-metric tolerance asks

Key = tuple[str, str, str, str]  # model, layer, metric, set


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# -- tolerances ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far a value may move before it counts as changed: ``|new - old| <= atol + rtol * |old|``."""

    rtol: float
    atol: float

    def __post_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UserError(f"tolerance {name} must be a finite number >= 0, got {value!r}")

    def allowed(self, old: float) -> float:
        return self.atol + self.rtol * abs(old)


DEFAULT_TOLERANCE = Tolerance(rtol=1e-3, atol=1e-6)
TSNE_TOLERANCE = Tolerance(rtol=0.0, atol=0.05)


def _is_tsne(entry: "BaselineEntry") -> bool:
    return entry.projection == "tsne" or "tsne" in entry.metric


@dataclass(frozen=True)
class Tolerances:
    """Global and per-metric tolerances; ``None`` means "use the built-in default for this metric".

    Per-metric keys match a metric's full name (``chi[degradation,raw]``) or its type (``chi``);
    the full name wins.
    """

    rtol: float | None = None
    atol: float | None = None
    metric_rtol: Mapping[str, float] = field(default_factory=dict)
    metric_atol: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, rtol: Iterable[str] = (), atol: Iterable[str] = ()) -> "Tolerances":
        """From CLI strings: ``0.01`` sets the global value, ``chi=0.05`` one metric's."""
        parsed = {}
        for option, values in (("rtol", rtol), ("atol", atol)):
            default, per_metric = None, {}
            for text in values:
                name, _, number = text.rpartition("=")
                value = cls._number(option, text, number)
                if name:
                    per_metric[name.strip()] = value
                else:
                    default = value
            parsed[option], parsed[f"metric_{option}"] = default, per_metric
        return cls(**parsed)

    @staticmethod
    def _number(option: str, text: str, number: str) -> float:
        try:
            value = float(number)
        except ValueError:
            raise UserError(f"--{option} {text!r}: expected NUMBER or METRIC=NUMBER") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"--{option} {text!r}: tolerance must be a finite number >= 0")
        return value

    def check_names(self, entries: Iterable["BaselineEntry"]) -> None:
        """A per-metric tolerance for a metric the baseline does not have is a typo: say so."""
        known = set()
        for entry in entries:
            known |= {entry.metric, entry.type}
        for option, names in (("rtol", self.metric_rtol), ("atol", self.metric_atol)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise UserError(f"--{option}: unknown metric {unknown[0]!r}; the baseline has: "
                                + ", ".join(sorted(known)))

    @staticmethod
    def _lookup(per_metric: Mapping[str, float], entry: "BaselineEntry") -> float | None:
        for name in (entry.metric, entry.type):
            if name in per_metric:
                return per_metric[name]
        return None

    def for_entry(self, entry: "BaselineEntry") -> Tolerance | None:
        """The tolerance for one key, or ``None`` for a wall-clock metric nobody asked to check."""
        builtin = TSNE_TOLERANCE if _is_tsne(entry) else DEFAULT_TOLERANCE
        rtol = self._lookup(self.metric_rtol, entry)
        atol = self._lookup(self.metric_atol, entry)
        if entry.type in WALL_CLOCK_TYPES and rtol is None and atol is None:
            return None
        return Tolerance(
            rtol=rtol if rtol is not None else (self.rtol if self.rtol is not None else builtin.rtol),
            atol=atol if atol is not None else (self.atol if self.atol is not None else builtin.atol),
        )


# -- baseline ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineEntry:
    model: str
    layer: str
    metric: str
    type: str
    set: str
    value: float | None
    higher_is_better: bool
    projection: str | None = None

    @property
    def key(self) -> Key:
        return (self.model, self.layer, self.metric, self.set)

    @classmethod
    def from_row(cls, row: ResultRow | Mapping[str, Any]) -> "BaselineEntry":
        row = row.to_dict() if isinstance(row, ResultRow) else row
        return cls(model=str(row["model"]), layer=str(row["layer"]), metric=str(row["metric"]),
                   type=str(row.get("type") or row["metric"]), set=str(row["set"]), value=_finite(row.get("value")),
                   higher_is_better=bool(row["higher_is_better"]), projection=row.get("projection"))


@dataclass(frozen=True)
class Baseline:
    """The frozen numbers of one suite run, and what produced them."""

    suite: str
    suite_sha256: str
    code: Mapping[str, Any]
    entries: tuple[BaselineEntry, ...]
    models: Mapping[str, str] = field(default_factory=dict)  # label -> identity (checkpoint sha256, ...)
    ranks: tuple[tuple[str, str, int | None], ...] = ()  # (model, layer, rank) on the run's leaderboard

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], provenance: Mapping[str, Any],
                  models: Mapping[str, str] | None = None, ranks: Iterable[tuple] = ()) -> "Baseline":
        entries = tuple(sorted((BaselineEntry.from_row(r) for r in rows), key=lambda e: e.key))
        keys = [e.key for e in entries]
        if len(set(keys)) != len(keys):
            duplicate = next(k for k in keys if keys.count(k) > 1)
            raise UserError(f"results have two rows for {'/'.join(duplicate)}; cannot make a baseline")
        return cls(suite=str(provenance["suite"]), suite_sha256=str(provenance["suite_sha256"]),
                   code=dict(provenance.get("code", {})), entries=entries, models=dict(models or {}),
                   ranks=tuple(tuple(r) for r in ranks))

    @classmethod
    def from_result(cls, result: RunResult) -> "Baseline":
        models = {s.label: s.identity for s in result.sources}
        return cls.from_rows(result.rows, result.provenance, models, board_ranks(result.leaderboard.rows))

    @classmethod
    def from_results_file(cls, path: str | Path) -> "Baseline":
        document = _read_json(path, "results file")
        if not isinstance(document.get("rows"), list) or "provenance" not in document:
            raise UserError(f"{path}: not a ddr-eval results.json (no rows/provenance)")
        board = (document.get("leaderboard") or {}).get("rows") or []
        return cls.from_rows(document["rows"], document["provenance"], ranks=board_ranks(board))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT,
            "suite": self.suite,
            "suite_sha256": self.suite_sha256,
            "code": dict(self.code),
            "models": dict(self.models),
            "entries": [{"model": e.model, "layer": e.layer, "metric": e.metric, "type": e.type, "set": e.set,
                         "value": e.value, "higher_is_better": e.higher_is_better, "projection": e.projection}
                        for e in self.entries],
            "leaderboard": [{"model": m, "layer": layer, "rank": rank} for m, layer, rank in self.ranks],
        }

    def write(self, path: str | Path) -> Path:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Baseline":
        document = _read_json(path, "baseline")
        if document.get("format") != BASELINE_FORMAT:
            raise UserError(f"{path}: not a ddr-eval baseline (format {document.get('format')!r}, "
                            f"expected {BASELINE_FORMAT!r}); write one with `ddr-eval baseline SUITE`")
        if not document.get("entries"):
            raise UserError(f"{path}: entries: the baseline holds no values, so it cannot catch a regression; "
                            "write it with `ddr-eval baseline SUITE`")
        for i, entry in enumerate(document["entries"]):
            value = entry.get("value") if isinstance(entry, dict) else None
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{path}: entries[{i}].value: {value} is not a number a baseline holds "
                                "(unavailable values are null); re-create the baseline with `ddr-eval baseline`")
        try:
            entries = tuple(BaselineEntry(**{**e, "value": _finite(e.get("value"))}) for e in document["entries"])
            ranks = board_ranks(document.get("leaderboard") or [])
            return cls(suite=document["suite"], suite_sha256=document["suite_sha256"], code=document.get("code", {}),
                       entries=entries, models=document.get("models", {}), ranks=ranks)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: malformed baseline ({type(exc).__name__}: {exc})") from None

    def require_suite(self, suite, source: str = "suite") -> None:
        """Refuse to compare against a baseline of a different suite: its numbers mean something else."""
        if suite.sha256() != self.suite_sha256:
            raise UserError(
                f"{source}: suite sha256 {suite.sha256()[:12]}… differs from the baseline's "
                f"{self.suite_sha256[:12]}… (suite {self.suite!r}); the suite changed since the baseline was "
                "written, so its numbers are not comparable: re-create it with `ddr-eval baseline`")


def board_ranks(rows: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str, int | None], ...]:
    """(model, layer, rank) of leaderboard rows, in board order."""
    return tuple((str(r["model"]), str(r["layer"]), r.get("rank")) for r in rows)


def rank_changes(old: Iterable[tuple], new: Iterable[tuple]) -> list[str]:
    """Notes on leaderboard places that moved: numbers within tolerance can still swap two models."""
    before = {(m, layer): rank for m, layer, rank in old}
    notes = []
    for model, layer, rank in new:
        if (model, layer) in before and before[(model, layer)] != rank:
            notes.append(f"leaderboard: {model} / {layer} moved from rank {before[(model, layer)]} to {rank}")
    return notes


def _read_json(path: str | Path, what: str) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory, expected a JSON file")
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read {what}: {exc}") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: {what} must be a JSON object")
    return document


# -- check ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCheck:
    """The verdict on one baseline key."""

    key: Key
    old: float | None
    new: float | None
    higher_is_better: bool
    tolerance: Tolerance | None
    status: str

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def message(self) -> str:
        where = "/".join(self.key)
        direction = "higher is better" if self.higher_is_better else "lower is better"
        if self.status == MISSING:
            return f"{where}: the run no longer reports this value (baseline {format_value(self.old)})"
        if self.status == UNAVAILABLE:
            return f"{where}: baseline {format_value(self.old)}, now unavailable"
        if self.status == NEW:
            return f"{where}: new value {format_value(self.new)} (not in the baseline)"
        if self.status == SKIPPED:
            return (f"{where}: {format_value(self.old)} -> {format_value(self.new)}, not checked (wall-clock; "
                    f"give --rtol {self.key[2]}=... to check it on the baseline's machine)")
        allowed = self.tolerance.allowed(self.old) if self.tolerance and self.old is not None else 0.0
        return (f"{where}: {format_value(self.old)} -> {format_value(self.new)} (delta {self.delta:+.3g}, "
                f"allowed {allowed:.3g}, {direction})")


def judge(old: float | None, new: float | None, higher_is_better: bool, tolerance: Tolerance) -> str:
    """ok, improved, regressed or unavailable for one key present in both runs."""
    if old is None:
        return OK if new is None else NEW
    if new is None:
        return UNAVAILABLE
    delta = new - old
    if abs(delta) <= tolerance.allowed(old):
        return OK
    better = delta > 0 if higher_is_better else delta < 0
    return IMPROVED if better else REGRESSED


@dataclass
class CheckReport:
    """Every key's verdict, plus notes about what changed around the numbers."""

    suite: str
    checks: list[KeyCheck]
    notes: list[str] = field(default_factory=list)
    baseline_code: Mapping[str, Any] = field(default_factory=dict)
    code: Mapping[str, Any] = field(default_factory=dict)
    allow_new: bool = False  # values the baseline does not hold pass (else they fail)
    problems: list[str] = field(default_factory=list)  # failures that are not one key's (a changed model)

    def by_status(self, *statuses: str) -> list[KeyCheck]:
        """Checks with one of ``statuses``, grouped in the order the statuses are given."""
        return [c for status in statuses for c in self.checks if c.status == status]

    def fails(self, check: KeyCheck) -> bool:
        return check.failed or (check.status == NEW and not self.allow_new)

    @property
    def failures(self) -> list[KeyCheck]:
        return [c for c in self.checks if self.fails(c)]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures or self.problems else 0

    def diff_table(self, statuses: tuple[str, ...] = FAILING + (IMPROVED, NEW)) -> str:
        rows = []
        for c in self.by_status(*statuses):
            allowed = c.tolerance.allowed(c.old) if c.tolerance and c.old is not None else None
            rows.append([*c.key, format_value(c.old), format_value(c.new),
                         "" if c.delta is None else f"{c.delta:+.4g}", "" if allowed is None else f"{allowed:.3g}",
                         "↑" if c.higher_is_better else "↓", c.status])
        headers = ["model", "layer", "metric", "set", "baseline", "new", "delta", "allowed", "better", "status"]
        return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)

    def summary(self) -> str:
        counts = {s: len(self.by_status(s)) for s in (OK, IMPROVED, NEW, SKIPPED, REGRESSED, UNAVAILABLE, MISSING)}
        verdict = "FAILED" if self.exit_code else "passed"
        text = f"ddr-eval check {self.suite}: {verdict} — " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        if self.by_status(NEW) and not self.allow_new:
            text += " (new values fail; --allow-new lets them pass)"
        return text + "".join(f"; {problem}" for problem in self.problems)

    def text(self) -> str:
        lines = [self.summary()]
        if self.by_status(*FAILING, IMPROVED, NEW):
            lines += ["", self.diff_table()]
        lines += [f"error: {p}" for p in self.problems]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def junit_xml(self) -> str:
        """JUnit XML: one testcase per baseline key, a <failure> for each regression."""
        failures = self.failures + self.problems
        suites = ET.Element("testsuites", name="ddr-eval", tests=str(len(self.checks)), failures=str(len(failures)),
                            errors="0")
        skipped = self.by_status(SKIPPED)
        suite = ET.SubElement(suites, "testsuite", name=f"ddr-eval check {self.suite}", tests=str(len(self.checks)),
                              failures=str(len(failures)), errors="0", skipped=str(len(skipped)), time="0")
        properties = ET.SubElement(suite, "properties")
        for name, value in (("baseline_commit", self.baseline_code.get("commit")), ("commit", self.code.get("commit"))):
            ET.SubElement(properties, "property", name=name, value=str(value))
        for check in self.checks:
            model, layer, metric, set_name = check.key
            case = ET.SubElement(suite, "testcase", classname=f"ddr_eval.{self.suite}.{model}.{layer}",
                                 name=f"{metric} [{set_name}]", time="0")
            if self.fails(check):
                failure = ET.SubElement(case, "failure", message=check.message(), type=check.status)
                failure.text = check.message()
            elif check.status == SKIPPED:
                ET.SubElement(case, "skipped", message=check.message())
            elif check.status != OK:
                ET.SubElement(case, "system-out").text = check.message()
        for problem in self.problems:
            case = ET.SubElement(suite, "testcase", classname=f"ddr_eval.{self.suite}", name="models", time="0")
            ET.SubElement(case, "failure", message=problem, type="model").text = problem
        ET.indent(suites)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

    def write_junit(self, path: str | Path) -> Path:
        atomic_write_text(Path(path), self.junit_xml())
        return Path(path)


def compare_to_baseline(baseline: Baseline, rows: Iterable[Mapping[str, Any]], tolerances: Tolerances | None = None,
                        *, models: Mapping[str, str] | None = None, code: Mapping[str, Any] | None = None,
                        ranks: Iterable[tuple] = (), allow_new: bool = False) -> CheckReport:
    """Judge every baseline key against a new run's ``rows`` (keys only in the new run are ``new``:
    failing unless ``allow_new``); a model whose identity (checkpoint sha256) differs from the
    baseline's fails the check."""
    tolerances = tolerances or Tolerances()
    tolerances.check_names(baseline.entries)
    current = {}
    for row in rows:
        entry = BaselineEntry.from_row(row)
        current[entry.key] = entry
    checks = []
    for entry in baseline.entries:
        tolerance = tolerances.for_entry(entry)
        if entry.key not in current:
            checks.append(KeyCheck(entry.key, entry.value, None, entry.higher_is_better, tolerance, MISSING))
            continue
        new = current.pop(entry.key).value
        status = SKIPPED if tolerance is None else judge(entry.value, new, entry.higher_is_better, tolerance)
        checks.append(KeyCheck(entry.key, entry.value, new, entry.higher_is_better, tolerance, status))
    for entry in current.values():
        if entry.value is not None:
            checks.append(KeyCheck(entry.key, None, entry.value, entry.higher_is_better, None, NEW))
    notes = _notes(baseline, code or {}) + rank_changes(baseline.ranks, ranks)
    return CheckReport(baseline.suite, checks, notes, baseline.code, code or {}, allow_new,
                       model_changes(baseline, models or {}))


def model_changes(baseline: Baseline, models: Mapping[str, str]) -> list[str]:
    """A model whose checkpoint is not the one the baseline measured: its numbers compare other weights."""
    changes = []
    for label, identity in sorted(models.items()):
        old = baseline.models.get(label)
        if old is not None and old != identity:
            changes.append(f"model {label} is not the one the baseline measured (checkpoint {old[:12]}… -> "
                           f"{identity[:12]}…); re-create the baseline if the new checkpoint is intended")
    return changes


def _notes(baseline: Baseline, code: Mapping[str, Any]) -> list[str]:
    notes = []
    if baseline.code.get("dirty"):
        notes.append("the baseline was computed from a working tree with uncommitted changes")
    if baseline.code.get("commit") and code.get("commit") and baseline.code["commit"] != code["commit"]:
        notes.append(f"baseline commit {str(baseline.code['commit'])[:12]}, this run {str(code['commit'])[:12]}")
    return notes


def check_result(baseline: Baseline, result: RunResult, tolerances: Tolerances | None = None,
                 allow_new: bool = False) -> CheckReport:
    """:func:`compare_to_baseline` for a :class:`~ddr_eval.results.run.RunResult`."""
    models = {s.label: s.identity for s in result.sources}
    return compare_to_baseline(baseline, result.rows, tolerances, models=models, code=result.provenance.get("code"),
                               ranks=board_ranks(result.leaderboard.rows), allow_new=allow_new)


def default_baseline_path(suite) -> Path:
    return suite.output_dir() / BASELINE_FILE
