"""The routes issue 26 added, as an attacker sees them: the triage list ``GET /alerts``, ``/raster/.../point`` and
``/raster/.../statistics`` (huge polygons, invalid GeoJSON, self-intersections, a million vertices, out-of-range
or non-finite lon/lat, bodies over the size limit), ``/styles/*``, ``/map/places.geojson``, ``POST /ops/reprocess``
(area and period abuse, too many scene ids; always ``dry_run``, nothing is published) and the ``observed_water``
collection and tiles. Every answer is a 4xx with a message and a short body (never a 5xx, never the input echoed);
each request runs under a client timeout (a hang fails); the server logs no traceback or 5xx meanwhile.
Runs on the session stack with one live server (public read on, as the demo)."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrawatch.products.cog import to_cog
from terrawatch.store.uow import engine_for
from terrawatch_dev.api_samples import delete_seeded, seed_layers
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.hostile.server_log import ServerErrors

pytestmark = pytest.mark.integration

CENTER = (-62.5, -12.5)  # a place of this module's own
PX_DEG = 0.0001  # the product's pixel (degrees): 2000 x 2000 px over 0.2 degrees
MAX_ANSWER = 4096  # bytes of any 4xx body
TIMEOUT = 60  # s per request: a hang fails the test (no wall-clock assertion beyond this)


@pytest.fixture(scope="module")
def h26(stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("h26") / "products"
    s = stack.settings.model_copy(update={"api_public_read": True, "products_root": root})
    engine = engine_for(s.db_url)
    seeded = seed_layers(engine, center=CENTER, spread_deg=0.2, scenes=1, detections_per_scene=3,
                         tag=f"h26-{uuid.uuid4().hex[:6]}")
    sid = seeded.scene_ids[0]
    (root / sid).mkdir(parents=True)
    n = 2000
    with rasterio.open(root / sid / "flood_likelihood.tif", "w", driver="GTiff", width=n, height=n, count=2,
                       dtype="uint8", crs="EPSG:4326", nodata=255,
                       transform=from_origin(CENTER[0] - 0.1, CENTER[1] + 0.1, PX_DEG, PX_DEG)) as ds:
        ds.write(np.stack([np.full((n, n), 60, np.uint8), np.zeros((n, n), np.uint8)]))
    to_cog(root / sid / "flood_likelihood.tif")
    keys = role_keys(s, "h26")
    log = ServerErrors()
    watched = [logging.getLogger(), logging.getLogger("uvicorn.error"), logging.getLogger("uvicorn.access")]
    try:
        with live_api(s) as base:
            for lg in watched:
                lg.addHandler(log)
            try:
                yield SimpleNamespace(s=s, base=base, keys=keys, sid=sid, log=log, slowest=[0.0, ""])
            finally:
                for lg in watched:
                    lg.removeHandler(log)
    finally:
        delete_seeded(engine, seeded)


def _send(h26, method: str, path: str, *, key: str | None = "viewer", **kw) -> httpx.Response:
    headers = {**(hdr(h26.keys[key]) if key else {}), **kw.pop("headers", {})}
    t0 = time.perf_counter()
    r = httpx.request(method, h26.base + path, headers=headers, timeout=TIMEOUT, **kw)
    dt = time.perf_counter() - t0
    if dt > h26.slowest[0]:
        h26.slowest[:] = [dt, f"{method} {path[:80]}"]
    return r


def _refused(r: httpx.Response, what: str, status: tuple[int, ...] = (400,), word: str | None = None) -> None:
    assert r.status_code in status, f"{what}: {r.status_code} {r.text[:300]}"
    assert len(r.content) < MAX_ANSWER, f"{what}: a {len(r.content)}-byte answer"
    body = r.json()
    assert body.get("description"), f"{what}: no message: {r.text[:200]}"
    if word:
        assert word in body["description"], f"{what}: {body['description'][:300]}"


# ------------------------------------------------------------------------------------------ GET /alerts

ALERT_PARAMS = [
    ({"status": "bogus"}, "status"), ({"status": "new," * 2000 + "x"}, "status"), ({"hazard": "tsunami"}, "hazard"),
    ({"hazard": "flood\x00"}, "hazard"), ({"since": "yesterday"}, "since"), ({"since": "2026-12-07T08:00:00"}, "since"),
    ({"since": "2026-12-07T08:00:00 01:00"}, "since"), ({"since": "9" * 5000}, "since"),
    ({"since": "2026-12-07T00:00:00Z", "until": "2026-12-06T00:00:00Z"}, "since"), ({"until": "-1"}, "until"),
    ({"sortby": "id"}, "sortby"), ({"sortby": "-updated_at; drop table alerts"}, "sortby"), ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"), ({"limit": "-1"}, "limit"), ({"limit": "1e3"}, "limit"),
    ({"limit": "9" * 400}, "limit"), ({"limit": "٣"}, "limit"), ({"cursor": "garbage"}, "cursor"),
    ({"cursor": "A" * 5000}, "cursor"), ({"cursor": "eyJ1IjoxfQ"}, "cursor"), ({"bbox": "0,0,1,1"}, "bbox"),
    ({"<script>": "1"}, "script"), ({"filter": "pg_sleep(10) IS NULL"}, "filter"),
]


@pytest.mark.parametrize("params,word", ALERT_PARAMS, ids=[str(i) for i in range(len(ALERT_PARAMS))])
def test_alert_triage_list_refuses_hostile_parameters(h26, params, word):
    _refused(_send(h26, "GET", "/alerts", params=params), f"/alerts {str(params)[:60]}", word=word)


def test_alert_triage_list_repeated_values_and_no_key(h26):
    _refused(_send(h26, "GET", "/alerts?since=2026-01-01T00:00:00Z&since=2026-01-02T00:00:00Z"), "since twice",
             word="since")
    _refused(_send(h26, "GET", "/alerts", key=None), "no key", status=(401,))


# ------------------------------------------------------------------------------- /raster point, statistics

def _square(w: float, s: float, e: float, n: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _ring(k: int, radius: float = 0.05) -> list[list[float]]:
    ang = np.linspace(0, 2 * math.pi, k, endpoint=False)
    pts = [[round(CENTER[0] + radius * math.cos(a), 7), round(CENTER[1] + radius * math.sin(a), 7)] for a in ang]
    return pts + [pts[0]]


POINT_QUERIES = [
    ("lon=nan&lat=-12.5", "lon"), ("lon=inf&lat=-12.5", "lon"), ("lon=-inf&lat=-12.5", "lon"),
    ("lon=1e309&lat=-12.5", "lon"), ("lon=-181&lat=-12.5", "lon"), ("lon=-62.5&lat=90.0001", "lat"),
    ("lon=-62.5&lat=NaN", "lat"), ("lat=-12.5", "lon"), ("lon=&lat=-12.5", "lon"), ("lon=-62.5,1&lat=-12.5", "lon"),
    ("lon=0x10&lat=-12.5", "lon"), ("lon=-62.5&lat=-12.5&lon=3", "lon"), ("lon=-62.5&lat=-12.5&zzz=1", "zzz"),
    ("lon=" + "9" * 5000 + "&lat=1", "lon"),
]


@pytest.mark.parametrize("query,word", POINT_QUERIES, ids=[str(i) for i in range(len(POINT_QUERIES))])
def test_point_refuses_hostile_coordinates(h26, query, word):
    for path in (f"/raster/scenes/{h26.sid}/flood/point", "/raster/flood/point"):
        _refused(_send(h26, "GET", f"{path}?{query}"), f"{path}?{query[:40]}", word=word)
    for query2, word2 in [("lon=-62.5&lat=-12.5&datetime=garbage", "datetime"),
                          ("lon=-62.5&lat=-12.5&datetime=2026-01-02T00:00:00Z/2026-01-01T00:00:00Z", "datetime"),
                          ("lon=-62.5&lat=-12.5&limit=0", "limit"), ("lon=-62.5&lat=-12.5&limit=11", "limit"),
                          ("lon=-62.5&lat=-12.5&limit=1e1", "limit")]:
        _refused(_send(h26, "GET", f"/raster/flood/point?{query2}"), query2, word=word2)


def test_point_on_unknown_scenes_products_and_traversal_is_404(h26):
    for path in ("/raster/scenes/%2e%2e/flood/point", "/raster/scenes/x/flood/point",
                 f"/raster/scenes/{h26.sid}/quicklook/point", f"/raster/scenes/{h26.sid}/FLOOD/point",
                 "/raster/quicklook/point", "/raster/" + "a" * 300 + "/point"):
        _refused(_send(h26, "GET", path, params={"lon": -62.5, "lat": -12.5}), path[:60], status=(400, 404))
    r = _send(h26, "GET", f"/raster/scenes/{h26.sid}/flood/point", params={"lon": 10, "lat": 10})
    _refused(r, "a point outside the product", status=(404,), word="outside")


MILLION = 1_000_000
STAT_BODIES = [
    ("world polygon", _square(-180, -90, 180, 90), "pixels", (400,)),
    ("the product's whole area", _square(CENTER[0] - 0.1, CENTER[1] - 0.1, CENTER[0] + 0.1, CENTER[1] + 0.1),
     "pixels", (400,)),
    ("self-intersection (bow tie)", {"type": "Polygon", "coordinates": [[[-62.55, -12.55], [-62.45, -12.45],
                                                                         [-62.45, -12.55], [-62.55, -12.45],
                                                                         [-62.55, -12.55]]]}, "not valid", (400,)),
    ("lon out of range", _square(-200, -12.6, -62.4, -12.4), "lon", (400,)),
    ("lat out of range", _square(-62.6, -95, -62.4, -12.4), "lat", (400,)),
    ("a point", {"type": "Point", "coordinates": [-62.5, -12.5]}, "Polygon", (400,)),
    ("a collection", {"type": "FeatureCollection", "features": []}, "Polygon", (400,)),
    ("no coordinates", {"type": "Polygon"}, "coordinates", (400,)),
    ("strings as coordinates", {"type": "Polygon", "coordinates": [[["a", "b"], ["c", "d"], ["e", "f"], ["a", "b"]]]},
     "coordinates", (400,)),
    ("coordinates not nested", {"type": "Polygon", "coordinates": [1, 2, 3]}, "coordinates", (400,)),
    ("an unclosed ring", {"type": "Polygon", "coordinates": [[[-62.5, -12.5], [-62.4, -12.5], [-62.4, -12.4]]]},
     "coordinates", (400,)),
    ("zero area", {"type": "Polygon", "coordinates": [[[-62.5, -12.5], [-62.4, -12.5], [-62.5, -12.5],
                                                       [-62.5, -12.5]]]}, None, (400,)),
    ("an empty polygon", {"type": "Polygon", "coordinates": []}, "empty", (400,)),
    ("a Feature without geometry", {"type": "Feature", "properties": {}}, "geometry", (400,)),
    ("a Feature with a member too many", {"type": "Feature", "properties": {}, "geometry": _square(-62.5, -12.5, -62.49,
                                          -12.49), "crs": "EPSG:3857"}, "crs", (400,)),
    ("10,001 vertices", {"type": "Polygon", "coordinates": [_ring(10_001)]}, "vertices", (400,)),
    ("a MultiPolygon of 200 x 60 vertices", {"type": "MultiPolygon", "coordinates": [
        [_ring(60, 0.001 + 0.0004 * i)] for i in range(200)]}, "vertices", (400,)),
    ("a JSON array", [1, 2, 3], None, (400, 422)),
    ("a JSON string", "polygon", None, (400, 422)),
    ("null", None, None, (400, 422)),
]


@pytest.mark.parametrize("what,body,word,status", STAT_BODIES, ids=[b[0] for b in STAT_BODIES])
def test_statistics_refuse_hostile_polygons(h26, what, body, word, status):
    for path in (f"/raster/scenes/{h26.sid}/flood/statistics", "/raster/flood/statistics"):
        r = _send(h26, "POST", path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        _refused(r, f"{path} {what}", status=status, word=word)


def test_statistics_refuse_raw_bodies_nan_deep_nesting_and_the_size_limit(h26):
    path = f"/raster/scenes/{h26.sid}/flood/statistics"
    ct = {"Content-Type": "application/json"}
    nan = '{"type":"Polygon","coordinates":[[[NaN,-12.5],[-62.4,-12.5],[-62.4,-12.4],[NaN,-12.5]]]}'
    _refused(_send(h26, "POST", path, content=nan, headers=ct), "NaN coordinates", status=(400, 422))
    inf = '{"type":"Polygon","coordinates":[[[Infinity,-12.5],[-62.4,-12.5],[-62.4,-12.4],[Infinity,-12.5]]]}'
    _refused(_send(h26, "POST", path, content=inf, headers=ct), "Infinity coordinates", status=(400, 422))
    _refused(_send(h26, "POST", path, content="{not json", headers=ct), "broken JSON", status=(400, 422))
    _refused(_send(h26, "POST", path, content=b"\xff\xfe\x00", headers=ct), "not UTF-8", status=(400, 422))
    deep = "[" * 100_000 + "]" * 100_000  # 200 kB under the limit; Python's parser would recurse 100,000 deep
    _refused(_send(h26, "POST", path, content=deep, headers=ct), "100,000 nested arrays", status=(400, 422))
    deep_coords = '{"type":"Polygon","coordinates":' + "[" * 50_000 + "]" * 50_000 + "}"
    _refused(_send(h26, "POST", path, content=deep_coords, headers=ct), "nested coordinates", status=(400, 422))
    # A million vertices is ~20 MB of JSON: refused at the body limit (1 MiB) before it is read or parsed.
    ring = ",".join(f"[{-62.5 + 0.1 * math.cos(i * 2 * math.pi / MILLION):.7f},"
                    f"{-12.5 + 0.1 * math.sin(i * 2 * math.pi / MILLION):.7f}]" for i in range(MILLION))
    big = '{"type":"Polygon","coordinates":[[' + ring + "]]}"
    r = _send(h26, "POST", path, content=big, headers=ct)
    _refused(r, f"a million vertices ({len(big) >> 20} MiB)", status=(413,))

    def chunks():
        step = 1 << 16
        for i in range(0, len(big), step):
            yield big[i:i + step].encode()
    r = _send(h26, "POST", "/raster/flood/statistics", content=chunks(), headers=ct)
    _refused(r, "a million vertices, chunked", status=(413,))
    # Just under the limit: ~50,000 vertices, refused by count without building the polygon.
    ring = ",".join(f"[{-62.5 + 0.05 * math.cos(i / 8000):.6f},{-12.5 + 0.05 * math.sin(i / 8000):.6f}]"
                    for i in range(40_000))
    r = _send(h26, "POST", path, content='{"type":"Polygon","coordinates":[[' + ring + "]]}", headers=ct)
    _refused(r, "40,000 vertices", word="vertices")
    for q, word in [("datetime=garbage", "datetime"), ("limit=0", "limit"), ("zzz=1", "zzz")]:
        r = _send(h26, "POST", f"/raster/flood/statistics?{q}", json=_square(-62.5, -12.5, -62.49, -12.49))
        _refused(r, q, word=word)
    r = _send(h26, "POST", f"{path}?limit=1", json=_square(-62.5, -12.5, -62.49, -12.49))
    _refused(r, "limit on the scene form", word="limit")


def test_a_small_polygon_is_answered(h26):
    """The baseline: what the hostile bodies above differ from is answered, 200 with statistics."""
    r = _send(h26, "POST", f"/raster/scenes/{h26.sid}/flood/statistics", json=_square(-62.5, -12.5, -62.49, -12.49))
    assert r.status_code == 200, r.text[:300]
    assert r.json()["scenes"][0]["pixels"]["over_threshold"] > 0


# --------------------------------------------------------------------------------- styles, place labels

STYLE_PATHS = ["/styles/x.json", "/styles/ALERTS.json", "/styles/alerts.sld", "/styles/..%2fsecret.json",
               "/styles/%2e%2e.json", "/styles/alerts%00.json", "/styles/" + "a" * 5000 + ".json",
               "/styles/alerts.json?x=1", "/styles/alerts.qml?f=json", "/styles/scenes.qml", "/styles/.json",
               "/styles/<script>.qml"]


@pytest.mark.parametrize("path", STYLE_PATHS, ids=[str(i) for i in range(len(STYLE_PATHS))])
def test_styles_refuse_unknown_layers_formats_and_parameters(h26, path):
    _refused(_send(h26, "GET", path, key=None), path[:60], status=(400, 404, 414))


PLACES = [
    "bbox=nan,0,1,1", "bbox=inf,0,1,1", "bbox=1e400,0,1,1", "bbox=0,0,1", "bbox=0,0,1,1,2", "bbox=a,b,c,d",
    "bbox=0,10,1,5", "bbox=-181,0,1,1", "bbox=0,-91,1,1", "bbox=-20,-20,20,20", "bbox=170,0,-150,1", "bbox=",
    "bbox=" + "1," * 20000 + "1", "bbox=0,0,1,1&limit=0", "bbox=0,0,1,1&limit=201", "bbox=0,0,1,1&limit=-1",
    "bbox=0,0,1,1&limit=1e2", "bbox=0,0,1,1&limit=" + "9" * 300, "bbox=0,0,1,1&bbox=0,0,1,1", "limit=5",
    "bbox=0,0,1,1&q=madrid", "bbox=0%00,0,1,1",
]


@pytest.mark.parametrize("query", PLACES, ids=[str(i) for i in range(len(PLACES))])
def test_place_labels_refuse_hostile_parameters(h26, query):
    _refused(_send(h26, "GET", f"/map/places.geojson?{query}", key=None), query[:60])


# --------------------------------------------------------------------------------------- POST /ops/reprocess

def _reprocess(h26, body, key: str = "operator", query: str = "") -> httpx.Response:
    if isinstance(body, dict) and "dry_run" not in body:
        body = {**body, "dry_run": True}  # never publish from this corpus, even if a case were accepted
    return _send(h26, "POST", f"/ops/reprocess{query}", key=key, content=json.dumps(body),
                 headers={"Content-Type": "application/json"})


REPROCESS = [
    ("both ids and bbox", {"scene_ids": ["x"], "bbox": [0, 0, 1, 1]}, (400,)),
    ("neither", {}, (400,)),
    ("501 ids", {"scene_ids": [f"s{i}" for i in range(501)]}, (400, 422)),
    ("50,000 ids", {"scene_ids": [f"s{i}" for i in range(50_000)]}, (400, 413, 422)),
    ("an empty id list", {"scene_ids": []}, (400, 422)),
    ("an empty id", {"scene_ids": [""]}, (400, 422)),
    ("a 10,000-character id", {"scene_ids": ["x" * 10_000]}, (400, 422)),
    ("ids that are not stored", {"scene_ids": ["../../etc/passwd", "nope", "<script>"]}, (404,)),
    ("ids of the wrong type", {"scene_ids": "seed"}, (400, 422)),
    ("ids as numbers", {"scene_ids": [1, 2]}, (400, 422)),
    ("bbox of 3", {"bbox": [0, 0, 1]}, (400, 422)),
    ("bbox of strings", {"bbox": ["a", 0, 1, 1]}, (400, 422)),
    ("bbox reversed", {"bbox": [1, 1, 0, 0]}, (400,)),
    ("bbox out of range", {"bbox": [-1000, -100, 1000, 100]}, (400,)),
    ("the whole world since 1970", {"bbox": [-180, -90, 180, 90], "since": "1970-01-01T00:00:00Z"}, (202, 400)),
    ("since after until", {"bbox": [0, 0, 1, 1], "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
     (400,)),
    ("since without offset", {"bbox": [0, 0, 1, 1], "since": "2026-01-02T00:00:00"}, (400, 422)),
    ("since garbage", {"bbox": [0, 0, 1, 1], "since": "yesterday"}, (400, 422)),
    ("since year 99999", {"bbox": [0, 0, 1, 1], "since": "99999-01-01T00:00:00Z"}, (400, 422)),
    ("since with ids", {"scene_ids": ["x"], "since": "2026-01-01T00:00:00Z"}, (400,)),
    ("an unknown member", {"bbox": [0, 0, 1, 1], "force": True}, (400, 422)),
    ("dry_run as a string", {"bbox": [0, 0, 1, 1], "dry_run": "sometimes"}, (400, 422)),
    ("a JSON array", [1, 2], (400, 422)),
]


@pytest.mark.parametrize("what,body,status", REPROCESS, ids=[c[0] for c in REPROCESS])
def test_reprocess_refuses_area_period_and_id_abuse(h26, what, body, status):
    r = _reprocess(h26, body)
    if r.status_code == 202:  # the whole world matched at most 500 scenes of the test database: a dry run only
        assert 202 in status and r.json()["dry_run"] is True and r.json()["outcome"] in ("dry_run", "none"), r.text
        return
    _refused(r, what, status=status)


def test_reprocess_raw_bodies_parameters_and_roles(h26):
    nan = '{"bbox": [NaN, 0, 1, 1], "dry_run": true}'
    r = _send(h26, "POST", "/ops/reprocess", key="operator", content=nan, headers={"Content-Type": "application/json"})
    _refused(r, "NaN in bbox", status=(400, 422))
    r = _send(h26, "POST", "/ops/reprocess", key="operator", content="[" * 100_000 + "]" * 100_000,
              headers={"Content-Type": "application/json"})
    _refused(r, "100,000 nested arrays", status=(400, 422))
    r = _send(h26, "POST", "/ops/reprocess", key="operator", content=b"x" * (2 << 20),
              headers={"Content-Type": "application/json"})
    _refused(r, "2 MiB body", status=(413,))
    _refused(_reprocess(h26, {"bbox": [0, 0, 1, 1]}, query="?dry_run=false"), "a query parameter", word="dry_run")
    _refused(_reprocess(h26, {"bbox": [0, 0, 1, 1]}, key="viewer"), "as a viewer", status=(403,))
    r = _send(h26, "POST", "/ops/reprocess", key=None, json={"bbox": [0, 0, 1, 1], "dry_run": True})
    _refused(r, "without a key", status=(401,))


# ------------------------------------------------------------------------------ observed_water collection

WATER_ITEMS = [
    {"filter": "pg_sleep(5) IS NULL"}, {"filter": "secret = 1"}, {"filter": "area_ha > 1e400"},
    {"filter": "scene_id = '" + "x" * 5000 + "'"}, {"bbox": "0,0,1"}, {"bbox": "nan,0,1,1"}, {"datetime": "garbage"},
    {"datetime": "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z"}, {"limit": "-1"}, {"limit": "1e9"},
    {"offset": "-5"}, {"sortby": "secret"}, {"properties": "secret"}, {"properties": "scene_id,secret"},
    {"hazard": "flood"}, {"zzz": "1"},
    {"scene_id": "x", "platform": "y", "f": "xml"}, {"area_ha": "abc"}, {"updated_at": "not-a-time"},
]


@pytest.mark.parametrize("params", WATER_ITEMS, ids=[str(i) for i in range(len(WATER_ITEMS))])
def test_observed_water_collection_refuses_hostile_parameters(h26, params):
    r = _send(h26, "GET", "/ogc/collections/observed_water/items", key=None, params=params)
    _refused(r, f"observed_water {str(params)[:60]}", status=(400, 406))


def test_unknown_property_names_are_refused_on_every_collection(h26):
    """``properties`` and ``sortby`` with a name the collection does not have: 400 naming it (tipg ignored an
    unknown ``properties`` name), on the items list and one item; known names still answer."""
    r = _send(h26, "GET", "/ogc/collections", key=None)
    assert r.status_code == 200, r.text[:200]
    collections = [c["id"] for c in r.json()["collections"]]
    assert {"detections", "alerts", "scenes", "observed_water"} <= set(collections), collections
    for cid in collections:
        for params in ({"properties": "secret"}, {"properties": "id,secret"}, {"sortby": "-secret"}):
            r = _send(h26, "GET", f"/ogc/collections/{cid}/items", key=None, params=params)
            _refused(r, f"{cid} {params}", word="'secret'")
        r = _send(h26, "GET", f"/ogc/collections/{cid}/items/1", key=None, params={"properties": "secret"})
        _refused(r, f"{cid} one item", word="'secret'")
        queryables = _send(h26, "GET", f"/ogc/collections/{cid}/queryables", key=None).json()["properties"]
        name = next(n for n in queryables if n not in ("geom", "geometry"))
        ok = _send(h26, "GET", f"/ogc/collections/{cid}/items", key=None, params={"properties": name, "limit": 1})
        assert ok.status_code == 200, f"{cid} properties={name}: {ok.text[:300]}"


def test_observed_water_items_and_tiles_refuse_ids_and_parameters(h26):
    for path in ("/ogc/collections/observed_water/items/" + "x" * 5000,
                 "/ogc/collections/observed_water/items/%00", "/ogc/collections/observed_water/items/..%2f..%2fx"):
        _refused(_send(h26, "GET", path, key=None), path[:60], status=(400, 404, 414))
    for query, word in [("hazard=flood", "hazard"), ("since=garbage", "since"), ("updated_since=" + "9" * 500,
                        "updated_since"), ("zzz=1", "zzz"), ("since=1&since=2", "since")]:
        _refused(_send(h26, "GET", f"/tiles/observed_water/10/0/0.pbf?{query}", key=None), query[:40], word=word)
    _refused(_send(h26, "GET", "/tiles/observed_water/23/0/0.pbf", key=None), "zoom 23", word="z")


def test_no_tracebacks_or_5xx_were_logged(h26):
    """Runs last in this module: nothing above made the server log an error (a 5xx would)."""
    print(f"slowest request of the corpus: {h26.slowest[0]:.2f} s ({h26.slowest[1]})")
    assert h26.log.failures() == []
