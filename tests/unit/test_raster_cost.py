"""Raster tiles with a bounded cost (issue 25 finding 3): overviews in every product COG, the level each tile
reads chosen and counted before reading, zooms over TERRAWATCH_RASTER_MAX_SOURCE_PIXELS refused with 400,
the TileJSON's minzoom derived from the product's levels, ETag / If-None-Match 304 on tiles."""

from __future__ import annotations

import os

import morecantile
import numpy as np
import pytest
import rasterio
import rasterio.shutil
from fastapi.testclient import TestClient
from rasterio.transform import from_origin

from terrawatch.products import tiles
from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, is_cog, overview_factors, to_cog
from terrawatch.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
N = 512  # px at 10 m: the flood product of issue 25 that had no overviews


def _intermediate(path, n=N):
    """A 2-band likelihood GeoTIFF as the tiler writes it: band 1 a west-east ramp 0-100 with 2 x 2 blocks
    half excluded (255) in the top rows, band 2 exclusion flags (2 where excluded, 4 in a square)."""
    lk = np.tile(np.linspace(0, 100, n).round().astype(np.uint8), (n, 1))
    lk[:64:2, :] = 255  # every other row of the top 64 rows excluded: each 2 x 2 block keeps one valid row
    lk[64:128, :64] = 255  # a block excluded throughout
    fl = np.where(lk == 255, 2, 0).astype(np.uint8)
    fl[200:300, 200:300] = 4
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=2, dtype="uint8", crs="EPSG:32630",
                       transform=from_origin(500000, 4650000, 10, 10), nodata=255, tiled=True, blockxsize=256,
                       blockysize=256) as ds:
        ds.write(np.stack([lk, fl]))
        ds.set_band_description(1, "flood likelihood 0-100 (255 = excluded, see band 2)")
        ds.set_band_description(2, "exclusion flags")
        ds.update_tags(hazard="flood")
    return lk, fl


@pytest.fixture()
def product(tmp_path):
    p = tmp_path / "products" / "S1" / "flood_likelihood.tif"
    p.parent.mkdir(parents=True)
    lk, fl = _intermediate(p)
    to_cog(p, resampling=LIKELIHOOD_RESAMPLING)
    return p, lk, fl


@pytest.fixture()
def old_product(tmp_path):
    """The same product written as before this change: GDAL's default COG overviews (none at 512 px)."""
    p = tmp_path / "products" / "OLD" / "flood_likelihood.tif"
    p.parent.mkdir(parents=True)
    _intermediate(p.with_suffix(".src.tif"))
    rasterio.shutil.copy(p.with_suffix(".src.tif"), p, driver="COG", compress="DEFLATE", blocksize=512,
                         overview_resampling="NEAREST")
    p.with_suffix(".src.tif").unlink()
    return p


def _tile(path, z):
    w, s, e, n = tiles.info(path).bounds
    return TMS.tile((w + e) / 2, (s + n) / 2, z)


def test_overview_factors_go_down_to_one_or_two_pixels():
    assert overview_factors(512, 512) == [2 ** k for k in range(1, 10)]
    assert overview_factors(10980, 10980)[-1] == 16384 and 10980 / 8192 > 1  # last level: 1 px
    assert overview_factors(1098, 300)[-1] == 2048
    assert overview_factors(1, 1) == []


def test_a_512_px_product_gets_overviews_down_to_one_pixel(product):
    p, lk, fl = product
    assert is_cog(p)
    with rasterio.open(p) as ds:
        assert ds.overviews(1) == ds.overviews(2) == overview_factors(N, N)
        assert ds.descriptions[0].startswith("flood likelihood") and ds.descriptions[1] == "exclusion flags"
        assert ds.tags()["hazard"] == "flood" and ds.nodata == 255 and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (ds.read(1) == lk).all() and (ds.read(2) == fl).all()  # full resolution unchanged
    with rasterio.open(p, overview_level=0) as o:  # factor 2
        l1, f1 = o.read(1), o.read(2)
    # likelihood averaged over the valid pixels only: a 2 x 2 block with one valid row is that row's mean
    exp = lk[1:64:2].astype(float).reshape(32, N // 2, 2).mean(axis=2)
    assert np.abs(l1[:32].astype(float) - exp).max() <= 1
    assert (l1[32:64, :32] == 255).all()  # excluded throughout stays excluded
    # flags by nearest: only values that exist at full resolution, never an average of bits (e.g. 1 or 3)
    assert set(np.unique(f1)) <= set(np.unique(fl)) and 4 in f1


def test_single_resampling_and_per_band_count_checked(tmp_path):
    p = tmp_path / "ql.tif"
    with rasterio.open(p, "w", driver="GTiff", width=300, height=200, count=3, dtype="uint8", crs="EPSG:32630",
                       transform=from_origin(500000, 4650000, 10, 10), nodata=0) as ds:
        ds.write(np.full((3, 200, 300), 7, np.uint8))
    with pytest.raises(ValueError, match="3 bands"):
        to_cog(p, resampling=("AVERAGE", "NEAREST"))
    to_cog(p, resampling="AVERAGE")
    with rasterio.open(p) as ds:
        assert ds.overviews(1) and ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert max(tiles.levels(p)[-1].width, tiles.levels(p)[-1].height) <= 2  # down to 1-2 px


def test_every_zoom_from_minzoom_reads_an_overview_at_most_2x_finer_than_the_tile(product):
    p, _, _ = product
    i = tiles.info(p)
    assert i.minzoom <= 5 < i.maxzoom  # the z5-z7 tiles are served, from overviews
    coarsest = tiles.levels(p)[-1]
    for z in range(i.minzoom, tiles.MAX_ZOOM + 1):
        plan = tiles.read_plan(p, z)
        assert plan.pixels <= tiles.MAX_SOURCE_PIXELS, (z, plan)
        if tiles.WORLD_M / 256 / 2 ** z < coarsest.res_m:  # a level coarser than the tile exists: at most 2x finer
            assert plan.pixels <= 512 * 512, (z, plan)
        if z < i.maxzoom - 1:
            assert plan.level.overview >= 0, (z, plan)
        t = _tile(p, z)
        body, done = tiles.render_planned(p, "flood", z, t.x, t.y)
        assert done == plan and body[:4] == b"\x89PNG"


def test_a_product_without_overviews_refuses_low_zooms_before_reading(old_product, monkeypatch):
    p = old_product
    assert tiles.levels(p)[-1].factor == 1  # the layout of issue 25: no overviews
    i = tiles.info(p)
    assert i.minzoom >= i.maxzoom - 3  # low zooms are not advertised
    read = []
    monkeypatch.setattr(tiles.Reader, "tile", lambda self, *a, **k: read.append(a) or pytest.fail("read"))
    for z in range(0, i.minzoom):
        t = _tile(p, z)
        with pytest.raises(tiles.TileTooCostly, match=r"^z: .*TERRAWATCH_RASTER_MAX_SOURCE_PIXELS"):
            tiles.render(p, "flood", z, t.x, t.y)
    assert read == []
    # z7 of the issue: 17 s and +586 MB then; now refused, and it would have read a 23,000 px square
    assert tiles.read_plan(p, 7).pixels > 500_000_000
    monkeypatch.undo()
    t = _tile(p, i.minzoom)
    assert tiles.render(p, "flood", i.minzoom, t.x, t.y)[:4] == b"\x89PNG"


def test_the_cap_is_a_parameter(product):
    p, _, _ = product
    z = tiles.info(p).minzoom
    t = _tile(p, z)
    plan = tiles.read_plan(p, z)
    tiles.render(p, "flood", z, t.x, t.y, max_pixels=plan.pixels)
    with pytest.raises(tiles.TileTooCostly):
        tiles.render(p, "flood", z, t.x, t.y, max_pixels=plan.pixels - 1)
    assert tiles.info(p, max_pixels=plan.pixels - 1).minzoom > z


@pytest.fixture()
def client(product, old_product):
    from terrawatch.api.app import create_app

    s = Settings(products_root=product[0].parent.parent, api_public_read=True)
    return TestClient(create_app(s), raise_server_exceptions=False)


def test_tilejson_minzoom_is_the_lowest_served_zoom(client, product):
    for scene, p in (("S1", product[0]), ("OLD", product[0].parent.parent / "OLD" / "flood_likelihood.tif")):
        tj = client.get(f"/raster/scenes/{scene}/flood.json").json()
        assert tj["minzoom"] == tiles.info(p).minzoom and tj["maxzoom"] == tiles.info(p).maxzoom
        z = tj["minzoom"]
        t = _tile(p, z)
        ok = client.get(f"/raster/scenes/{scene}/flood/{z}/{t.x}/{t.y}.png")
        assert ok.status_code == 200 and int(ok.headers["x-raster-read-pixels"]) <= tiles.MAX_SOURCE_PIXELS
        if z > 0:
            t = _tile(p, z - 1)
            r = client.get(f"/raster/scenes/{scene}/flood/{z - 1}/{t.x}/{t.y}.png")
            assert r.status_code == 400 and r.json()["description"].startswith("z: "), r.text
    assert client.get("/raster/scenes/OLD/flood.json").json()["minzoom"] > 7


def test_cap_setting_is_honoured_by_the_api(product):
    from terrawatch.api.app import create_app

    p = product[0]
    c = TestClient(create_app(Settings(products_root=p.parent.parent, api_public_read=True,
                                       raster_max_source_pixels=262_144)), raise_server_exceptions=False)
    tj = c.get("/raster/scenes/S1/flood.json").json()
    assert tj["minzoom"] == tiles.info(p, 262_144).minzoom > tiles.info(p).minzoom
    with pytest.raises(ValueError):
        Settings(raster_max_source_pixels=1000)


def test_etag_and_if_none_match(client, product):
    p = product[0]
    t = _tile(p, 12)
    url = f"/raster/scenes/S1/flood/12/{t.x}/{t.y}.png"
    r = client.get(url)
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    tag = r.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    for inm in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        n = client.get(url, headers={"If-None-Match": inm})
        assert n.status_code == 304 and n.content == b"" and n.headers["etag"] == tag, inm
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    other = client.get(f"/raster/scenes/S1/flood/12/{t.x}/{t.y}.webp")
    assert other.headers["etag"] != tag  # the format is part of the tag
    # a rewritten product gets a new tag: the old one no longer matches
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    r2 = client.get(url, headers={"If-None-Match": tag})
    assert r2.status_code == 200 and r2.headers["etag"] != tag
    # a refused zoom stays refused whatever the client claims to hold
    z = tiles.info(p).minzoom - 1
    if z >= 0:
        t = _tile(p, z)
        assert client.get(f"/raster/scenes/S1/flood/{z}/{t.x}/{t.y}.png",
                          headers={"If-None-Match": "*"}).status_code == 400


def test_upgrade_rewrites_products_written_before_with_deep_overviews(product, old_product):
    from terrawatch.products.cog import upgrade

    root = old_product.parent.parent
    with rasterio.open(old_product) as ds:
        before = ds.read()
    assert tiles.info(old_product).minzoom > 7
    assert upgrade(root) == [old_product]  # the new product (S1) is left alone
    with rasterio.open(old_product) as ds:
        assert (ds.read() == before).all() and ds.overviews(1) == overview_factors(N, N)
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert tiles.info(old_product).minzoom <= 5
    assert upgrade(root) == []  # idempotent


def test_upgrade_rebuilds_an_old_quicklooks_few_levels(tmp_path):
    from terrawatch.products.cog import upgrade

    q = tmp_path / "Q" / "quicklook.tif"
    q.parent.mkdir()
    src = tmp_path / "src.tif"
    with rasterio.open(src, "w", driver="GTiff", width=600, height=600, count=3, dtype="uint8", crs="EPSG:32630",
                       transform=from_origin(500000, 4650000, 10, 10), nodata=0) as ds:
        ds.write(np.full((3, 600, 600), 9, np.uint8))
    rasterio.shutil.copy(src, q, driver="COG", compress="DEFLATE", blocksize=512, overview_resampling="AVERAGE")
    with rasterio.open(q) as ds:
        assert len(ds.overviews(1)) == 1  # GDAL's default: until one 512 px block
    assert upgrade(tmp_path) == [q]
    assert max(tiles.levels(q)[-1].width, tiles.levels(q)[-1].height) <= 2
