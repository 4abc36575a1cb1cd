"""`ddr-eval bench`: runs the benchmark tooling, ``ddr_eval_bench``.

That package sits beside the library and imports it; the library never imports it at module
level, only here, inside the command (the one exception the import contracts allow)."""

from __future__ import annotations

from pathlib import Path

import typer


def bench(
    ctx: typer.Context,
    out: Path = typer.Option(Path("reports/bench"), "--out", help="directory for benchmarks.json and summary.md"),
    gpu: bool = typer.Option(False, "--gpu", help="instead: the CUDA throughput/memory matrix -> gpu.json, gpu.md"),
) -> None:
    """Run the benchmarks in bench/ (pytest-benchmark) and summarise them; extra arguments go to pytest."""
    if gpu:
        from ddr_eval_bench.gpu import cuda_available, run_gpu_bench

        if not cuda_available():
            typer.echo("ddr-eval bench --gpu: no CUDA device on this machine; nothing measured")
            raise typer.Exit(0)
        run_gpu_bench(out)
        typer.echo(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}")
        raise typer.Exit(0)
    from ddr_eval_bench.runner import run_benchmarks

    code, summary = run_benchmarks(out, ctx.args)
    typer.echo(f"wrote {summary} (pytest exit code {code})")
    raise typer.Exit(code)
