"""Progress of a run's forward passes, weighted by what each cell costs.

A suite mixes networks whose forward passes differ by four orders of magnitude (a 0.1 M
parameter SRCNN next to a 16.7 M parameter RRDBNet at the same patch size). Counting cells would
make the ETA a lie: after sixty small cells the bar says seconds remain while one large model
still needs minutes. So each cell weighs its forward pass's floating-point operations, counted by
``torch.utils.flop_counter`` on one small patch and scaled to the cell's pixels, and cells the
feature cache already holds drop out of the total once they turn out to be cached.

On a terminal the weights drive a tqdm bar; in a log (CI, a file) there is no bar, only a line
when the stage starts and one when it ends, so logs hold no carriage-return spam.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from torch import nn

if TYPE_CHECKING:
    from ddr_eval.pipeline.cells import Cell

PROBE_SIDE = 16
"""The side of the patch FLOPs are counted on: FLOPs of a fully convolutional network grow with the
area, so a small probe scaled by area gives a cell's count without paying for its forward pass."""
STATISTICS_FLOPS_PER_PIXEL = 100.0
"""The image-statistics baseline: a few passes over the pixels, no network."""

_FLOPS_PER_PIXEL: weakref.WeakKeyDictionary[nn.Module, float] = weakref.WeakKeyDictionary()


def flops_per_input_pixel(module: nn.Module, channels: int, side: int) -> float:
    """Forward FLOPs of ``module`` per input pixel, counted once per module on a ``side``-sized patch.

    Networks that refuse the probe's size (fixed-size classifiers) are counted on ``side`` itself;
    a network that cannot be counted at all weighs two FLOPs per parameter per pixel, what a
    convolution at input resolution costs.
    """
    if module in _FLOPS_PER_PIXEL:
        return _FLOPS_PER_PIXEL[module]
    from ddr_eval.metrics.efficiency import count_flops, count_parameters, example_input

    per_pixel = 2.0 * count_parameters(module)
    for probe in dict.fromkeys((min(side, PROBE_SIDE), side)):
        try:
            total, _ = count_flops(module, example_input(module, (probe, probe, channels)))
        except Exception:  # noqa: BLE001 - any failure leaves the parameter estimate
            continue
        per_pixel = total / (probe * probe) or per_pixel
        break
    _FLOPS_PER_PIXEL[module] = per_pixel
    return per_pixel


def cell_costs(cells: Sequence[Cell]) -> list[float]:
    """Each cell's share of the forward-pass FLOPs (cells of one model and input set share one pass)."""
    from ddr_eval.pipeline.cells import group_cells

    costs = [0.0] * len(cells)
    for group in group_cells(list(cells)):
        first = cells[group[0]]
        lr = first.dataset.lr  # N x H x W x C
        pixels = float(lr.shape[0] * lr.shape[1] * lr.shape[2])
        descriptor = first.source.descriptor
        if descriptor is None:
            per_pixel = STATISTICS_FLOPS_PER_PIXEL
        else:
            per_pixel = flops_per_input_pixel(descriptor.module, int(lr.shape[3]), int(min(lr.shape[1], lr.shape[2])))
        for index in group:
            costs[index] = per_pixel * pixels / len(group)
    return costs


class CellProgress:
    """A FLOP-weighted bar over cells on a terminal, a start and an end line otherwise.

    ``advance(indices, computed)`` marks cells done; ``computed=False`` (the cache held them)
    removes their cost from the total instead, so the rate and the ETA describe real work.
    """

    def __init__(self, cells: Sequence[Cell], enabled: bool, stream: TextIO | None = None, desc: str = "features"):
        self.enabled = bool(enabled) and len(cells) > 0
        self.stream = stream if stream is not None else sys.stderr
        self.desc = desc
        self.costs = cell_costs(cells) if self.enabled else [0.0] * len(cells)
        self.count = len(cells)
        self.bar = None
        self.started = time.perf_counter()

    def __enter__(self) -> CellProgress:
        if not self.enabled:
            return self
        total = sum(self.costs) / 1e9
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="GFLOP", leave=False, file=self.stream,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} GFLOP [{elapsed}<{remaining}]")
        else:
            print(f"{self.desc}: {self.count} cells, {_gflop(total)} of forward passes", file=self.stream, flush=True)
        return self

    def advance(self, indices: Sequence[int], computed: bool = True) -> None:
        if self.bar is None:
            return
        cost = sum(self.costs[i] for i in indices) / 1e9
        if computed:
            self.bar.update(cost)
        else:
            self.bar.total = max(self.bar.total - cost, self.bar.n)
            self.bar.refresh()

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and exc_info[0] is None:
            print(f"{self.desc}: done in {time.perf_counter() - self.started:.1f} s", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


def _gflop(total: float) -> str:
    return f"{total / 1000:.1f} TFLOP" if total >= 1000 else f"{total:.1f} GFLOP"
