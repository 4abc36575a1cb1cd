"""What several commands share: option declarations, help texts and the steps every run takes
(trust, overrides, the report directory, the invocation record)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ddr_eval.core.errors import UserError

if TYPE_CHECKING:  # the run result's type, for type checkers: the command imports the pipeline when it runs
    from ddr_eval.results.run import RunResult

TRUST_CODE_HELP = ("UNSAFE: also load TorchScript checkpoints, whose loading runs code the file carries "
                   "(only for files you made yourself)")


def trust_code_option() -> bool:
    """``--trust-code``: the one way to let a TorchScript checkpoint run its code."""
    return typer.Option(False, "--trust-code", help=TRUST_CODE_HELP)


ARCH_HELP = ("architecture: a built-in name (when it cannot be detected) or your own class, "
             "package.module:ClassName (imported; the current directory is searched too)")
ARCH_KWARGS_HELP = 'constructor arguments of --arch as a JSON object, e.g. \'{"num_feat": 64, "scale": 4}\''
LAYERS_HELP = "layers to read, comma-separated: tap aliases (deep, block3, ...) or module names (body.22)"


def parse_arch_kwargs(text: Optional[str]) -> dict:
    """``--arch-kwargs`` as a dict; anything but a JSON object is one line."""
    if not text:
        return {}
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--arch-kwargs: not valid JSON ({exc.msg} at character {exc.pos}): {text}") from None
    if not isinstance(value, dict):
        raise UserError(f"--arch-kwargs: expected a JSON object ({{\"name\": value, ...}}), got {text}")
    return value


def parse_layers(text: Optional[str]) -> list[str] | None:
    """``--layers a,b`` as a list (``None`` when not given)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("--layers: give at least one layer name (comma-separated)")
    return names


def layers_override(names: list[str] | None) -> list[str]:
    """``--layers`` as a suite override (``layers=[...]``), so the suite as run and hashed reads them."""
    import json

    return [] if names is None else [f"layers={json.dumps(names)}"]


def echo_detections(result: RunResult, only: str | None = None) -> None:
    """One line per model loaded from a checkpoint path (or the model ``only``): what was detected
    and which modules are read."""
    from ddr_eval.pipeline.models import detection_line

    for label, info in (result.provenance.get("models") or {}).items():
        if (label == only) if only is not None else info.get("from_path"):
            typer.echo(detection_line(label, info))


def device_option() -> Optional[str]:
    """``--device``: where the networks run."""
    return typer.Option(None, "--device", help="where to run: cpu, cuda, cuda:1, mps or auto (a runtime setting: "
                        "the suite's hash, and so its baseline, stay the same)")


def batch_size_option() -> Optional[int]:
    """``--batch-size``: patches per forward pass."""
    return typer.Option(None, "--batch-size", min=1, help="patches per forward pass (a runtime setting)")


def seed_option() -> Optional[int]:
    """``--seed``: replaces the suite's seed."""
    return typer.Option(None, "--seed", help="the suite's seed (patches, noise, t-SNE, bootstrap): changes numbers")


def limit_option() -> Optional[int]:
    """``--limit``: a seeded subset of patches per degradation set."""
    return typer.Option(None, "--limit", min=1, help="a quick look: at most N patches per degradation set "
                        "(seeded subset; recorded and flagged in the report, changes the suite's hash)")


def set_option() -> Optional[list[str]]:
    """``--set``: repeatable ``dotted.key=VALUE`` overrides of suite fields."""
    return typer.Option(None, "--set", help="override a suite field: dotted.key=VALUE, VALUE read as YAML "
                        "(data.patch_size=32, metrics.0.projection=pca50); repeatable")


def suite_overrides(seed, limit, device, batch_size, sets):
    """The command line's changes to a suite, as the loader applies and the report records them."""
    from ddr_eval.config.overrides import Overrides

    return Overrides(tuple(sets or ()), seed, limit, device, batch_size)


ARGV: list[str] = []  # this invocation's arguments, recorded in results.json


def invocation(overrides) -> dict:
    """What results.json records of how it was made: the command line and the suite overrides."""
    import shlex

    return {"command": shlex.join(["ddr-eval", *ARGV]), "overrides": overrides.record()}


def timestamp_option() -> bool:
    """``--timestamp``: a new report directory per run, with ``latest`` pointing at it."""
    return typer.Option(False, "--timestamp", help="keep every run: write the report into <out>/<UTC time>/ and "
                        "point <out>/latest at it")


def plugin_option() -> Optional[list[str]]:
    """``--plugin MODULE``: import a module whose decorators register metrics or findings."""
    return typer.Option(None, "--plugin", metavar="MODULE", help="import MODULE first (repeatable): its "
                        "@register_metric / @register_finding classes become suite keys")


def load_plugins(modules: Optional[list[str]]) -> None:
    """Import the ``--plugin`` modules, before the suite is read (it may name what they register)."""
    if modules:
        from ddr_eval.core.plugins import import_plugins

        import_plugins(modules)


def apply_trust(trust_code: bool) -> None:
    """Allow TorchScript checkpoints for this process when ``--trust-code`` was given."""
    if trust_code:
        from ddr_eval.models.checkpoint import trust_code as allow

        allow()


def report_target(base: Path, timestamp: bool) -> Path:
    """The report directory of this run, checked before any work: ``base`` (new, empty or a ddr-eval
    report), or with ``--timestamp`` a new ``base/<UTC time>/``."""
    from ddr_eval.core.outdir import timestamped
    from ddr_eval.pipeline.runner import check_report_dir

    target = timestamped(base) if timestamp else Path(base)
    check_report_dir(target)
    return target


def update_latest(out_dir: Path, timestamp: bool) -> None:
    """With ``--timestamp``, point ``<out>/latest`` at the report just written."""
    if timestamp:
        from ddr_eval.core.outdir import point_latest

        point_latest(out_dir)
