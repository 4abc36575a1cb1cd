"""Metrics computed while forward passes still run: the reduce step overlapped with stage 3.

A model's metrics need only its own cells, so as soon as the last cell of a model is extracted
its metrics can run on a background thread while the next model's forward passes run on the
main one. The forward passes keep torch's threads; the background work runs with one BLAS /
OpenMP thread per task (t-SNE, PCA and the probes are single-threaded numpy and scikit-learn
there), and a second background task may start once the forward passes are over.

Not every metric may run beside a forward pass. Those that time or trace the network itself
(``module``: latency, peak memory, FLOPs — a concurrent pass would skew a timing and shares
torch's thread setting), read other metrics' rows (``rows``), or measure this machine
(``wall_clock``) are computed afterwards, in the main thread, in suite order. Rows come out in
suite order whatever ran where (:meth:`Reducer.assemble`), and every metric is seeded, so the
numbers are the same as a run that reduces after all cells are done.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from ddr_eval.metrics.base import Metric
from ddr_eval.metrics.threads import limited_threads
from ddr_eval.pipeline.models import FeatureSource
from ddr_eval.pipeline.reduce import Reducer
from ddr_eval.pipeline.results_cache import MetricPart

Parts = dict[tuple[int, str], MetricPart]
MAIN_THREAD_NEEDS = frozenset({"module", "rows"})


def runs_beside_forward(metric: Metric) -> bool:
    """Whether ``metric`` may be computed on a background thread during forward passes."""
    return not (type(metric).needs & MAIN_THREAD_NEEDS) and not getattr(type(metric), "wall_clock", False)


class MetricsLane:
    """Background threads computing each model's overlappable metrics once its cells are done.

    ``submit(source)`` queues one model; ``forward_done()`` lets a second task run beside the
    first (the cores the forward passes held are free); ``finish()`` waits for every task and
    returns the parts (the first error of a task is raised there). ``close()`` cancels what has
    not started (a failed run).
    """

    def __init__(self, reducer: Reducer, metrics: list[Any], cached: Parts,
                 on_computed: Callable[[int, str, MetricPart], None] | None = None):
        self.reducer, self.metrics, self.cached, self.on_computed = reducer, metrics, cached, on_computed
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ddr-eval-metrics")
        self._slots = threading.Semaphore(1)
        self._futures: list[Future] = []

    def submit(self, source: FeatureSource) -> None:
        self._futures.append(self._pool.submit(self._compute, source))

    def _compute(self, source: FeatureSource) -> Parts:
        with self._slots, limited_threads(1):
            return self.reducer.compute_source(self.metrics, source, self.cached, self.on_computed,
                                               only=runs_beside_forward)

    def forward_done(self) -> None:
        self._slots.release()

    def finish(self) -> Parts:
        parts: Parts = {}
        try:
            for future in self._futures:
                parts.update(future.result())
        finally:
            self.close()
        return parts

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)
