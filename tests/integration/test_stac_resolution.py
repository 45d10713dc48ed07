"""STAC Item references and STAC API searches resolved over HTTP, then read at 10 m from remote COGs.

No stack needed: tests/integration/standins.py serves a static STAC API and the
band COGs (with Range) on 127.0.0.1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from terrawatch.domain.errors import InvalidEvent, TransientError
from terrawatch.domain.scene import S2_BANDS, parse_event
from terrawatch.imagery.reader import SceneReader
from terrawatch.imagery.stac import resolve_event, search_items, stac_io
from tests.integration.standins import Response, StacApi, StandIn
from tests.stac_shapes import S2_KEYS, earth_search_s2

pytestmark = pytest.mark.localhttp  # no stack: stand-in servers on 127.0.0.1

PX10 = 480  # 10 m pixels a side (4.8 km)
GSD = {b: v[3] for b, v in S2_KEYS.items()}


def _dn(band_no: int) -> int:
    """DN written for S2_BANDS[band_no - 1]: reflectance x 10000 = 100 * band_no, plus the 1000 offset."""
    return 1000 + 100 * band_no


@pytest.fixture(scope="module")
def band_files(tmp_path_factory):
    """13 single-band COGs at 10/20/60 m over the same 4.8 km square (EPSG:32633), constant DN per band."""
    root = tmp_path_factory.mktemp("s2")
    scene = root / "tiles" / "33" / "T" / "VL" / "S2B_33TVL_20240501_0_L1C"
    scene.mkdir(parents=True)
    for i, band in enumerate(S2_BANDS, start=1):
        gsd = GSD[band]
        n = PX10 * 10 // gsd
        tmp = scene / f"{band}.plain.tif"
        with rasterio.open(tmp, "w", driver="GTiff", width=n, height=n, count=1, dtype="uint16", nodata=0,
                           crs="EPSG:32633", transform=from_origin(500_000, 5_000_000, gsd, gsd)) as ds:
            ds.write(np.full((1, n, n), _dn(i), dtype=np.uint16))
        rasterio.shutil.copy(tmp, scene / f"{band}.tif", driver="COG", COMPRESS="DEFLATE", BLOCKSIZE="256")
        tmp.unlink()
    return root, scene.relative_to(root).as_posix()


@pytest.fixture
def api(band_files):
    root, rel = band_files
    with StandIn(root) as server:
        server.serve_files()
        stac = StacApi(server)
        base = f"{server.url}/files/{rel}"
        with rasterio.open(root / rel / "B2.tif") as ds:
            footprint = transform_geom(ds.crs, "EPSG:4326", mapping(box(*ds.bounds)))
        for k, day in enumerate(("01", "11", "21")):
            hrefs = {b: f"{base}/{b}.tif" for b in S2_BANDS}
            stac.add(earth_search_s2(f"S2B_33TVL_202405{day}_0_L1C", hrefs, geometry=footprint,
                                     datetime=f"2024-05-{day}T10:05:59.024000Z"))
        yield server, stac


def test_item_reference_resolves_and_reads_every_band_on_the_10m_grid(api):
    server, stac = api
    item_id = "S2B_33TVL_20240501_0_L1C"
    server.fail("GET", f"/stac/collections/sentinel-2-l1c/items/{item_id}", Response.json({"busy": True}, 503))
    event = {"terrawatch:resolve": {"item": stac.item_url(item_id)}, "terrawatch:hazards": ["flood"]}
    scene = parse_event(resolve_event(json.dumps(event)))
    item_gets = server.requests("GET", "/stac/collections/")
    assert [r["status"] for r in item_gets] == [503, 200], "a 503 is retried"
    assert scene.id == item_id and scene.hazards == ("flood",)
    assert scene.processing_baseline == "05.10"
    assert all(b.href.endswith(f"/{b.name}.tif") for b in scene.bands), "COGs chosen, JP2 twins ignored"
    assert scene.item["links"][0]["href"] == stac.item_url(item_id)
    with SceneReader(scene) as reader:
        assert (reader.grid.width, reader.grid.height, reader.grid.pixel_size) == (PX10, PX10, 10.0)
        tile = reader.read(100, 150, 128)
    assert tile.shape == (13, 128, 128)
    # band i holds reflectance x 10000 = 100 * i after the baseline >= 04.00 offset is removed;
    # 20/60 m bands are resampled onto the 10 m grid
    np.testing.assert_allclose(np.nanmean(tile, axis=(1, 2)), [100 * i for i in range(1, 14)])
    assert not np.isnan(tile).any()
    # only windows of the band files went over the wire
    assert all(r["status"] == 206 for r in server.requests("GET", "/files/"))


def test_search_reference_must_match_exactly_one_item(api):
    server, stac = api
    one = {"terrawatch:resolve": {"search": stac.url, "collections": ["sentinel-2-l1c"],
                                  "ids": ["S2B_33TVL_20240511_0_L1C"]}}
    assert parse_event(resolve_event(json.dumps(one))).id == "S2B_33TVL_20240511_0_L1C"
    assert stac.search_bodies[-1]["ids"] == ["S2B_33TVL_20240511_0_L1C"]
    many = {"terrawatch:resolve": {"search": stac.url, "collections": ["sentinel-2-l1c"],
                                   "datetime": "2024-05-01T00:00:00Z/2024-05-31T23:59:59Z"}}
    with pytest.raises(InvalidEvent, match="more than one Item"):
        resolve_event(json.dumps(many))
    none = {"terrawatch:resolve": {"search": stac.url, "ids": ["S2A_NOPE"]}}
    with pytest.raises(InvalidEvent, match="matched no Item"):
        resolve_event(json.dumps(none))


def test_search_follows_pages_and_filters_by_bbox_and_time(api):
    _, stac = api
    found = list(search_items(stac.url, collections=["sentinel-2-l1c"], bbox=[15.01, 45.12, 15.02, 45.13],
                              datetime="2024-05-05T00:00:00Z/2024-05-31T23:59:59Z", limit=1))
    assert [f["id"] for f in found] == ["S2B_33TVL_20240511_0_L1C", "S2B_33TVL_20240521_0_L1C"]
    assert len(stac.search_bodies) == 2 and stac.search_bodies[1]["token"] == "1", "second page via the next link"
    assert list(search_items(stac.url, bbox=[0, 0, 1, 1])) == []


def test_unknown_item_is_invalid_and_a_dead_catalogue_is_transient(api):
    server, stac = api
    ref = {"terrawatch:resolve": {"item": f"{stac.url}/collections/sentinel-2-l1c/items/S2A_MISSING"}}
    with pytest.raises(InvalidEvent, match="HTTP 404"):
        resolve_event(json.dumps(ref))
    item_url = stac.item_url("S2B_33TVL_20240521_0_L1C")
    server.fail("GET", "/stac/collections/.*", *[Response.json({}, 502)] * 3)
    with pytest.raises(TransientError):
        from terrawatch.imagery.stac import fetch_item

        fetch_item(item_url, io=stac_io(retries=2))
    # The stand-in server logs a request after answering it, so the third may land a moment after the client
    # gave up: wait (bounded) for the log instead of reading it at once (a clean-clone run saw [502, 502]).
    import time

    def seen():
        return [r["status"] for r in server.requests("GET", "/stac/collections/sentinel-2-l1c/items/S2B_33TVL_2024052")]

    deadline = time.monotonic() + 10
    while len(seen()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen() == [502, 502, 502]
