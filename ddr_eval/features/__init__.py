"""Deep features of SR networks: forward hooks, batching, pooling and device selection."""

from ddr_eval.features.device import autocast_context, select_device
from ddr_eval.features.extract import POOLINGS, FeatureBatch, extract_features, extract_poolings
from ddr_eval.features.statistics import IMAGE_STATISTIC_NAMES, image_statistics

__all__ = ["IMAGE_STATISTIC_NAMES", "POOLINGS", "FeatureBatch", "autocast_context", "extract_features",
           "extract_poolings", "image_statistics", "select_device"]
