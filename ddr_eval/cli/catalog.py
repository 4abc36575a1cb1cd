"""`ddr-eval metrics` and `ddr-eval suites`: what a suite can name, what ships."""

from __future__ import annotations


import typer


def metrics_command() -> None:
    """List the metric types a suite can name: kind, direction, unit and the inputs each reads."""
    from tabulate import tabulate

    from ddr_eval.metrics import metric_catalog

    rows = metric_catalog()
    typer.echo(tabulate(rows, headers="keys", tablefmt="simple", maxcolwidths=[None, None, None, None, 24, None, 28]))
    typer.echo("ranks: whether it ranks the leaderboard when a suite has no `rank_by:`; inputs: what it reads")


def suites_command() -> None:
    """List the suites this installation ships, one line each (run one with `ddr-eval run PATH`)."""
    from tabulate import tabulate

    from ddr_eval.config.shipped import shipped_suites

    rows = [{**row, "scale": f"x{row['scale']}" if row["scale"] else "?"} for row in shipped_suites()]
    if not rows:
        typer.echo("no shipped suites found (set $DDR_EVAL_SUITES to a folder of suite YAML files)")
        return
    typer.echo(tabulate(rows, headers="keys", tablefmt="simple", maxcolwidths=[None, None, None, 60]))
