"""Sentinel Hub adapter against a local stand-in of its OAuth, Catalog and Process APIs (real HTTP, no network).

Checks the request bodies we build (evalscripts, units, processing options,
grid), OAuth client credentials, retries on 429/5xx, and that the mosaic of
split Process requests lands every pixel where the service rendered it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio

from terrawatch.domain.errors import TransientError
from terrawatch.domain.scene import parse_event
from terrawatch.imagery.reader import SceneReader
from terrawatch.imagery.sentinelhub import PRODUCTS, SentinelHub, evalscript_s1, evalscript_s2
from terrawatch.settings import Settings
from tests.integration.standins import Response, SentinelHubApi, StandIn, sh_pixel_value

pytestmark = pytest.mark.localhttp  # no stack: stand-in servers on 127.0.0.1

BBOX = (14.001, 45.001, 14.031, 45.016)  # lon/lat, ~2.4 x 1.7 km


@pytest.fixture
def sh(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in speaks http; the real services https
    with StandIn() as server:
        api = SentinelHubApi(server)
        api.features["sentinel-2-l1c"] = [
            {"type": "Feature", "stac_version": "1.0.0", "id": f"S2B_MSIL1C_202405{d}T100559_N0510_R022_T33TVL",
             "bbox": [13.6, 44.9, 15.0, 45.9],
             "geometry": {"type": "Polygon", "coordinates": [[[13.6, 44.9], [15.0, 44.9], [15.0, 45.9],
                                                              [13.6, 45.9], [13.6, 44.9]]]},
             "properties": {"datetime": f"2024-05-{d}T10:15:59Z", "platform": "sentinel-2b",
                            "instruments": ["msi"], "constellation": "sentinel-2", "gsd": 10,
                            "eo:cloud_cover": cc, "proj:epsg": 32633},
             "assets": {}, "links": []}
            for d, cc in (("01", 3.0), ("11", 55.0), ("21", 12.5))
        ]
        settings = Settings(sh_client_id=api.client_id, sh_client_secret=api.client_secret, sh_base_url=server.url,
                            sh_token_url=api.token_url, sh_max_px=100, sh_retry_base_s=0.05, sh_max_attempts=4)
        yield server, api, settings


def test_request_builders_state_bands_units_and_processing():
    s2 = evalscript_s2(PRODUCTS["sentinel-2-l1c"].bands)
    assert re.search(r'bands: \["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", '
                     r'"B11", "B12", "dataMask"\], units: "DN"', s2)
    assert 'output: {bands: 13, sampleType: "UINT16"}' in s2
    assert 'output: {bands: 12, sampleType: "UINT16"}' in evalscript_s2(PRODUCTS["sentinel-2-l2a"].bands)
    assert "Math.log(v) / Math.LN10" in evalscript_s1(db=True)
    assert "Math.log" not in evalscript_s1(db=False) and 'units: "LINEAR_POWER"' in evalscript_s1(db=False)
    cfg = Settings(sh_client_id="a", sh_client_secret="b", sh_base_url="https://sh.example.org")
    from datetime import datetime, timezone

    t = (datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 5, 2, tzinfo=timezone.utc))
    req = SentinelHub(cfg).process_request("sentinel-1-grd", (500_000, 4_990_000, 502_000, 4_991_000), 32633,
                                           (200, 100), t)
    dl = req.download_list[0]
    assert dl.url == "https://sh.example.org/api/v1/process"
    body = dl.post_values
    data = body["input"]["data"][0]
    assert data["type"] == "sentinel-1-grd"
    assert data["processing"] == {"backCoeff": "SIGMA0_ELLIPSOID", "orthorectify": True, "demInstance": "COPERNICUS"}
    assert data["dataFilter"]["acquisitionMode"] == "IW" and data["dataFilter"]["polarization"] == "DV"
    assert body["input"]["bounds"]["properties"]["crs"].endswith("/EPSG/0/32633")
    assert (body["output"]["width"], body["output"]["height"]) == (200, 100)


def test_catalog_search_uses_oauth_and_pages(sh):
    server, api, settings = sh
    from datetime import datetime, timezone

    found = SentinelHub(settings).search("sentinel-2-l1c", BBOX, datetime(2024, 5, 1, tzinfo=timezone.utc),
                                         datetime(2024, 5, 31, tzinfo=timezone.utc), max_cloud=20)
    assert [f["id"][:19] for f in found] == ["S2B_MSIL1C_20240501", "S2B_MSIL1C_20240521"]  # 55 % cloud dropped
    assert api.token_forms[0] == {"grant_type": "client_credentials", "client_id": "tw-client",
                                  "client_secret": "tw-secret"}
    assert len(api.catalog_bodies) == 1, "the stand-in pages by 2: one page holds both matches"
    body = api.catalog_bodies[0]
    assert body["collections"] == ["sentinel-2-l1c"] and body["filter"] == "eo:cloud_cover < 20"
    assert body["datetime"].startswith("2024-05-01T00:00:00Z/2024-05-31")
    assert body["bbox"] == pytest.approx(list(BBOX))


def test_process_tiles_mosaic_exactly_and_retries_429_and_5xx(sh, tmp_path):
    server, api, settings = sh
    from datetime import datetime, timezone

    server.fail("POST", "/api/v1/process", Response.json({"error": {"status": 429}}, 429, **{"Retry-After": "50"}),
                Response.json({"error": {"status": 503}}, 503))
    hub = SentinelHub(settings)
    t = datetime(2024, 5, 1, 10, 15, 59, tzinfo=timezone.utc)
    bounds = (500_000.0, 4_990_000.0, 502_500.0, 4_991_500.0)  # 250 x 150 px at 10 m -> 3 x 2 requests of <= 100
    out = hub.fetch_geotiff("sentinel-2-l1c", bounds, 32633, (t, t), tmp_path / "s2.tif")
    posts = server.requests("POST", "/api/v1/process")
    assert [r["status"] for r in posts] == [429, 503] + [200] * 6
    assert {(b["output"]["width"], b["output"]["height"]) for b in api.process_bodies} == {
        (100, 100), (50, 100), (100, 50), (50, 50)}
    assert all(b["input"]["data"][0]["processing"] == {"harmonizeValues": True} for b in api.process_bodies)
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height, ds.count, ds.crs.to_epsg()) == (250, 150, 13, 32633)
        data = ds.read()
        cols, rows = np.meshgrid(np.arange(ds.width), np.arange(ds.height))
        x, y = ds.transform * (cols + 0.5, rows + 0.5)
    expected = np.stack([sh_pixel_value(b, x, y, False) for b in range(13)])
    np.testing.assert_array_equal(data, expected)


def test_items_are_scene_events_the_reader_opens(sh, tmp_path):
    server, api, settings = sh
    from datetime import datetime, timezone

    hub = SentinelHub(settings)
    items = list(hub.items("sentinel-2-l1c", BBOX, datetime(2024, 5, 1, tzinfo=timezone.utc),
                           datetime(2024, 5, 31, tzinfo=timezone.utc), tmp_path, max_cloud=None))
    assert [it["id"][11:19] for it in items] == ["20240501", "20240511", "20240521"]
    assert len(api.catalog_bodies) == 2 and api.catalog_bodies[1]["next"] == 2, "second Catalog page via context.next"
    scene = parse_event(__import__("json").dumps(items[0]))
    assert scene.platform == "sentinel-2b" and scene.processing_level == "L1C"
    assert scene.processing_baseline is None, "harmonized values: the reader must not subtract 1000 again"
    t_req = api.process_bodies[0]["input"]["data"][0]["dataFilter"]["timeRange"]
    assert t_req["from"].startswith("2024-05-01T10:14:59") and t_req["to"].startswith("2024-05-01T10:16:59")
    with SceneReader(scene) as reader:
        tile = reader.read(0, 0, 64)
    with rasterio.open(items[0]["assets"]["data"]["href"].removeprefix("file://")) as ds:
        raw = ds.read(window=((0, 64), (0, 64))).astype(np.float32)
    np.testing.assert_array_equal(tile, raw)


def test_s1_in_db_and_bad_credentials(sh, tmp_path):
    server, api, settings = sh
    from datetime import datetime, timezone

    t = datetime(2024, 5, 3, 5, 1, tzinfo=timezone.utc)
    out = SentinelHub(settings).fetch_geotiff("sentinel-1-grd", (500_000.0, 4_990_000.0, 501_000.0, 4_990_500.0),
                                              32633, (t, t), tmp_path / "s1.tif")
    with rasterio.open(out) as ds:
        assert ds.count == 2 and ds.dtypes == ("float32", "float32")
        assert [ds.descriptions[0], ds.descriptions[1]] == ["VV", "VH"]
    assert "Math.log(v) / Math.LN10" in api.process_bodies[-1]["evalscript"]
    bad = settings.model_copy(update={"sh_client_secret": "wrong", "sh_client_id": "other-client"})
    with pytest.raises(TransientError, match="OAuth token request failed"):
        SentinelHub(bad).fetch_geotiff("sentinel-1-grd", (500_000.0, 4_990_000.0, 501_000.0, 4_990_500.0), 32633,
                                       (t, t), tmp_path / "s1b.tif")
