"""Command-line changes to a suite: ``--set dotted.key=value``, ``--seed``, ``--limit`` and the
runtime options ``--device`` / ``--batch-size``.

They are applied to the suite's YAML mapping before it is validated, so a bad value fails with
the same one-line error as in the file (``suites/x.yaml: runtime.batch_size: must be > 0``).
What changes numbers (``--set``, ``--seed``, ``--limit``) changes the suite's hash with it;
runtime settings never do (:meth:`ddr_eval.config.schema.Suite.canonical_json`), so
``check --device cuda`` still compares with a baseline computed on the CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

from ddr_eval.core.errors import UserError


@dataclass(frozen=True)
class Overrides:
    """What the command line changes in a suite; empty by default."""

    sets: tuple[str, ...] = ()  # "dotted.key=value", value parsed as YAML
    seed: int | None = None
    limit: int | None = None  # at most this many patches per degradation set and split
    device: str | None = None
    batch_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_assignments(self) -> list[tuple[str, Any]]:
        """(dotted key, value) pairs, in the order they are applied (``--set`` last wins)."""
        pairs: list[tuple[str, Any]] = []
        if self.seed is not None:
            pairs.append(("seed", self.seed))
        if self.limit is not None:
            if self.limit < 1:
                raise UserError(f"--limit {self.limit}: must be a positive number of patches per set")
            pairs.append(("data.limit_patches", self.limit))
        if self.device is not None:
            pairs.append(("runtime.device", self.device))
        if self.batch_size is not None:
            pairs.append(("runtime.batch_size", self.batch_size))
        pairs += [parse_assignment(text) for text in self.sets]
        return pairs

    def record(self) -> list[str]:
        """The overrides as ``key=value`` strings, for ``results.json``."""
        return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                for key, value in self.as_assignments()]

    def __bool__(self) -> bool:
        return bool(self.as_assignments())


def parse_assignment(text: str) -> tuple[str, Any]:
    """``data.patch_size=32`` -> ("data.patch_size", 32); the value is read as YAML (``[1, 2]``, ``null``…)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {text!r}: expected dotted.key=value, e.g. data.patch_size=32")
    try:
        return key, yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(f"--set {text!r}: the value is not YAML ({str(exc).splitlines()[0]})") from None


def apply_overrides(raw: dict[str, Any], overrides: Overrides | None) -> dict[str, Any]:
    """A copy of the suite mapping ``raw`` with the overrides applied (a list index is a number:
    ``metrics.0.pca_dim=50``)."""
    if not overrides:
        return raw
    raw = copy.deepcopy(raw)
    for key, value in overrides.as_assignments():
        _assign(raw, key, value)
    return raw


def _assign(raw: dict[str, Any], key: str, value: Any) -> None:
    node: Any = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {key}: {where}: the list has {len(node)} entries (index 0..{len(node) - 1})")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise UserError(f"--set {key}: {'.'.join(parts[:depth])} is {type(node).__name__}, not a mapping")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
