"""Hazard kinds are data: everything that names the hazards agrees with the registry (domain/hazards.py),
and the scene-id pattern and product file names have one owner (domain/products.py)."""

from __future__ import annotations

import ast
import json
import re

import pytest

from terrawatch.api.routes.map import HAZARD_COLOURS, legend
from terrawatch.domain import products
from terrawatch.domain.hazards import HAZARDS
from terrawatch.domain.scene import SCHEMA_PATH
from terrawatch.products.tiles import RAMPS
from tests.import_graph import PACKAGE, parse

SCHEMA = json.loads(SCHEMA_PATH.read_text())


def test_the_scene_event_schema_enumerates_the_registrys_hazards():
    enum = SCHEMA["properties"]["properties"]["properties"]["terrawatch:hazards"]["items"]["enum"]
    assert enum == list(HAZARDS)


def test_every_hazard_has_a_ramp_a_map_colour_and_a_legend_entry():
    assert set(RAMPS) == {*HAZARDS, products.FLOOD_FUSED}
    assert set(HAZARD_COLOURS) == set(HAZARDS)
    lg = legend()
    assert set(lg["hazards"]) == set(HAZARDS)
    assert set(lg["ramps"]) == {p for p in products.PRODUCTS if p != products.QUICKLOOK}


def test_every_product_has_a_file_name():
    assert set(products.FILES) == set(products.PRODUCTS)
    assert {products.FILES[h] for h in HAZARDS} == {f"{h}_likelihood.tif" for h in HAZARDS}
    assert len(set(products.FILES.values())) == len(products.FILES)


def _schema_id_patterns() -> list[tuple[str, int]]:
    props = SCHEMA["properties"]
    pre = props["properties"]["properties"]["terrawatch:pre_event_scene"]
    return [(props["id"]["pattern"], props["id"]["maxLength"]), (pre["pattern"], pre["maxLength"])]


@pytest.mark.parametrize("candidate", ["S1A_IW_GRDH_1SDV_20240501", "a", "a.b:c-d_e", "x" * 256, "x" * 257, ".",
                                       "..", "...", "a/b", "a b", "", "é", ".hidden", "a..b"])
def test_the_schema_and_the_scene_id_owner_accept_the_same_ids(candidate):
    ours = bool(products.SCENE_ID.match(candidate))
    for pattern, max_length in _schema_id_patterns():
        assert (bool(re.search(pattern, candidate)) and 1 <= len(candidate) <= max_length) == ours, candidate
    # the HTTP path form checks characters and length; it accepts at least every valid id
    assert not ours or re.match(products.SCENE_ID_CHARS, candidate)


NAMES = ("_likelihood.tif", "quicklook.tif", "flood_fused.tif", "cloud_mask.tif", "A-Za-z0-9._:-")


def _literals(tree: ast.AST):
    """String constants that are not docstrings (a docstring may describe a file name)."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def test_product_file_names_and_the_scene_id_pattern_are_written_in_one_module():
    owner = PACKAGE / "domain" / "products.py"
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == owner or "node_modules" in path.parts:
            continue
        tree = parse(path)
        for node in _literals(tree):
            if any(n in node.value for n in NAMES) and "\n" not in node.value and len(node.value) < 80:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    assert offenders == [], "write these through terrawatch.domain.products:\n" + "\n".join(offenders)


def test_the_literal_scan_sees_code_but_not_docstrings():
    tree = ast.parse('"""Writes <scene>/quicklook.tif."""\nP = "flood_fused.tif"\nf = f"{h}_likelihood.tif"\n')
    found = [n.value for n in _literals(tree) if any(x in n.value for x in NAMES)]
    assert found == ["flood_fused.tif", "_likelihood.tif"]
