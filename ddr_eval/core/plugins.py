"""Importing a user's own module: a plug-in (metrics, findings, degradations registered by its
decorators) or the module holding a user's network class.

Registries fill when their modules are imported, so a plug-in is just a module the command line
names (``ddr-eval run SUITE --plugin my_lab.findings``) or a notebook imports. The current
directory is searched after installed packages, so a local file never shadows one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from ddr_eval.core.errors import UserError

MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def import_user_module(name: str, what: str) -> ModuleType:
    """``importlib.import_module(name)``; a missing or failing module is one ``UserError`` line
    starting with ``what`` (e.g. ``plugin 'my_lab.findings'``)."""
    if not MODULE_NAME.fullmatch(name):
        raise UserError(f"{what}: {name!r} is not a module name (package.module)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise UserError(f"{what}: cannot import {name} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while being imported
        raise UserError(f"{what}: importing {name} failed ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def import_plugins(names: list[str] | tuple[str, ...]) -> list[ModuleType]:
    """Import each plug-in module, in order, so its decorators register what it defines."""
    return [import_user_module(name, f"plugin {name!r}") for name in names]


@functools.cache  # keyed by the class object: a re-imported (edited) plug-in is a new class
def outside_code_digest(cls: type) -> str | None:
    """sha256 of the file defining ``cls`` when it lies outside ddr-eval (a plug-in's class), so a
    cache key changes when the plug-in is edited; None for ddr-eval's own classes (the package's
    code fingerprint covers them) and for classes without a source file."""
    try:
        source = Path(inspect.getfile(cls)).resolve()
    except (TypeError, OSError):
        return None
    if source.is_relative_to(PACKAGE_ROOT) or not source.is_file():
        return None
    return hashlib.sha256(source.read_bytes()).hexdigest()
