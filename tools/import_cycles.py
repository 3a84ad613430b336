"""Import cycles among a package's modules, from module-level imports (imports inside functions run
later and are left out; so are ``if TYPE_CHECKING:`` blocks and a submodule's import of its own
parent package, which Python initialises first).

    python tools/import_cycles.py            # checks lgc/; exit 1 and one line per cycle when any
    python tools/import_cycles.py --lazy     # imports inside functions count too

Each cycle is printed once as ``a -> b -> ... -> a`` (strongly connected components of the graph)."""
from __future__ import annotations

import ast
import pathlib
import sys


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(nodes: list[ast.stmt], lazy: bool):
    """Import statements among ``nodes`` (module level; with ``lazy`` also inside functions)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not lazy:
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _imports(getattr(node, field, []) or [], lazy)


def import_graph(root: pathlib.Path, lazy: bool = False) -> dict[str, set[str]]:
    """module -> the package's modules it imports at module level."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text()).body, lazy):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if node.level else []
                stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
                targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
            # a parent package is initialised before its submodules: importing it is never a cycle
            graph[mod] |= {t for t in targets if t in files and t != mod and not mod.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--lazy"]
    root = pathlib.Path(args[0]) if args else pathlib.Path(__file__).resolve().parent.parent / "lgc"
    found = cycles(import_graph(root, lazy="--lazy" in sys.argv))
    for comp in found:
        print(" <-> ".join(comp))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
