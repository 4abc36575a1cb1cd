"""The ``ddr-eval`` command line: the typer ``app``, its commands registered, and ``main``.

Bad input (a suite field, a file, a checkpoint) is reported as one line on stderr with exit
code 2 and no traceback; nothing is written for a run that fails validation.

Each command group lives in its own module (``run``, ``compare``, ``zoo``, ``images``, ``cache``,
``catalog``, ``bench``); what several share is in ``options``. Commands are registered here, in
the order ``ddr-eval --help`` lists them.
"""

from __future__ import annotations

import sys

import typer

from ddr_eval.cli import bench, cache, catalog, compare, images, run, zoo
from ddr_eval.cli.options import ARGV
from ddr_eval.core.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark deep degradation representations (DDR) of super-resolution networks.")
app.command()(run.run)
app.command("metrics")(catalog.metrics_command)
app.command("suites")(catalog.suites_command)
app.command()(images.identify)
app.command()(images.upscale)
app.command()(compare.compare)
app.command()(compare.check)
app.command("baseline")(compare.baseline_command)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(bench.bench)
app.add_typer(zoo.zoo_app, name="zoo")
app.add_typer(cache.cache_app, name="cache")


def _print_version(value: bool) -> None:
    if value:
        import ddr_eval

        typer.echo(f"ddr-eval {ddr_eval.__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """Benchmark deep degradation representations (DDR) of super-resolution networks."""


def _echo_err(message: str) -> None:
    typer.echo(f"ddr-eval: error: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: typer handles usage errors (exit 2); UserError becomes one line and exit 2.

    So do what the machine refuses: memory (numpy's or torch's allocator), a full disk or
    another OS error (naming the file), and input nested too deeply for Python, each as one
    line saying what to change.
    """
    from ddr_eval.core.process import tune_process

    tune_process()  # allocator and OpenMP settings for a CPU run (ddr_eval/core/process.py says why)
    ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv)
    except UserError as exc:
        _echo_err(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _echo_err("interrupted")
        sys.exit(130)
    except (MemoryError, OSError, RecursionError, RuntimeError) as exc:
        message = machine_error_message(exc)
        if message is None:
            raise
        _echo_err(message)
        sys.exit(2)


MEMORY_HINT = ("lower runtime.batch_size or runtime.expected_memory_gib, use fewer or smaller patches "
               "(data.patches_per_image, data.patch_size) or a pooling other than flatten, or free memory")


def machine_error_message(exc: BaseException) -> str | None:
    """One line for an error the machine raised (memory, disk, OS, recursion), or ``None`` for
    an error that is a bug (its traceback is what a report needs)."""
    import errno

    if isinstance(exc, MemoryError):
        return f"out of memory ({' '.join(str(exc).split())[:160] or 'MemoryError'}); {MEMORY_HINT}"
    if isinstance(exc, RuntimeError) and not isinstance(exc, RecursionError):
        text = str(exc)
        if "can't allocate memory" in text or "out of memory" in text.lower():
            return f"out of memory ({' '.join(text.split())[:160]}); {MEMORY_HINT}"
        return None
    if isinstance(exc, RecursionError):
        return "input nested too deeply to process (a suite, checkpoint or JSON file with thousands of levels)"
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    reason = exc.strerror or " ".join(str(exc).split())
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device of{where or ' a file being written'} ({reason}); free space there, or " \
               "write the report elsewhere (--out) and the cache elsewhere ($DDR_EVAL_FEATURE_CACHE)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where} ({reason}); check its permissions or choose another location"
    return f"{type(exc).__name__}:{where}: {reason}"

