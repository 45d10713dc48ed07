"""Observed water as vector tiles (issue 26): ``/tiles/observed_water/{z}/{x}/{y}.pbf`` over the real PostGIS
view ``ogc.observed_water``, with the other layers' simplification by zoom, filters (since / until /
updated_since; anything else 400 naming it), ETag keyed by the data version (an observed-water change moves it:
migration 26e) and its TileJSON in the layer list."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import mapbox_vector_tile
import morecantile
import pytest
from sqlalchemy import func, update

from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from terrawatch_dev.api_samples import delete_seeded, jagged_polygon, seed_layers
from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration

TMS = morecantile.tms.get("WebMercatorQuad")
CENTER = (24.5, -7.5)  # a place of this module's own


@pytest.fixture(scope="module")
def water(stack):
    import numpy as np
    from shapely.geometry import MultiPolygon

    s = stack.settings
    engine = engine_for(s.db_url)
    seeded = seed_layers(engine, center=CENTER, spread_deg=0.2, scenes=2, detections_per_scene=2,
                         tag=f"ow-{uuid.uuid4().hex[:6]}")
    rng = np.random.default_rng(26)
    lake = jagged_polygon(rng, CENTER[0], CENTER[1], radius_m=3000, vertices=2000)  # many vertices: simplified
    times = seeded.times
    with engine.begin() as c:
        for sid, when in zip(seeded.scene_ids, times):
            c.execute(t.observed_water.insert().values(
                scene_id=sid, model_version="test-ow", platform="sentinel-1a", sensing_time=when,
                footprint=func.ST_GeomFromText(MultiPolygon([lake.envelope]).wkt, 4326),
                geom=func.ST_GeomFromText(MultiPolygon([lake]).wkt, 4326)))
    keys = role_keys(s, "ow")
    with live_api(s) as base:
        yield engine, base, keys, seeded
    delete_seeded(engine, seeded)  # observed_water rows go with their scenes (on delete cascade)


def _tile(base, keys, z: int, **params):
    tile = TMS.tile(CENTER[0], CENTER[1], z)
    r = httpx.get(f"{base}/tiles/observed_water/{tile.z}/{tile.x}/{tile.y}.pbf", headers=hdr(keys["viewer"]),
                  params=params, timeout=60)
    return r


def _features(r: httpx.Response) -> list[dict]:
    assert r.status_code == 200, r.text
    return mapbox_vector_tile.decode(r.content).get("observed_water", {}).get("features", [])


def _vertices(features: list[dict]) -> int:
    def count(c):
        return 1 if isinstance(c[0], (int, float)) else sum(count(x) for x in c)
    return sum(count(f["geometry"]["coordinates"]) for f in features)


def test_observed_water_tiles_are_listed_decoded_simplified_and_filtered(water):
    engine, base, keys, seeded = water
    h = hdr(keys["viewer"])
    listed = httpx.get(f"{base}/tiles", headers=h).json()
    assert listed["observed_water"].endswith("/tiles/observed_water.json")
    tj = httpx.get(listed["observed_water"], headers=h).json()
    assert tj["vector_layers"][0]["id"] == "observed_water"
    assert {"scene_id", "platform", "model_version", "area_ha", "t", "updated"} <= set(tj["vector_layers"][0]["fields"])
    assert tj["terrawatch:time_range"] is not None
    high = _features(_tile(base, keys, 14))
    mine = [f for f in high if f["properties"]["scene_id"] in seeded.scene_ids]
    assert {f["properties"]["scene_id"] for f in mine} == set(seeded.scene_ids)
    # Simplified by zoom like the other layers (the whole 6 km lake lies inside one tile at these zooms).
    per_zoom = {z: _vertices([f for f in _features(_tile(base, keys, z))
                              if f["properties"]["scene_id"] in seeded.scene_ids]) for z in (6, 9)}
    print(f"observed water vertices of both scenes: {per_zoom} (2 x 2001 stored)")
    assert 0 < per_zoom[6] < per_zoom[9] < 2 * 2001
    t0, t1 = seeded.times
    late = _features(_tile(base, keys, 14, since=t1.isoformat().replace("+00:00", "Z")))
    assert {f["properties"]["scene_id"] for f in late} & set(seeded.scene_ids) == {seeded.scene_ids[1]}
    early = _features(_tile(base, keys, 14, until=t1.isoformat().replace("+00:00", "Z")))
    assert {f["properties"]["scene_id"] for f in early} & set(seeded.scene_ids) == {seeded.scene_ids[0]}
    assert _features(_tile(base, keys, 14, updated_since="2999-01-01T00:00:00Z")) == []
    for params, word in [({"hazard": "flood"}, "hazard"), ({"status": "new"}, "status"), ({"bogus": "1"}, "bogus"),
                         ({"since": "yesterday"}, "since")]:
        r = _tile(base, keys, 14, **params)
        assert r.status_code == 400 and word in r.json()["description"], (params, r.text)
    r = httpx.get(f"{base}/tiles/observed_water.json", headers=h, params={"severity": "minor"})
    assert r.status_code == 400 and "severity" in r.json()["description"], r.text


def test_observed_water_tile_etag_moves_when_the_water_changes(water):
    engine, base, keys, seeded = water
    r1 = _tile(base, keys, 14)
    etag = r1.headers["etag"]
    tile = TMS.tile(CENTER[0], CENTER[1], 14)
    url = f"{base}/tiles/observed_water/{tile.z}/{tile.x}/{tile.y}.pbf"
    again = httpx.get(url, headers={**hdr(keys["viewer"]), "If-None-Match": etag})
    assert again.status_code == 304
    with engine.begin() as c:  # only observed_water changes: its own trigger moves the data version
        c.execute(update(t.observed_water).where(t.observed_water.c.scene_id == seeded.scene_ids[0])
                  .values(updated_at=datetime.now(timezone.utc) + timedelta(seconds=1)))
    r2 = _tile(base, keys, 14)
    assert r2.headers["etag"] != etag
    assert httpx.get(url, headers={**hdr(keys["viewer"]), "If-None-Match": etag}).status_code == 200
