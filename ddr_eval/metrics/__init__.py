"""Metrics: separability, identification, generalization (SRGA) and image quality.

Importing this package registers every metric in :data:`METRICS`; build one from a suite entry
with :func:`build_metric`.
"""

from ddr_eval.metrics.base import (
    METRICS,
    METRIC_KINDS,
    Metric,
    MetricUnavailableError,
    build_metric,
    metric_catalog,
    wall_clock_types,
)
from ddr_eval.metrics.efficiency import (
    EfficiencyMetric,
    FlopsMetric,
    LatencyMetric,
    ParamsMetric,
    PeakMemoryMetric,
    efficiency_profile,
)
from ddr_eval.metrics.identification import DegradationProbe, IdentificationMetric
from ddr_eval.metrics.quality import (
    LpipsMetric,
    PsnrDropMetric,
    PsnrMetric,
    SsimMetric,
    lpips_available,
    psnr,
    psnr_drop,
    ssim,
    to_uint8,
)
from ddr_eval.metrics.results import IdentificationResult, MetricResult
from ddr_eval.metrics.separability import (
    ChiMetric,
    DaviesBouldinMetric,
    SeparabilityMetric,
    SilhouetteMetric,
    layer_sweep,
    project,
    standardize,
    tsne_embedding,
)
from ddr_eval.metrics.srga import DdrChiToReference, SrgaMetric, fit_ggd, ggd_alpha, ggd_kl, srga

__all__ = [
    "wall_clock_types",
    "METRICS",
    "METRIC_KINDS",
    "ChiMetric",
    "DaviesBouldinMetric",
    "DdrChiToReference",
    "DegradationProbe",
    "EfficiencyMetric",
    "FlopsMetric",
    "IdentificationMetric",
    "IdentificationResult",
    "LatencyMetric",
    "LpipsMetric",
    "Metric",
    "MetricResult",
    "MetricUnavailableError",
    "ParamsMetric",
    "PeakMemoryMetric",
    "PsnrDropMetric",
    "PsnrMetric",
    "SeparabilityMetric",
    "SilhouetteMetric",
    "SrgaMetric",
    "SsimMetric",
    "build_metric",
    "metric_catalog",
    "efficiency_profile",
    "fit_ggd",
    "ggd_alpha",
    "ggd_kl",
    "layer_sweep",
    "lpips_available",
    "project",
    "psnr",
    "psnr_drop",
    "srga",
    "ssim",
    "standardize",
    "to_uint8",
    "tsne_embedding",
]
