"""On-disk cache of a suite's degraded inputs: a warm run does not re-decode and re-degrade.

Decoding the photographs, cutting patches and running every degradation chain is a sizeable
share of a warm run whose features and metric results are all cached. The inputs are a pure
function of the suite's ``data:`` and chain sets, the seed, the scale, the source files and the
code, so one ``.npz`` per (suite inputs, training split or not) holds them. The key hashes:

* the ``data:`` section and every set's chain spec, the seed and the scale;
* the source files by path, size and modification time (embedded photographs and a folder
  ``data.source`` alike): a replaced photograph is a miss;
* :func:`~ddr_eval.pipeline.results_cache.code_fingerprint`, so edited degradation code never
  reads inputs an older version made.

Suites with folder sets (real LR files) are not cached here: their patches are cut from files
whose bytes the feature cache already hashes, and cutting is cheap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ddr_eval.data import PatchSet
from ddr_eval.data.images import EMBEDDED_IMAGES, folder_image_files
from ddr_eval.cache.store import NpzStore
from ddr_eval.pipeline.inputs import DegradedSet, SuiteInputs, prepare_inputs
from ddr_eval.pipeline.results_cache import code_fingerprint
from ddr_eval.core.plugins import outside_code_digest
from ddr_eval.config.loader import LoadedSuite

INPUTS_SUBDIR = "inputs"
_SPLITS = ("eval", "train")


def _source_files(source: str) -> list[Path]:
    """The files ``prepare_inputs`` reads for ``data.source`` (the same listing as ``load_folder``)."""
    if source in ("", "embedded"):
        return [entry.path() for entry in EMBEDDED_IMAGES]
    root = Path(source)
    return folder_image_files(root) if root.is_dir() else []


def inputs_key(loaded: LoadedSuite, need_train: bool) -> str | None:
    """The cache key of ``loaded``'s inputs, or ``None`` when they are not cached (folder sets)."""
    if loaded.folder_sets:
        return None
    suite = loaded.suite
    files = []
    for path in _source_files(suite.data.source):
        try:
            stat = path.stat()
        except OSError:
            return None  # prepare_inputs reports the missing file
        files.append([str(path), stat.st_size, stat.st_mtime_ns])
    spec = {
        "data": suite.data.model_dump(mode="json"),
        "sets": [d.model_dump(mode="json") for d in suite.degradations],
        "seed": suite.seed, "scale": loaded.scale, "train": need_train, "files": files,
        "code": code_fingerprint(),
    }
    plugin_code = sorted({digest for chain in loaded.chains.values() for step in chain.steps
                          if (digest := outside_code_digest(type(step))) is not None})
    if plugin_code:  # a plug-in degradation's own file: an edit must not reuse its old LR patches
        spec["plugin_code"] = plugin_code
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


class InputsCache(NpzStore):
    """Degraded inputs by :func:`inputs_key`, beside the feature cache."""

    kind = "inputs"

    def get(self, key: str) -> SuiteInputs | None:
        return self._read(key, _from_arrays)

    def put(self, key: str, inputs: SuiteInputs) -> None:
        self._write(key, _to_arrays(inputs))


def cached_inputs(loaded: LoadedSuite, need_train: bool, store: InputsCache,
                  before_making: Callable[[], None] | None = None) -> SuiteInputs:
    """:func:`prepare_inputs`, read from ``store`` when an earlier run made the same inputs.

    ``before_making`` runs when the inputs have to be made (a miss), before any image is
    decoded: the memory planner refuses there a suite that would not fit.
    """
    key = inputs_key(loaded, need_train) if store.enabled else None
    found = store.get(key) if key is not None else None
    if found is not None:
        return found
    if before_making is not None:
        before_making()
    inputs = prepare_inputs(loaded, need_train)
    if key is None:
        return inputs
    store.put(key, inputs)
    return inputs


def _to_arrays(inputs: SuiteInputs) -> dict[str, np.ndarray]:
    """Every chain set of a split degrades the same HR patches: they are stored once per split."""
    arrays = {}
    for split, sets in zip(_SPLITS, (inputs.eval_sets, inputs.train_sets)):
        if not sets:
            continue
        patches = next(iter(sets.values())).patches
        arrays.update({f"{split}/hr": patches.hr, f"{split}/image_index": patches.image_index,
                       f"{split}/patch_index": patches.patch_index,
                       f"{split}/image_names": np.array(patches.image_names, dtype=str),
                       f"{split}/sets": np.array(list(sets), dtype=str),
                       f"{split}/split": np.array(next(iter(sets.values())).split)})
        for index, dataset in enumerate(sets.values()):
            arrays[f"{split}/lr/{index}"] = dataset.lr
    return arrays


def _from_arrays(data) -> SuiteInputs:
    splits: dict[str, dict[str, DegradedSet]] = {split: {} for split in _SPLITS}
    for split in _SPLITS:
        if f"{split}/sets" not in data.files:
            continue
        patches = PatchSet(data[f"{split}/hr"], data[f"{split}/image_index"], data[f"{split}/patch_index"],
                           tuple(str(n) for n in data[f"{split}/image_names"]))
        split_name = str(data[f"{split}/split"])
        for index, name in enumerate(str(n) for n in data[f"{split}/sets"]):
            lr = data[f"{split}/lr/{index}"]
            if lr.ndim != 4 or len(lr) != len(patches):  # a rewritten entry: a miss, not a shape error later
                raise ValueError(f"{split}/{name}: {len(lr)} LR patches for {len(patches)} HR patches")
            splits[split][name] = DegradedSet(name, split_name, lr, patches)
    return SuiteInputs(splits["eval"], splits["train"])
