"""On-disk cache of metric results: a warm run of an unchanged suite recomputes nothing.

The feature cache saves the forward passes; this one saves what comes after them (PCA, t-SNE,
bootstraps, probes), which on a default suite costs more than the forward passes do. One entry
holds what one metric produced for one model: its rows, confusion matrices and t-SNE
embeddings. Its key hashes everything those depend on: the metric's spec, the model identity
(checkpoint sha256) and tapped modules, the exact LR inputs, HR targets and content labels of
every set the metric reads, the reference set, the seed, the scale and a fingerprint of the
package's source files (so an edited metric never reads the old one's results, even before
the version number moves).
Metrics that measure this machine now (latency) or read other metrics' rows (psnr_drop)
declare ``cacheable = False`` and always run.

Entries are ``.npz`` files (rows as a JSON string, embeddings as arrays; no pickle) written
atomically, beside the feature cache, so ``--no-cache`` and ``ddr-eval cache clear`` cover both.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ddr_eval import __version__
from ddr_eval.core.plugins import outside_code_digest
from ddr_eval.cache.store import ENTRY_RECORD, NpzStore
from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.results.rows import ResultRow

_META = "__meta__"
_EMBEDDING = "embedding/"


@dataclass
class MetricPart:
    """What one metric produced for one model (a slice of a :class:`~ddr_eval.pipeline.reduce.Reduction`)."""

    rows: list[ResultRow] = field(default_factory=list)
    confusions: list[dict[str, Any]] = field(default_factory=list)
    embeddings: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the package's Python sources (a few milliseconds, once per process)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8)).hexdigest()


class ResultKeys:
    """Cache keys of (metric, model) pairs for one suite run's inputs.

    Set digests are computed once per run, not once per pair.
    """

    def __init__(self, inputs: SuiteInputs, *, reference: str, seed: int, default_pooling: str, scale: int):
        self.context = {"reference": reference, "seed": seed, "default_pooling": default_pooling, "scale": scale,
                        "code": code_fingerprint()}
        self.eval_sets = [self._describe(d) for d in inputs.eval_sets.values()]
        self.train_sets = [self._describe(d) for d in inputs.train_sets.values()]

    @staticmethod
    def _describe(dataset: DegradedSet) -> dict[str, Any]:
        patches = dataset.patches
        return {"set": dataset.key, "lr": _digest(dataset.lr), "hr": None if patches.hr is None else _digest(patches.hr),
                "files": dataset.source_digest, "content": patches.patch_image_names.tolist()}

    def key(self, metric: Any, source: FeatureSource) -> str | None:
        """The pair's key, or ``None`` when the metric must run every time."""
        if not metric.cacheable:
            return None
        spec = {
            **self.context,
            "metric": metric.spec(),
            "model": {"label": source.label, "identity": source.identity, "layers": source.layers},
            "eval": self.eval_sets,
            "train": self.train_sets if "train_split" in metric.needs else [],
        }
        plugin_code = outside_code_digest(type(metric))  # a plug-in metric's own file; None for ddr-eval's
        if plugin_code is not None:
            spec["metric_code"] = plugin_code
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache(NpzStore):
    """Metric parts by :class:`ResultKeys` key."""

    kind = "results"

    def get(self, key: str) -> MetricPart | None:
        found = self._read(key, lambda data: (json.loads(str(data[_META])),
                                              {name: data[name] for name in data.files if name not in (_META, ENTRY_RECORD)}))
        if found is None:
            return None
        meta, arrays = found
        embeddings: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        for index, (model, layer) in enumerate(meta["embeddings"]):
            prefix = f"{_EMBEDDING}{index}/"
            embeddings[(model, layer)] = {n[len(prefix):]: a for n, a in arrays.items() if n.startswith(prefix)}
        return MetricPart([ResultRow.from_dict(r) for r in meta["rows"]], meta["confusions"], embeddings)

    def put(self, key: str, part: MetricPart) -> None:
        if not self.enabled:
            return
        meta = {"rows": [r.to_dict() for r in part.rows], "confusions": part.confusions, "embeddings": list(part.embeddings)}
        arrays = {_META: np.asarray(json.dumps(meta))}
        for index, data in enumerate(part.embeddings.values()):
            arrays.update({f"{_EMBEDDING}{index}/{name}": np.asarray(value) for name, value in data.items()})
        self._write(key, arrays)
