"""The OpenAPI document says what the API does (issue 26, one rule for parameters): every operation declares
its 400 (a bad, missing or unknown parameter) with the project's error body, FastAPI's default 422
"Validation Error" is gone (parameters are never a 422), only an operation with a JSON body declares a 422
(an invalid body); every query parameter a route honours is in the document, any other is refused with 400;
and docs/api.md names every query parameter of every route next to its path."""

from __future__ import annotations

import json
import re
import uuid
import warnings

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from terrawatch.api.app import create_app, declared_query
from terrawatch.api.routes.map import legend
from terrawatch.settings import REPO_ROOT, Settings

ERROR_REF = "#/components/schemas/ErrorBody"
MAP_JS = REPO_ROOT / "services" / "terrawatch" / "api" / "web" / "src" / "map.js"
API_MD = REPO_ROOT / "docs" / "api.md"


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(api_public_read=True, pg_port=1, kafka_port=1))


@pytest.fixture(scope="module")
def schema(app):
    with warnings.catch_warnings():  # FastAPI warns about the GET/HEAD pair of one asset function
        warnings.simplefilter("ignore")
        return app.openapi()


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_no_422_for_parameters_and_a_400_with_the_error_body_on_every_operation(schema):
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "description"}
    missing, wrong = [], []
    for method, path, op in _operations(schema):
        responses = op["responses"]
        bad = responses.get("400", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if bad.get("$ref") != ERROR_REF:
            missing.append(f"{method.upper()} {path}")
        if "422" in responses:
            body = responses["422"].get("content", {}).get("application/json", {}).get("schema", {})
            if "requestBody" not in op or body.get("$ref") != ERROR_REF:
                wrong.append(f"{method.upper()} {path}")
    assert not missing, f"operations without their 400 (ErrorBody): {missing}"
    assert not wrong, f"a 422 on an operation without a JSON body, or not the ErrorBody: {wrong}"
    assert "HTTPValidationError" not in json.dumps(schema)


def _api_routes(app) -> list[APIRoute]:
    """The app's routes, through included routers (FastAPI 0.165 includes them lazily)."""
    try:
        from fastapi.routing import _iter_included_route_candidates as flatten
    except ImportError:  # an older FastAPI copies included routes into app.routes
        def flatten(routes):
            return routes
    return [r for r in flatten(app.routes) if isinstance(r, APIRoute)]


def test_the_document_lists_exactly_the_query_parameters_each_route_accepts(app, schema):
    checked = 0
    for route in _api_routes(app):
        if not route.include_in_schema or route.endpoint.__module__.startswith(("tipg", "terrawatch.api.routes.ogc")):
            continue  # OGC API routes (tipg, under /ogc): api/routes/ogc.py checks their parameters
        for method in route.methods - {"HEAD"}:
            op = schema["paths"][route.path][method.lower()]
            listed = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert listed == declared_query(route), f"{method} {route.path}"
            checked += 1
    assert checked > 40


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"alert_id": str(uuid.uuid4()), "subscription_id": str(uuid.uuid4()),
                                           "layer": "alerts", "product": "flood", "partition": "0", "offset": "1",
                                           "collection_id": "terrawatch-products", "z": "0", "x": "0",
                                           "y": "0"}.get(m.group(1), "S1"), path)


def test_an_undeclared_query_parameter_is_a_400_naming_it(app, schema):
    """Every GET a caller without a key reaches (the others answer 401 first, api/guard.py): ``?zzz=1`` is a
    400 naming ``zzz``, before any database or Kafka is asked (the app here has neither)."""
    client = TestClient(app, raise_server_exceptions=False)
    answered = 0
    for method, path, op in _operations(schema):
        if method != "get" or path.startswith("/ogc"):
            continue
        r = client.get(_fill(path), params={"zzz": "1"})
        if r.status_code == 401:
            continue
        assert r.status_code == 400 and "zzz" in r.json()["description"], f"{path}: {r.status_code} {r.text[:200]}"
        answered += 1
    assert answered >= 20


def _sections(text: str) -> list[str]:
    return re.split(r"\n(?=#{2,3} )", text)


def _path_regex(path: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", path)
    body = "".join(r"[^/`\s|?]+" if re.fullmatch(r"\{\w+\}", p) else re.escape(p) for p in parts)
    return re.compile(r"`(?:(?:GET|POST|PUT|DELETE) )?" + body + r"(?:[`?\[#|]|\.\w+`|\s)")


def test_docs_api_md_names_every_query_parameter_next_to_its_route(schema):
    """For each operation, every query parameter the document lists is written as `name` (or `name=`) in a
    section of docs/api.md that names the route's path."""
    sections = _sections(API_MD.read_text())
    missing = []
    for method, path, op in _operations(schema):
        params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        if not params:
            continue
        where = [s for s in sections if _path_regex(path).search(s)]
        if not where:
            missing.append(f"{method.upper()} {path}: path not in docs/api.md")
            continue
        for name in params:
            if not any(re.search(rf"`{re.escape(name)}(?:`|=)|[?&]{re.escape(name)}=", s) for s in where):
                missing.append(f"{method.upper()} {path}: `{name}`")
    assert not missing, "docs/api.md does not list:\n" + "\n".join(missing)


def test_observed_water_colour_of_the_page_is_in_the_legend():
    colour = re.search(r'const OBSERVED_WATER = "(#[0-9a-f]{6})"', MAP_JS.read_text()).group(1)
    named = [label for label, c in legend()["other"].items() if c == colour]
    assert named and "observed water" in named[0]


def test_starlette_errors_answer_in_the_error_body_shape(app):
    """No route, a method not allowed, a body that is not JSON: {code, description}, never {"detail": ...}."""
    client = TestClient(app, raise_server_exceptions=False)
    ct = {"Content-Type": "application/json"}
    for r, status, word in [
        (client.get("/styles/alerts.sld"), 404, "/styles/alerts.sld"),
        (client.delete("/map"), 405, "DELETE"),
        (client.post("/raster/flood/statistics", content="[" * 100_000 + "]" * 100_000, headers=ct), 400, "JSON"),
        (client.post("/raster/flood/statistics", content=b"{not json", headers=ct), 422, "invalid"),
    ]:
        assert r.status_code == status and set(r.json()) >= {"code", "description"}, (status, r.text[:200])
        assert word in r.json()["description"], r.text[:200]
