"""The ``ddr-eval`` command line.

Bad input (a suite field, a file, a checkpoint) is reported as one line on stderr with exit
code 2 and no traceback; nothing is written for a run that fails validation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ddr_eval.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark deep degradation representations (DDR) of super-resolution networks.")
zoo_app = typer.Typer(no_args_is_help=True, help="The model zoo: list entries, retrain them from recipes.")
cache_app = typer.Typer(no_args_is_help=True, help="The on-disk feature cache.")
app.add_typer(zoo_app, name="zoo")
app.add_typer(cache_app, name="cache")


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


TRUST_CODE_HELP = ("UNSAFE: also load TorchScript checkpoints, whose loading runs code the file carries "
                   "(only for files you made yourself)")


def _trust_code_option() -> bool:
    return typer.Option(False, "--trust-code", help=TRUST_CODE_HELP)


ARCH_HELP = ("architecture: a built-in name (when it cannot be detected) or your own class, "
             "package.module:ClassName (imported; the current directory is searched too)")
ARCH_KWARGS_HELP = 'constructor arguments of --arch as a JSON object, e.g. \'{"num_feat": 64, "scale": 4}\''
LAYERS_HELP = "layers to read, comma-separated: tap aliases (deep, block3, ...) or module names (body.22)"


def _arch_kwargs(text: Optional[str]) -> dict:
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


def _layers(text: Optional[str]) -> list[str] | None:
    """``--layers a,b`` as a list (``None`` when not given)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError("--layers: give at least one layer name (comma-separated)")
    return names


def _layers_override(names: list[str] | None) -> list[str]:
    """``--layers`` as a suite override (``layers=[...]``), so the suite as run and hashed reads them."""
    import json

    return [] if names is None else [f"layers={json.dumps(names)}"]


def _echo_detections(result, only: str | None = None) -> None:
    """One line per model loaded from a checkpoint path (or the model ``only``): what was detected
    and which modules are read."""
    from ddr_eval.pipeline.models import detection_line

    for label, info in (result.provenance.get("models") or {}).items():
        if (label == only) if only is not None else info.get("from_path"):
            typer.echo(detection_line(label, info))
def _device_option() -> Optional[str]:
    return typer.Option(None, "--device", help="where to run: cpu, cuda, cuda:1, mps or auto (a runtime setting: "
                        "the suite's hash, and so its baseline, stay the same)")


def _batch_size_option() -> Optional[int]:
    return typer.Option(None, "--batch-size", min=1, help="patches per forward pass (a runtime setting)")


def _seed_option() -> Optional[int]:
    return typer.Option(None, "--seed", help="the suite's seed (patches, noise, t-SNE, bootstrap): changes numbers")


def _limit_option() -> Optional[int]:
    return typer.Option(None, "--limit", min=1, help="a quick look: at most N patches per degradation set "
                        "(seeded subset; recorded and flagged in the report, changes the suite's hash)")


def _set_option() -> Optional[list[str]]:
    return typer.Option(None, "--set", help="override a suite field: dotted.key=VALUE, VALUE read as YAML "
                        "(data.patch_size=32, metrics.0.projection=pca50); repeatable")


def _overrides(seed, limit, device, batch_size, sets):
    from ddr_eval.suite.overrides import Overrides

    return Overrides(tuple(sets or ()), seed, limit, device, batch_size)


_ARGV: list[str] = []  # this invocation's arguments, recorded in results.json


def _invocation(overrides) -> dict:
    """What results.json records of how it was made: the command line and the suite overrides."""
    import shlex

    return {"command": shlex.join(["ddr-eval", *_ARGV]), "overrides": overrides.record()}


def _timestamp_option() -> bool:
    return typer.Option(False, "--timestamp", help="keep every run: write the report into <out>/<UTC time>/ and "
                        "point <out>/latest at it")


def _apply_trust(trust_code: bool) -> None:
    if trust_code:
        from ddr_eval.models.checkpoint import trust_code as allow

        allow()


@app.command()
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
    trust_code: bool = _trust_code_option(),
    timestamp: bool = _timestamp_option(),
    device: Optional[str] = _device_option(),
    batch_size: Optional[int] = _batch_size_option(),
    seed: Optional[int] = _seed_option(),
    limit: Optional[int] = _limit_option(),
    set_: Optional[list[str]] = _set_option(),
) -> None:
    """Run a suite and write its report (leaderboard.md, results.csv, results.json, plots)."""
    _apply_trust(trust_code)
    from ddr_eval.api import evaluate
    from ddr_eval.pipeline.executors import make_executor
    from ddr_eval.suite.loader import load_suite

    wanted_layers = _layers(layers)
    cell_executor = make_executor(executor, address=address, progress=not quiet)  # a missing extra fails first
    overrides = _overrides(seed, limit, device, batch_size, [*(set_ or ()), *_layers_override(wanted_layers)])
    loaded = load_suite(suite, overrides)
    target = _report_target(out or loaded.suite.output_dir(), timestamp)
    if not quiet:
        _echo_changes(loaded, overrides)
    if loaded.findings is not None and loaded.findings.robustness is not None:
        _run_robustness(loaded, target, not no_cache, quiet, cell_executor, _invocation(overrides))
        _point_latest(target, timestamp)
        return
    results = evaluate(loaded, use_cache=not no_cache, progress=not quiet, executor=cell_executor)
    results.run.provenance.update(_invocation(overrides))
    out_dir = results.write(target)
    _point_latest(out_dir, timestamp)
    if not quiet:
        _echo_detections(results.run)
        _print_summary(results.run, out_dir)
        _echo_data_notices(results.run)


def _echo_data_notices(result) -> None:
    """What changed what the user asked for (split, small folder, --limit, fallbacks), one line each."""
    from ddr_eval.results.console import data_notices

    for line in data_notices(result.provenance, [row.to_dict() for row in result.rows]):
        typer.echo(f"ddr-eval: {line}", err=True)


def _report_target(base: Path, timestamp: bool) -> Path:
    """The report directory of this run, checked before any work: ``base`` (new, empty or a ddr-eval
    report), or with ``--timestamp`` a new ``base/<UTC time>/``."""
    from ddr_eval.outdir import timestamped
    from ddr_eval.pipeline.runner import check_report_dir

    target = timestamped(base) if timestamp else Path(base)
    check_report_dir(target)
    return target


def _point_latest(out_dir: Path, timestamp: bool) -> None:
    if timestamp:
        from ddr_eval.outdir import point_latest

        point_latest(out_dir)


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
    from ddr_eval.robustness import (
        cache_state,
        robustness_files,
        robustness_findings,
        robustness_sections,
        run_robustness,
    )

    def one(seeded):
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


def _print_summary(result, out_dir: Path) -> None:
    """The board within the terminal's width, the best model per ranked metric, the report's path."""
    import shutil

    from ddr_eval.results.console import board_text

    typer.echo(board_text(result.leaderboard, shutil.get_terminal_size((120, 24)).columns))
    cache, results = result.provenance["cache"], result.provenance["results_cache"]
    report = out_dir / ("report.html" if result.suite.outputs.html else "leaderboard.md")
    typer.echo(f"\n{result.suite.name}: {result.timings['total']:.1f} s, feature cache {cache['hits']} hits / "
               f"{cache['misses']} misses, metric results {results['hits']} cached / {results['misses']} computed")
    typer.echo(f"report: {report}")


@app.command("metrics")
def metrics_command() -> None:
    """List the metric types a suite can name: kind, direction, unit and the inputs each reads."""
    from tabulate import tabulate

    from ddr_eval.metrics import metric_catalog

    rows = metric_catalog()
    typer.echo(tabulate(rows, headers="keys", tablefmt="simple", maxcolwidths=[None, None, None, None, 24, None, 28]))
    typer.echo("ranks: whether it ranks the leaderboard when a suite has no `rank_by:`; inputs: what it reads")


@app.command("suites")
def suites_command() -> None:
    """List the suites this installation ships, one line each (run one with `ddr-eval run PATH`)."""
    from tabulate import tabulate

    from ddr_eval.suite.shipped import shipped_suites

    rows = [{**row, "scale": f"x{row['scale']}" if row["scale"] else "?"} for row in shipped_suites()]
    if not rows:
        typer.echo("no shipped suites found (set $DDR_EVAL_SUITES to a folder of suite YAML files)")
        return
    typer.echo(tabulate(rows, headers="keys", tablefmt="simple", maxcolwidths=[None, None, None, 60]))


@zoo_app.command("list")
def zoo_list() -> None:
    """Print the zoo: trained-here entries with held-out PSNR/SSIM next to bicubic, and public ones."""
    from tabulate import tabulate

    from ddr_eval.models.zoo import Zoo

    rows = Zoo.load().table()
    typer.echo(tabulate(rows, headers="keys", tablefmt="simple"))


@zoo_app.command("train")
def zoo_train(
    names: list[str] = typer.Argument(..., help="recipe names (model_zoo/recipes/NAME.yaml), or 'all'"),
    iterations: Optional[int] = typer.Option(None, help="override the recipe's length (for quick checks)"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory (default: model_zoo/checkpoints/NAME)"),
    no_register: bool = typer.Option(False, "--no-register", help="do not update model_zoo/zoo.yaml"),
) -> None:
    """Reproduce a zoo entry from its recipe (seeded, resumable from its last state)."""
    from ddr_eval.training.zoo_train import available_recipes, train_zoo_entry, training_order

    names = available_recipes() if names == ["all"] else names
    if out is not None and len(names) > 1:
        raise UserError("--out takes a single recipe name")
    for name in training_order(names):
        result = train_zoo_entry(name, iterations=iterations, out_dir=out, register=not no_register)
        typer.echo(f"{name}: {result.checkpoint} {result.metrics}")


@zoo_app.command("evaluate")
def zoo_evaluate(
    names: list[str] = typer.Argument(..., help="trained entries to re-measure, or 'all'"),
    series: bool = typer.Option(False, "--series", help="also measure every training snapshot (the fit curve)"),
    trust_code: bool = _trust_code_option(),
) -> None:
    """Re-measure held-out PSNR/SSIM (or accuracy) of trained entries and update zoo.yaml."""
    _apply_trust(trust_code)
    from ddr_eval.models.zoo import Zoo
    from ddr_eval.training.zoo_train import reevaluate_entry, reevaluate_series

    zoo = Zoo.load()
    names = [m.name for m in zoo.models] if names == ["all"] else names
    for name in names:
        typer.echo(f"{name}: {reevaluate_entry(name)}")
        if series and name in zoo and getattr(zoo.get(name), "series", None):
            for point in reevaluate_series(name):
                typer.echo(f"  iter {point['iteration']:>6}: psnr {point['psnr']:.4f}  ssim {point['ssim']:.4f}")


@zoo_app.command("train-probe")
def zoo_train_probe(name: str = typer.Argument("ddr-probe", help="probe recipe: a name (model_zoo/probes/NAME.yaml) "
                                              "or a recipe YAML path; the probe is saved beside it")) -> None:
    """Fit a shipped distortion-identification probe from its recipe: every candidate is scored,
    the DDR candidate with the best training-split cross-validated accuracy ships."""
    from tabulate import tabulate

    from ddr_eval.identify import train_probe

    meta = train_probe(name)
    typer.echo(tabulate(meta["candidates"], headers="keys", tablefmt="simple"))
    probe = meta["classifier"] + (f" C {meta['C']:g}" if meta["C"] is not None else "")
    typer.echo(f"{name}: ships {meta['model']} / {', '.join(meta['layers'])} / {meta['pooling']} / {probe}: "
               f"cross-validated {meta['cv_accuracy']:.3f} on the training split, {meta['test_accuracy']:.3f} on the "
               f"test split (chance {meta['chance']:.3f})")


@app.command()
def identify(
    images: list[Path] = typer.Argument(..., help="LR images whose degradation to identify"),
    probe: str = typer.Option("ddr-probe", "--probe", help="probe name in model_zoo/probes/, or a probe .npz file "
                              "(`zoo train-probe RECIPE.yaml` writes one beside its recipe)"),
    trust_code: bool = _trust_code_option(),
) -> None:
    """Predict the degradation of images from their DDR (class and probability)."""
    _apply_trust(trust_code)
    from tabulate import tabulate

    from ddr_eval.identify import Identifier

    identifier = Identifier(probe)
    rows = []
    for image in images:
        found = identifier.identify(image)
        others = ", ".join(f"{c} {p:.2f}" for c, p in found.probabilities.items() if c != found.label)
        rows.append([str(image), found.label, f"{found.probability:.3f}", others])
    typer.echo(tabulate(rows, headers=["image", "degradation", "probability", "other classes"], tablefmt="simple"))


@app.command()
def upscale(
    input_path: Path = typer.Argument(..., metavar="IN", help="input image"),
    output_path: Path = typer.Argument(..., metavar="OUT", help="output image; its extension picks the format "
                                       "(.png, .jpg/.jpeg, .webp, .tif/.tiff)"),
    model: str = typer.Option(..., "--model", help="zoo name or checkpoint path"),
    arch: Optional[str] = typer.Option(None, "--arch", help=ARCH_HELP),
    arch_kwargs: Optional[str] = typer.Option(None, "--arch-kwargs", help=ARCH_KWARGS_HELP),
    trust_code: bool = _trust_code_option(),
) -> None:
    """Super-resolve one image with a model (uint8 out, rounded like BasicSR's tensor2img; PNG, JPEG, WebP or
    TIFF by the output's extension)."""
    _apply_trust(trust_code)
    from PIL import Image as PILImage

    from ddr_eval.atomic import atomic_write
    from ddr_eval.data.images import read_image
    from ddr_eval.metrics.quality import to_uint8
    from ddr_eval.models.zoo import resolve_model
    from ddr_eval.models.inference import super_resolve_within_memory
    from ddr_eval.pipeline.models import require_finite_weights
    from ddr_eval.pipeline.runner import check_output_dir

    check_output_dir(output_path.parent, "output image folder")
    if output_path.is_dir():
        raise UserError(f"output image {output_path} is a directory")
    kwargs = _arch_kwargs(arch_kwargs)
    if kwargs and not Path(model).expanduser().is_file():
        raise UserError(f"--arch-kwargs builds a checkpoint file's architecture; {model} is not a file "
                        "(a zoo entry records its own)")
    image_format = _image_format(output_path)
    descriptor = resolve_model(model, arch=arch, **kwargs)
    require_finite_weights(descriptor, model)
    if descriptor.purpose != "sr":
        raise UserError(f"model {model} is a {descriptor.purpose} network, not super-resolution")
    pixels = read_image(input_path)
    out = to_uint8(super_resolve_within_memory(descriptor.module, pixels, descriptor.scale))  # tiles if huge
    atomic_write(output_path, lambda tmp: PILImage.fromarray(out).save(tmp, format=image_format, **_SAVE_OPTIONS.get(
        image_format, {})))
    typer.echo(f"{input_path} {pixels.shape[1]}x{pixels.shape[0]} -> {output_path} {out.shape[1]}x{out.shape[0]}")


# Output extension -> Pillow format. Lossy formats are saved at their highest quality: the point of
# `upscale` is to look at what the network made, not at the codec.
_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}


def _image_format(path: Path) -> str:
    """The Pillow format an output path's extension names; any other extension is refused."""
    image_format = _IMAGE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        known = ", ".join(sorted(_IMAGE_FORMATS))
        raise UserError(f"output image {path}: unknown extension {path.suffix or '(none)'!r}; use one of {known}")
    return image_format


@cache_app.command("clear")
def cache_clear(
    older_than: Optional[float] = typer.Option(None, "--older-than", metavar="DAYS", min=0,
                                               help="only entries not used for this many days"),
) -> None:
    """Delete cached features, metric results and inputs (all, or those unused for DAYS days)."""
    from ddr_eval.features.cache import FeatureCache

    removed = FeatureCache().clear(older_than_days=older_than)
    when = f" unused for {older_than:g} days" if older_than is not None else ""
    typer.echo(f"removed {removed} cache entries{when} (features, metric results and inputs)")


@cache_app.command("info")
def cache_info() -> None:
    """Where the cache is, its size per kind (features, results, inputs) and its bound."""
    from tabulate import tabulate

    from ddr_eval.features.cache import CACHE_MAX_ENV, cache_max_bytes, cache_usage, default_cache_dir
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


@app.command()
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
    trust_code: bool = _trust_code_option(),
    timestamp: bool = _timestamp_option(),
    device: Optional[str] = _device_option(),
    batch_size: Optional[int] = _batch_size_option(),
    seed: Optional[int] = _seed_option(),
    limit: Optional[int] = _limit_option(),
    set_: Optional[list[str]] = _set_option(),
) -> None:
    """Rank one model against a suite's models; print its rank and deltas to its neighbours."""
    _apply_trust(trust_code)
    from ddr_eval.compare import compare_model

    overrides = _overrides(seed, limit, device, batch_size, set_)
    outcome = compare_model(model, suite, arch=arch, name=name, out_dir=out, use_cache=not no_cache,
                            progress=not quiet, arch_kwargs=_arch_kwargs(arch_kwargs), layers=_layers(layers),
                            timestamp=timestamp, overrides=overrides, record=_invocation(overrides))
    _point_latest(outcome.out_dir, timestamp)
    cache = outcome.result.provenance["cache"]
    _echo_detections(outcome.result, only=outcome.comparison.model)
    typer.echo(outcome.comparison.text())
    typer.echo(f"\ncache {cache['hits']} hits / {cache['misses']} misses -> {outcome.out_dir}/report.html")


@app.command()
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
    trust_code: bool = _trust_code_option(),
    device: Optional[str] = _device_option(),
    batch_size: Optional[int] = _batch_size_option(),
    seed: Optional[int] = _seed_option(),
    limit: Optional[int] = _limit_option(),
    set_: Optional[list[str]] = _set_option(),
    allow_new: bool = typer.Option(False, "--allow-new", help="let values the baseline does not hold pass "
                                   "(default: they fail, so an emptied or edited baseline cannot pass)"),
) -> None:
    """Re-run a suite against its baseline: exit 0 within tolerance, 1 on a regression, 2 on bad input."""
    _apply_trust(trust_code)
    from ddr_eval.pipeline.runner import run_suite
    from ddr_eval.regression import Baseline, Tolerances, check_result, default_baseline_path
    from ddr_eval.suite.loader import load_suite

    overrides = _overrides(seed, limit, device, batch_size, set_)
    loaded = load_suite(suite, overrides)
    if out:
        _report_target(out, False)
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

        result.provenance.update(_invocation(overrides))
        Results(result, use_cache=cache, progress=not quiet).write(out)
    typer.echo(report.text())
    raise typer.Exit(report.exit_code)


@app.command("baseline")
def baseline_command(
    suite: Path = typer.Argument(..., help="suite YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", help="baseline file (default: reports/<suite>/baseline.json)"),
    from_results: Optional[Path] = typer.Option(None, "--from-results", help="freeze an existing results.json of this "
                                                "suite instead of re-running it"),
    cache: bool = typer.Option(False, "--cache", help="reuse cached features and metric results (default: recompute "
                               "them)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    trust_code: bool = _trust_code_option(),
) -> None:
    """Run a suite and freeze its numbers as the baseline that `ddr-eval check` compares against."""
    _apply_trust(trust_code)
    from ddr_eval.pipeline.runner import run_suite
    from ddr_eval.regression import Baseline, default_baseline_path
    from ddr_eval.suite.loader import load_suite

    loaded = load_suite(suite)
    if from_results:
        frozen = Baseline.from_results_file(from_results)
        frozen.require_suite(loaded.suite, str(from_results))
    else:
        frozen = Baseline.from_result(run_suite(loaded, use_cache=cache, progress=not quiet))
    path = frozen.write(out or default_baseline_path(loaded.suite))
    if out is None:  # reports/<suite>/ holds the suite's report too: mark it as ddr-eval's
        from ddr_eval.outdir import mark_report_dir

        mark_report_dir(path.parent)
    commit = frozen.code.get("commit", "unknown")
    typer.echo(f"wrote {path}: {len(frozen.entries)} values of suite {frozen.suite} "
               f"(sha256 {frozen.suite_sha256[:12]}, commit {str(commit)[:12]})")
    if frozen.code.get("dirty"):
        typer.echo("ddr-eval: warning: computed from uncommitted changes; commit first for a baseline others can "
                   "reproduce", err=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    out: Path = typer.Option(Path("reports/bench"), "--out", help="directory for benchmarks.json and summary.md"),
    gpu: bool = typer.Option(False, "--gpu", help="instead: the CUDA throughput/memory matrix -> gpu.json, gpu.md"),
) -> None:
    """Run the benchmarks in bench/ (pytest-benchmark) and summarise them; extra arguments go to pytest."""
    if gpu:
        from ddr_eval.bench_gpu import cuda_available, run_gpu_bench

        if not cuda_available():
            typer.echo("ddr-eval bench --gpu: no CUDA device on this machine; nothing measured")
            raise typer.Exit(0)
        run_gpu_bench(out)
        typer.echo(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'}")
        raise typer.Exit(0)
    from ddr_eval.bench import run_benchmarks

    code, summary = run_benchmarks(out, ctx.args)
    typer.echo(f"wrote {summary} (pytest exit code {code})")
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: typer handles usage errors (exit 2); UserError becomes one line and exit 2.

    So do what the machine refuses: memory (numpy's or torch's allocator), a full disk or
    another OS error (naming the file), and input nested too deeply for Python, each as one
    line saying what to change.
    """
    from ddr_eval.process import tune_process

    tune_process()  # allocator and OpenMP settings for a CPU run (ddr_eval/process.py says why)
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
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


if __name__ == "__main__":
    main()
