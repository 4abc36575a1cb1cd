"""Built-in architectures, registered in :data:`ARCHS` under BasicSR's names.

Constructor arguments and state-dict keys follow BasicSR (``basicsr/archs``), so BasicSR and
Real-ESRGAN checkpoints load unchanged; the code is written here (BasicSR needs torchvision).
"""

import inspect

from ddr_eval.errors import UserError
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


def build_arch(arch: str, **arch_kwargs) -> Arch:
    """Instantiate a registered architecture; unknown names and bad arguments are UserErrors."""
    cls = ARCHS.get(arch)
    try:
        inspect.signature(cls).bind(**arch_kwargs)
    except TypeError as exc:  # unknown or missing keyword
        raise UserError(f"{arch}: {exc}") from None
    return cls(**arch_kwargs)


__all__ = ["ARCHS", "Arch", "build_arch", "CinCGAN", "ContentClassifier", "DDRConditionedSR", "EDSR", "MSRResNet", "RCAN",
           "RRDBNet", "SRCNN", "SRVGGNetCompact", "VGGStyleDiscriminator"]
