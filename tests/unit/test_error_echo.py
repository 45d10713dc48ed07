"""Issue 25, findings 5 and 7: 4xx bodies echo at most a short excerpt of the input, never database error
text, and are JSON with ``<``/``>``/``&`` escaped; CQL2 values cql2-rs cannot render are a 400, not a 500."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError
from tipg import errors as tipg_errors

from terrawatch.api import cql, errors
from terrawatch.api.errors import BadRequest

COLUMNS = {"id": "bigint", "hazard": "text", "sensing_time": "timestamptz", "area_ha": "double precision"}


class _Pg(Exception):
    def __init__(self, msg: str, sqlstate: str) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    errors.install(app)
    raised = {}

    @app.api_route("/raise/{i}", methods=["GET", "POST"])
    @app.api_route("/ogc/raise/{i}", methods=["GET", "POST"])
    def boom(i: int):
        raise raised[i]

    app.state.raised = raised
    return TestClient(app, raise_server_exceptions=False)


def _raise(client, exc, path="/ogc/raise/0", body: dict | None = None):
    client.app.state.raised[0] = exc
    return client.get(path) if body is None else client.post(path, json=body)


def test_bounded_cuts_every_long_token_to_an_excerpt():
    long = "x" * 6000
    out = errors.bounded(f"Item {long} in Collection alerts does not exist.")
    assert len(out) < 200 and "x" * 80 + "…" in out and "x" * 81 not in out
    assert out.endswith("does not exist.")
    assert errors.bounded("a\x00b\nc") == "a b c"
    assert len(errors.bounded(" ".join(["word"] * 1000))) <= errors.MAX_DESCRIPTION_CHARS + 1


def test_tipg_errors_do_not_echo_long_inputs(client):
    r = _raise(client, tipg_errors.NotFound(f"Item {'y' * 6000} in Collection alerts does not exist."))
    assert r.status_code == 404 and len(r.content) < 300, r.text[:300]
    assert "y" * 80 + "…" in r.json()["description"]


@pytest.mark.parametrize("text,sqlstate", [
    ('value "99999999999999999999999" is out of range for type bigint', "22003"),
    ("bigint out of range", "22003"),
    ('invalid input syntax for type bigint: "abc"', "22P02"),
])
def test_database_data_errors_carry_no_database_text(client, text, sqlstate):
    # 422 only for a request with a body outside /ogc; a bodiless request's input is its parameters: 400
    for path, status, body in (("/ogc/raise/0", 400, None), ("/raise/0", 422, {"a": 1}), ("/raise/0", 400, None)):
        r = _raise(client, DataError("select", {}, _Pg(text, sqlstate)), path, body)
        assert r.status_code == status, r.text
        body = r.json()["description"]
        assert "bigint" not in body and "99999" not in body and "syntax" not in body, body
        assert body.startswith("invalid value: ")


def test_postgres_errors_on_ogc_carry_no_database_text(client):
    import asyncpg

    exc = asyncpg.exceptions.UndefinedFunctionError("operator does not exist: text > integer")
    r = _raise(client, exc)
    assert r.status_code == 400, r.text
    assert "operator does not exist" not in r.text and "integer" not in r.text
    assert r.json()["description"] == "the query cannot be evaluated: " + errors.SQLSTATE_MESSAGES["42883"]


def test_error_bodies_escape_html_characters(client):
    r = _raise(client, BadRequest("name '<script>alert(1)</script>' & more"), "/raise/0")
    assert r.status_code == 400
    assert b"<" not in r.content and b">" not in r.content and b"&" not in r.content
    assert b"\\u003cscript\\u003e" in r.content
    assert json.loads(r.content)["description"] == "name '<script>alert(1)</script>' \u0026 more"


class _Item(BaseModel):
    n: int


def test_validation_errors_cut_values_and_locations():
    from fastapi import Body

    app = FastAPI()
    errors.install(app)

    @app.post("/x")
    def x(body: dict[str, _Item] = Body()):
        return {}

    @app.get("/y")
    def y(n: int):
        return {}

    r = TestClient(app).post("/x", json={"k" * 500: {"n": "<b>" + "z" * 500}})
    assert r.status_code == 422 and len(r.content) < 800, r.text[:300]  # an invalid body: 422
    assert b"<b>" not in r.content
    r = TestClient(app).get("/y", params={"n": "<b>" + "z" * 500})  # a malformed query parameter: 400 naming it
    assert r.status_code == 400 and r.json()["description"] == "invalid parameter: n", r.text[:300]
    assert b"<b>" not in r.content and len(r.content) < 800


@pytest.mark.parametrize("tree,message", [
    ({"op": "t_during", "args": [{"property": "sensing_time"}, {"interval": [{"op": "casei", "args": ["x"]}, ".."]}]},
     "interval bounds"),
    ({"op": "t_during", "args": [{"property": "sensing_time"}, {"interval": [{"property": "sensing_time"}, ".."]}]},
     "interval bounds"),
    ({"op": "t_after", "args": [{"property": "sensing_time"}, {"date": "9999-12-31"}]}, "out of range"),
    ({"op": "t_after", "args": [{"property": "sensing_time"}, {"timestamp": "9999-12-31T23:59:59Z"}]},
     "out of range"),
])
def test_interval_bounds_and_dates_cql2_rs_cannot_render_are_refused(tree, message):
    with pytest.raises(BadRequest, match=message):
        cql.check(tree, COLUMNS)


def test_timestamp_objects_as_interval_bounds_are_rendered_as_strings():
    tree = {"op": "t_during", "args": [{"property": "sensing_time"},
                                       {"interval": [{"timestamp": "2024-01-01T00:00:00Z"}, ".."]}]}
    cql.check(tree, COLUMNS)
    from cql2 import Expr

    with pytest.raises(Exception):  # what tipg got before: a plain Exception, a 500
        Expr(tree).to_sql()
    normal = cql.normalise(tree)
    cql.renders(normal)
    assert normal["args"][1] == {"interval": ["2024-01-01T00:00:00Z", ".."]}


def test_renders_turns_cql2_rs_failures_into_400():
    with pytest.raises(BadRequest, match="cannot be evaluated"):
        cql.renders({"op": "=", "args": [{"property": "id"}, 99999999999999999999999]})


def test_integer_ids_and_values_outside_the_column_range_are_400():
    from types import SimpleNamespace

    from terrawatch.api.routes import ogc

    collection = SimpleNamespace(id="detections", id_column=SimpleNamespace(type="bigint"))
    ogc._check_ids(["1", "-9223372036854775808", "9223372036854775807"], collection)
    for bad in ("99999999999999999999999", "18446744073709551616", "-9223372036854775809", "abc", "1.5", "x" * 6000):
        with pytest.raises(BadRequest) as err:
            ogc._check_ids([bad], collection)
        assert len(err.value.reason) < 200
    ogc._check_ids(["anything"], SimpleNamespace(id="alerts", id_column=SimpleNamespace(type="text")))
    assert not ogc._integer_in_range("40000", "smallint") and ogc._integer_in_range("1e400", "text")


@pytest.mark.parametrize("href", ["http://<img src=x onerror=alert(1)>/a.tif", "http://" + "a" * 3000 + ".invalid/x.tif",
                                  "http://h:99<script>/x.tif"])
def test_asset_policy_reasons_carry_no_markup_and_no_long_host(href):
    from terrawatch.domain.errors import UnreadableAsset
    from terrawatch.imagery.asset_policy import AssetPolicy
    from terrawatch.settings import Settings

    with pytest.raises(UnreadableAsset) as err:
        AssetPolicy.from_settings(Settings()).check(href)
    reason = str(err.value)
    assert "<" not in reason and ">" not in reason and len(reason) < 300, reason


@pytest.mark.parametrize("exc", [tipg_errors.InvalidBBox("Invalid longitude in bbox"), tipg_errors.InvalidPropertyName("x"),
                                 tipg_errors.MissingDatetimeColumn("no datetime column"),
                                 tipg_errors.MissingGeometryColumn("no geometry column")])
def test_tipg_parameter_errors_are_400(client, exc):
    r = _raise(client, exc)
    assert r.status_code == 400, r.text
