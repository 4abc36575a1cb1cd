"""ddr-eval: benchmark and evaluation harness for deep degradation representations (DDR).

The pipeline, one subpackage per stage, data flowing forward only:

    suite (schema) -> data + degradations -> models -> features -> metrics -> report

The Python API (imported on first use, so ``import ddr_eval`` stays cheap):

    evaluate(suite, models=...) -> Results   run a suite, with in-memory nn.Modules if you like
    extract(model, lr_patches, layers=...)   pooled deep features of LR patches
    chi, silhouette, davies_bouldin, srga, ddr_chi_to_reference   feature metrics -> MetricResult
    psnr, ssim                               image metrics -> float (dB, index)
    DDRMonitor(suite_or_sets, every=N)       DDR of a model every N iterations of a training loop
    UserError, ModelInputError               what bad input raises
    trust_code()                             UNSAFE: let TorchScript checkpoints (which run code) load
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "evaluate": "ddr_eval.api",
    "Results": "ddr_eval.api",
    "InMemoryModel": "ddr_eval.pipeline.in_memory",
    "ModelInputError": "ddr_eval.pipeline.in_memory",
    "extract": "ddr_eval.api",
    "chi": "ddr_eval.api",
    "silhouette": "ddr_eval.api",
    "davies_bouldin": "ddr_eval.api",
    "srga": "ddr_eval.api",
    "ddr_chi_to_reference": "ddr_eval.api",
    "psnr": "ddr_eval.api",
    "ssim": "ddr_eval.api",
    "DDRMonitor": "ddr_eval.workflows.monitor",
    "UserError": "ddr_eval.core.errors",
    "trust_code": "ddr_eval.models.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Import an API name's module on first access (torch, sklearn and pandas load only then)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ddr_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
