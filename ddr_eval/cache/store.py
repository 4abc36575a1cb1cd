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
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ddr_eval import __version__
from ddr_eval.core.atomic import atomic_write, remove_orphan_temps, remove_path
from ddr_eval.core.errors import UserError
from ddr_eval.features.extract import FeatureBatch

log = logging.getLogger("ddr_eval.cache")

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


# -- entries are checked on read -----------------------------------------------------------------

ENTRY_RECORD = "__entry__"
"""The member of every entry that says what it is: its kind and every array's shape and dtype.
Reading an entry compares the arrays' headers with it (and zip's CRC-32 checks their bytes as
they are read), so a damaged, truncated, rewritten or foreign file is a miss, never a number."""


class DamagedEntryError(Exception):
    """A cache entry that is not what its record (or the caller) says it should be."""


def entry_record(kind: str, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The :data:`ENTRY_RECORD` member for ``arrays`` of a store of ``kind``."""
    shapes = {name: [list(np.shape(a)), np.asarray(a).dtype.str] for name, a in arrays.items()}
    return np.asarray(json.dumps({"kind": kind, "arrays": shapes}, sort_keys=True))


def _member_headers(data) -> dict[str, list]:
    """Shape and dtype of every array in an open ``.npz``, from the .npy headers only (a few
    hundred bytes each, however large the arrays)."""
    headers = {}
    for name in data.files:
        with data.zip.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise DamagedEntryError(f"unsupported .npy version {version} for {name}")
        headers[name] = [list(shape), dtype.str]
    return headers


def verify_entry(data, kind: str, rows: int | None = None) -> None:
    """Raise :class:`DamagedEntryError` unless the open entry ``data`` is a whole entry of
    ``kind`` (every array as recorded) whose arrays all have ``rows`` rows, when given."""
    if ENTRY_RECORD not in data.files:
        raise DamagedEntryError("no entry record (written by another program or an older version)")
    record = json.loads(str(data[ENTRY_RECORD]))
    if not isinstance(record, dict) or record.get("kind") != kind:
        kind_found = record.get("kind") if isinstance(record, dict) else None
        raise DamagedEntryError(f"a {kind_found} entry, not a {kind} entry")
    headers = _member_headers(data)
    headers.pop(ENTRY_RECORD)
    if headers != record.get("arrays"):
        raise DamagedEntryError("its arrays differ from its record (truncated or rewritten)")
    if rows is not None:
        short = next((name for name, (shape, _) in headers.items() if not shape or shape[0] != rows), None)
        if short is not None:
            raise DamagedEntryError(f"{short} has shape {headers[short][0]}, expected {rows} rows")


# -- the size bound -----------------------------------------------------------------------------

CACHE_MAX_ENV = "DDR_EVAL_CACHE_MAX"
DEFAULT_CACHE_MAX = 5 * 10**9
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def cache_max_bytes() -> int | None:
    """``$DDR_EVAL_CACHE_MAX`` (``5GB``, ``800MiB``, a byte count; ``0`` or ``none``: unbounded),
    default 5 GB."""
    text = os.environ.get(CACHE_MAX_ENV, "").strip().lower()
    if not text:
        return DEFAULT_CACHE_MAX
    if text in ("0", "none", "off", "unbounded"):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-z]*)", text)
    if match is None or match.group(2) not in _UNITS:
        raise UserError(f"${CACHE_MAX_ENV}: {text!r} is not a size (e.g. 5GB, 800MiB, 1000000; 0 for no bound)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def cache_entries(root: Path) -> list[tuple[Path, os.stat_result]]:
    """Every entry file under ``root`` with its stat (entries vanish under concurrent eviction)."""
    entries = []
    for path in root.rglob("*.npz") if root.is_dir() else ():
        try:
            entries.append((path, path.stat()))
        except OSError:
            pass
    return entries


class CacheBound:
    """Keeps a cache directory under ``max_bytes``: after writes, the least recently used entries
    (by modification time; a read touches its entry) are removed until the rest fit.

    The directory is listed once per process (which also removes the orphaned temporary files
    of killed runs); later writes add their sizes to that count, so a write costs a listing only
    when the bound is crossed. One object per directory and process: every store of a run
    (features, metric results, inputs) shares its cache directory's bound.
    """

    _by_root: dict[str, "CacheBound"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, root: Path, max_bytes: int | None):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._size: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, root: Path | str) -> "CacheBound":
        """The bound of directory ``root`` (shared within the process), with the current limit."""
        key = os.path.abspath(root)
        with cls._registry_lock:
            bound = cls._by_root.get(key)
            if bound is None:
                bound = cls._by_root[key] = cls(Path(root), cache_max_bytes())
            else:
                bound.max_bytes = cache_max_bytes()
            return bound

    def start(self) -> None:
        """Count the directory and remove orphaned temporary files, once per process."""
        with self._lock:
            if self._size is None:
                remove_orphan_temps(self.root)
                self._size = sum(stat.st_size for _, stat in cache_entries(self.root))

    def added(self, nbytes: int) -> None:
        self.start()
        with self._lock:
            self._size += nbytes
            over = self.max_bytes is not None and self._size > self.max_bytes
        if over:
            self.evict()

    def evict(self) -> int:
        """Remove least recently used entries until the directory fits; returns how many."""
        with self._lock:
            entries = sorted(cache_entries(self.root), key=lambda entry: entry[1].st_mtime)
            total = sum(stat.st_size for _, stat in entries)
            removed = 0
            for path, stat in entries:
                if self.max_bytes is None or total <= self.max_bytes:
                    break
                try:
                    path.unlink()
                except OSError:
                    continue
                total -= stat.st_size
                removed += 1
            self._size = total
        if removed:
            log.info("%s: removed %d least recently used cache entries (bound %s bytes, $%s)", self.root, removed,
                     self.max_bytes, CACHE_MAX_ENV)
        return removed


class LazyNpzArrays(Mapping):
    """The feature arrays of one cache entry, each read from disk the first time it is used.

    A warm run whose metric results are cached too never reads its (possibly large, e.g.
    flattened) feature maps at all. An array that fails to read then (zip's CRC-32 catches
    flipped bytes as they are read) makes the entry a miss after all: ``on_damaged`` removes
    it and ``recompute`` makes the arrays again; without ``recompute`` the failure is a
    one-line :class:`~ddr_eval.core.errors.UserError` (the next run recomputes the removed entry).
    """

    def __init__(self, path: Path, names: list[str], recompute: Callable[[], Mapping[str, np.ndarray]] | None = None,
                 on_damaged: Callable[[Path, BaseException], None] | None = None):
        self.path = path
        self._names = list(names)
        self._loaded: dict[str, np.ndarray] = {}
        self._recompute = recompute
        self._on_damaged = on_damaged

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._loaded:
            if name not in self._names:
                raise KeyError(name)
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    self._loaded[name] = data[name]
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001  (a damaged or vanished entry, whatever the library says)
                if self._on_damaged is not None:
                    self._on_damaged(self.path, exc)
                if self._recompute is None:
                    raise UserError(f"feature cache entry {self.path} is damaged ({_reason(exc)}); it was removed, "
                                    "run again to recompute it") from None
                self._loaded.update(self._recompute())
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _reason(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


T = TypeVar("T")
_WRITTEN_BY_THIS_PROCESS: set[str] = set()  # entry paths, for NpzStore.repeats


class NpzStore:
    """A directory of ``<key>.npz`` entries (no pickle, written atomically) with hit/miss counts;
    ``enabled=False`` makes every lookup a miss and every write a no-op.

    Nothing read from the directory is trusted: an entry that cannot be read, is damaged, is
    not of this store's ``kind`` or has other shapes than its record (or the caller) expects is
    a miss: logged, removed and recomputed by the caller. A write that fails (a full disk, no
    permission) is logged once and the run goes on without writing entries.

    ``repeats`` counts the hits on entries this process wrote itself (two cells with one key, e.g.
    a sample-size run reading the patches a suite run of the same process cached): ``hits -
    repeats`` are the entries an earlier process left, so a process is cold exactly when that is 0.
    ``bound``: the :class:`CacheBound` of the cache directory this store lives in (default:
    its own directory's).
    """

    kind = "entries"

    def __init__(self, root: Path | str, enabled: bool = True, bound: CacheBound | None = None):
        self.root = Path(root)
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.repeats = 0
        self.bound = bound if bound is not None else CacheBound.of(self.root)
        self.write_failed: str | None = None

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def _read(self, key: str, read: Callable[[Any], T], rows: int | None = None) -> T | None:
        """``read(npz)`` of entry ``key``, or ``None`` on a miss; an entry that fails its checks
        (:func:`verify_entry`; ``rows``: the rows every array must have) or ``read`` is removed."""
        path = self._path(key)
        if not self.enabled or not os.path.lexists(path):
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                verify_entry(data, self.kind, rows)
                value = read(data)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001  (the cache is never trusted: any failure is a miss)
            self.discard(path, exc)
            self.misses += 1
            return None
        self.hits += 1
        self.repeats += str(path) in _WRITTEN_BY_THIS_PROCESS
        _touch(path)
        return value

    def discard(self, path: Path, reason: BaseException) -> None:
        """Log and remove a damaged entry (a directory in an entry's place too)."""
        log.warning("ddr-eval: warning: %s cache entry %s is unusable (%s); removed, recomputing", self.kind, path,
                    _reason(reason))
        try:
            remove_path(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("ddr-eval: warning: cannot remove %s (%s)", path, exc.strerror or exc)

    def _write(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        if not self.enabled or self.write_failed:
            return
        path = self._path(key)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            write_npz_atomic(path, {**arrays, ENTRY_RECORD: entry_record(self.kind, arrays)})
            size = path.stat().st_size
        except OSError as exc:
            self.write_failed = f"{exc.strerror or exc}"
            log.warning("ddr-eval: warning: cannot write to the %s cache in %s (%s); continuing without caching",
                        self.kind, self.root, self.write_failed)
            return
        _WRITTEN_BY_THIS_PROCESS.add(str(path))
        self.bound.added(size)


def _touch(path: Path) -> None:
    """Mark an entry as just used (the size bound evicts the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


class FeatureCache(NpzStore):
    """Cell features by cell key (see :func:`cell_key`); the root defaults to :func:`default_cache_dir`.

    Inside :meth:`writing_behind`, ``put`` hands the write to one background thread and returns:
    writing a cold run's entries (flattened maps: tens of MB a cell) then overlaps the next
    forward passes instead of following them. An entry being written is served from memory to a
    ``get`` of the same key, and the block ends only when every write is on disk; the first
    failed write is raised there (a failed *disk* write only stops further writes, see
    :class:`NpzStore`).
    """

    kind = "features"

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

    def get(self, key: str, rows: int | None = None,
            recompute: Callable[[], Mapping[str, np.ndarray]] | None = None) -> FeatureBatch | None:
        """The cell's features, or ``None`` on a miss. ``rows``: the number of patches the cell
        has (an entry with another count is a miss); ``recompute``: makes the feature arrays
        again should the lazily read ones turn out damaged (see :class:`LazyNpzArrays`)."""
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            self.repeats += 1
            return pending[0]
        # reads the zip directory and array headers (a truncated file fails here) and the small uint8 outputs only
        found = self._read(key, lambda data: ([name for name in data.files if name not in (_OUTPUTS, ENTRY_RECORD)],
                                              data[_OUTPUTS] if _OUTPUTS in data.files else None), rows)
        if found is None:
            return None
        names, outputs = found
        return FeatureBatch(features=LazyNpzArrays(self._path(key), names, recompute, self.discard),
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

    def clear(self, older_than_days: float | None = None) -> int:
        """Delete every entry (with ``older_than_days``: those unused for that long); returns how
        many there were."""
        if older_than_days is None:
            count = len(cache_entries(self.root))
            shutil.rmtree(self.root, ignore_errors=True)
            return count
        cutoff = time.time() - older_than_days * 86400
        count = 0
        for path, stat in cache_entries(self.root):
            if stat.st_mtime < cutoff:
                try:
                    path.unlink()
                    count += 1
                except OSError:
                    pass
        return count


def cache_usage(root: Path, subdirs: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    """(entries, bytes) per kind of a cache directory: ``features`` at its top level, and each
    other kind in its subdirectory (``subdirs``: kind -> subdirectory name)."""
    inside = {kind: root / name for kind, name in subdirs.items()}
    usage = {"features": (0, 0), **{kind: (0, 0) for kind in subdirs}}
    for path, stat in cache_entries(root):
        kind = next((k for k, sub in inside.items() if sub in path.parents), "features")
        count, size = usage[kind]
        usage[kind] = (count + 1, size + stat.st_size)
    return usage
