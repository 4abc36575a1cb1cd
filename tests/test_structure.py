"""Structural rules of the library that no linter here checks.

A leading underscore says "only this module relies on me": such a name may change without
notice, so the library itself never imports one from another of its modules, nor reaches into
one through a module (``ops._helper``). A helper two modules need is public, with a docstring.
Tests may use private names; this check is on the library (``ddr_eval/``) and its benchmark
tooling (``ddr_eval_bench/``), which is held to the library's rules. Dunder names are fine.

Why an ``ast`` walk and not a linter rule: import-linter checks which modules import which, not
names; ruff's ``import-private-name`` (PLC2701) is a preview rule (``preview = true`` also changes
how stable rules judge the code, e.g. F822 on ``config/__init__``'s lazy exports), flags the private
names of other libraries that this one must use (torch's ``_BatchNorm``), and does not see a reach
through a module (``ops._helper``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ddr_eval"
CHECKED = (PACKAGE, "ddr_eval_bench")  # the library and its benchmark tooling


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module an ``from X import ...`` reads, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_crossings(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every use in ``source`` (the code of ``module``) of a private name of another library module:
    ``from ddr_eval.x import _name`` and ``alias._name`` where ``alias`` was imported from the library."""
    tree = ast.parse(source)
    problems, imported = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(node, module, is_package)
            if origin.split(".")[0] not in CHECKED or origin == module:
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    problems.append(f"line {node.lineno}: from {origin} import {alias.name}")
                imported[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in CHECKED:
                    imported[alias.asname or root] = alias.name if alias.asname else root
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in imported:
                problems.append(f"line {node.lineno}: {ast.unparse(node)} ({base.id} is {imported[base.id]})")
    return problems


def test_no_private_name_crosses_a_module_boundary():
    problems = []
    for path in sorted(path for package in CHECKED for path in (ROOT / package).rglob("*.py")):
        module = _module_name(path)
        problems += [f"{path.relative_to(ROOT)} {p}" for p in
                     private_crossings(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")]
    assert not problems, "private names used across modules (make them public, with a docstring):\n" + "\n".join(problems)


def test_the_check_sees_each_form_of_crossing():
    source = "\n".join([
        "from ddr_eval.degradations.ops import _correlate_2d, DEGRADATIONS",
        "from .ops import _helper as helper",
        "from ddr_eval.degradations import kernels",
        "import ddr_eval.models.zoo as zoo",
        "import ddr_eval",
        "def f():",
        "    from ddr_eval.findings import _ci",
        "    return kernels._private(), zoo._HUB_HASH, ddr_eval.models._x, DEGRADATIONS._items",
    ])
    problems = private_crossings(source, "ddr_eval.degradations.realworld")
    assert len(problems) == 7, problems
    assert any("_correlate_2d" in p for p in problems) and any("ddr_eval.degradations.ops import _helper" in p
                                                                for p in problems)


def test_the_check_allows_own_names_dunders_and_other_packages():
    source = "\n".join([
        "from ddr_eval.degradations.ops import __all__, DEGRADATIONS",
        "from numpy import _globals",
        "import numpy as np",
        "class A:",
        "    def _own(self):",
        "        return self._state, _local(), np._NoValue, DEGRADATIONS.__class__",
        "def _local():",
        "    return 1",
    ])
    assert private_crossings(source, "ddr_eval.degradations.realworld") == []


def _layers_contract() -> list[str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [module.strip() for layer in layers for module in layer.split("|")]


def test_the_top_level_is_folders_plus_the_api():
    """Every module lives in the folder of its layer; only the Python API sits beside them."""
    top = ROOT / PACKAGE
    loose = sorted(p.name for p in top.glob("*.py") if p.name not in ("__init__.py", "api.py"))
    assert loose == [], f"modules outside a layer's folder: {loose}"


def test_the_layers_contract_names_every_folder():
    """The import-linter contract is the tree's map: each folder of the package is a layer in it
    (or is split into named modules there), so a new folder cannot escape the layering."""
    listed = _layers_contract()
    folders = sorted(p.name for p in (ROOT / PACKAGE).iterdir() if (p / "__init__.py").exists())
    missing = [f for f in folders if not any(m == f"{PACKAGE}.{f}" or m.startswith(f"{PACKAGE}.{f}.") for m in listed)]
    assert missing == [], f"folders missing from the layers contract in pyproject.toml: {missing}"
