"""`ddr-eval zoo`: list the model zoo, retrain and re-measure its entries, fit its probes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddr_eval.cli.options import (
    apply_trust,
    trust_code_option,
)
from ddr_eval.core.errors import UserError


zoo_app = typer.Typer(no_args_is_help=True, help="The model zoo: list entries, retrain them from recipes.")


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
    trust_code: bool = trust_code_option(),
) -> None:
    """Re-measure held-out PSNR/SSIM (or accuracy) of trained entries and update zoo.yaml."""
    apply_trust(trust_code)
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

    from ddr_eval.workflows.identify import train_probe

    meta = train_probe(name)
    typer.echo(tabulate(meta["candidates"], headers="keys", tablefmt="simple"))
    probe = meta["classifier"] + (f" C {meta['C']:g}" if meta["C"] is not None else "")
    typer.echo(f"{name}: ships {meta['model']} / {', '.join(meta['layers'])} / {meta['pooling']} / {probe}: "
               f"cross-validated {meta['cv_accuracy']:.3f} on the training split, {meta['test_accuracy']:.3f} on the "
               f"test split (chance {meta['chance']:.3f})")
