"""Point and area questions on the real stack (issue 26): the Sen1Floods11 Spain S1 chip processed by a worker,
then the API's answers checked against rasterio reading the same COG and pyproj's geodesic areas (computed here,
independently of products/analysis.py), hostile inputs refused with 4xx, and docs/api.md's examples run."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import uuid
from datetime import timedelta

import httpx
import numpy as np
import pytest
import rasterio
from pyproj import Geod
from rasterio.features import geometry_mask
from shapely.geometry import Polygon, mapping

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import SPAIN_S1, spain_sensing_time
from terrawatch.settings import REPO_ROOT
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, process_scene

pytestmark = pytest.mark.integration
GEOD = Geod(ellps="WGS84")
# A sensing time of its own (other modules process the same chip at the chip's date), so a period question
# around it finds this scene among at most a few (the period forms answer 10 scenes at most).
WHEN = spain_sensing_time("s1") + timedelta(seconds=60 + uuid.uuid4().int % 3000)
PERIOD = f"{(WHEN - timedelta(seconds=1)).isoformat()}/{(WHEN + timedelta(seconds=1)).isoformat()}"


@pytest.fixture(scope="module")
def scene(stack, tmp_path_factory):
    """The Spain S1 chip processed once (products in a temporary folder), a viewer key, the COG's path."""
    tmp = tmp_path_factory.mktemp("analysis")
    s = isolated(stack.settings, "anl", products_root=tmp / "products")
    item = item_from_geotiff(SPAIN_S1, scene_id=f"spain-s1-anl-{uuid.uuid4().hex[:6]}", sensing_time=WHEN)
    runs = process_scene(s, item, tmp / "worker.log")
    assert {r["hazard"] for r in runs} == {"flood"}
    cog = s.products_dir / item["id"] / "flood_likelihood.tif"
    assert cog.is_file()
    return s, item["id"], cog, role_keys(s, "analysis")["viewer"]


def _rasterio_stats(cog, poly: Polygon, threshold: float) -> dict:
    """Statistics from a whole-band rasterio read: pixel centres inside the polygon, each pixel's geodesic
    area from pyproj (its four corners; the chip is EPSG:4326), likelihood >= threshold."""
    with rasterio.open(cog) as ds:
        assert ds.crs.is_geographic, ds.crs  # the areas below assume lon/lat pixels
        lk = ds.read(1)
        inside = ~geometry_mask([mapping(poly)], out_shape=lk.shape, transform=ds.transform, all_touched=False)
        t = ds.transform
        row_area = np.array([abs(GEOD.polygon_area_perimeter(
            [t.c, t.c + t.a, t.c + t.a, t.c], [t.f + t.e * r, t.f + t.e * r, t.f + t.e * (r + 1), t.f + t.e * (r + 1)])[0])
            for r in range(ds.height)])
    valid = inside & (lk <= 100)
    over = valid & (lk >= threshold)
    area = np.broadcast_to(row_area[:, None], lk.shape)
    return {"inside": int(inside.sum()), "valid": int(valid.sum()), "excluded": int((inside & (lk > 100)).sum()),
            "over": int(over.sum()), "over_ha": float(area[over].sum()) / 1e4,
            "inside_ha": float(area[inside].sum()) / 1e4, "mean": float(lk[valid].mean()) if valid.any() else None}


def test_point_values_equal_the_pixels_rasterio_reads(scene):
    s, sid, cog, viewer = scene
    thr = s.flood_threshold * 100
    with rasterio.open(cog) as ds:
        lk, fl = ds.read(1), ds.read(2)
        wet = np.argwhere((lk >= thr) & (lk <= 100))
        dry = np.argwhere(lk < thr)
        assert len(wet) and len(dry), "the Spain chip has flooded and dry pixels"
        picks = [tuple(wet[len(wet) // 2]), tuple(dry[len(dry) // 3]), (0, 0), (ds.height - 1, ds.width - 1)]
        excl = np.argwhere(lk == 255)
        if len(excl):
            picks.append(tuple(excl[0]))
        points = [(int(r), int(c), *ds.xy(int(r), int(c))) for r, c in picks]
        crs = ds.crs.to_string()
    with live_api(s) as base:
        for row, col, lon, lat in points:
            r = httpx.get(f"{base}/raster/scenes/{sid}/flood/point", params={"lon": lon, "lat": lat},
                          headers=hdr(viewer))
            assert r.status_code == 200, r.text
            v = r.json()
            expected = None if lk[row, col] == 255 else int(lk[row, col])
            assert (v["row"], v["col"], v["likelihood"], v["exclusion_flags"]) == (row, col, expected, int(fl[row, col]))
            assert v["unit"] == "percent" and v["crs"] == crs and v["threshold"] == thr
            assert v["over_threshold"] == (None if expected is None else expected >= thr)
            assert v["sensing_time"].replace("Z", "+00:00") == WHEN.isoformat()
        # the period form: this scene among those whose footprint contains the point, with the same value
        row, col, lon, lat = points[0]
        r = httpx.get(f"{base}/raster/flood/point", params={"lon": lon, "lat": lat, "datetime": PERIOD},
                      headers=hdr(viewer))
        assert r.status_code == 200, r.text
        mine = [v for v in r.json()["values"] if v["scene_id"] == sid]
        assert len(mine) == 1 and mine[0]["likelihood"] == int(lk[row, col])
        # elsewhere: 404 for the scene, an empty list for the search; another period: not this scene
        r = httpx.get(f"{base}/raster/scenes/{sid}/flood/point", params={"lon": 10, "lat": 10}, headers=hdr(viewer))
        assert r.status_code == 404 and "outside" in r.json()["description"]
        r = httpx.get(f"{base}/raster/flood/point", params={"lon": 100, "lat": -80}, headers=hdr(viewer))
        assert r.status_code == 200 and r.json()["values"] == [] and r.json()["numberMatched"] == 0
        r = httpx.get(f"{base}/raster/flood/point", headers=hdr(viewer),
                      params={"lon": lon, "lat": lat, "datetime": "2000-01-01T00:00:00Z/2000-01-02T00:00:00Z"})
        assert r.status_code == 200 and sid not in {v["scene_id"] for v in r.json()["values"]}


def test_polygon_statistics_equal_a_direct_rasterio_computation(scene):
    s, sid, cog, viewer = scene
    thr = s.flood_threshold * 100
    with rasterio.open(cog) as ds:
        w, so, e, n = ds.bounds
    # a triangle inside the chip and a quadrilateral hanging over its western edge
    polys = [Polygon([(w + (e - w) * 0.1, so + (n - so) * 0.1), (w + (e - w) * 0.9, so + (n - so) * 0.3),
                      (w + (e - w) * 0.4, so + (n - so) * 0.9)]),
             Polygon([(w - 0.01, so + 0.01), (w + (e - w) * 0.6, so + 0.005), (w + (e - w) * 0.5, n - 0.01),
                      (w - 0.01, n - 0.005)])]
    with live_api(s) as base:
        for i, poly in enumerate(polys):
            body = mapping(poly) if i else {"type": "Feature", "properties": {"name": "district"},
                                            "geometry": mapping(poly)}
            r = httpx.post(f"{base}/raster/scenes/{sid}/flood/statistics", json=json.loads(json.dumps(body)),
                           headers=hdr(viewer))
            assert r.status_code == 200, r.text
            got = r.json()
            exp = _rasterio_stats(cog, poly, thr)
            sc = got["scenes"][0]
            assert got["threshold"] == thr and got["threshold_setting"] == "TERRAWATCH_FLOOD_THRESHOLD"
            assert (sc["pixels"]["inside"], sc["pixels"]["valid"], sc["pixels"]["excluded"],
                    sc["pixels"]["over_threshold"]) == (exp["inside"], exp["valid"], exp["excluded"], exp["over"])
            assert exp["over"] > 0 and exp["inside"] > exp["over"]
            assert sc["area_ha"]["over_threshold"] == pytest.approx(exp["over_ha"], rel=1e-5)
            assert sc["area_ha"]["inside"] == pytest.approx(exp["inside_ha"], rel=1e-5)
            assert sc["mean_likelihood"] == pytest.approx(exp["mean"], rel=1e-9)
            assert got["polygon_area_ha"] == pytest.approx(abs(GEOD.geometry_area_perimeter(poly)[0]) / 1e4,
                                                           rel=1e-9)
            assert sc["area_method"].startswith("geodesic")
            if i == 0:  # wholly inside: the pixels' area is the polygon's within a pixel row's worth
                assert sc["area_ha"]["inside"] == pytest.approx(got["polygon_area_ha"], rel=0.02)
        # the period form: the same numbers for this scene
        r = httpx.post(f"{base}/raster/flood/statistics", json=mapping(polys[0]), headers=hdr(viewer),
                       params={"datetime": PERIOD})
        assert r.status_code == 200, r.text
        mine = [x for x in r.json()["scenes"] if x["scene_id"] == sid]
        assert len(mine) == 1 and mine[0]["pixels"]["over_threshold"] == _rasterio_stats(cog, polys[0], thr)["over"]
        far = {"type": "Polygon", "coordinates": [[[100, 10], [101, 10], [101, 11], [100, 10]]]}
        r = httpx.post(f"{base}/raster/flood/statistics", json=far, headers=hdr(viewer))
        assert r.status_code == 200 and r.json()["scenes"] == [] and r.json()["numberMatched"] == 0
        r = httpx.post(f"{base}/raster/scenes/{sid}/flood/statistics", json=far, headers=hdr(viewer))
        assert r.status_code == 404


def test_hostile_inputs_are_4xx_naming_what_is_wrong(scene):
    s, sid, cog, viewer = scene
    with rasterio.open(cog) as ds:
        w, so, e, n = ds.bounds
    lon, lat = (w + e) / 2, (so + n) / 2
    square = {"type": "Polygon", "coordinates": [[[w, so], [e, so], [e, n], [w, n], [w, so]]]}
    point_url, stats_url = f"{base_path(sid)}/point", f"{base_path(sid)}/statistics"
    # a cap below the chip's 512 x 512 px (the settings floor is 262,144: only the API's copy gets less)
    small_cap = s.model_copy(update={"raster_max_source_pixels": 10_000})
    with live_api(small_cap) as base:
        get = lambda url, **p: httpx.get(base + url, params=p, headers=hdr(viewer))  # noqa: E731
        post = lambda url, body, **p: httpx.post(base + url, content=body if isinstance(body, str) else json.dumps(body),  # noqa: E731
                                                 params=p, headers={**hdr(viewer), "Content-Type": "application/json"})
        for params, word in (({"lon": "nan", "lat": lat}, "lon"), ({"lon": 200, "lat": lat}, "lon"),
                             ({"lon": lon, "lat": "-inf"}, "lat"), ({"lon": lon, "lat": lat, "foo": 1}, "foo"),
                             ({"lon": lon, "lat": lat, "datetime": "yesterday"}, "datetime")):
            for url in (point_url, "/raster/flood/point"):  # (datetime: unknown on the per-scene route)
                r = get(url, **params)
                assert r.status_code == 400 and word in r.json()["description"], (url, params, r.text)
        for params, word in (({"lon": "abc", "lat": lat}, "lon"), ({"lat": lat}, "lon"),  # lon is required
                             ({"lon": lon, "lat": lat, "limit": 0}, "limit")):
            r = get(point_url if "limit" not in params else "/raster/flood/point", **params)
            assert r.status_code == 400 and word in r.json()["description"], (params, r.text)
        assert get(f"/raster/scenes/{sid}/quicklook/point", lon=lon, lat=lat).status_code == 404
        assert get("/raster/scenes/no-such-scene/flood/point", lon=lon, lat=lat).status_code == 404
        assert get("/raster/scenes/%2E%2E/flood/point", lon=lon, lat=lat).status_code == 404
        # the whole chip reads 262,144 px: over this API's cap, refused naming it; a small polygon is answered
        r = post(stats_url, square)
        assert r.status_code == 400 and "TERRAWATCH_RASTER_MAX_SOURCE_PIXELS" in r.json()["description"], r.text
        assert post("/raster/flood/statistics", square).status_code == 400
        small = {"type": "Polygon", "coordinates": [[[lon, lat], [lon + 0.004, lat], [lon, lat + 0.004], [lon, lat]]]}
        assert post(stats_url, small).status_code == 200
        world = {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}
        assert post(stats_url, world).status_code == 400  # clipped to the chip, still over this cap
        ring = [[lon + 0.01 * math.cos(k / 1000), lat + 0.01 * math.sin(k / 1000)] for k in range(10_500)]
        for body, word in (
                ('{"type":"Polygon","coordinates":[[[NaN,0],[1,0],[1,1],[NaN,0]]]}', "coordinates"),
                ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "not valid"),
                ({"type": "Polygon", "coordinates": [[[0, 0], [181, 0], [1, 1], [0, 0]]]}, "coordinates"),
                ({"type": "Point", "coordinates": [lon, lat]}, "Polygon"),
                ({"type": "FeatureCollection", "features": []}, "Polygon"),
                ({"type": "Polygon", "coordinates": [ring + [ring[0]]]}, "vertices"),
                ({"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1], ["a", 0]]]}, "coordinates"),
                ({"type": "Feature", "geometry": small, "style": "x"}, "unknown member")):
            for url in (stats_url, "/raster/flood/statistics"):
                r = post(url, body)
                assert r.status_code == 400 and word in r.json()["description"], (url, body if len(str(body)) < 300 else word, r.text)
        assert post(stats_url, "[1, 2]").status_code == 422  # not a JSON object
        assert post(stats_url, small, datetime="2020-01-01T00:00:00Z").status_code == 400  # not on one scene
        assert post("/raster/flood/statistics", small, datetime="yesterday").status_code == 400
        r = httpx.post(base + stats_url, content=b"{" + b" " * (2 * 2**20) + b"}", headers=hdr(viewer))
        assert r.status_code == 413
        assert httpx.get(base + point_url, params={"lon": lon, "lat": lat}).status_code == 401  # no key


def base_path(sid: str) -> str:
    return f"/raster/scenes/{sid}/flood"


def test_api_md_examples_run_as_written(scene):
    """docs/api.md's ```bash block of this section runs against this scene (its first line sets API, KEY, SCENE)."""
    s, sid, _, viewer = scene
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)
    block = next(b for b in blocks if "/statistics" in b)
    lines = block.splitlines()
    assert lines[0].startswith("API=") and "SCENE=" in lines[0]
    with live_api(s) as base:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines[1:])], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "API": base, "KEY": viewer, "SCENE": sid})
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])
    answers, text, i = [], res.stdout, 0  # curl prints the JSON answers back to back
    while text[i:].strip():
        i += len(text[i:]) - len(text[i:].lstrip())
        obj, i = json.JSONDecoder().raw_decode(text, i)
        answers.append(obj)
    assert len(answers) == 4
    assert answers[0]["scene_id"] == sid and answers[0]["unit"] == "percent"
    # the period forms: this scene (the day's newest Spain scene) unless more scenes of that day than asked
    values, stats = answers[1]["values"], answers[3]["scenes"]
    assert sid in {v["scene_id"] for v in values} or answers[1]["numberMatched"] > len(values) == 5
    assert values and all(v["product"] == "flood" and v["lon"] == -0.759 for v in values)
    assert answers[2]["scenes"][0]["scene_id"] == sid and answers[2]["scenes"][0]["pixels"]["inside"] > 0
    assert sid in {x["scene_id"] for x in stats} or answers[3]["numberMatched"] > len(stats) == 10
