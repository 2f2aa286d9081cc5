"""The one-way layering the hot path relies on: `run/` and `serve/` (what runs per event) import no
rule-format loader from `rules/`, and `model/` (the shared types) imports neither. A loader's
import (eql, pySigma, lark, yaml) must never be pulled in by the filter's per-event code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent.parent / "plugin"

FORBIDDEN = {"run": ("shellsieve.rules",), "serve": ("shellsieve.rules",),
             "model": ("shellsieve.rules", "shellsieve.run", "shellsieve.compile", "shellsieve.serve")}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_stay_one_way(package: str) -> None:
    bad = [f"{path.relative_to(PLUGIN)}:{line}: {module}"
           for path in sorted((PLUGIN / package).rglob("*.py"))
           for line, module in _imports(path)
           if module.startswith(FORBIDDEN[package])]
    assert bad == []


def test_every_package_is_installed() -> None:
    """A subpackage missing from pyproject's list installs nowhere with `pip install .` (only an
    editable install hides it): every folder of plugin/ with an __init__.py is listed."""
    import tomllib

    listed = set(tomllib.loads((PLUGIN.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {"shellsieve." + ".".join(p.parent.relative_to(PLUGIN).parts) for p in PLUGIN.rglob("__init__.py")
               if p.parent != PLUGIN}
    assert present - listed == set()
