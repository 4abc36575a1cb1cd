"""`ddr-eval cache`: where the on-disk feature cache is, how big, and clearing it."""

from __future__ import annotations

from typing import Optional

import typer


cache_app = typer.Typer(no_args_is_help=True, help="The on-disk feature cache.")


@cache_app.command("clear")
def cache_clear(
    older_than: Optional[float] = typer.Option(None, "--older-than", metavar="DAYS", min=0,
                                               help="only entries not used for this many days"),
) -> None:
    """Delete cached features, metric results and inputs (all, or those unused for DAYS days)."""
    from ddr_eval.cache.store import FeatureCache

    removed = FeatureCache().clear(older_than_days=older_than)
    when = f" unused for {older_than:g} days" if older_than is not None else ""
    typer.echo(f"removed {removed} cache entries{when} (features, metric results and inputs)")


@cache_app.command("info")
def cache_info() -> None:
    """Where the cache is, its size per kind (features, results, inputs) and its bound."""
    from tabulate import tabulate

    from ddr_eval.cache.store import CACHE_MAX_ENV, cache_max_bytes, cache_usage, default_cache_dir
    from ddr_eval.pipeline.inputs_cache import INPUTS_SUBDIR
    from ddr_eval.pipeline.runner import RESULTS_SUBDIR

    root = default_cache_dir()
    usage = cache_usage(root, {"results": RESULTS_SUBDIR, "inputs": INPUTS_SUBDIR})
    rows = [[kind, count, f"{size / 1e6:.1f} MB"] for kind, (count, size) in usage.items()]
    rows.append(["total", sum(c for c, _ in usage.values()), f"{sum(s for _, s in usage.values()) / 1e6:.1f} MB"])
    typer.echo(f"cache: {root}")
    typer.echo(tabulate(rows, headers=["kind", "entries", "size"], tablefmt="simple", disable_numparse=True))
    bound = cache_max_bytes()
    typer.echo(f"bound: {'none' if bound is None else f'{bound / 1e9:g} GB'} (${CACHE_MAX_ENV}; least recently used "
               "entries are removed after writes beyond it)")
