#!/usr/bin/env python3
"""The import graph of the dlviz package, read from its source with ``ast`` (nothing is imported).

Usage:
    python tools/import_graph.py            # modules, arrows, levels, circles and the rule breaks, in one report
    python tools/import_graph.py --trace X  # the modules a call into X can enter (X's imports, transitively)

An arrow A -> B means module A imports module B (at its top or inside a function). ``from P import name`` points at
the submodule ``P.name`` when there is one, else at ``P``. The rules the package keeps (tests/package/test_layout.py):
no circles; a private module (``dlviz._x``) imports only private ones; nothing outside ``dlviz.course`` imports
``dlviz.course``.
"""
from __future__ import annotations

import argparse
import ast
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dlviz"


def module_names(package: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
    """Every module of the package by dotted name (a package by its own name, through its ``__init__.py``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def edges(package: pathlib.Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    names = module_names(package)
    root = package.name
    graph = {name: set() for name in names}
    for name, path in names.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base for alias in node.names]
            for target in targets:
                if target == root or target.startswith(root + "."):
                    while target not in names:  # "import dlviz.a.b" of a name inside a module
                        target = target.rpartition(".")[0]
                    if target != name:
                        graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split(".")[1:])


def _course(name: str) -> bool:
    return name.split(".")[1:2] == ["course"]


def rule_breaks(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that breaks the layout: a private module importing a public one, or a module outside
    ``dlviz.course`` importing ``dlviz.course``."""
    breaks = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if _private(a) and not _private(b):
                breaks.append(f"private {a} imports public {b}")
            if _course(b) and not _course(a):
                breaks.append(f"{a} imports the course module {b}")
    return breaks


def levels(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's level: 1 for a module that imports no package module, else one more than its highest import
    (only meaningful without circles)."""
    level: dict[str, int] = {}

    def depth(v, seen=()):
        if v not in level:
            level[v] = 1 + max((depth(w, seen + (v,)) for w in graph[v] if w not in seen), default=0)
        return level[v]

    for v in graph:
        depth(v)
    return level


def trace(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module reachable from ``start`` through imports, ``start`` included."""
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(graph[v])
    return seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", help="a dotted module name, e.g. dlviz.attribution.grad_cam")
    args = parser.parse_args(argv)
    graph = edges()
    if args.trace:
        print("\n".join(sorted(trace(graph, args.trace))))
        return 0
    found, breaks = circles(graph), rule_breaks(graph)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} arrows, "
          f"{max(levels(graph).values())} levels, {len(found)} circles, {len(breaks)} rule breaks")
    for component in found:
        print("circle:", " <-> ".join(component))
    for line in breaks:
        print(line)
    return 1 if found or breaks else 0


if __name__ == "__main__":
    sys.exit(main())
