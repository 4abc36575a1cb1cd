"""On-disk feature cache, so a second run of a suite does almost no forward passes.

A cell's key hashes everything its features depend on: the model identity (checkpoint sha256,
or the architecture and seed of an untrained baseline), the module names tapped, the pooling,
the exact LR input bytes (which covers data, patching and degradation spec) and the package
version. Entries are ``.npz`` files (no pickle) written atomically, so an interrupted run
leaves either a whole entry or none, and the next run resumes from what is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ddr_eval import __version__
from ddr_eval.atomic import atomic_write
from ddr_eval.features.extract import FeatureBatch

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ddr-eval" / "features"


def default_cache_dir() -> Path:
    """``$DDR_EVAL_FEATURE_CACHE`` when set (read at each call), else ``~/.cache/ddr-eval/features``."""
    return Path(os.environ.get("DDR_EVAL_FEATURE_CACHE") or DEFAULT_CACHE_DIR)
_OUTPUTS = "__outputs__"


def cell_key(identity: str, modules: list[str], pooling: str, lr: np.ndarray, outputs: bool,
             source_digest: str | None = None) -> str:
    """``source_digest`` (folder sets: the sha256 of the files' bytes) joins the key when given."""
    digest = hashlib.sha256(np.ascontiguousarray(lr).view(np.uint8)).hexdigest()
    spec = {"identity": identity, "modules": modules, "pooling": pooling, "lr": digest, "lr_shape": lr.shape,
            "outputs": outputs, "version": __version__}
    if source_digest is not None:
        spec["files"] = source_digest
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as ``path`` (.npz, no pickle) so that a reader sees a whole file or none."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npz" to the name
            np.savez(handle, **arrays)

    atomic_write(path, write)


T = TypeVar("T")


class LazyNpzArrays(Mapping):
    """The feature arrays of one cache entry, each read from disk the first time it is used.

    A warm run whose metric results are cached too never reads its (possibly large, e.g.
    flattened) feature maps at all.
    """

    def __init__(self, path: Path, names: list[str]):
        self.path = path
        self._names = list(names)
        self._loaded: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._loaded:
            if name not in self._names:
                raise KeyError(name)
            with np.load(self.path, allow_pickle=False) as data:
                self._loaded[name] = data[name]
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


_WRITTEN_BY_THIS_PROCESS: set[str] = set()  # entry paths, for NpzStore.repeats


class NpzStore:
    """A directory of ``<key>.npz`` entries (no pickle, written atomically) with hit/miss counts;
    ``enabled=False`` makes every lookup a miss and every write a no-op.

    ``repeats`` counts the hits on entries this process wrote itself (two cells with one key, e.g.
    a sample-size run reading the patches a suite run of the same process cached): ``hits -
    repeats`` are the entries an earlier process left, so a process is cold exactly when that is 0.
    """

    def __init__(self, root: Path | str, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.repeats = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def _read(self, key: str, read: Callable[[Any], T]) -> T | None:
        """``read(npz)`` of entry ``key``, or ``None`` on a miss; a damaged entry is a miss (and is
        rewritten by the next ``_write``)."""
        path = self._path(key)
        if not self.enabled or not path.exists():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                value = read(data)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            self.misses += 1
            return None
        self.hits += 1
        self.repeats += str(path) in _WRITTEN_BY_THIS_PROCESS
        return value

    def _write(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        if self.enabled:
            write_npz_atomic(self._path(key), arrays)
            _WRITTEN_BY_THIS_PROCESS.add(str(self._path(key)))


class FeatureCache(NpzStore):
    """Cell features by cell key (see :func:`cell_key`); the root defaults to :func:`default_cache_dir`.

    Inside :meth:`writing_behind`, ``put`` hands the write to one background thread and returns:
    writing a cold run's entries (flattened maps: tens of MB a cell) then overlaps the next
    forward passes instead of following them. An entry being written is served from memory to a
    ``get`` of the same key, and the block ends only when every write is on disk; the first
    failed write is raised there.
    """

    def __init__(self, root: Path | str | None = None, enabled: bool = True):
        super().__init__(root if root is not None else default_cache_dir(), enabled)
        self._writer: ThreadPoolExecutor | None = None
        self._pending: dict[str, tuple[FeatureBatch, Future]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def writing_behind(self) -> Iterator[FeatureCache]:
        """Writes go to a background thread until the block ends (then all are on disk)."""
        if not self.enabled or self._writer is not None:
            yield self
            return
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ddr-eval-cache-write")
        try:
            yield self
        finally:
            writer, self._writer = self._writer, None
            writer.shutdown(wait=True)
            with self._lock:
                futures = [future for _, future in self._pending.values()]
                self._pending.clear()
            errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                raise errors[0]

    def get(self, key: str) -> FeatureBatch | None:
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            self.repeats += 1
            return pending[0]
        # reads the zip directory (a truncated file fails here) and the small uint8 outputs only
        found = self._read(key, lambda data: ([name for name in data.files if name != _OUTPUTS],
                                              data[_OUTPUTS] if _OUTPUTS in data.files else None))
        if found is None:
            return None
        names, outputs = found
        return FeatureBatch(features=LazyNpzArrays(self._path(key), names),
                            outputs=None if outputs is None else outputs.astype(np.float32) / 255.0)

    def put(self, key: str, batch: FeatureBatch) -> None:
        if not self.enabled:
            return
        arrays = dict(batch.features)
        if batch.outputs is not None:  # SR outputs are stored as the uint8 images metrics see
            arrays[_OUTPUTS] = (np.clip(batch.outputs, 0, 1) * 255).round().astype(np.uint8)
        if self._writer is None:
            self._write(key, arrays)
            return
        with self._lock:
            future = self._writer.submit(self._write_then_forget, key, arrays)
            self._pending[key] = (batch, future)

    def _write_then_forget(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        self._write(key, arrays)
        with self._lock:
            self._pending.pop(key, None)

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        count = sum(1 for _ in self.root.rglob("*.npz")) if self.root.exists() else 0
        shutil.rmtree(self.root, ignore_errors=True)
        return count
