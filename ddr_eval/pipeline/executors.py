"""Who runs a suite's cells: in this process (``local``) or as tasks on a Ray cluster (``ray``).

An executor is a callable ``(cells, cache, batch_size, device, amp_dtype) -> list[FeatureBatch]``
returning one batch per cell, in cell order; ``run_suite`` reduces them the same way whichever
executor produced them, so the metric rows do not depend on where the forward passes ran.

The Ray executor keeps every decision that touches results on the driver: it computes the
cells' cache keys, skips cells the feature cache already holds, and writes each result into the
cache as soon as it arrives. Workers only run forward passes, so they need neither the cache
directory nor the checkpoints on their disks, only ddr-eval and its dependencies installed;
and a run that fails part-way keeps every finished cell for the next one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from ddr_eval.core.errors import UserError
from ddr_eval.cache.store import FeatureCache
from ddr_eval.features.extract import FeatureBatch
from ddr_eval.pipeline.cells import Cell, group_cells, run_cells, store
from ddr_eval.pipeline.progress import CellProgress

EXECUTORS = ("local", "ray")
INSTALL_RAY = "pip install 'ddr-eval[ray]'"
RAY_AUTH_LOGGER = "ray._private.authentication"
# Failures worth another attempt: CUDA/OOM errors (RuntimeError), I/O and memory hiccups.
# A UserError (bad input) fails the same way every time, so it is reported at once.
TRANSIENT_ERRORS = (RuntimeError, OSError, MemoryError)


class Executor(Protocol):
    def __call__(self, cells: list[Cell], cache: FeatureCache, batch_size: int, device: torch.device,
                 amp_dtype: str | None) -> list[FeatureBatch]: ...


class CellFailedError(UserError):
    """A cell that kept failing on the cluster; finished cells are already in the feature cache.

    Not bad input, so the CLI exits with 1 rather than 2, still with a one-line message.
    """

    exit_code = 1


class InjectedFailure(RuntimeError):
    """The error an :class:`InjectedFault` raises (a RuntimeError, so it counts as transient)."""


# -- local ------------------------------------------------------------------------------------


class LocalExecutor:
    """Runs cells one after another in this process (the default; no extra dependency)."""

    def __init__(self, progress: bool = False):
        self.progress = bool(progress)

    streams = True  # calls ``on_ready`` as cells finish, so a run can reduce while it extracts

    def __call__(self, cells: list[Cell], cache: FeatureCache, batch_size: int, device, amp_dtype,
                 on_ready: Callable[[int, FeatureBatch], None] | None = None) -> list:
        results: list[FeatureBatch | None] = [None] * len(cells)
        with CellProgress(cells, enabled=self.progress) as progress:
            for group in group_cells(cells):  # the poolings of one model and input set share a forward pass
                misses = cache.misses
                batches = run_cells([cells[i] for i in group], cache, batch_size, device, amp_dtype)
                for index, batch in zip(group, batches):
                    results[index] = batch
                    if on_ready is not None:
                        on_ready(index, batch)
                progress.advance(group, computed=cache.misses > misses or not cache.enabled)
        return results


# -- failure injection (for testing retries) --------------------------------------------------


@dataclass(frozen=True)
class InjectedFault:
    """Makes the first ``attempts`` attempts of every task fail whose cells' names (joined by
    " + ": a task runs a model's cells of one degradation set) contain ``cell``.

    Attempts are counted with marker files in ``state_dir`` (created atomically), so the count
    holds across worker processes and retries on one machine. ``crash=True`` kills the worker
    process instead of raising, the way an out-of-memory kill or a lost node looks to Ray.
    """

    cell: str
    state_dir: str
    attempts: int = 1
    crash: bool = False

    def __post_init__(self) -> None:
        if not self.cell:
            raise UserError("InjectedFault: `cell` must be a non-empty part of a cell name")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise UserError(f"InjectedFault: attempts must be a positive integer, got {self.attempts!r}")

    def before(self, cell_name: str) -> None:
        if self.cell not in cell_name:
            return
        stem = hashlib.sha256(cell_name.encode()).hexdigest()[:16]
        for attempt in range(self.attempts):
            marker = Path(self.state_dir) / f"{stem}.{attempt}"
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            if self.crash:
                os._exit(1)
            raise InjectedFailure(f"injected failure, attempt {attempt + 1} of {cell_name}")


# -- ray --------------------------------------------------------------------------------------


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"ray is not installed: {INSTALL_RAY} (or pip install ray), "
                        "or run with --executor local") from None
    return ray


# The last feature source a worker process deserialised, by object id. Cells are planned model
# by model, so a worker's next cell is usually the same model: it then skips unpickling the
# weights again (0.5 s for a 64 MB RRDBNet, more than a GPU needs for the cell) and finds the
# module already on its device.
_worker_source: dict[str, Any] = {}


def _source_in_worker(boxed_ref: list):
    import ray

    key = boxed_ref[0].hex()
    if key not in _worker_source:
        _worker_source.clear()
        _worker_source[key] = ray.get(boxed_ref[0])
    return _worker_source[key]


def _remote_cells(boxed_source: list, lr: np.ndarray, poolings: tuple[str, ...], outputs: bool, batch_size: int,
                  device: str, amp_dtype: str | None, threads: int, fault: InjectedFault | None,
                  cell_names: tuple[str, ...]) -> dict[str, FeatureBatch]:
    """The body of one Ray task: one forward pass over the LR patches that a model's cells of one
    degradation set share, pooled each way those cells ask for.

    ``boxed_source`` is ``[ObjectRef]``: boxed, Ray passes the reference rather than the value,
    so the worker can reuse the model it already holds.
    """
    if fault is not None:  # attempts are counted per task, i.e. per group of cells
        fault.before(" + ".join(cell_names))
    torch.set_num_threads(threads)
    source = _source_in_worker(boxed_source)
    lr = np.require(lr, requirements="W")  # arrays from the object store are read-only views
    return source.extract_poolings(lr, poolings, batch_size, device, amp_dtype, outputs)


class RayExecutor:
    """Runs cells as Ray tasks, on a local Ray instance or an existing cluster (``address``):
    one task per model and degradation set, whose forward pass serves all of its cells (poolings).

    Each model is put into the object store once (``ray.put`` of its feature source, weights
    included, so workers need no checkpoint files) and each LR array once; a worker keeps the
    last model it loaded, so the cells of one model reuse it instead of unpickling it again.
    A task asks for ``cpus_per_cell`` CPUs and, when the suite's device resolves to CUDA (or
    ``gpus_per_cell`` says so), ``gpus_per_cell`` GPUs (default 1; a fraction packs several cells
    on one GPU). Crashed workers are retried ``max_retries`` times by Ray, and so are transient
    errors (:data:`TRANSIENT_ERRORS`); a cell that still fails raises :class:`CellFailedError`
    naming its model and degradation set, after the other cells have finished and been cached.

    If Ray is not initialised yet, the executor connects with ``ray.init(address)`` and
    disconnects after the cells; ``address=None`` means Ray's own default: ``$RAY_ADDRESS``, else
    a cluster started on this machine with ``ray start``, else a new local instance. An already
    initialised Ray (``ray.init`` called by the caller) is used as is and left running.
    """

    def __init__(self, address: str | None = None, *, cpus_per_cell: float = 1, gpus_per_cell: float | None = None,
                 max_retries: int = 3, progress: bool = False, runtime_env: dict | None = None,
                 fault: InjectedFault | None = None):
        if not _positive_number(cpus_per_cell):
            raise UserError(f"cpus_per_cell must be a positive number, got {cpus_per_cell!r}")
        if gpus_per_cell is not None and not (_positive_number(gpus_per_cell) or gpus_per_cell == 0):
            raise UserError(f"gpus_per_cell must be a number >= 0, got {gpus_per_cell!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise UserError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.ray = _import_ray()
        self.address = address
        self.cpus_per_cell = cpus_per_cell
        self.gpus_per_cell = gpus_per_cell
        self.max_retries = max_retries
        self.progress = bool(progress)
        self.runtime_env = runtime_env
        self.fault = fault

    def __call__(self, cells: list[Cell], cache: FeatureCache, batch_size: int, device, amp_dtype) -> list:
        keys = [cell.key() for cell in cells]
        results: list[FeatureBatch | None] = [cache.get(key, rows=len(cell.dataset.lr)) for key, cell in zip(keys, cells)]
        missing = [index for index, batch in enumerate(results) if batch is None]
        if not missing:  # everything cached: Ray is not even started
            return results
        started = self._connect()
        try:
            self._run(cells, keys, missing, results, cache, batch_size, torch.device(device), amp_dtype)
        finally:
            if started:
                self.ray.shutdown()
        return results

    def placement(self, device: torch.device) -> tuple[float, str]:
        """GPUs a task asks for and the device name it runs on (Ray maps its GPU to ``cuda``)."""
        gpus = self.gpus_per_cell if self.gpus_per_cell is not None else (1 if device.type == "cuda" else 0)
        if gpus > 0:
            return gpus, "cuda"
        return 0, "cpu" if device.type == "cuda" else str(device)

    # -- internals ------------------------------------------------------------------------
    def _connect(self) -> bool:
        if self.ray.is_initialized():
            return False
        # Ray announces at every start that token authentication is on (its secure default), as a
        # WARNING: a notice, not a problem, that would otherwise be the only line a quiet run prints
        logging.getLogger(RAY_AUTH_LOGGER).setLevel(logging.ERROR)
        try:  # the dashboard flag only matters for an instance started here, not for a cluster joined
            self.ray.init(address=self.address, runtime_env=self.runtime_env, include_dashboard=False,
                          logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            raise UserError(f"cannot start or reach Ray at {where}: {_one_line(exc)}") from None
        return True

    def _run(self, cells, keys, missing: list[int], results: list, cache, batch_size, device, amp_dtype) -> None:
        """Run the ``missing`` cells; each result goes into ``results`` and the cache as it arrives."""
        ray = self.ray
        gpus, worker_device = self.placement(device)
        task = ray.remote(_remote_cells).options(
            num_cpus=self.cpus_per_cell, num_gpus=gpus, max_retries=self.max_retries,
            retry_exceptions=list(TRANSIENT_ERRORS))
        threads = max(1, int(self.cpus_per_cell))
        shipped: dict[int, Any] = {}  # id(object) -> ObjectRef, so each model and LR array is put once

        def put(obj):
            if id(obj) not in shipped:
                shipped[id(obj)] = ray.put(obj)
            return shipped[id(obj)]

        pending = {}
        for group in group_cells([cells[i] for i in missing]):  # one task per model and input set
            indices = [missing[i] for i in group]
            first = cells[indices[0]]
            ref = task.remote([put(first.source)], put(first.dataset.lr), tuple(cells[i].pooling for i in indices),
                              any(cells[i].outputs for i in indices), batch_size, worker_device, amp_dtype, threads,
                              self.fault, tuple(cells[i].name for i in indices))
            pending[ref] = indices

        failures: list[tuple[list[Cell], BaseException]] = []
        position = {index: k for k, index in enumerate(missing)}
        with CellProgress([cells[i] for i in missing], enabled=self.progress) as progress:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    indices = pending.pop(ref)
                    try:
                        by_pooling = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failures.append(([cells[i] for i in indices], exc))
                        continue
                    for index in indices:
                        batch = _owned(by_pooling[cells[index].pooling], cells[index].outputs)
                        store(cache, cells[index], keys[index], batch)
                        results[index] = batch
                    progress.advance([position[i] for i in indices])
        if failures:
            raise self._failure(failures, cached=sum(r is not None for r in results) if cache.enabled else 0)

    def _failure(self, failures: list[tuple[list[Cell], BaseException]], cached: int) -> UserError:
        group, exc = failures[0]
        cause = getattr(exc, "cause", None) or exc
        cell = group[0]
        poolings = ", ".join(c.pooling for c in group)
        where = f"model {cell.source.label}, degradation set {cell.dataset.key} ({poolings})"
        more = sum(len(g) for g, _ in failures[1:])
        others = f"; {more} other cell(s) failed too" if more else ""
        kept = f"; {cached} finished cell(s) are in the feature cache" if cached else ""
        if isinstance(cause, UserError):  # bad input: the same on every attempt
            return UserError(f"{where}: {cause}{others}")
        retried = isinstance(cause, TRANSIENT_ERRORS) or not isinstance(exc, self.ray.exceptions.RayTaskError)
        attempts = f" after {self.max_retries + 1} attempts" if retried else ""
        return CellFailedError(f"{where} failed{attempts}: {type(cause).__name__}: {_one_line(cause)}{others}{kept}")


def _owned(batch: FeatureBatch, outputs: bool = True) -> FeatureBatch:
    """A writable copy of a batch read from the object store (its arrays are read-only views),
    with its SR outputs only when the cell asked for them."""
    return FeatureBatch(features={name: np.array(values) for name, values in batch.features.items()},
                        outputs=None if batch.outputs is None or not outputs else np.array(batch.outputs))


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else type(exc).__name__


# -- choosing ---------------------------------------------------------------------------------


def make_executor(name: str = "local", address: str | None = None, *, progress: bool = False,
                  **options) -> LocalExecutor | RayExecutor:
    """The executor called ``name`` (``local`` or ``ray``); ``options`` go to :class:`RayExecutor`."""
    if name == "local":
        if address is not None:
            raise UserError("--address only applies to --executor ray")
        if options:
            raise UserError(f"the local executor takes no options, got {', '.join(sorted(options))}")
        return LocalExecutor(progress=progress)
    if name == "ray":
        return RayExecutor(address, progress=progress, **options)
    raise UserError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")
