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


def _unit(path: Path) -> str:
    """A module's layer: its subpackage (`run`, `rules`, ...) or, at the top, its module name."""
    rel = path.relative_to(PLUGIN)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_events_import_neither_compile_nor_run() -> None:
    bad = [f"{path.relative_to(PLUGIN)}:{line}: {module}"
           for path in sorted((PLUGIN / "events").rglob("*.py"))
           for line, module in _imports(path)
           if module.startswith(("shellsieve.compile", "shellsieve.run"))]
    assert bad == []


# The places that wire rule loading to the running filter: everything else picks one side.
BOTH_RULES_AND_RUN = {"__init__", "cli", "admit", "build", "reload"}


def test_only_the_wiring_imports_both_rules_and_run() -> None:
    both: set[str] = set()
    for path in PLUGIN.rglob("*.py"):
        modules = [m for _, m in _imports(path)]
        if any(m.startswith("shellsieve.rules") for m in modules) and \
                any(m.startswith("shellsieve.run") for m in modules):
            both.add(_unit(path))
    assert both - BOTH_RULES_AND_RUN == set()


# A private part of a library (`re._parser`, `sre_parse`, `eql.parser._parse`) changes without notice,
# and `unittest` (mock) is test tooling: neither belongs in the package.
_PRIVATE_MODULES = ("sre_parse", "sre_compile", "sre_constants", "unittest")


def _borrowed(path: Path, root: Path = PLUGIN) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)) \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = ast.unparse(node.value)
            if base.split(".")[0] not in ("self", "cls") and base.split(".")[0] in _third_party(tree):
                names = [f"{base}.{node.attr}"]
        for name in names:
            top = name.split(".")[0]
            if name.startswith(_PRIVATE_MODULES) or (
                    top != "shellsieve" and any(p.startswith("_") and not p.startswith("__")
                                                for p in name.split(".")[1:])):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
                break  # one report per import statement
    return found


def _third_party(tree: ast.Module) -> set[str]:
    """Names bound by `import x` / `import x.y` of a module outside shellsieve."""
    return {(a.asname or a.name).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
            for a in node.names if not a.name.startswith("shellsieve")}


def test_no_borrowed_internals() -> None:
    assert [hit for path in sorted(PLUGIN.rglob("*.py")) for hit in _borrowed(path)] == []


def test_borrowed_internals_are_found(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import re\nimport sre_parse\nfrom unittest import mock\nfrom eql.parser import _parse\n"
                      "x = re._parser\nself._y = 1\n")
    hits = _borrowed(sample, tmp_path)
    assert [h.split(": ")[1] for h in hits] == ["sre_parse", "unittest", "eql.parser._parse", "re._parser"]


def _import_graph():  # docs/import_graph.py is a script, not part of the package
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", PLUGIN.parent / "docs" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_graph_points_only_down() -> None:
    graph = _import_graph()
    assert graph.upward(graph.edges()) == []


def test_import_graph_doc_is_current() -> None:
    graph = _import_graph()
    assert (PLUGIN.parent / "docs" / "import-graph.md").read_text() == graph.mermaid(graph.edges())


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    graph = _import_graph()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "x.py").write_text("from shellsieve.run.engine import Engine\n")
    assert graph.upward(graph.edges(tmp_path)) == ["model/x.py:1: model -> run"]
