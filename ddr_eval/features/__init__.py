"""Deep features of SR networks: forward hooks, batching, pooling and device selection."""

from ddr_eval.features.device import autocast_context, select_device
from ddr_eval.features.extract import POOLINGS, FeatureBatch, extract_features, extract_poolings

__all__ = ["POOLINGS", "FeatureBatch", "autocast_context", "extract_features", "extract_poolings", "select_device"]
