"""Key layouts: the names other code bases gave the same weights, mapped onto BasicSR's.

ddr-eval's built-in networks use BasicSR's module names, so BasicSR and Real-ESRGAN files load
as they are (layout ``basicsr``). Older releases of the same networks name the same tensors
differently: the original ESRGAN repository (``RRDB_trunk.0.RDB1.conv1``, ``trunk_conv``,
``upconv1``, ``HRconv``) and, before it, ESRGAN's sequential ``model.N`` layout
(``model.1.sub.0.RDB1.conv1.0``). Each such layout is one row of :data:`LAYOUTS`: the marker
keys that recognise it and a table of regular-expression renames. A layout applies only when
*every* key of the file is renamed by its table (a partial match is an error naming the keys
left over), so a renamed state dict is then checked against the architecture strictly, like
any other. Adding a layout (for any architecture, not only RRDBNet) is adding a row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ddr_eval.core.errors import CheckpointError

BASICSR = "basicsr"
"""The layout of a file whose keys are used as they are (BasicSR's names, ddr-eval's own)."""

T = TypeVar("T")


@dataclass(frozen=True)
class KeyLayout:
    """One foreign naming of an architecture's weights.

    ``markers``: keys whose presence says the file is in this layout; ``renames``: (pattern,
    replacement) pairs for :func:`re.fullmatch` / :meth:`re.Match.expand`, tried in order, the
    first that matches a key renames it.
    """

    name: str
    arch: str
    source: str
    markers: tuple[str, ...]
    renames: tuple[tuple[str, str], ...]

    def recognises(self, keys: Mapping[str, object]) -> bool:
        return all(marker in keys for marker in self.markers)

    def rename(self, key: str) -> str | None:
        """BasicSR's name for ``key``, or ``None`` if no row of the table covers it."""
        for pattern, replacement in self.renames:
            match = re.fullmatch(pattern, key)
            if match:
                return match.expand(replacement)
        return None


_PARAM = r"(weight|bias)"

ESRGAN_ORIGINAL = KeyLayout(
    name="esrgan-original",
    arch="RRDBNet",
    source="xinntao/ESRGAN RRDBNet_arch.py (RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth; BSRGAN, RealSR)",
    markers=("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"),
    renames=(
        (rf"RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.{_PARAM}", r"body.\1.rdb\2.conv\3.\4"),
        (rf"conv_first\.{_PARAM}", r"conv_first.\1"),
        (rf"trunk_conv\.{_PARAM}", r"conv_body.\1"),
        (rf"upconv([12])\.{_PARAM}", r"conv_up\1.\2"),
        (rf"HRconv\.{_PARAM}", r"conv_hr.\1"),
        (rf"conv_last\.{_PARAM}", r"conv_last.\1"),
    ),
)

ESRGAN_SEQUENTIAL = KeyLayout(
    name="esrgan-sequential",
    arch="RRDBNet",
    # model.0 conv, model.1 the trunk (its last entry the trunk conv), then
    # [upsample, conv, lrelu] x 2 (model.3, model.6), HR conv (model.8), lrelu, last conv (model.10)
    source="ESRGAN's first release (xinntao/ESRGAN transer_RRDB_models.py: RRDB_ESRGAN_x4_old_arch.pth)",
    markers=("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
    renames=(
        (rf"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.{_PARAM}", r"body.\1.rdb\2.conv\3.\4"),
        (rf"model\.1\.sub\.\d+\.{_PARAM}", r"conv_body.\1"),  # the one trunk entry that is a plain conv
        (rf"model\.0\.{_PARAM}", r"conv_first.\1"),
        (rf"model\.3\.{_PARAM}", r"conv_up1.\1"),
        (rf"model\.6\.{_PARAM}", r"conv_up2.\1"),
        (rf"model\.8\.{_PARAM}", r"conv_hr.\1"),
        (rf"model\.10\.{_PARAM}", r"conv_last.\1"),
    ),
)

LAYOUTS: tuple[KeyLayout, ...] = (ESRGAN_ORIGINAL, ESRGAN_SEQUENTIAL)
"""Every foreign layout ddr-eval maps, tried in order."""


def find_layout(keys: Mapping[str, object]) -> KeyLayout | None:
    """The layout whose marker keys the state dict has, if any."""
    return next((layout for layout in LAYOUTS if layout.recognises(keys)), None)


def to_basicsr(state_dict: Mapping[str, T], source: str = "checkpoint") -> tuple[dict[str, T], str]:
    """The state dict under BasicSR's names, and the name of the layout it was in.

    A state dict no layout recognises is returned unchanged (layout ``basicsr``). One a layout
    recognises must be covered by it entirely; two keys renamed to one name are refused too.
    """
    layout = find_layout(state_dict)
    if layout is None:
        return dict(state_dict), BASICSR
    renamed: dict[str, T] = {}
    unmapped = []
    for key, value in state_dict.items():
        new_key = layout.rename(key)
        if new_key is None:
            unmapped.append(key)
        elif new_key in renamed:
            raise CheckpointError(f"{source}: {layout.name} layout: two keys map to {new_key}")
        else:
            renamed[new_key] = value
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (f", ... +{len(unmapped) - 5} more" if len(unmapped) > 5 else "")
        raise CheckpointError(f"{source}: keys look like the {layout.name} layout of {layout.arch} "
                              f"({layout.source}) but these have no counterpart in it: {shown}")
    return renamed, layout.name
