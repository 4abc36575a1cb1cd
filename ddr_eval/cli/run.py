"""`ddr-eval run`: a suite, or its robustness study, into a report, and the summary it prints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ddr_eval.cli.options import (
    LAYERS_HELP,
    apply_trust,
    batch_size_option,
    device_option,
    echo_detections,
    invocation,
    layers_override,
    limit_option,
    load_plugins,
    parse_layers,
    plugin_option,
    report_target,
    seed_option,
    set_option,
    suite_overrides,
    timestamp_option,
    trust_code_option,
    update_latest,
)

if TYPE_CHECKING:  # the run result's type, for type checkers: the command imports the pipeline when it runs
    from ddr_eval.results.run import RunResult


def run(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", help="report directory (default: reports/<suite name>)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute every feature and metric result"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or summary"),
    executor: str = typer.Option("local", "--executor", help="where cells run: local (this process) or ray"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address, e.g. ray://head:10001 or "
                                          "auto (default: $RAY_ADDRESS, else a new local Ray instance)"),
    layers: Optional[str] = typer.Option(None, "--layers", help=LAYERS_HELP + "; replaces the suite's `layers:` "
                                         "(a model entry's own `layers:` still wins)"),
    trust_code: bool = trust_code_option(),
    timestamp: bool = timestamp_option(),
    device: Optional[str] = device_option(),
    batch_size: Optional[int] = batch_size_option(),
    seed: Optional[int] = seed_option(),
    limit: Optional[int] = limit_option(),
    set_: Optional[list[str]] = set_option(),
    plugin: Optional[list[str]] = plugin_option(),
) -> None:
    """Run a suite and write its report (leaderboard.md, results.csv, results.json, plots)."""
    apply_trust(trust_code)
    load_plugins(plugin)
    from ddr_eval.api import evaluate
    from ddr_eval.pipeline.executors import make_executor
    from ddr_eval.config.loader import load_suite

    wanted_layers = parse_layers(layers)
    cell_executor = make_executor(executor, address=address, progress=not quiet)  # a missing extra fails first
    overrides = suite_overrides(seed, limit, device, batch_size, [*(set_ or ()), *layers_override(wanted_layers)])
    loaded = load_suite(suite, overrides)
    target = report_target(out or loaded.suite.output_dir(), timestamp)
    if not quiet:
        _echo_changes(loaded, overrides)
    if loaded.findings is not None and loaded.findings.robustness is not None:
        _run_robustness(loaded, target, not no_cache, quiet, cell_executor, invocation(overrides))
        update_latest(target, timestamp)
        return
    results = evaluate(loaded, use_cache=not no_cache, progress=not quiet, executor=cell_executor)
    results.run.provenance.update(invocation(overrides))
    out_dir = results.write(target)
    update_latest(out_dir, timestamp)
    if not quiet:
        echo_detections(results.run)
        _print_summary(results.run, out_dir)
        _echo_data_notices(results.run)


def _echo_data_notices(result: RunResult) -> None:
    """What changed what the user asked for (split, small folder, --limit, fallbacks), one line each."""
    from ddr_eval.results.console import data_notices

    for line in data_notices(result.provenance, [row.to_dict() for row in result.rows]):
        typer.echo(f"ddr-eval: {line}", err=True)


def _echo_changes(loaded, overrides) -> None:
    """One line per thing the command line changed from the suite file."""
    for line in overrides.record():
        typer.echo(f"ddr-eval: override {line}", err=True)
    if loaded.suite.data.limit_patches is not None:
        typer.echo(f"ddr-eval: --limit: at most {loaded.suite.data.limit_patches} patches per degradation set; a "
                   "quick look, not comparable with a full run", err=True)


def _run_robustness(loaded, out_dir: Path, use_cache: bool, quiet: bool, cell_executor,
                    record: dict | None = None) -> None:
    """A suite with ``findings.robustness``: one run per seed (and the sample-size runs), one report."""
    from ddr_eval.api import evaluate
    from ddr_eval.report import write_report
    from ddr_eval.workflows.robustness import (
        cache_state,
        robustness_files,
        robustness_findings,
        robustness_sections,
        run_robustness,
    )

    def one(seeded) -> RunResult:
        return evaluate(seeded, use_cache=use_cache, progress=not quiet, executor=cell_executor).run

    robust = run_robustness(loaded, one, progress=(lambda _: None) if quiet else typer.echo)
    findings = robustness_findings(robust)
    files = robustness_files(robust, findings)
    extra = {"findings.md": files["robustness.md"], "robustness.json": files["robustness.json"]}
    robust.runs[0].provenance.update(record or {})
    write_report(robust.runs[0], out_dir, extra_files=extra, sections=robustness_sections(robust, findings), findings=[])
    if not quiet:
        for finding in findings:
            typer.echo(f"{finding.title}: {finding.verdict}: {finding.summary}")
        typer.echo(f"\n{loaded.suite.name}: {robust.seconds:.1f} s over seeds {list(robust.spec.seeds)}, "
                   f"{cache_state(robust.cache)} -> {out_dir}/findings.md")


def _print_summary(result: RunResult, out_dir: Path) -> None:
    """The board within the terminal's width, the best model per ranked metric, the report's path."""
    import shutil

    from ddr_eval.results.console import board_text

    typer.echo(board_text(result.leaderboard, shutil.get_terminal_size((120, 24)).columns))
    cache, results = result.provenance["cache"], result.provenance["results_cache"]
    report = out_dir / ("report.html" if result.suite.outputs.html else "leaderboard.md")
    typer.echo(f"\n{result.suite.name}: {result.timings['total']:.1f} s, feature cache {cache['hits']} hits / "
               f"{cache['misses']} misses, metric results {results['hits']} cached / {results['misses']} computed")
    typer.echo(f"report: {report}")
