"""How numbers are shown in every table (Markdown, HTML, the console, ``check``'s diff)."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


def format_value(value: Any, digits: int = 4) -> str:
    """Empty values as "—", integral floats exactly (parameter counts), others to ``digits`` places."""
    if value is None or (isinstance(value, Real) and not isinstance(value, Integral) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, Real) or isinstance(value, Integral):
        return str(value)
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # counts (parameters, FLOPs) stay exact
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def slug(text: str) -> str:
    """``text`` as a file-name part: anything but letters, digits, ``-_.`` becomes ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
