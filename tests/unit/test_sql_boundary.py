"""Every SQL statement lives in ``store/``: no module outside it imports SQLAlchemy (or GeoAlchemy2, psycopg)
or carries SQL text; the same holds in the dev tooling and research packages, where ``terrawatch_dev/stack/``
launches PostgreSQL and is allowed its bootstrap SQL (roles, extensions)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import terrawatch
from tests.import_graph import parse

ROOT = Path(terrawatch.__file__).parent
ROOTS = (ROOT, ROOT.parent / "terrawatch_dev", ROOT.parent / "terrawatch_research")
ALLOWED_DIRS = {("terrawatch", "store"), ("terrawatch_dev", "stack")}
DB_PACKAGES = ("sqlalchemy", "geoalchemy2", "psycopg", "psycopg2", "alembic")
# A string that reads like a SQL statement: a leading keyword and the clause that makes it a statement.
SQL_TEXT = re.compile(
    r"^\s*(?:select\b[\s\S]*\bfrom\b|select\s+[\w.]+\s*\(|insert\s+into\b|update\s+\w[\w.]*\s+set\b|delete\s+from\b|"
    r"with\s+\w+\s+as\s*\(|create\s+(?:table|index|view|role|extension)\b|alter\s+(?:table|role)\b|"
    r"drop\s+(?:table|view|index)\b|grant\s+\w+|truncate\s+\w+)", re.IGNORECASE)


def _modules():
    for path in sorted(p for root in ROOTS for p in root.rglob("*.py")):
        rel = path.relative_to(ROOT.parent)
        if rel.parts[:2] in ALLOWED_DIRS:
            continue
        yield rel, parse(path)


def violations(rel: Path, tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in DB_PACKAGES:
                out.append(f"{rel}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.match(node.value):
            out.append(f"{rel}:{node.lineno}: SQL text {node.value.strip()[:60]!r}")
    return out


def test_the_detector_sees_what_it_must():
    bad = ast.parse("import sqlalchemy\nfrom sqlalchemy.exc import DataError\nfrom geoalchemy2.shape import to_shape\n"
                    "Q = 'select id from scenes where x = 1'\nU = '''update api_keys set last_used_at = now()'''\n"
                    "W = 'with bounds as (select 1) select * from bounds'\nD = 'DELETE FROM alerts'\n"
                    "V = 'select postgis_lib_version()'\n")
    assert len(violations(Path("x.py"), bad)) == 8
    fine = ast.parse("from terrawatch.store.db import Engine\nM = 'Select the layers to show'\n"
                     "H = 'Update the settings, then restart'\nS = 'insert the key'\n")
    assert violations(Path("x.py"), fine) == []


def test_no_sql_outside_store():
    found = [v for rel, tree in _modules() for v in violations(rel, tree)]
    assert not found, "SQL outside store/ (move it into a store/ function):\n" + "\n".join(found)
