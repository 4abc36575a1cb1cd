"""How extraction, PCA, t-SNE, SRGA's PCA and CHI grow with the number of patches (250 -> 4000).

Each phase runs once per size (calls under 0.2 s are repeated a few times and the fastest
kept), each time right after a run at the smallest size: the time exponent is the log-log slope
of ``time(N) / time(250)`` with both timed back to back, so a load that comes and goes during
the sweep (measured: the same t-SNE taking 5 s or 13 s minutes apart) cancels as it does in the
other benchmarks' ratios. The raw exponent is reported too. Reported per phase and size: wall seconds, the
tracemalloc peak (numpy and Python memory, exact) and the peak resident memory added (see
``benchlib.peak_rss``; the only measure that sees torch's CPU allocations, so the one used for
extraction); and the fitted exponents ``time ~ N**a``, ``memory ~ N**b``.

Inputs are the shapes a suite produces: 16 x 16 LR patches through SRResNet (32 channels) for
extraction; five Gaussian clusters of 32-d pooled features (a 32-channel model's GAP features,
five degradation sets) for t-SNE and CHI; 512-d features for the separability PCA (50
components); flattened 2048-d features for SRGA's PCA (300 components).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from benchlib import fit_exponent, lr_patches, measure, random_descriptor
from ddr_eval.features import extract_features
from ddr_eval.metrics.separability import ChiMetric, project, tsne_embedding
from ddr_eval.metrics.srga import pca_coefficients

SIZES = (250, 500, 1000, 2000, 4000)
CLASSES = 5


def clustered(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    centers = rng.normal(0, 3, (CLASSES, dim))
    return centers[labels] + rng.normal(0, 1, (n, dim)), labels.astype(str)


def extraction_phase():
    descriptor = random_descriptor("srresnet-gr")
    layer = descriptor.taps["deep"]
    return lambda n: extract_features(descriptor.module, lr_patches(n, (16, 16, 3)), [layer], batch_size=64,
                                      device="cpu")


def pca_phase():
    return lambda n: project(clustered(n, 512)[0], "pca", 50, seed=0)


def tsne_phase():
    return lambda n: tsne_embedding(clustered(n, 32)[0], seed=0)


def srga_pca_phase():
    return lambda n: pca_coefficients(clustered(n, 2048)[0], 300)


def chi_phase():
    metric = ChiMetric(projection="raw", bootstrap=200)
    return lambda n: metric.compute(*clustered(n, 32), seed=0)


PHASES = {"extraction": extraction_phase, "pca": pca_phase, "tsne": tsne_phase, "srga_pca": srga_pca_phase,
          "chi": chi_phase}
MAX_TIME_EXPONENT = {
    "extraction": 1.3,  # batched forward passes: linear
    "pca": 1.3,  # randomized SVD, fixed width and components: linear
    "tsne": 1.6,  # Barnes-Hut: N log N
    "srga_pca": 2.3,  # full SVD while N < 300 components, N^2 D at worst
    "chi": 1.3,  # one pass, bootstrap as (replicates x N) products: linear
}
"""Theoretical growth + 0.3 slack: a breach means a quadratic step crept in, not noise."""


@pytest.mark.parametrize("phase", list(PHASES))
def test_scaling(benchmark, phase):
    run = PHASES[phase]()
    curve = []

    def sweep():
        for n in SIZES:
            smallest = measure(lambda: run(SIZES[0]))  # the paired baseline: same load as the next call
            point = measure(lambda: run(n))
            curve.append({"n": n, **asdict(point), "relative": point.seconds / smallest.seconds,
                          "smallest_seconds": smallest.seconds})

    run(SIZES[0])  # warm-up: imports, allocator, thread pools
    benchmark.pedantic(sweep, rounds=1, iterations=1)
    sizes = [point["n"] for point in curve]
    memory_key = "rss_mib" if phase == "extraction" else "traced_mib"  # torch allocates outside tracemalloc
    memory = [point[memory_key] or 0.0 for point in curve]
    benchmark.extra_info.update({
        "phase": phase, "curve": curve, "memory_measure": memory_key,
        "time_exponent": fit_exponent(sizes, [point["relative"] for point in curve]),
        "raw_time_exponent": fit_exponent(sizes, [point["seconds"] for point in curve]),
        "memory_exponent": fit_exponent(sizes, memory) if all(m > 0 for m in memory) else None,
        "max_time_exponent": MAX_TIME_EXPONENT[phase],
    })
    exponent = benchmark.extra_info["time_exponent"]
    assert exponent <= MAX_TIME_EXPONENT[phase], f"{phase} time grows as N^{exponent:.2f}"
