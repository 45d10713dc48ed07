"""No import circles in the ``terrawatch``, ``terrawatch_dev`` and ``terrawatch_research`` packages (the
structure drawing of the imports is a tree of layers).

The graph counts every import, lazy and ``TYPE_CHECKING`` ones included (tests/import_graph.py): a cycle is
reported with the line of each import in it."""

from __future__ import annotations

from tests.import_graph import build_graph, cycles, describe, package_graph


def test_the_package_has_no_import_cycle():
    graph = package_graph()
    assert len(graph) > 100, f"only {len(graph)} modules found"
    found = [describe(graph, c) for c in cycles(graph)]
    assert found == [], "import cycles:\n" + "\n".join(found)


def _write(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_the_check_finds_lazy_relative_and_type_checking_cycles(tmp_path):
    """The graph sees function-level, relative and TYPE_CHECKING imports, so the test above can fail."""
    pkg = tmp_path / "terrawatch"
    _write(pkg, {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from terrawatch.a.y import Y\n",
        "a/y.py": "def f():\n    from .x import X\n",
        "b/__init__.py": "",
        "b/p.py": "import terrawatch.b.q\n",
        "b/q.py": "from terrawatch.b import r\n",
        "b/r.py": "from terrawatch import b\nfrom terrawatch.b.p import P\n",
        "c.py": "from terrawatch.a import y\n",
    })
    graph = build_graph(pkg)
    assert graph["terrawatch.c"] == {"terrawatch.a.y": 1}
    assert graph["terrawatch.b.r"] == {"terrawatch.b": 1, "terrawatch.b.p": 2}
    found = sorted(describe(graph, c) for c in cycles(graph))
    assert found == [
        "terrawatch.a.x (line 3) -> terrawatch.a.y (line 2) -> terrawatch.a.x",
        "terrawatch.b.p (line 1) -> terrawatch.b.q (line 1) -> terrawatch.b.r (line 2) -> terrawatch.b.p",
    ]
