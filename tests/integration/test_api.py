"""The HTTP API against the real PostGIS: OGC API read by GDAL and owslib, vector tiles, auth matrix."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from types import SimpleNamespace

import httpx
import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import func, select

from terrawatch.api import create_app, roles
from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration

COLLECTIONS = {"detections", "alerts", "scenes", "reference_layers"}
STATE_CHANGING = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def api(stack):
    s = stack.settings
    engine = engine_for(s.db_url)
    # Far from every other test's data, so counts inside this bbox are this module's own.
    seeded = seed_layers(engine, center=(27.5, -4.5), spread_deg=0.4, scenes=2, detections_per_scene=15,
                         tag=f"api-{uuid.uuid4().hex[:6]}")
    keys = role_keys(s, "api")
    with live_api(s) as base:
        yield SimpleNamespace(s=s, base=base, keys=keys, seeded=seeded, engine=engine,
                              bbox=",".join(str(v) for v in seeded.bounds))
    delete_seeded(engine, seeded)


def _db_count(api, hazard: str | None = None) -> int:
    q = select(func.count()).select_from(t.detections).where(t.detections.c.scene_id.in_(api.seeded.scene_ids))
    if hazard:
        q = q.where(t.detections.c.hazard == hazard)
    with api.engine.connect() as c:
        return c.execute(q).scalar_one()


def _ogrinfo(api, *args: str) -> str:
    res = subprocess.run(["ogrinfo", "--config", "GDAL_HTTP_HEADERS", f"X-API-Key: {api.keys['viewer']}",
                          *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GDAL_HTTP_TIMEOUT": "30"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_gdal_ogrinfo_lists_collections_and_pages_through_features(api):
    listing = _ogrinfo(api, "-ro", f"OAPIF:{api.base}/ogc")
    for name in COLLECTIONS:
        assert f": {name}" in listing, listing
    minx, miny, maxx, maxy = api.seeded.bounds
    spat = ["-spat", str(minx), str(miny), str(maxx), str(maxy)]
    # GDAL asks for pages of 10 and follows the `next` links.
    out = _ogrinfo(api, "-ro", "-al", "-q", f"OAPIF:{api.base}/ogc", "detections", *spat)
    assert out.count("OGRFeature(detections)") == _db_count(api) > 10
    assert "MULTIPOLYGON" in out
    flood = _ogrinfo(api, "-ro", "-al", "-q", f"OAPIF:{api.base}/ogc", "detections", *spat,
                     "-where", "hazard = 'flood'")
    assert flood.count("OGRFeature(detections)") == _db_count(api, "flood") > 0


def test_owslib_reads_collections_filters_and_pages(api):
    from owslib.ogcapi.features import Features

    w = Features(f"{api.base}/ogc", headers=hdr(api.keys["viewer"]))
    assert COLLECTIONS <= {c["id"] for c in w.collections()["collections"]}
    conf = w.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    bbox = list(api.seeded.bounds)
    page1 = w.collection_items("detections", bbox=bbox, limit=4, offset=0, hazard="mining")
    page2 = w.collection_items("detections", bbox=bbox, limit=4, offset=4, hazard="mining")
    assert page1["numberMatched"] == _db_count(api, "mining")
    ids1 = {f["id"] for f in page1["features"]}
    ids2 = {f["id"] for f in page2["features"]}
    assert len(ids1) == 4 and ids2 and not ids1 & ids2
    assert {f["properties"]["hazard"] for f in page1["features"] + page2["features"]} == {"mining"}
    alerts = w.collection_items("alerts", bbox=bbox, limit=100, confidence="high", status="acknowledged")
    assert alerts["features"], "seeded alerts include high/acknowledged ones"
    assert {(f["properties"]["confidence"], f["properties"]["status"]) for f in alerts["features"]} == {
        ("high", "acknowledged")}


def test_ogc_datetime_filter_selects_one_scene(api):
    from datetime import timedelta

    t0, t1 = api.seeded.times  # the two scenes are one day apart
    # tipg treats a closed interval as [start, end) (see docs/api.md), hence end = t1 + 1 s.
    for when, expected in [(t0.isoformat(), {api.seeded.scene_ids[0]}),
                           (f"{t0.isoformat()}/{(t1 + timedelta(seconds=1)).isoformat()}", set(api.seeded.scene_ids)),
                           (f"../{(t0 + timedelta(hours=1)).isoformat()}", {api.seeded.scene_ids[0]})]:
        r = httpx.get(f"{api.base}/ogc/collections/detections/items", headers=hdr(api.keys["viewer"]),
                      params={"bbox": api.bbox, "datetime": when.replace("+00:00", "Z"), "limit": 100})
        assert r.status_code == 200, r.text
        assert r.json()["numberMatched"] == 15 * len(expected)
        assert {f["properties"]["scene_id"] for f in r.json()["features"]} == expected


def test_ogc_property_filter_is_not_sql(api):
    r = httpx.get(f"{api.base}/ogc/collections/detections/items", headers=hdr(api.keys["viewer"]),
                  params={"bbox": api.bbox, "hazard": "flood' OR '1'='1"})
    assert r.status_code == 200 and r.json()["numberMatched"] == 0


def _vertices(geom: dict) -> int:
    def count(c):
        return 1 if isinstance(c[0], (int, float)) else sum(count(x) for x in c)
    return count(geom["coordinates"])


def test_vector_tiles_decode_and_are_simplified_at_low_zoom(api):
    with api.engine.connect() as c:
        det_id, wkb = c.execute(select(t.detections.c.id, func.ST_AsText(func.ST_PointOnSurface(t.detections.c.geom)))
                                .where(t.detections.c.scene_id == api.seeded.scene_ids[0]).limit(1)).one()
    pt = shape({"type": "Point", "coordinates": [float(v) for v in wkb[6:-1].split()]})
    sizes, verts = {}, {}
    for z in (5, 14):
        tile = morecantile.tms.get("WebMercatorQuad").tile(pt.x, pt.y, z)
        r = httpx.get(f"{api.base}/tiles/detections/{z}/{tile.x}/{tile.y}.pbf", headers=hdr(api.keys["viewer"]))
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        layers = mapbox_vector_tile.decode(r.content)
        feats = {f["properties"]["id"]: f for f in layers["detections"]["features"]}
        assert det_id in feats
        props = feats[det_id]["properties"]
        assert props["hazard"] in {"flood", "deforestation", "mining"} and props["t"] > 0
        sizes[z], verts[z] = len(r.content), _vertices(feats[det_id]["geometry"])
    assert verts[14] >= 40, verts  # ~120-vertex outline kept at street level
    assert verts[5] <= 6, verts  # a point or a handful of vertices at z5
    tj = httpx.get(f"{api.base}/tiles/detections.json", headers=hdr(api.keys["viewer"])).json()
    assert tj["tilejson"] == "3.0.0" and tj["tiles"][0].endswith("/tiles/detections/{z}/{x}/{y}.pbf")
    assert tj["vector_layers"][0]["id"] == "detections" and "hazard" in tj["vector_layers"][0]["fields"]
    assert len(tj["terrawatch:time_range"]) == 2


def test_unknown_layer_and_tile_out_of_range_are_4xx(api):
    h = hdr(api.keys["viewer"])
    assert httpx.get(f"{api.base}/tiles/subscribers/1/0/0.pbf", headers=h).status_code == 404
    r = httpx.get(f"{api.base}/tiles/alerts/2/4/0.pbf", headers=h)  # x beyond 2^z - 1: no such tile, as /raster
    assert r.status_code == 404 and "WebMercatorQuad" in r.json()["description"], r.text
    r = httpx.get(f"{api.base}/tiles/alerts/99/0/0.pbf", headers=h)  # a path parameter out of range: 400 naming it
    assert r.status_code == 400 and "z" in r.json()["description"], r.text
    assert httpx.get(f"{api.base}/ogc/collections/subscribers/items", headers=h).status_code == 404


def _fill(path: str) -> str:
    return (path.replace("{alert_id}", str(uuid.uuid4())).replace("{subscription_id}", str(uuid.uuid4()))
            .replace("{key_id}", "0123456789ab").replace("{layer}", "probe").replace("{scene_id}", "probe")
            .replace("{delivery_id}", "msg_probe").replace("{collectionId}", "alerts").replace("{itemId}", "1")
            .replace("{z}", "0").replace("{x}", "0").replace("{y}", "0"))


def test_every_state_changing_endpoint_requires_operator_or_admin(api):
    """Walk the published OpenAPI schema: declared roles, and the server enforcing them."""
    schema = httpx.get(f"{api.base}/openapi.json").json()
    checked = 0
    for path, item in schema["paths"].items():
        for method, op in item.items():
            role = op.get("x-required-role")
            url = api.base + _fill(path)
            if method in STATE_CHANGING and (method.upper(), path) not in roles.READ_ONLY:
                assert role in {"operator", "admin"}, f"{method.upper()} {path} declares {role}"
                scopes = {s for req in op["security"] for v in req.values() for s in v}
                assert role in scopes
                for who, expected in [(None, 401), ("viewer", 403)] + ([("operator", 403)] if role == "admin" else []):
                    r = httpx.request(method, url, headers=hdr(api.keys[who]) if who else {}, json={})
                    assert r.status_code == expected, f"{method.upper()} {path} as {who}: {r.status_code} {r.text}"
                checked += 1
            elif role in {"viewer", "operator", "admin"}:
                r = httpx.request(method, url)
                assert r.status_code == 401, f"{method.upper()} {path} without a key: {r.status_code}"
    assert checked >= 15  # ops actions, keys, reference layers (+ subscriptions/alerts when mounted)


def test_keys_via_api_are_audited_and_revocable(api):
    admin = hdr(api.keys["admin"])
    created = httpx.post(f"{api.base}/ops/keys", headers=admin, json={"name": "ci-operator", "role": "operator"})
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["id"]
    assert httpx.get(f"{api.base}/ops/audit", headers=hdr(key)).status_code == 200
    with api.engine.connect() as c:
        stored = c.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).mappings().one()
    assert key.encode() not in bytes(stored["key_hash"]) and len(stored["key_hash"]) == 32
    assert httpx.delete(f"{api.base}/ops/keys/{key_id}", headers=admin).status_code == 204
    assert httpx.get(f"{api.base}/ops/audit", headers=hdr(key)).status_code == 401
    audit = httpx.get(f"{api.base}/ops/audit", headers=admin, params={"limit": 50}).json()
    mine = [a for a in audit if a["target"] == key_id]
    assert {a["action"] for a in mine} == {"key.create", "key.revoke"}
    assert all(a["role"] == "admin" and a["actor"].startswith("test-api-admin") for a in mine)


def test_reference_layer_round_trip(api):
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "reserve A", "iucn": "II"},
         "geometry": {"type": "Polygon", "coordinates": [[[27.4, -4.6], [27.6, -4.6], [27.6, -4.4], [27.4, -4.6]]]}}]}
    layer = f"pa-{uuid.uuid4().hex[:6]}"
    r = httpx.put(f"{api.base}/ops/reference-layers/{layer}", headers=hdr(api.keys["operator"]), json=fc)
    assert r.status_code == 200 and r.json()["features"] == 1 and r.json()["used_by"] == []
    # a near miss of a layer the legality rules read is refused, not stored and silently ignored
    r = httpx.put(f"{api.base}/ops/reference-layers/protected-areas", headers=hdr(api.keys["operator"]), json=fc)
    assert r.status_code == 422 and "protected_area" in r.text, r.text
    items = httpx.get(f"{api.base}/ogc/collections/reference_layers/items", headers=hdr(api.keys["viewer"]),
                      params={"layer": layer}).json()
    assert [f["properties"]["name"] for f in items["features"]] == ["reserve A"]
    assert json.loads(items["features"][0]["properties"]["properties"])["iucn"] == "II"
    assert httpx.delete(f"{api.base}/ops/reference-layers/{layer}", headers=hdr(api.keys["operator"])).status_code == 204


def test_auth_failures_are_rate_limited_and_cors_is_configurable(stack):
    s = stack.settings.model_copy(update={"api_auth_failures_per_minute": 5,
                                          "api_cors_origins": "https://maps.example.org"})
    good = role_keys(s, "ratelimit")["viewer"]
    with TestClient(create_app(s)) as client:
        assert client.get("/tiles", headers=hdr(good)).status_code == 200
        bad = "tw_0123456789ab_" + "x" * 43
        assert [client.get("/tiles", headers=hdr(bad)).status_code for _ in range(5)] == [401] * 5
        limited = client.get("/tiles", headers=hdr(bad))
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # Failures are throttled, not the address: a valid key from the same client keeps working.
        assert client.get("/tiles", headers=hdr(good)).status_code == 200
        pre = client.options("/tiles", headers={"Origin": "https://maps.example.org",
                                                "Access-Control-Request-Method": "GET"})
        assert pre.headers.get("access-control-allow-origin") == "https://maps.example.org"
        other = client.options("/tiles", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in other.headers


def _tile_ids(api, layer: str, tile, **params) -> tuple[set, httpx.Response]:
    r = httpx.get(f"{api.base}/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.pbf", headers=hdr(api.keys["viewer"]),
                  params=params)
    assert r.status_code == 200, r.text
    feats = mapbox_vector_tile.decode(r.content).get(layer, {}).get("features", [])
    return {f["properties"]["id"]: f["properties"] for f in feats}, r


def test_vector_tiles_filter_on_the_server_and_refuse_unknown_parameters(api):
    minx, miny, maxx, maxy = api.seeded.bounds
    tile = morecantile.tms.get("WebMercatorQuad").tile((minx + maxx) / 2, (miny + maxy) / 2, 6)
    every, _ = _tile_ids(api, "alerts", tile)
    hazards = {p["hazard"] for p in every.values()}
    assert len(hazards) >= 2, hazards  # the seeded alerts span hazards: a filter has something to drop
    for hz in hazards:
        only, _ = _tile_ids(api, "alerts", tile, hazard=hz)
        assert only and {p["hazard"] for p in only.values()} == {hz}
        assert set(only) == {i for i, p in every.items() if p["hazard"] == hz}
    dets, _ = _tile_ids(api, "detections", tile, hazard="flood,mining", confidence="high")
    assert dets and all(p["hazard"] in {"flood", "mining"} and p["confidence"] == "high" for p in dets.values())
    t0, t1 = api.seeded.times
    late, _ = _tile_ids(api, "detections", tile, since=(t1.isoformat()).replace("+00:00", "Z"))
    assert late and {p["scene_id"] for p in late.values()} == {api.seeded.scene_ids[1]}
    assert all("created" in p and "updated" in p for p in every.values())
    future, _ = _tile_ids(api, "alerts", tile, updated_since="2999-01-01T00:00:00Z")
    assert future == {}
    h = hdr(api.keys["viewer"])
    for params, word in [({"hazrd": "flood"}, "hazrd"), ({"hazard": "tsunami"}, "hazard"),
                         ({"since": "yesterday"}, "since"), ({"status": ""}, "status"),
                         ({"layer": "x"}, "layer")]:
        r = httpx.get(f"{api.base}/tiles/alerts/{tile.z}/{tile.x}/{tile.y}.pbf", headers=h, params=params)
        assert r.status_code == 400 and word in r.json()["description"], (params, r.text)
    tj = httpx.get(f"{api.base}/tiles/alerts.json", headers=h, params={"hazard": "flood"}).json()
    assert tj["tiles"][0].endswith("/tiles/alerts/{z}/{x}/{y}.pbf?hazard=flood")


def test_vector_tile_etag_answers_304_and_changes_with_the_data(api):
    minx, miny, maxx, maxy = api.seeded.bounds
    tile = morecantile.tms.get("WebMercatorQuad").tile((minx + maxx) / 2, (miny + maxy) / 2, 6)
    before, r1 = _tile_ids(api, "alerts", tile)
    etag = r1.headers["etag"]
    again = httpx.get(f"{api.base}/tiles/alerts/{tile.z}/{tile.x}/{tile.y}.pbf",
                      headers={**hdr(api.keys["viewer"]), "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    # Any committed change to a layer table moves the version: the next tile is re-rendered, not served stale.
    victim = next(i for i, p in before.items() if p["status"] != "resolved")
    with api.engine.begin() as c:
        c.execute(t.alerts.update().where(t.alerts.c.id == uuid.UUID(victim)).values(status="resolved"))
    after, r2 = _tile_ids(api, "alerts", tile)
    assert r2.headers["etag"] != etag
    assert after[victim]["status"] == "resolved"
    gone = httpx.get(f"{api.base}/tiles/alerts/{tile.z}/{tile.x}/{tile.y}.pbf",
                     headers={**hdr(api.keys["viewer"]), "If-None-Match": etag})
    assert gone.status_code == 200


def test_stock_gdal_filters_on_the_server_through_the_collection_url(api):
    """GDAL 3.6's OAPIF driver hands the query of `OAPIF:<...>/collections/detections?hazard=flood` to the
    collection document and to every items request: only floods come back, filtered by the server (GDAL does
    not evaluate `hazard=` itself)."""
    minx, miny, maxx, maxy = api.seeded.bounds
    spat = ["-spat", str(minx), str(miny), str(maxx), str(maxy)]
    out = _ogrinfo(api, "-ro", "-al", f"OAPIF:{api.base}/ogc/collections/detections?hazard=flood", *spat)
    assert out.count("OGRFeature(") == _db_count(api, "flood") > 0
    assert "hazard (String) = flood" in out and "hazard (String) = mining" not in out
    bad = httpx.get(f"{api.base}/ogc/collections/detections", headers=hdr(api.keys["viewer"]),
                    params={"hazrd": "flood"})
    assert bad.status_code == 400 and "hazrd" in bad.text


def test_incremental_pull_by_updated_at(api):
    """'What is new since my last check': created_at/updated_at are queryable and sortable on alerts and
    detections."""
    h = hdr(api.keys["viewer"])
    url = f"{api.base}/ogc/collections/alerts/items"
    every = httpx.get(url, headers=h, params={"bbox": api.bbox, "limit": 1000}).json()
    assert every["numberMatched"] > 0
    assert all(f["properties"]["created_at"] and f["properties"]["updated_at"] for f in every["features"])
    later = httpx.get(url, headers=h, params={"bbox": api.bbox, "filter": "updated_at > TIMESTAMP('2999-01-01T00:00:00Z')"})
    assert later.status_code == 200, later.text
    assert later.json()["numberMatched"] == 0
    newest = max(f["properties"]["updated_at"] for f in every["features"])
    top = httpx.get(url, headers=h, params={"bbox": api.bbox, "sortby": "-updated_at", "limit": 1}).json()
    assert top["features"][0]["properties"]["updated_at"] == newest
    dets = httpx.get(f"{api.base}/ogc/collections/detections/items", headers=h,
                     params={"bbox": api.bbox, "limit": 5}).json()["features"]
    assert dets and all(f["properties"]["updated_at"] >= f["properties"]["created_at"] for f in dets)


def test_api_doc_commands_run_as_written(api):
    """docs/api.md's shell block runs as written (its first line sets API and KEY; the test gives its own)."""
    import re

    from terrawatch.settings import REPO_ROOT

    text = (REPO_ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    assert blocks, "docs/api.md has no sh block"
    for block in blocks:
        lines = block.splitlines()
        assert lines[0].startswith("API=") and "KEY=" in lines[0], "the block must start by setting API and KEY"
        script = "\n".join(lines[1:])
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "API": api.base, "KEY": api.keys["viewer"],
                                               "GDAL_HTTP_TIMEOUT": "30"})
        assert res.returncode == 0, (script, res.stdout[-2000:], res.stderr[-2000:])
        assert "detections" in res.stdout and '"tilejson"' in res.stdout, res.stdout[-2000:]
