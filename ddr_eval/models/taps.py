"""Feature taps of networks ddr-eval did not write: where their ``deep`` features are.

The DDR paper reads an SR network's degradation representation at the output of its body, the
stack of identical blocks before upsampling. ddr-eval's own architectures name that place in
their ``feature_taps()``; for a user's class or a network spandrel built, it is found by one
rule, :func:`body_blocks`:

    Among the children of every ``nn.Sequential`` / ``nn.ModuleList`` of the network, group
    those of the same class with the same parameter shapes; the body is the group (of at least
    two) that holds the most parameters in total, ties going to the one met first (outermost,
    then earliest). ``deep`` is its last block, ``block0``, ``block1``, ... its blocks in order.

Weighting by parameters keeps stacks of activations (PReLU) or small upsampling convs from
winning over the residual blocks, and prefers an outer stack of groups (RCAN's residual groups)
to the blocks inside one group. A network with no repeated block has no ``deep`` tap; any
module name still is a layer.
"""

from __future__ import annotations

from torch import nn

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def _signature(module: nn.Module) -> tuple:
    return (type(module).__qualname__, tuple((name, tuple(p.shape)) for name, p in module.named_parameters()))


def body_blocks(network: nn.Module) -> list[str]:
    """Module names of the network's body blocks in order (see the module docstring); ``[]`` if none."""
    best: list[str] = []
    best_weight = 0
    for container_name, container in network.named_modules():
        if not isinstance(container, _CONTAINERS):
            continue
        groups: dict[tuple, list[str]] = {}
        sizes: dict[tuple, int] = {}
        for child_name, child in container.named_children():
            size = sum(p.numel() for p in child.parameters())
            if size == 0:
                continue
            signature = _signature(child)
            groups.setdefault(signature, []).append(f"{container_name}.{child_name}" if container_name else child_name)
            sizes[signature] = size
        for signature, names in groups.items():
            weight = len(names) * sizes[signature]
            if len(names) >= 2 and weight > best_weight:
                best, best_weight = names, weight
    return best


def heuristic_taps(network: nn.Module) -> dict[str, str]:
    """``block{i}`` and ``deep`` aliases from :func:`body_blocks`; empty when the network has no body."""
    blocks = body_blocks(network)
    if not blocks:
        return {}
    taps = {f"block{i}": name for i, name in enumerate(blocks)}
    taps["deep"] = blocks[-1]
    return taps
