"""Distortion identification with a shipped probe: ``ddr-eval identify IMAGE...``.

A probe is a light classifier (logistic regression) on the pooled deep features of one zoo
SR network. Its recipe is a suite file (``model_zoo/probes/NAME.yaml``): the suite's data,
degradation sets (the classes, with ranges of strengths) and single model define the training
data, so probe training reuses the evaluation pipeline unchanged. The fitted probe is saved
as a plain-array ``.npz`` (no pickle) with its backbone, layer and held-out accuracy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddr_eval.data import sample_patches
from ddr_eval.data.images import Image, read_image
from ddr_eval.errors import UserError
from ddr_eval.metrics.identification import DegradationProbe
from ddr_eval.models.zoo import zoo_dir
from ddr_eval.pipeline.inputs import prepare_inputs
from ddr_eval.pipeline.models import FeatureSource, build_sources
from ddr_eval.suite.loader import load_suite


def probe_dir(root: Path | None = None) -> Path:
    return (root or zoo_dir()) / "probes"


def _features(source: FeatureSource, lr: np.ndarray, layer: str, pooling: str) -> np.ndarray:
    return source.extract(lr, pooling, 64, "cpu", None, outputs=False).features[source.layers[layer]]


def train_probe(name: str = "ddr-probe", root: Path | None = None, out: Path | None = None) -> dict:
    """Fit the probe of recipe ``probes/NAME.yaml`` on the train split; score it on the test split."""
    recipe = probe_dir(root) / f"{name}.yaml"
    loaded = load_suite(recipe)
    suite = loaded.suite
    if len(suite.models) != 1:
        raise UserError(f"{recipe}: models: a probe recipe names exactly one backbone")
    inputs = prepare_inputs(loaded, need_train=True)
    source = build_sources(suite.models, suite.layers, loaded.scale, suite.seed)[0]
    layer = next(iter(source.layers))

    def stack(sets):
        x = np.concatenate([_features(source, d.lr, layer, suite.pooling) for d in sets.values()])
        y = np.concatenate([[d.name] * len(d.lr) for d in sets.values()])
        return x, y

    x_train, y_train = stack(inputs.train_sets)
    x_test, y_test = stack(inputs.eval_sets)
    probe = DegradationProbe(classifier="logistic", seed=suite.seed).fit(x_train, y_train)
    accuracy = float((probe.predict(x_test) == y_test).mean())
    meta = {"backbone": suite.models[0].name, "layer": layer, "pooling": suite.pooling,
            "lr_patch": int(suite.data.patch_size // loaded.scale), "classes": list(probe.classes_),
            "test_accuracy": round(accuracy, 4), "chance": round(1 / len(probe.classes_), 4),
            "train_patches": int(len(y_train)), "test_patches": int(len(y_test)), "recipe": recipe.name}
    probe.meta = meta
    out = out or probe_dir(root) / f"{name}.npz"
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
    """Loads a shipped probe and its backbone; predicts the degradation of LR images."""

    def __init__(self, name: str = "ddr-probe", root: Path | None = None, max_patches: int = 64):
        path = probe_dir(root) / f"{name}.npz"
        if not path.exists():
            raise UserError(f"no probe {name!r} at {path}; train it with `ddr-eval zoo train-probe {name}`")
        self.probe = DegradationProbe.load(path)
        meta = self.probe.meta
        loaded = load_suite(probe_dir(root) / f"{meta['recipe']}")
        self.source = build_sources(loaded.suite.models, (meta["layer"],), loaded.scale, loaded.suite.seed)[0]
        self.layer = meta["layer"]
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
        proba = self.probe.predict_proba(_features(self.source, patches, self.layer, self.pooling)).mean(axis=0)
        classes = [str(c) for c in self.probe.classes_]
        best = int(np.argmax(proba))
        return Identification(str(file), classes[best], float(proba[best]),
                              {c: round(float(p), 4) for c, p in zip(classes, proba)})


__all__ = ["Identification", "Identifier", "train_probe"]
