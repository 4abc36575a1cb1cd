"""Watch DDR while a model trains: :class:`DDRMonitor`, called from any PyTorch loop.

The DDR paper's "DDR grows during training" needs the same measurement at many iterations.
A monitor builds its LR inputs once (from a suite, or from arrays you pass) and, every
``every`` iterations, runs the model on them in ``eval()`` mode under ``torch.inference_mode``
through the suite pipeline's own stages (``ddr_eval.pipeline.build``: plan cells, extract them,
reduce), so its numbers are those :func:`ddr_eval.evaluate` gives for the same weights. The model's train/eval flag is restored,
its gradients are never touched, and the global torch and numpy random states are saved and
restored around each call, so a training run with a monitor trains exactly the same weights.

Rows go to ``<log_dir>/ddr_log.csv`` and ``ddr_log.jsonl`` as they are computed (one per model,
layer, metric and set, plus ``iteration`` and ``seconds``); :meth:`DDRMonitor.finish` draws each
summary metric over iterations into ``ddr_over_training.png``. Optional sinks, imported only when
asked for: TensorBoard (``torch.utils.tensorboard``) and a PyTorch Lightning callback; a missing
library is reported as ``unavailable: <reason>``, never a crash of the training run.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ddr_eval.core.errors import UserError
from ddr_eval.results.rows import row_scope

DEFAULT_METRICS = ({"type": "chi", "label": "degradation", "projection": "raw"},)
LOG_COLUMNS = ("iteration", "model", "layer", "metric", "set", "value", "ci_low", "ci_high", "status", "seconds")
CSV_NAME, JSONL_NAME, PLOT_NAME = "ddr_log.csv", "ddr_log.jsonl", "ddr_over_training.png"


class AdapterUnavailableError(UserError, ImportError):
    """An optional integration (TensorBoard, Lightning) whose library is not installed here."""


def _suite_from_sets(sets: Mapping[str, Any], scale: int, metrics: Sequence, seed: int) -> tuple[dict, dict]:
    """A suite (for names, seed, scale, metrics) and its inputs from ``{name: lr}`` or ``{name: (lr, hr)}``."""
    from ddr_eval.data import PatchSet
    from ddr_eval.pipeline.inputs import DegradedSet

    degraded = {}
    for name, value in sets.items():
        lr, hr = value if isinstance(value, tuple) else (value, None)
        lr = np.ascontiguousarray(lr, dtype=np.float32)
        if lr.ndim != 4:
            raise UserError(f"DDRMonitor: set {name!r}: expected an N,h,w,C LR batch, got shape {lr.shape}")
        if hr is None:
            hr = np.zeros((len(lr), lr.shape[1] * scale, lr.shape[2] * scale, lr.shape[3]), np.float32)
        n = len(lr)
        patches = PatchSet(np.asarray(hr, np.float32), np.zeros(n, np.int64), np.arange(n, dtype=np.int64), ("input",))
        degraded[name] = DegradedSet(name, "test", lr, patches)
    side = next(iter(degraded.values())).lr.shape[1]
    raw = {"name": "monitor", "seed": seed, "scale": scale, "data": {"patch_size": side * scale},
           "degradations": [{"name": n, "chain": [{"type": "bicubic"}]} for n in sets],
           "models": [{"name": "monitored"}], "metrics": list(metrics)}
    return raw, degraded


class DDRMonitor:
    """DDR metrics of a model every ``every`` iterations, on fixed LR inputs built once.

    ``sets_or_suite`` is a suite (path, dict, ``Suite``: its images, degradations, seed and, unless
    ``metrics`` is given, its metrics) or a mapping ``{set name: LR batch}`` (N,h,w,3 float32; give
    ``(lr, hr)`` pairs for PSNR/SSIM). ``metrics`` are suite metric entries (``{"type": "chi", ...}``
    or just ``"srga"``); the default is CHI by degradation on standardized features. ``layers``
    are module names or tap aliases (default: the suite's, else ``deep``). ``log_dir`` receives
    ``ddr_log.csv``/``ddr_log.jsonl`` (nothing is written without it).

    In a loop::

        monitor = DDRMonitor("suites/smoke.yaml", every=500, log_dir="runs/ddr", layers=["body.15"])
        for it in range(n_iter):
            ...train step...
            monitor.step(model, it)   # a no-op except every 500 iterations
        monitor.finish()              # ddr_over_training.png
    """

    def __init__(self, sets_or_suite: Any, every: int = 500, metrics: Sequence | None = None, *,
                 layers: Sequence[str] | None = None, name: str = "model", scale: int | None = None,
                 seed: int = 0, log_dir: str | Path | None = None, tensorboard: str | Path | None = None,
                 batch_size: int | None = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UserError(f"DDRMonitor: every must be a positive integer, got {every!r}")
        self.every, self.name, self.batch_size = every, name, batch_size
        self._loaded, self._inputs = self._build(sets_or_suite, metrics, scale, seed, layers)
        self.rows: list[dict[str, Any]] = []
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.sinks: list[Callable[[list[dict], int], None]] = []
        self.status: dict[str, str] = {}
        self._sources: dict[int, Any] = {}
        self.call_seconds: list[float] = []
        if tensorboard is not None:
            self._add_optional("tensorboard", lambda: tensorboard_sink(tensorboard))

    # -- construction -------------------------------------------------------------------
    def _build(self, sets_or_suite, metrics, scale, seed, layers):
        from ddr_eval.pipeline.in_memory import raw_suite
        from ddr_eval.pipeline.build import build_inputs
        from ddr_eval.pipeline.inputs import SuiteInputs
        from ddr_eval.config.loader import compile_suite

        metric_specs = [{"type": m} if isinstance(m, str) else dict(m) for m in metrics] if metrics else None
        if isinstance(sets_or_suite, Mapping) and "degradations" not in sets_or_suite:
            raw, sets = _suite_from_sets(sets_or_suite, scale or 2, metric_specs or DEFAULT_METRICS, seed)
            if layers:
                raw["layers"] = list(layers)
            loaded = compile_suite(raw, "<DDRMonitor sets>")
            needing = [m.name for m in loaded.metrics if "train_split" in m.needs]
            if needing:
                raise UserError(f"DDRMonitor: {needing[0]} needs a train split; pass a suite, not sets")
            return loaded, SuiteInputs(sets, {})
        raw, source = raw_suite(sets_or_suite)
        if metric_specs:
            raw["metrics"] = metric_specs
        if layers:
            raw["layers"] = list(layers)
        raw["models"] = [{"name": "monitored"}]
        loaded = compile_suite(raw, source)
        return loaded, build_inputs(loaded)

    def _add_optional(self, what: str, make: Callable) -> None:
        try:
            self.sinks.append(make())
            self.status[what] = "ok"
        except AdapterUnavailableError as exc:
            self.status[what] = str(exc)
            warnings.warn(f"DDRMonitor: {what} {exc}", stacklevel=3)

    @property
    def suite(self):
        return self._loaded.suite

    @property
    def lr_sets(self) -> dict[str, np.ndarray]:
        """The fixed LR inputs, by degradation set."""
        return {name: d.lr for name, d in self._inputs.eval_sets.items()}

    # -- measuring ----------------------------------------------------------------------
    def _source(self, model: nn.Module):
        """The model's feature source, checked (layers, channels, scale) the first time it is seen."""
        from ddr_eval.pipeline.in_memory import InMemoryModel

        known = self._sources.get(id(model))
        if known is not None and known.descriptor.module is model:
            return known
        lr = next(iter(self._inputs.eval_sets.values())).lr
        wrapped = InMemoryModel(model, self.name)
        source = wrapped.source(self.suite.layers, self._loaded.scale, lr.shape[1:], identity=False)
        self._sources[id(model)] = source
        return source

    def step(self, model: nn.Module, iteration: int, force: bool = False) -> list[dict[str, Any]] | None:
        """Measure ``model`` when ``iteration`` is a multiple of ``every`` (or ``force``); returns the rows."""
        if not force and iteration % self.every:
            return None
        return self.measure(model, iteration)

    def measure(self, model: nn.Module, iteration: int) -> list[dict[str, Any]]:
        """Measure ``model`` now: its rows (each with ``iteration``), logged and passed to every sink."""
        started = time.perf_counter()
        with _isolated_rng():
            rows = self._rows(model)
        seconds = round(time.perf_counter() - started, 4)
        self.call_seconds.append(seconds)
        rows = [{"iteration": int(iteration), **row, "seconds": seconds} for row in rows]
        self.rows += rows
        self._append_logs(rows)
        for sink in self.sinks:
            sink(rows, int(iteration))
        return rows

    def _rows(self, model: nn.Module) -> list[dict[str, Any]]:
        """The pipeline's stages on the fixed inputs (:mod:`ddr_eval.pipeline.build`), no cache:
        the weights change between calls."""
        from ddr_eval.pipeline.in_memory import device_of
        from ddr_eval.pipeline.build import extract_cells, plan_cells, reduce_features

        suite, loaded = self.suite, self._loaded
        source = self._source(model)
        cells = plan_cells([source], self._inputs, loaded.metrics, suite.pooling, reference=suite.reference_set)
        features = extract_cells(cells, batch_size=self.batch_size or suite.runtime.batch_size,
                                 device=device_of(model), amp_dtype=suite.runtime.amp_dtype)
        return [row.to_dict() for row in reduce_features(loaded, [source], self._inputs, features).rows]

    # -- logs, plot, resume ---------------------------------------------------------------
    def _append_logs(self, rows: list[dict[str, Any]]) -> None:
        if self.log_dir is None or not rows:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        csv_path = self.log_dir / CSV_NAME
        new = not csv_path.exists()
        with open(csv_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(rows)
        with open(self.log_dir / JSONL_NAME, "a") as handle:
            handle.writelines(json.dumps({k: row.get(k) for k in LOG_COLUMNS}) + "\n" for row in rows)

    def truncate(self, after_iteration: int) -> None:
        """Drop logged rows past ``after_iteration`` (a training run resumed from that step)."""
        self.rows = [r for r in self.rows if r["iteration"] <= after_iteration]
        if self.log_dir is None or not (self.log_dir / JSONL_NAME).exists():
            return
        kept = [json.loads(line) for line in (self.log_dir / JSONL_NAME).read_text().splitlines() if line]
        kept = [r for r in kept if r["iteration"] <= after_iteration]
        (self.log_dir / CSV_NAME).unlink(missing_ok=True)
        (self.log_dir / JSONL_NAME).unlink(missing_ok=True)
        self._append_logs(kept)

    def frame(self):
        """Every logged row as a DataFrame (columns as in ``ddr_log.csv`` plus type/kind/direction)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def plot(self, path: str | Path | None = None):
        """Each summary metric against iteration, one line per layer; saved to ``path`` if given."""
        from ddr_eval.report import training_curves_plot

        frame = self.frame()
        if frame.empty:
            raise UserError("DDRMonitor: nothing measured yet; call step() first")
        return training_curves_plot(frame, None if path is None else Path(path))

    def finish(self) -> Path | None:
        """Write the plot beside the logs (``ddr_over_training.png``) and close the sinks."""
        for sink in self.sinks:
            getattr(sink, "close", lambda: None)()
        if self.log_dir is None or not self.rows:
            return None
        path = self.log_dir / PLOT_NAME
        self.plot(path)
        return path


class _isolated_rng:
    """Saves and restores the global torch and numpy random states around a measurement."""

    def __enter__(self):
        self._torch = torch.random.get_rng_state()
        self._cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self._numpy = np.random.get_state()
        return self

    def __exit__(self, *exc_info):
        torch.random.set_rng_state(self._torch)
        if self._cuda is not None:
            torch.cuda.set_rng_state_all(self._cuda)
        np.random.set_state(self._numpy)


# --------------------------------------------------------------------------- optional adapters


def tensorboard_sink(log_dir: str | Path):
    """A sink writing each summary row as a TensorBoard scalar ``ddr/<metric>/<layer>`` at its iteration."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise AdapterUnavailableError(f"unavailable: TensorBoard logging needs the `tensorboard` package ({exc})") from None
    writer = SummaryWriter(str(log_dir))

    class _Sink:
        def __call__(self, rows: Iterable[dict], iteration: int) -> None:
            for row in rows:
                if row_scope(row).headline and row["value"] is not None:
                    writer.add_scalar(f"ddr/{row['metric']}/{row['layer']}", row["value"], iteration)
            writer.flush()

        def close(self) -> None:
            writer.close()

    return _Sink()


def lightning_callback(monitor: DDRMonitor, module_attribute: str | None = None):
    """A PyTorch Lightning ``Callback`` calling ``monitor.step`` after each training batch.

    It measures the LightningModule itself, or its submodule ``module_attribute`` (e.g. ``"net"``)
    when the network is wrapped; the plot is written when training ends.
    """
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError as exc:
            raise AdapterUnavailableError(f"unavailable: the Lightning callback needs `lightning` or "
                                          f"`pytorch_lightning` ({exc})") from None

    class DDRMonitorCallback(Callback):
        """Measures after each training batch and hands every number to ``pl_module.log``, so
        whichever loggers the Trainer has (CSV, TensorBoard, W&B, MLflow) receive DDR."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            net = getattr(pl_module, module_attribute) if module_attribute else pl_module
            for name, value in lightning_values(monitor.step(net, int(trainer.global_step)) or []).items():
                pl_module.log(name, value, on_step=True, on_epoch=False)

        def on_train_end(self, trainer, pl_module) -> None:
            monitor.finish()

    return DDRMonitorCallback()


def lightning_values(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """``ddr/<metric>/<layer>/<set>`` -> value for the rows that have a finite value."""
    values = {}
    for row in rows:
        value = row.get("value")
        if value is not None and np.isfinite(value):
            values[f"ddr/{row['metric']}/{row['layer']}/{row['set']}"] = float(value)
    return values
