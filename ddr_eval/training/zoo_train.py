"""``ddr-eval zoo train NAME``: reproduce a zoo entry from its recipe and register it.

The checkpoint, its snapshots, the training log, the recipe and the held-out metrics are
written to ``model_zoo/checkpoints/NAME/``; the entry in ``model_zoo/zoo.yaml`` is updated
with the new sha256 and metrics so ``zoo list`` reports what the committed files measure.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

import yaml

from ddr_eval.core.atomic import atomic_write_text
from ddr_eval.core.errors import UserError
from ddr_eval.models.checkpoint import sha256_file
from ddr_eval.models.zoo import zoo_dir
from ddr_eval.training.recipe import Recipe, load_recipe
from ddr_eval.training.trainer import Trainer, TrainResult


def recipe_path(name: str, root: Path | None = None) -> Path:
    return (root or zoo_dir()) / "recipes" / f"{name}.yaml"


def available_recipes(root: Path | None = None) -> list[str]:
    return sorted(p.stem for p in ((root or zoo_dir()) / "recipes").glob("*.yaml"))


def train_zoo_entry(
    name: str,
    root: Path | None = None,
    iterations: int | None = None,
    out_dir: Path | None = None,
    register: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train recipe ``name``; ``iterations`` overrides the length (tests train a few steps)."""
    root = root or zoo_dir()
    recipe = _named_recipe(name, root)
    if iterations is not None:
        snapshots = tuple(s for s in recipe.snapshots if s <= iterations)
        recipe = recipe.model_copy(update={"iterations": iterations, "snapshots": snapshots})
    init = _zoo_checkpoint(recipe, recipe.init_from, root)
    extractor = _zoo_checkpoint(recipe, recipe.extractor_from, root)
    out_dir = Path(out_dir) if out_dir else root / "checkpoints" / name
    result = make_trainer(recipe, out_dir, init_checkpoint=init, progress=progress,
                          extractor_checkpoint=extractor).train()
    if register:
        register_entry(recipe, result, root)
    return result


def make_trainer(recipe: Recipe, out_dir: Path, **kwargs) -> Trainer:
    """The trainer of ``recipe.task`` (CinCGAN's two cycles have their own)."""
    if recipe.task == "cincgan":
        from ddr_eval.training.cincgan import CinCGANTrainer

        return CinCGANTrainer(recipe, out_dir, **kwargs)
    return Trainer(recipe, out_dir, **kwargs)


def training_order(names: list[str], root: Path | None = None) -> list[str]:
    """Recipes ordered so that each runs after the entries it reads (``init_from``, ``extractor_from``)."""
    root = root or zoo_dir()
    recipes = {name: load_recipe(recipe_path(name, root)) for name in names}
    parents = {name: [p for p in (r.init_from, r.extractor_from) if p] for name, r in recipes.items()}
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for parent in parents.get(name, ()):
                if parent in parents:
                    visit(parent)
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def _zoo_checkpoint(recipe: Recipe, name: str | None, root: Path) -> Path | None:
    """The committed checkpoint of zoo entry ``name`` that ``recipe`` reads (None: it reads none)."""
    if name is None:
        return None
    path = root / "checkpoints" / name / "model.safetensors"
    if not path.exists():
        raise UserError(f"recipe {recipe.name} starts from {name!r}: train it first ({path} missing)")
    return path


def reevaluate_entry(name: str, root: Path | None = None) -> dict[str, float]:
    """Re-measure a trained entry's held-out metrics from its committed checkpoint."""
    root = root or zoo_dir()
    recipe = load_recipe(recipe_path(name, root))
    out_dir = root / "checkpoints" / name
    checkpoint = out_dir / "model.safetensors"
    if not checkpoint.exists():
        raise UserError(f"{name} is not trained: {checkpoint} missing")
    trainer = Trainer(recipe, out_dir, init_checkpoint=checkpoint, progress=False)
    metrics_file = out_dir / "metrics.json"
    old = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    metrics = {**trainer.evaluate(), **{k: v for k, v in old.items() if k == "train_seconds"}}
    metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
    _update_entry(root, name, metrics=metrics)
    return metrics


def reevaluate_series(name: str, root: Path | None = None) -> list[dict]:
    """Held-out PSNR/SSIM of every training snapshot of ``name``, written into its zoo.yaml series.

    This is the fit curve beside the DDR-over-training curve: it shows whether a run (the no-GR
    nets in particular) was trained until its PSNR plateaued.
    """
    root = root or zoo_dir()
    recipe = _named_recipe(name, root)
    with _locked(root / "zoo.yaml"):
        data = yaml.safe_load((root / "zoo.yaml").read_text()) or {}
    (entry,) = [e for e in data.get("models") or [] if e["name"] == name] or [None]
    if entry is None or not entry.get("series"):
        raise UserError(f"{name} has no training snapshots in zoo.yaml")
    points = []
    for point in entry["series"]:
        trainer = Trainer(recipe, root / "checkpoints" / name, init_checkpoint=root / point["checkpoint"],
                          progress=False)
        measured = trainer.evaluate()
        points.append({**point, "psnr": measured["psnr"], "ssim": measured["ssim"]})
    _update_entry(root, name, series=points)
    return points


def _named_recipe(name: str, root: Path) -> Recipe:
    path = recipe_path(name, root)
    if not path.exists():
        raise UserError(f"no recipe named {name!r} in {path.parent}; known: {', '.join(available_recipes(root))}")
    return load_recipe(path)


def _update_entry(root: Path, name: str, **fields) -> None:
    """Replace ``fields`` of entry ``name`` in zoo.yaml, under the lock, atomically."""
    with _locked(root / "zoo.yaml"):
        data = yaml.safe_load((root / "zoo.yaml").read_text()) or {}
        for entry in data.get("models") or []:
            if entry["name"] == name:
                entry.update(fields)
        _atomic_yaml(root / "zoo.yaml", data)


def _atomic_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


@contextmanager
def _locked(path: Path):
    """An exclusive lock, so parallel training runs do not overwrite each other's entries."""
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def register_entry(recipe: Recipe, result: TrainResult, root: Path) -> None:
    """Write (or replace) the recipe's entry in zoo.yaml, atomically."""
    zoo_file = root / "zoo.yaml"
    with _locked(zoo_file):
        _write_entry(recipe, result, root, zoo_file)


def _write_entry(recipe: Recipe, result: TrainResult, root: Path, zoo_file: Path) -> None:
    data = yaml.safe_load(zoo_file.read_text()) if zoo_file.exists() else {}
    data = data or {}
    models = [m for m in data.get("models") or [] if m.get("name") != recipe.name]
    rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
    entry = {
        "name": recipe.name,
        "description": recipe.description,
        "arch": recipe.arch,
        "arch_kwargs": dict(recipe.arch_kwargs),
        "scale": recipe.scale if recipe.task != "classification" else 1,
        "purpose": "classification" if recipe.task == "classification" else "sr",
        "checkpoint": rel(result.checkpoint),
        "sha256": sha256_file(result.checkpoint),
        "recipe": rel(recipe_path(recipe.name, root)),
        "metrics": result.metrics,
    }
    if result.snapshots:
        entry["series"] = [
            {"iteration": it, "checkpoint": rel(p), "sha256": sha256_file(p)} for it, p in result.snapshots
        ]
    models.append(entry)
    models.sort(key=lambda m: m["name"])
    data["models"] = models
    _atomic_yaml(zoo_file, data)
