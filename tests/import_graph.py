"""The import graph of the ``terrawatch`` distribution's packages (``terrawatch``, the runtime;
``terrawatch_dev``, dev tooling; ``terrawatch_research``, training and evaluation), read from the source with
``ast`` (nothing is imported).

Every ``import`` counts: module level, inside functions and under ``TYPE_CHECKING`` (a structure drawing
shows them all, and a lazy import is still a dependency). ``from pkg import name`` points at the submodule
``pkg.name`` when there is one, else at ``pkg``. Importing ``a.b.c`` is an edge to ``a.b.c`` only (not to the
parent packages' ``__init__``)."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import terrawatch

PACKAGE = Path(terrawatch.__file__).parent
DEV_PACKAGE = PACKAGE.parent / "terrawatch_dev"
RESEARCH_PACKAGE = PACKAGE.parent / "terrawatch_research"
PACKAGES = (PACKAGE, DEV_PACKAGE, RESEARCH_PACKAGE)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``.../terrawatch/service/ports.py`` -> ``terrawatch.service.ports`` (a package: its ``__init__``)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py")) if "node_modules" not in p.parts}


def build_graph(*roots: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module of any of the packages ``roots`` (default: ``terrawatch`` alone): line of
    the first import}."""
    roots = roots or (PACKAGE,)
    mods = {name: path for root in roots for name, path in modules(root).items()}
    tops = {root.name for root in roots}

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in tops:
                    dep = resolve(target)
                    if dep and dep != mod:
                        edges[dep] = min(edges.get(dep, node.lineno), node.lineno)
        graph[mod] = edges
    return graph


_TREES: dict[tuple[str, int, int], ast.Module] = {}


def parse(path: Path) -> ast.Module:
    """``ast.parse`` of ``path``, read once per test session while the file is unchanged (keyed by path, size
    and mtime): the boundary tests walk the same few hundred files. Do not mutate the tree."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    tree = _TREES.get(key)
    if tree is None:
        tree = _TREES[key] = ast.parse(path.read_text(), str(path))
    return tree


@lru_cache(maxsize=1)
def package_graph() -> dict[str, dict[str, int]]:
    """:func:`build_graph` of the three packages (:data:`PACKAGES`), read once per test session (do not mutate)."""
    return build_graph(*PACKAGES)


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is a few hundred modules, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, dict[str, int]], comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first back to it)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in comp:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a`` with the line of each import."""
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def reaches(graph: dict[str, dict[str, int]], start: str, allowed=lambda m: True) -> dict[str, list[str]]:
    """Every module ``start`` imports directly or through others, with one import chain to it; ``allowed(m)``
    False stops the walk at ``m`` (it is reached but not followed)."""
    chain = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            if v != start and not allowed(v):
                continue
            for w in sorted(graph.get(v, {})):
                if w not in chain:
                    chain[w] = chain[v] + [w]
                    nxt.append(w)
        frontier = nxt
    del chain[start]
    return chain
