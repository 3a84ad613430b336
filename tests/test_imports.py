"""Import hygiene of the lgc package, read from the source with ast (nothing is imported).

- No cycle among module-level imports (a cycle makes import order matter and half-initialised
  modules visible). Function-level imports are lgc's lazy imports (torch, the frontend from the
  API, Circuit's convenience methods) and may point back.
- The layering DESIGN.md states, for every import (lazy ones too): ir imports no other part;
  passes and backends import ir only; the frontend imports ir; nothing outside lgc/cli imports
  lgc.cli (the command line is a client of the library, never the other way round).

Run alone: ``python -m pytest tests/test_imports.py``.
"""
from __future__ import annotations

import ast
import pathlib
import sys

import networkx as nx

import lgc

ROOT = pathlib.Path(lgc.__file__).parent
#: part -> the other parts it may import (helpers "_optional" and "_build" are leaves everyone may use)
ALLOWED = {
    "ir": set(),
    "passes": {"ir"},
    "backends": {"ir"},
    "frontend": {"ir"},
    "data": {"ir"},
}
HELPERS = {"_optional", "_build", "_atomic"}
#: modules outside lgc/cli allowed to import lgc.cli: the `python -m lgc` entry point only
CLI_CLIENTS = {"lgc.__main__"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["lgc", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _module_level(node: ast.AST):
    """Import statements executed when the module is imported (not inside functions, not TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        else:
            yield from _module_level(child)


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = (name if is_package else name.rpartition(".")[0]).split(".")
        pkg = pkg[:len(pkg) - node.level + 1]
        base = ".".join(pkg + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _graph(module_level_only: bool) -> nx.DiGraph:
    mods = _modules()
    g = nx.DiGraph()
    for name, path in mods.items():
        g.add_node(name)
        tree = ast.parse(path.read_text(), str(path))
        nodes = _module_level(tree) if module_level_only else (
            n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        for node in nodes:
            for target in _targets(node, name, path.name == "__init__.py"):
                # importing one's own package (or an ancestor) is the normal `from . import x` pattern
                if target in mods and target != name and not name.startswith(target + "."):
                    g.add_edge(name, target, line=node.lineno)
    return g


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle_among_module_level_imports():
    cycles = list(nx.simple_cycles(_graph(module_level_only=True)))
    assert not cycles, f"module-level import cycles: {cycles[:5]}"


def test_layering_and_no_library_import_of_the_cli():
    bad = []
    for a, b, data in _graph(module_level_only=False).edges(data=True):
        pa, pb = _part(a), _part(b)
        if pb == "cli" and pa != "cli" and a not in CLI_CLIENTS:
            bad.append(f"{a}:{data['line']} imports {b} (the library must not depend on its CLI)")
        if pa in ALLOWED and pb != pa and pb not in ALLOWED[pa] | HELPERS:
            bad.append(f"{a}:{data['line']} imports {b} ({pa} may import only {sorted(ALLOWED[pa]) or 'nothing'})")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_cycles_and_upward_imports(tmp_path, monkeypatch):
    """The two checks above are not vacuous: a planted cycle and a planted upward import are found."""
    pkg = tmp_path / "lgc"
    (pkg / "ir").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ir" / "__init__.py").write_text("from . import x\n")
    (pkg / "ir" / "x.py").write_text("from .y import f\n")
    (pkg / "ir" / "y.py").write_text("from lgc.ir.x import g\ndef h():\n    import lgc.backends\n")
    (pkg / "backends.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert ["lgc.ir.x", "lgc.ir.y"] in [sorted(c) for c in nx.simple_cycles(_graph(True))]
    assert ("lgc.ir.y", "lgc.backends") in _graph(False).edges and ("lgc.ir.y", "lgc.backends") not in _graph(True).edges
