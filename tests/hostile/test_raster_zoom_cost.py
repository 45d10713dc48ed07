"""Hostile raster requests (issue 25 finding 3): zoomed-out tiles of a small product cost an anonymous caller
seconds of CPU and hundreds of MB (a 512 px flood product without overviews: z7 17 s and +586 MB). Every
zoom of every tile a stranger may ask for is either refused with 400 before anything is read, or read
from a level whose pixels stay under TERRAWATCH_RASTER_MAX_SOURCE_PIXELS. Asserted on what is read
(the dataset level handed to rio-tiler and its tile extent in pixels), never on time."""

from __future__ import annotations

import morecantile
import numpy as np
import pytest
import rasterio
import rasterio.shutil
from fastapi.testclient import TestClient
from rasterio.transform import from_origin

from terrawatch.products import tiles
from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, to_cog
from terrawatch.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")


def _write(path, n):
    path.parent.mkdir(parents=True)
    lk = np.tile(np.linspace(0, 100, n).round().astype(np.uint8), (n, 1))
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=2, dtype="uint8", crs="EPSG:32630",
                       transform=from_origin(500000, 4650000, 10, 10), nodata=255, tiled=True, blockxsize=256,
                       blockysize=256) as ds:
        ds.write(np.stack([lk, np.zeros_like(lk)]))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from terrawatch.api.app import create_app

    root = tmp_path_factory.mktemp("rastercost") / "products"
    new = root / "NEW" / "flood_likelihood.tif"
    _write(new, 512)
    to_cog(new, resampling=LIKELIHOOD_RESAMPLING)
    old = root / "OLD" / "flood_likelihood.tif"  # written before overviews went deep: GDAL's default, none
    src = old.with_name("src.tif")
    _write(src, 512)
    rasterio.shutil.copy(src, old, driver="COG", compress="DEFLATE", blocksize=512)
    client = TestClient(create_app(Settings(products_root=root, api_public_read=True)),
                        raise_server_exceptions=False)
    return client, {"NEW": new, "OLD": old}


@pytest.fixture()
def reads(monkeypatch):
    """Every tile read rio-tiler is asked for: (width, height) of the dataset level it reads."""
    seen: list[tuple[int, int]] = []
    real = tiles.Reader.tile

    def spy(self, *a, **k):
        seen.append((self.dataset.width, self.dataset.height))
        return real(self, *a, **k)

    monkeypatch.setattr(tiles.Reader, "tile", spy)
    return seen


@pytest.mark.parametrize("scene", ["NEW", "OLD"])
def test_every_zoom_is_refused_before_reading_or_read_from_a_bounded_level(served, reads, scene):
    client, paths = served
    p = paths[scene]
    info = tiles.info(p)
    w, s, e, n = info.bounds
    cap = Settings().raster_max_source_pixels
    served_zooms = []
    for z in range(0, tiles.MAX_ZOOM + 1):
        t = TMS.tile((w + e) / 2, (s + n) / 2, z)
        before = len(reads)
        r = client.get(f"/raster/scenes/{scene}/flood/{z}/{t.x}/{t.y}.png")
        if r.status_code == 400:
            assert z < info.minzoom and r.json()["description"].startswith("z: ") and len(reads) == before
            continue
        assert r.status_code == 200, (z, r.status_code, r.text[:200])
        served_zooms.append(z)
        level = int(r.headers["x-raster-read-level"])
        assert int(r.headers["x-raster-read-pixels"]) <= cap
        lv = tiles.levels(p)[level + 1]
        assert reads[before:] == [(lv.width, lv.height)]  # exactly the announced level was read
        if z < info.maxzoom - 2:
            assert level >= 0, (z, level)  # a zoomed-out tile never reads the full resolution
    assert served_zooms == list(range(info.minzoom, tiles.MAX_ZOOM + 1))
    if scene == "NEW":
        assert info.minzoom <= 5  # the z5-z7 tiles: served, from overviews
    else:
        assert info.minzoom > 7  # the z5-z7 tiles: refused, nothing read


def test_map_clients_are_told_the_refused_zooms(served):
    client, paths = served
    for scene, p in paths.items():
        tj = client.get(f"/raster/scenes/{scene}/flood.json").json()
        assert tj["minzoom"] == tiles.info(p).minzoom  # MapLibre asks for no tile below the source's minzoom


@pytest.mark.parametrize("inm", ["*", '"x"', "W/*", "," * 5000, '"' + "a" * 10000 + '"'])
def test_hostile_if_none_match_never_500s_nor_bypasses_the_cap(served, inm):
    client, _ = served
    r = client.get("/raster/scenes/OLD/flood/5/15/11.png", headers={"If-None-Match": inm})
    assert r.status_code == 400
    r = client.get("/raster/scenes/NEW/flood/14/8191/6047.png", headers={"If-None-Match": inm})
    assert r.status_code in (200, 304, 404)
