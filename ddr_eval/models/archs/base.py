"""What every built-in architecture tells the rest of ddr-eval about itself.

A :class:`~ddr_eval.models.descriptor.ModelDescriptor` needs the purpose, channel counts, scale
and named feature taps of a network; asking the instance (rather than keeping tables elsewhere)
keeps that knowledge next to the layer names it refers to. Subclassing :class:`Arch` adds no
parameters or buffers, so state-dict keys stay exactly those of BasicSR.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from ddr_eval.core.errors import UserError

_BLOCK_ALIAS = re.compile(r"block(\d+)$")


class Arch(nn.Module):
    """Base class of the built-in networks.

    Subclasses set ``purpose`` and ``scale_kwarg`` (the constructor argument that fixes the
    upscaling factor, or ``None``), store ``in_channels``, ``out_channels`` and ``scale_factor``
    in ``__init__``, and implement :meth:`feature_taps` and :meth:`infer_kwargs`.
    """

    purpose: ClassVar[str] = "sr"
    scale_kwarg: ClassVar[str | None] = None

    in_channels: int
    out_channels: int
    scale_factor: int

    def feature_taps(self) -> dict[str, str]:
        """Alias -> module name (for ``get_submodule``); a tap is that module's output.

        Every network has ``"deep"`` and ``"block0"``, ``"block1"``, ... (see :meth:`sweep_taps`).
        """
        raise NotImplementedError

    def sweep_taps(self) -> list[str]:
        """The ``block{i}`` aliases in depth order, for layer sweeps."""
        blocks = [a for a in self.feature_taps() if _BLOCK_ALIAS.match(a)]
        return sorted(blocks, key=lambda a: int(_BLOCK_ALIAS.match(a).group(1)))

    @classmethod
    def infer_kwargs(cls, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
        """Constructor arguments read off a state dict's keys and shapes; ``None`` if not this arch."""
        raise NotImplementedError


# -- parameter validation ---------------------------------------------------------------------


def require_positive_int(arch: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{arch}: {name} must be a positive integer, got {value!r}")


def require_choice(arch: str, name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise UserError(f"{arch}: {name} must be one of {', '.join(map(str, choices))}, got {value!r}")


# -- state-dict inspection helpers used by ``infer_kwargs`` ------------------------------------


def count_indexed(state_dict: Mapping[str, Any], template: str) -> int:
    """How many consecutive ``i`` (from 0) have ``template.format(i)`` in the state dict."""
    count = 0
    while template.format(count) in state_dict:
        count += 1
    return count


def has_keys(state_dict: Mapping[str, Any], *keys: str) -> bool:
    return all(k in state_dict for k in keys)


def out_ch(state_dict: Mapping[str, torch.Tensor], key: str) -> int:
    return int(state_dict[key].shape[0])


def in_ch(state_dict: Mapping[str, torch.Tensor], key: str) -> int:
    return int(state_dict[key].shape[1])
