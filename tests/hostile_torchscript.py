"""TorchScript archives that act when loaded: ``torch.jit.load`` runs each module's ``__setstate__``.

Shared by the checkpoint unit tests and the CLI tests; a file of its own because TorchScript
compiles from source files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch


class WritesOnLoad(torch.nn.Module):
    """A TorchScript module whose ``__setstate__`` (run by ``torch.jit.load``) maps a file of its
    choosing with write access, creating it: what a hostile archive can do to the loading machine."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(3, 3, 1, 1))
        self.target = target

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return self.weight, self.target, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.target = state[1]
        self.training = state[2]
        # shared=True creates and writes the file; the product keeps TorchScript from pruning the call
        self.weight = state[0] * torch.from_file(self.target, True, 1).fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight)


class ReadsOnLoad(WritesOnLoad):
    """The same with read access: ``__setstate__`` reads a file into the weights."""

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.target = state[1]
        self.training = state[2]
        self.weight = torch.from_file(self.target, False, 9).reshape(3, 3, 1, 1)


def hostile_archive(tmp_path: Path, cls: type, target: Path) -> Path:
    path = tmp_path / f"{cls.__name__}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(cls(str(target))).save(str(path))
    return path
