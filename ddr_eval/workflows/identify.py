"""Distortion identification with a shipped probe: ``ddr-eval identify IMAGE...``.

A probe is a light classifier (logistic regression) on the pooled deep features of a zoo SR
network. Its recipe is a suite file (``model_zoo/probes/NAME.yaml``): the suite's data and
degradation sets (the classes, with ranges of strengths) define the training data, and its
``identification`` metrics on its models are the *candidate* probes (backbone, layers, pooling,
a grid of regularisation strengths). Training runs that suite, so every candidate is scored by
the same code as the paper's finding 7, and ships the DDR candidate (``findings.identification.
ddr``) with the best cross-validated accuracy on the training split; the test split only
reports how well it does. The fitted probe is saved as a plain-array ``.npz`` (no pickle) with
its backbone, layers, pooling and every candidate's scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddr_eval.api import evaluate
from ddr_eval.data import sample_patches
from ddr_eval.data.images import Image, read_image
from ddr_eval.core.errors import UserError
from ddr_eval.metrics import build_metric
from ddr_eval.metrics.identification import DegradationProbe, IdentificationMetric
from ddr_eval.features import select_device
from ddr_eval.models.zoo import zoo_dir
from ddr_eval.pipeline.build import build_sources, extract_cells, lr_set
from ddr_eval.pipeline.cells import make_cell
from ddr_eval.pipeline.reduce import metric_pooling
from ddr_eval.config.findings_spec import FindingsSpec


def probe_dir(root: Path | None = None) -> Path:
    return (root or zoo_dir()) / "probes"


def _candidates(recipe: Path, loaded, rows: list) -> tuple[list, list]:
    """The recipe run's identification rows, and those on the DDR models a probe may ship on."""
    findings = FindingsSpec.model_validate(loaded.suite.findings or {})
    if findings.identification is None:
        raise UserError(f"{recipe}: findings.identification names the DDR candidates (ddr:) and baselines")
    rows = [r for r in rows if r.type == "identification" and r.value is not None]
    ddr = [r for r in rows if r.model in findings.identification.ddr]
    if not ddr:
        raise UserError(f"{recipe}: no identification result for the DDR candidates {list(findings.identification.ddr)}")
    return rows, ddr


RECIPE_SUFFIXES = (".yaml", ".yml")


def _is_path(name_or_path: str | Path, suffixes: tuple[str, ...]) -> bool:
    """A file argument rather than a shipped name: it has one of ``suffixes``, a folder part, or exists."""
    text = str(name_or_path)
    return Path(text).suffix in suffixes or "/" in text or "\\" in text or Path(text).is_file()


def recipe_path(name_or_path: str | Path, root: Path | None = None) -> Path:
    """``NAME`` -> ``probes/NAME.yaml`` in the zoo; a path (``my/probe.yaml``) is used as it is."""
    path = Path(name_or_path) if _is_path(name_or_path, RECIPE_SUFFIXES) else probe_dir(root) / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in probe_dir(root).glob("*.yaml"))) or "none"
        raise UserError(f"probe recipe {path} does not exist (shipped recipes: {shipped}; or give a recipe YAML path)")
    return path


def load_recipe(recipe: Path):
    """The recipe suite, its models' relative checkpoint ``path:`` s taken from the recipe's folder
    when a file of that name is there (so a recipe and its checkpoint travel together)."""
    from ddr_eval.config.errors import load_yaml_mapping
    from ddr_eval.config.loader import compile_suite

    raw = load_yaml_mapping(recipe)
    models = raw.get("models")
    if isinstance(models, list):
        raw["models"] = [_beside(recipe, m) for m in models]
    return compile_suite(raw, str(recipe), recipe.parent)


def _beside(recipe: Path, model):
    if isinstance(model, dict) and isinstance(model.get("path"), str) and not Path(model["path"]).is_absolute():
        candidate = recipe.parent / model["path"]
        if candidate.is_file():
            return {**model, "path": str(candidate)}
    return model


def train_probe(name: str | Path = "ddr-probe", root: Path | None = None, out: Path | None = None) -> dict:
    """Run recipe ``probes/NAME.yaml`` (or the recipe file ``name``), choose its best DDR candidate
    on the training split, refit it on the whole training split, score it on the test split and
    save it (``NAME.npz`` + ``NAME.json`` beside the recipe, unless ``out``). The recipe's models
    may be zoo names or checkpoint paths."""
    recipe = recipe_path(name, root)
    loaded = load_recipe(recipe)
    suite = loaded.suite
    results = evaluate(loaded, progress=False)
    rows, ddr = _candidates(recipe, loaded, results.run.rows)
    best = max(ddr, key=lambda r: r.extra["cv_accuracy"])
    metric = next(m for m in map(build_metric, suite.metrics) if m.name == best.metric)
    assert isinstance(metric, IdentificationMetric)
    spec = next(m for m in suite.models if m.label == best.model)
    layers, pooling = list(best.extra["layers"]), metric_pooling(metric, suite.pooling)

    def stack(split: str, sets: dict):
        """The chosen candidate's features, from the run that scored it (no second extraction)."""
        x = np.concatenate([np.concatenate([results.features(best.model, layer, set_name, split=split, pooling=pooling)
                                            for layer in layers], axis=1) for set_name in sets])
        y = np.concatenate([[set_name] * len(d.lr) for set_name, d in sets.items()])
        return x, y

    def scored(sets: dict) -> dict:  # the sets the metric was computed on (its `sets:`, else all)
        return {set_name: sets[set_name] for set_name in metric.select_sets(sets)}

    x_train, y_train = stack("train", scored(results.run.inputs.train_sets))
    x_test, y_test = stack(suite.data.eval_split, scored(results.run.inputs.eval_sets))
    probe = DegradationProbe(metric.classifier, metric.k, best.extra.get("C_chosen") or metric.c_grid[0],
                             seed=suite.seed).fit(x_train, y_train)
    accuracy = float((probe.predict(x_test) == y_test).mean())
    candidates = [{"model": r.model, "layer": r.layer, "probe": r.metric, "C": r.extra.get("C_chosen"),
                   "cv_accuracy": round(r.extra["cv_accuracy"], 4), "test_accuracy": round(r.value, 4),
                   "role": "DDR" if r in ddr else "baseline"}
                  for r in sorted(rows, key=lambda r: -r.extra["cv_accuracy"])]
    meta = {"backbone": spec.name or spec.path, "model": best.model, "layers": layers, "pooling": pooling,
            "classifier": probe.classifier, "C": probe.C if probe.classifier == "logistic" else None,
            "lr_patch": int(suite.data.patch_size // loaded.scale), "classes": list(probe.classes_),
            "cv_accuracy": round(best.extra["cv_accuracy"], 4), "cv_folds": best.extra.get("cv_folds"),
            "cv_grouped_by_photograph": best.extra.get("cv_grouped"),
            "test_accuracy": round(accuracy, 4), "chance": round(1 / len(probe.classes_), 4),
            "train_patches": int(len(y_train)), "test_patches": int(len(y_test)), "recipe": recipe.name,
            "candidates": candidates}
    probe.meta = meta
    out = out or recipe.with_suffix(".npz")
    probe.save(out)
    (out.with_suffix(".json")).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


@dataclass(frozen=True)
class Identification:
    image: str
    label: str
    probability: float
    probabilities: dict[str, float]


class Identifier:
    """Loads a probe (a shipped name, or a ``.npz`` file that ``zoo train-probe`` wrote) and its
    backbone; predicts the degradation of LR images. The probe's recipe is read from beside it.

    The backbone runs where and as the recipe's ``runtime`` says (device, batch size, autocast),
    unless ``device`` / ``batch_size`` are given (``ddr-eval identify --device/--batch-size``).
    """

    def __init__(self, name: str | Path = "ddr-probe", root: Path | None = None, max_patches: int = 64, *,
                 device: str | None = None, batch_size: int | None = None):
        path = Path(name) if _is_path(name, (".npz",)) else probe_dir(root) / f"{name}.npz"
        if not path.is_file():
            raise UserError(f"no probe {str(name)!r} at {path}; train it with `ddr-eval zoo train-probe "
                            f"{path.with_suffix('.yaml') if _is_path(name, ('.npz',)) else name}`")
        self.probe = DegradationProbe.load(path)
        meta = self.probe.meta
        recipe = path.parent / f"{meta['recipe']}"
        if not recipe.is_file():
            raise UserError(f"{path}: its recipe {recipe} is missing (a probe is read with its recipe beside it)")
        loaded = load_recipe(recipe)
        spec = next((m for m in loaded.suite.models if m.label == meta["model"]), None)
        if spec is None:
            raise UserError(f"{path}: its model {meta['model']!r} is not in {recipe} any more; retrain the probe")
        self.source = build_sources(loaded, [spec], layers=meta["layers"])[0]
        runtime = loaded.suite.runtime
        self.device = select_device(device or runtime.device)
        self.batch_size = batch_size or runtime.batch_size
        self.amp_dtype = runtime.amp_dtype
        self.layers = list(meta["layers"])
        self.pooling = meta["pooling"]
        self.patch = int(meta["lr_patch"])
        self.max_patches = max_patches

    def identify(self, file: str | Path) -> Identification:
        """Average the probe's class probabilities over grid patches of the image (an LR input)."""
        pixels = read_image(file)
        image = Image(Path(file).name, pixels)
        if min(pixels.shape[:2]) < self.patch:
            raise UserError(f"{file}: image {pixels.shape[1]}x{pixels.shape[0]} is smaller than the probe's "
                            f"{self.patch}x{self.patch} input patch")
        patches = sample_patches([image], self.patch, self.max_patches, seed=0, grid=True).hr
        proba = self.probe.predict_proba(self.features(patches)).mean(axis=0)
        classes = [str(c) for c in self.probe.classes_]
        best = int(np.argmax(proba))
        return Identification(str(file), classes[best], float(proba[best]),
                              {c: round(float(p), 4) for c, p in zip(classes, proba)})


    def features(self, lr: np.ndarray) -> np.ndarray:
        """The probe's input: the backbone's pooled features of ``layers`` (shown names) on LR
        patches, concatenated in order, extracted as a run's cells are (no cache)."""
        cell = make_cell(self.source, lr_set(lr), self.pooling)
        batch = extract_cells([cell], batch_size=self.batch_size, device=self.device,
                              amp_dtype=self.amp_dtype)[cell.feature_key]
        return np.concatenate([batch.features[self.source.layers[layer]] for layer in self.layers], axis=1)


__all__ = ["Identification", "Identifier", "train_probe"]
