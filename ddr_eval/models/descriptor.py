"""A loaded network plus what the pipeline needs to know about it (in the spirit of spandrel).

Feature extraction, reports and the CLI read the descriptor instead of the module, so they
need not know which architecture they got, where its deep features are, or where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from ddr_eval.core.errors import UserError

Purpose = Literal["sr", "classification", "discriminator"]
PURPOSES: tuple[str, ...] = ("sr", "classification", "discriminator")


@dataclass
class ModelDescriptor:
    """A network ready for inference (``module`` is in eval mode, on CPU) and its facts.

    ``taps`` maps aliases (``"deep"``, ``"block0"``, ...) to module names usable with
    ``module.get_submodule``; ``source`` is the checkpoint path or the zoo name it came from;
    ``arch`` a built-in name, ``package.module:Class`` (a user's class) or ``spandrel:NAME``.
    """

    name: str
    arch: str
    arch_kwargs: dict[str, Any]
    scale: int
    in_channels: int
    out_channels: int
    purpose: Purpose
    taps: dict[str, str]
    module: nn.Module = field(repr=False)
    sha256: str | None
    source: str
    layout: str | None = None  # the key layout the weights were in (ddr_eval.models.layouts), for path-loaded models

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise UserError(f"model {self.name}: purpose must be one of {', '.join(PURPOSES)}, got {self.purpose!r}")

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def layer(self, alias_or_name: str) -> str:
        """The module name behind a tap alias, or the name itself if it is a module of the network."""
        if alias_or_name in self.taps:
            return self.taps[alias_or_name]
        try:
            self.module.get_submodule(alias_or_name)
        except AttributeError:
            known = ", ".join(self.taps) or "none"
            raise UserError(
                f"model {self.name} has no layer {alias_or_name!r}; taps: {known} (or any module name)"
            ) from None
        return alias_or_name
