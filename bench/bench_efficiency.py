"""The efficiency columns of the zoo's architectures (NTIRE efficient-SR style) at the suite's LR patch.

Parameters, FLOPs (2 x MACs, ``torch.utils.flop_counter``) and peak memory are exact for an
architecture; latency is measured here, on this machine, now (noisy: compare it only within
one run). The benchmarked operation is the latency measurement itself.
"""

from __future__ import annotations

import pytest

from benchlib import SUITE_PATCH, random_descriptor, zoo_architectures
from ddr_eval.metrics.efficiency import FlopsMetric, LatencyMetric, ParamsMetric, PeakMemoryMetric


@pytest.mark.parametrize("name", list(zoo_architectures()))
def test_efficiency_profile(benchmark, name):
    descriptor = random_descriptor(name)
    module = descriptor.module
    static = [metric.for_patch(SUITE_PATCH) for metric in (ParamsMetric(), FlopsMetric(), PeakMemoryMetric())]
    columns = {metric.name: metric.compute(module, SUITE_PATCH).value for metric in static}
    latency = LatencyMetric().for_patch(SUITE_PATCH)
    result = benchmark.pedantic(lambda: latency.compute(module, SUITE_PATCH), rounds=1, iterations=1)
    columns[latency.name] = result.value
    benchmark.extra_info.update({"arch": descriptor.arch, "purpose": descriptor.purpose,
                                 "patch": list(SUITE_PATCH), "columns": columns})
    assert all(value > 0 for value in columns.values())
