"""`ddr-eval compare`, `check` and `baseline`: a model or a run measured against others."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddr_eval.cli.options import (
    ARCH_HELP,
    ARCH_KWARGS_HELP,
    LAYERS_HELP,
    apply_trust,
    batch_size_option,
    device_option,
    echo_detections,
    invocation,
    limit_option,
    parse_arch_kwargs,
    parse_layers,
    report_target,
    seed_option,
    set_option,
    suite_overrides,
    timestamp_option,
    trust_code_option,
    update_latest,
)


def compare(
    model: Path = typer.Option(..., "--model", help="checkpoint of the model to rank"),
    arch: Optional[str] = typer.Option(None, "--arch", help=ARCH_HELP),
    arch_kwargs: Optional[str] = typer.Option(None, "--arch-kwargs", help=ARCH_KWARGS_HELP),
    layers: Optional[str] = typer.Option(None, "--layers", help=LAYERS_HELP + " of your model (the suite's "
                                         "models keep the suite's layers)"),
    suite: Optional[Path] = typer.Option(None, "--suite", help="suite YAML to rank it with (default: the shipped "
                                         "generalization suite of the model's scale)"),
    name: Optional[str] = typer.Option(None, "--name", help="the model's name in reports (default: file stem)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report directory (default: reports/<suite>/compare-<name>)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute every feature, the zoo's too"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    trust_code: bool = trust_code_option(),
    timestamp: bool = timestamp_option(),
    device: Optional[str] = device_option(),
    batch_size: Optional[int] = batch_size_option(),
    seed: Optional[int] = seed_option(),
    limit: Optional[int] = limit_option(),
    set_: Optional[list[str]] = set_option(),
) -> None:
    """Rank one model against a suite's models; print its rank and deltas to its neighbours."""
    apply_trust(trust_code)
    from ddr_eval.workflows.compare import compare_model

    overrides = suite_overrides(seed, limit, device, batch_size, set_)
    outcome = compare_model(model, suite, arch=arch, name=name, out_dir=out, use_cache=not no_cache,
                            progress=not quiet, arch_kwargs=parse_arch_kwargs(arch_kwargs), layers=parse_layers(layers),
                            timestamp=timestamp, overrides=overrides, record=invocation(overrides))
    update_latest(outcome.out_dir, timestamp)
    cache = outcome.result.provenance["cache"]
    echo_detections(outcome.result, only=outcome.comparison.model)
    typer.echo(outcome.comparison.text())
    typer.echo(f"\ncache {cache['hits']} hits / {cache['misses']} misses -> {outcome.out_dir}/report.html")


def check(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="baseline JSON (default: reports/<suite>/baseline.json)"),
    rtol: Optional[list[str]] = typer.Option(None, "--rtol", help="relative tolerance: NUMBER for every metric or "
                                             "METRIC=NUMBER for one (type or full name); repeatable"),
    atol: Optional[list[str]] = typer.Option(None, "--atol", help="absolute tolerance, same forms as --rtol"),
    junit: Optional[Path] = typer.Option(None, "--junit", help="also write a JUnit XML report here"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the run's report here"),
    cache: bool = typer.Option(False, "--cache", help="reuse cached features and metric results (default: recompute "
                               "them, so a change in feature code cannot hide behind the cache)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    trust_code: bool = trust_code_option(),
    device: Optional[str] = device_option(),
    batch_size: Optional[int] = batch_size_option(),
    seed: Optional[int] = seed_option(),
    limit: Optional[int] = limit_option(),
    set_: Optional[list[str]] = set_option(),
    allow_new: bool = typer.Option(False, "--allow-new", help="let values the baseline does not hold pass "
                                   "(default: they fail, so an emptied or edited baseline cannot pass)"),
) -> None:
    """Re-run a suite against its baseline: exit 0 within tolerance, 1 on a regression, 2 on bad input."""
    apply_trust(trust_code)
    from ddr_eval.pipeline.runner import run_suite
    from ddr_eval.workflows.regression import Baseline, Tolerances, check_result, default_baseline_path
    from ddr_eval.config.loader import load_suite

    overrides = suite_overrides(seed, limit, device, batch_size, set_)
    loaded = load_suite(suite, overrides)
    if out:
        report_target(out, False)
    frozen = Baseline.load(baseline or default_baseline_path(loaded.suite))
    frozen.require_suite(loaded.suite, str(suite))
    tolerances = Tolerances.parse(rtol or (), atol or ())
    tolerances.check_names(frozen.entries)
    result = run_suite(loaded, use_cache=cache, progress=not quiet)
    report = check_result(frozen, result, tolerances, allow_new=allow_new)
    if junit:
        report.write_junit(junit)
    if out:  # the report `run` writes, with the findings of the suites it includes
        from ddr_eval.api import Results

        result.provenance.update(invocation(overrides))
        Results(result, use_cache=cache, progress=not quiet).write(out)
    typer.echo(report.text())
    raise typer.Exit(report.exit_code)


def baseline_command(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", help="baseline file (default: reports/<suite>/baseline.json)"),
    from_results: Optional[Path] = typer.Option(None, "--from-results", help="freeze an existing results.json of this "
                                                "suite instead of re-running it"),
    cache: bool = typer.Option(False, "--cache", help="reuse cached features and metric results (default: recompute "
                               "them)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    trust_code: bool = trust_code_option(),
) -> None:
    """Run a suite and freeze its numbers as the baseline that `ddr-eval check` compares against."""
    apply_trust(trust_code)
    from ddr_eval.pipeline.runner import run_suite
    from ddr_eval.workflows.regression import Baseline, default_baseline_path
    from ddr_eval.config.loader import load_suite

    loaded = load_suite(suite)
    if from_results:
        frozen = Baseline.from_results_file(from_results)
        frozen.require_suite(loaded.suite, str(from_results))
    else:
        frozen = Baseline.from_result(run_suite(loaded, use_cache=cache, progress=not quiet))
    path = frozen.write(out or default_baseline_path(loaded.suite))
    if out is None:  # reports/<suite>/ holds the suite's report too: mark it as ddr-eval's
        from ddr_eval.core.outdir import mark_report_dir

        mark_report_dir(path.parent)
    commit = frozen.code.get("commit", "unknown")
    typer.echo(f"wrote {path}: {len(frozen.entries)} values of suite {frozen.suite} "
               f"(sha256 {frozen.suite_sha256[:12]}, commit {str(commit)[:12]})")
    if frozen.code.get("dirty"):
        typer.echo("ddr-eval: warning: computed from uncommitted changes; commit first for a baseline others can "
                   "reproduce", err=True)
