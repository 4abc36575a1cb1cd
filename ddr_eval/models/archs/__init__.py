"""Built-in architectures, registered in :data:`ARCHS` under BasicSR's names.

Constructor arguments and state-dict keys follow BasicSR (``basicsr/archs``), so BasicSR and
Real-ESRGAN checkpoints load unchanged; the code is written here (BasicSR needs torchvision).
"""

import inspect

from ddr_eval.core.errors import MemoryBudgetError, UserError
from ddr_eval.models.archs.registry import ARCHS
from ddr_eval.models.archs.base import Arch
from ddr_eval.models.archs import (  # noqa: F401
    cincgan, classifier, conditioned, discriminator, edsr, rcan, rrdbnet, srcnn, srresnet, srvgg,
)
from ddr_eval.models.archs.cincgan import CinCGAN
from ddr_eval.models.archs.classifier import ContentClassifier
from ddr_eval.models.archs.conditioned import DDRConditionedSR
from ddr_eval.models.archs.discriminator import VGGStyleDiscriminator
from ddr_eval.models.archs.edsr import EDSR
from ddr_eval.models.archs.rcan import RCAN
from ddr_eval.models.archs.rrdbnet import RRDBNet
from ddr_eval.models.archs.srcnn import SRCNN
from ddr_eval.models.archs.srresnet import MSRResNet
from ddr_eval.models.archs.srvgg import SRVGGNetCompact


def build_arch(arch: str, *, max_bytes: int | None = None, **arch_kwargs) -> Arch:
    """Instantiate a registered architecture; unknown names and bad arguments are UserErrors.

    ``max_bytes``: refuse, before allocating anything, a network whose parameters would take
    more (``arch_kwargs`` such as ``num_feat: 100000`` build networks of hundreds of GB).
    """
    cls = ARCHS.get(arch)
    try:
        inspect.signature(cls).bind(**arch_kwargs)
    except TypeError as exc:  # unknown or missing keyword
        raise UserError(f"{arch}: {exc}") from None
    if max_bytes is not None:
        size = parameter_bytes(arch, arch_kwargs)
        if size is not None and size > max_bytes:
            raise MemoryBudgetError(f"{arch} with {_shown(arch_kwargs)}: its parameters alone take {size / 2**30:.3g} GiB, "
                            f"more than the {max_bytes / 2**30:.3g} GiB memory budget; use smaller arch_kwargs "
                            "(or raise runtime.expected_memory_gib)")
    return cls(**arch_kwargs)


def parameter_bytes(arch: str, arch_kwargs: dict) -> int | None:
    """Bytes of the network's parameters and buffers, counted on torch's meta device (which
    allocates nothing); ``None`` when the architecture cannot be built there."""
    import torch

    try:
        with torch.device("meta"):
            module = ARCHS.get(arch)(**arch_kwargs)
    except Exception:  # noqa: BLE001  (any constructor failure shows again, with its own message, in the real build)
        return None
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _shown(arch_kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arch_kwargs.items()) or "its defaults"


__all__ = ["ARCHS", "Arch", "build_arch", "parameter_bytes",
           "CinCGAN", "ContentClassifier", "DDRConditionedSR", "EDSR", "MSRResNet", "RCAN",
           "RRDBNet", "SRCNN", "SRVGGNetCompact", "VGGStyleDiscriminator"]
