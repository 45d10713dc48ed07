"""OGC API - Features pages with PostGIS's GeoJSON passed through (store/ogc_features.py), on the real stack.

The page carries the same features, properties and paging links as the stored rows say; geometries are
the stored ones at 7 decimals of a degree; every output format that holds GeoJSON geometries still does.
"""

from __future__ import annotations

import gzip
import json
import uuid
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from shapely import wkb
from shapely.geometry import shape
from sqlalchemy import func, select

from terrawatch.store import tables as t
from terrawatch.store.ogc_features import GEOJSON_DECIMALS
from terrawatch.store.uow import engine_for
from terrawatch_dev.api_samples import delete_seeded, seed_layers
from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration

# Properties of ogc.detections (the view's columns but the geometry; tipg repeats the id there).
DETECTION_PROPERTIES = {"id", "scene_id", "hazard", "model_version", "area_ha", "likelihood", "sensing_time",
                        "alert_id", "confidence", "status", "created_at", "updated_at"}


@pytest.fixture(scope="module")
def api(stack):
    s = stack.settings
    engine = engine_for(s.db_url)
    # A place of its own (no other test seeds here), so the bbox holds only this module's rows.
    seeded = seed_layers(engine, center=(31.5, -12.5), spread_deg=0.3, scenes=2, detections_per_scene=12,
                         vertices=150, tag=f"gj-{uuid.uuid4().hex[:6]}")
    keys = role_keys(s, "ogcgj")
    with live_api(s) as base:
        yield SimpleNamespace(base=base, key=keys["viewer"], seeded=seeded, engine=engine,
                              bbox=",".join(str(v) for v in seeded.bounds))
    delete_seeded(engine, seeded)


def _stored(api) -> dict[int, object]:
    """id -> stored geometry (shapely, lon/lat) of this module's detections."""
    q = select(t.detections.c.id, func.ST_AsBinary(t.detections.c.geom)).where(
        t.detections.c.scene_id.in_(api.seeded.scene_ids))
    with api.engine.connect() as c:
        return {i: wkb.loads(bytes(g)) for i, g in c.execute(q)}


def _coordinates(geometry: dict):
    """Every coordinate value (as parsed) of a GeoJSON geometry."""
    todo = [geometry["coordinates"]]
    while todo:
        v = todo.pop()
        if isinstance(v, list):
            todo.extend(v)
        else:
            yield v


def test_pages_hold_the_stored_features_properties_and_links(api):
    stored = _stored(api)
    url, seen, pages = f"{api.base}/ogc/collections/detections/items?bbox={api.bbox}&limit=10", [], 0
    while url:
        r = httpx.get(url, headers=hdr(api.key), timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/geo+json")
        # Coordinates parsed as text: each is a number with at most GEOJSON_DECIMALS decimals.
        page = json.loads(r.text, parse_float=str, parse_int=str)
        assert page["numberMatched"] == str(len(stored)) and page["numberReturned"] == str(len(page["features"]))
        for f in page["features"]:
            assert set(f["properties"]) == DETECTION_PROPERTIES
            assert {link["rel"] for link in f["links"]} == {"collection", "item"}
            decimals = {len(c.partition(".")[2]) for c in _coordinates(f["geometry"])}
            assert max(decimals) <= GEOJSON_DECIMALS, decimals
        # The same page, parsed: geometries are GeoJSON objects equal to the stored ones within 1e-7 deg.
        for f in r.json()["features"]:
            geom = shape(f["geometry"])
            assert geom.geom_type == stored[f["id"]].geom_type
            assert geom.equals_exact(stored[f["id"]], 10.0 ** -GEOJSON_DECIMALS), f["id"]
            seen.append(f["id"])
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if nxt:
            assert parse_qs(urlparse(nxt[0]).query)["offset"] == [str(len(seen))]
        url, pages = (nxt[0] if nxt else None), pages + 1
    assert seen == sorted(stored) and pages == -(-len(stored) // 10)


def test_one_item_geojsonseq_and_html_carry_the_geometry(api):
    stored = _stored(api)
    some = min(stored)
    one = httpx.get(f"{api.base}/ogc/collections/detections/items/{some}", headers=hdr(api.key), timeout=30)
    assert one.status_code == 200, one.text
    assert shape(one.json()["geometry"]).equals_exact(stored[some], 10.0 ** -GEOJSON_DECIMALS)
    seq = httpx.get(f"{api.base}/ogc/collections/detections/items", headers=hdr(api.key), timeout=30,
                    params={"bbox": api.bbox, "limit": 5, "f": "geojsonseq"})
    assert seq.status_code == 200, seq.text
    lines = [json.loads(line) for line in seq.text.splitlines() if line]
    assert len(lines) == 5
    assert all(shape(f["geometry"]).equals_exact(stored[f["id"]], 10.0 ** -GEOJSON_DECIMALS) for f in lines)
    html = httpx.get(f"{api.base}/ogc/collections/detections/items", headers=hdr(api.key), timeout=30,
                     params={"bbox": api.bbox, "limit": 5, "f": "html"})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert str(lines[0]["id"]) in html.text
    # CSV keeps tipg's WKT geometries (full precision, untouched by the pass-through).
    csv = httpx.get(f"{api.base}/ogc/collections/detections/items", headers=hdr(api.key), timeout=30,
                    params={"bbox": api.bbox, "limit": 5, "f": "csv"})
    assert csv.status_code == 200 and "POLYGON" in csv.text


def test_geojson_pages_are_gzipped_fast_and_decode_to_the_identity_body(api):
    from terrawatch.api.routes.ogc import GEOJSON_GZIP_LEVEL

    url = f"{api.base}/ogc/collections/detections/items?bbox={api.bbox}&limit=20"
    plain = httpx.get(url, headers={**hdr(api.key), "Accept-Encoding": "identity"}, timeout=30)
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    with httpx.Client(timeout=30) as client, client.stream("GET", url, headers={**hdr(api.key),
                                                                               "Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
        assert int(r.headers["content-length"]) == len(raw) < len(plain.content)
    # gzip's XFL byte: 4 = written at the fastest level (1); the app-wide middleware's level 6 writes 0.
    assert raw[:2] == b"\x1f\x8b" and raw[8] == (4 if GEOJSON_GZIP_LEVEL == 1 else 0)
    assert gzip.decompress(raw) == plain.content
