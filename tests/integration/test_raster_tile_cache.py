"""Raster tiles served from the API's tile cache (issue 29), through a live uvicorn server on a real COG.

The product is a 2-band likelihood COG written as the pipeline writes it (``products.cog.to_cog``), in
UTM zone 30 far west of the zone's central meridian at 70 N, so its footprint is tilted ~11 degrees in
lon/lat and the TileJSON ``bounds`` (the footprint's lon/lat box) has corners outside the footprint.
What is asserted: a repeated request is served from the cache, byte-identical, without a read; a
rewritten product (new file version) is rendered again with a new ETag; concurrent misses of one tile
render it once; a tile inside the bounds but off the footprint is an empty transparent tile (200, cached),
one outside the bounds 404. The footprint test is shapely's, independent of rio-tiler's."""

from __future__ import annotations

import concurrent.futures as cf
import io
import threading
import time

import httpx
import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_points
from shapely.geometry import Polygon, box

from terrawatch.products import tiles
from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, to_cog
from tests.integration.api_helpers import live_api

TMS = morecantile.tms.get("WebMercatorQuad")
SCENE = "S1A_CACHE_TEST"
N = 2048  # px, 10 m: a 20 km square
ORIGIN = (50_000.0, 7_800_000.0)  # UTM 30N, ~12 degrees west of the central meridian, ~70 N


def _write(path, value: int) -> None:
    """A likelihood product: band 1 a ramp from ``value`` (0-100), band 2 flags 0; COG as the pipeline."""
    tmp = path.with_name("tmp.tif")
    lk = (np.tile(np.linspace(0, 100 - value, N), (N, 1)) + value).round().astype(np.uint8)
    with rasterio.open(tmp, "w", driver="GTiff", width=N, height=N, count=2, dtype="uint8", crs="EPSG:32630",
                       transform=from_origin(*ORIGIN, 10, 10), nodata=255, tiled=True, blockxsize=256,
                       blockysize=256) as ds:
        ds.write(np.stack([lk, np.zeros_like(lk)]))
    to_cog(tmp, resampling=LIKELIHOOD_RESAMPLING)
    tmp.replace(path)  # a new file (inode) in place, as a reprocessed scene's product


def _footprint() -> Polygon:
    """The product's footprint in lon/lat: its UTM outline, densified (100 points a side)."""
    t = np.linspace(0, 1, 100)
    x0, y1 = ORIGIN
    x1, y0 = x0 + N * 10, y1 - N * 10
    xs = np.concatenate([x0 + t * (x1 - x0), np.full_like(t, x1), x1 - t * (x1 - x0), np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y1), y1 - t * (y1 - y0), np.full_like(t, y0), y0 + t * (y1 - y0)])
    lon, lat = warp_points("EPSG:32630", "EPSG:4326", xs, ys)
    return Polygon(zip(lon, lat))


@pytest.fixture(scope="module")
def api(stack_settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("rastercache") / "products"
    (root / SCENE).mkdir(parents=True)
    path = root / SCENE / "flood_likelihood.tif"
    _write(path, 0)
    s = stack_settings.model_copy(update={"api_public_read": True, "products_root": root})
    with live_api(s) as base:
        yield base, path


@pytest.fixture()
def reads(monkeypatch):
    """How many tile reads rio-tiler was asked for (the server runs in this process)."""
    seen: list[int] = []
    real = tiles.Reader.tile

    def spy(self, *a, **k):
        seen.append(1)
        time.sleep(0.2)  # a slow render, so concurrent requests overlap it
        return real(self, *a, **k)

    monkeypatch.setattr(tiles.Reader, "tile", spy)
    return seen


def _tilejson(base: str) -> dict:
    r = httpx.get(f"{base}/raster/scenes/{SCENE}/flood.json", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _url(base: str, t: morecantile.Tile, fmt: str = "png") -> str:
    return f"{base}/raster/scenes/{SCENE}/flood/{t.z}/{t.x}/{t.y}.{fmt}"


def _centre_tile(base: str, z: int) -> morecantile.Tile:
    w, s, e, n = _tilejson(base)["bounds"]
    return TMS.tile((w + e) / 2, (s + n) / 2, z)


def test_a_repeated_tile_comes_from_the_cache_byte_identical(api, reads):
    base, _ = api
    t = _centre_tile(base, 12)
    first = httpx.get(_url(base, t), timeout=60)
    assert first.status_code == 200 and first.headers["x-tile-cache"] == "miss" and reads == [1]
    second = httpx.get(_url(base, t), timeout=60)
    assert second.status_code == 200 and second.headers["x-tile-cache"] == "hit"
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert reads == [1]  # nothing read for the second
    assert second.headers["x-raster-read-pixels"] == first.headers["x-raster-read-pixels"] != "0"
    # another format of the same tile is another entry and another tag
    webp = httpx.get(_url(base, t, "webp"), timeout=60)
    assert webp.headers["x-tile-cache"] == "miss" and webp.headers["etag"] != first.headers["etag"]
    # If-None-Match with the tag: 304, no body
    r = httpx.get(_url(base, t), headers={"If-None-Match": first.headers["etag"]}, timeout=60)
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == first.headers["etag"]


def test_a_new_product_version_is_rendered_again_with_a_new_etag(api, reads):
    base, path = api
    t = _centre_tile(base, 11)
    before = httpx.get(_url(base, t), timeout=60)
    assert httpx.get(_url(base, t), timeout=60).headers["x-tile-cache"] == "hit"
    _write(path, 60)  # the scene is reprocessed: a new file
    after = httpx.get(_url(base, t), headers={"If-None-Match": before.headers["etag"]}, timeout=60)
    assert after.status_code == 200 and after.headers["x-tile-cache"] == "miss"
    assert after.headers["etag"] != before.headers["etag"] and after.content != before.content
    again = httpx.get(_url(base, t), timeout=60)
    assert again.headers["x-tile-cache"] == "hit" and again.content == after.content


def test_concurrent_misses_of_one_tile_render_it_once(api, reads):
    base, _ = api
    t = _centre_tile(base, 13)
    start = threading.Barrier(8)

    def get(_):
        start.wait()
        return httpx.get(_url(base, t), timeout=60)

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(get, range(8)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1 and len({r.headers["etag"] for r in answers}) == 1
    assert reads == [1], f"{len(reads)} renders for 8 concurrent requests of one tile"


def test_inside_the_bounds_off_the_footprint_is_an_empty_tile_and_outside_404(api, reads):
    base, _ = api
    tj = _tilejson(base)
    w, s, e, n = tj["bounds"]
    foot = _footprint()
    z = tj["maxzoom"]
    corner = [t for t in TMS.tiles(w, s, e, n, zooms=[z])
              if not box(*TMS.bounds(t)).buffer((TMS.bounds(t).right - TMS.bounds(t).left) / 4).intersects(foot)]
    assert corner, "the tilted footprint leaves no tile-sized corner of its bounds at this zoom"
    t = corner[0]
    r = httpx.get(_url(base, t), timeout=60)
    assert r.status_code == 200, r.text[:200]
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (tiles.TILE_SIZE, tiles.TILE_SIZE)
    assert np.asarray(img.convert("RGBA"))[..., 3].max() == 0  # fully transparent
    assert r.headers["x-raster-read-pixels"] == "0" and reads == []  # nothing read
    r2 = httpx.get(_url(base, t), timeout=60)
    assert r2.headers["x-tile-cache"] == "hit" and r2.content == r.content and r2.headers["etag"] == r.headers["etag"]
    # a tile wholly outside the bounds: 404 with a message
    tb = TMS.bounds(t)
    outside = TMS.tile(w - 3 * (tb.right - tb.left), (s + n) / 2, z)
    assert TMS.bounds(outside).right < w
    o = httpx.get(_url(base, outside), timeout=60)
    assert o.status_code == 404 and "outside" in o.json()["description"], o.text[:200]
    # a tile over the footprint still has data
    d = httpx.get(_url(base, _centre_tile(base, z)), timeout=60)
    assert d.status_code == 200 and d.headers["x-raster-read-pixels"] != "0"
    assert np.asarray(Image.open(io.BytesIO(d.content)).convert("RGBA"))[..., 3].max() > 0
