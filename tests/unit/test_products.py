"""Scene products: COG layout, quicklooks from S2/S1 scenes, rio-tiler raster tiles and their API routes
(PNG/WebP of the right size, excluded pixels transparent, out-of-range tiles 404, no path traversal)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import morecantile
import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from rasterio.transform import from_origin

from terrawatch.domain.scene import scene_from_item
from terrawatch.imagery.reader import SceneReader
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch.products import tiles
from terrawatch.products.cog import is_cog, to_cog
from terrawatch.products.quicklook import write_quicklook
from terrawatch.settings import Settings

TMS = morecantile.tms.get("WebMercatorQuad")
N = 1500  # px, 10 m: 15 km


def _likelihood(path, n=N):
    """A likelihood product as the tiler writes it: ramp 0-100 west to east, top-left quarter excluded."""
    lk = np.tile(np.linspace(0, 100, n).round().astype(np.uint8), (n, 1))
    lk[: n // 4, : n // 4] = 255
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=2, dtype="uint8", crs="EPSG:32630",
                       transform=from_origin(500000, 4650000, 10, 10), nodata=255, tiled=True, blockxsize=256,
                       blockysize=256) as ds:
        ds.write(np.stack([lk, np.where(lk == 255, 2, 0).astype(np.uint8)]))
    return to_cog(path)


@pytest.fixture()
def products(tmp_path):
    root = tmp_path / "products"
    (root / "S1").mkdir(parents=True)
    _likelihood(root / "S1" / "flood_likelihood.tif")
    return root


def _centre_tile(path, zoom=None):
    i = tiles.info(path)
    w, s, e, n = i.bounds
    return TMS.tile((w + e) / 2, (s + n) / 2, zoom if zoom is not None else i.maxzoom)


def test_likelihood_product_is_a_cog_with_overviews(products):
    p = products / "S1" / "flood_likelihood.tif"
    assert is_cog(p)
    with rasterio.open(p) as ds:
        assert ds.overviews(1) and ds.count == 2 and ds.nodata == 255


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_likelihood_tile_decodes_at_256_px_with_excluded_pixels_transparent(products, fmt):
    p = products / "S1" / "flood_likelihood.tif"
    t = _centre_tile(p)
    img = Image.open(io.BytesIO(tiles.render(p, "flood", t.z, t.x, t.y, img_format=fmt)))
    assert img.format == fmt and img.size == (256, 256)
    # the excluded top-left quarter: fully transparent
    w, s, e, n = tiles.info(p).bounds
    corner = TMS.tile(w + (e - w) * 0.05, n - (n - s) * 0.05, tiles.info(p).maxzoom)
    a = np.array(Image.open(io.BytesIO(tiles.render(p, "flood", corner.z, corner.x, corner.y))).convert("RGBA"))
    assert a[..., 3].max() == 0


def test_out_of_range_tiles_are_not_found(products):
    p = products / "S1" / "flood_likelihood.tif"
    t = _centre_tile(p)
    for z, x, y in ((t.z, 0, 0), (3, 8, 0), (3, 0, 8), (23, 0, 0), (-1, 0, 0)):
        with pytest.raises(tiles.TileNotFound):
            tiles.render(p, "flood", z, x, y)


def test_product_lookup_refuses_traversal_and_unknown_names(products, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _likelihood(outside / "flood_likelihood.tif", n=64)
    (products / "escape").symlink_to(outside, target_is_directory=True)
    for scene, product in ((".", "flood"), ("..", "flood"), ("../products/S1", "flood"), ("S1/../S1", "flood"),
                           ("escape", "flood"), ("S1", "../flood"), ("S1", "likelihood"), ("S1", "mining"),
                           ("", "flood"), ("x" * 300, "flood")):
        with pytest.raises(tiles.ProductNotFound):
            tiles.product_file(products, scene, product)
    assert tiles.product_file(products, "S1", "flood").name == "flood_likelihood.tif"


def _s2_scene(tmp_path):
    data = np.full((13, 300, 300), 1200, dtype=np.uint16)  # 0.12 reflectance everywhere
    data[7] = 3000  # NIR bright (vegetation)
    data[:, :50, :50] = 0  # no data
    path = tmp_path / "s2.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=300, count=13, dtype="uint16",
                       crs="EPSG:32630", transform=from_origin(500000, 4650000, 10, 10), nodata=0) as ds:
        ds.write(data)
    item = item_from_geotiff(path, scene_id="s2-ql", sensing_time=datetime(2024, 5, 1, tzinfo=timezone.utc))
    return scene_from_item(item)


def test_s2_quicklook_true_and_false_colour(tmp_path):
    scene = _s2_scene(tmp_path)
    with SceneReader(scene) as r:
        grid = r.grid
    p = write_quicklook(scene, grid, tmp_path / "ql.tif", max_px=100)
    assert is_cog(p)
    with rasterio.open(p) as ds:
        assert ds.count == 4 and ds.width == 100 and ds.nodata == 0
        b = ds.read()
    assert (b[:, :16, :16] == 0).all()  # no data stays no data
    assert b[0, 50, 50] == round(1200 / 3000 * 254 + 1) and b[3, 50, 50] == 255  # red 0.12, NIR 0.3 (saturated)
    t = _centre_tile(p)
    for comp in ("truecolor", "falsecolor"):
        img = Image.open(io.BytesIO(tiles.render(p, "quicklook", t.z, t.x, t.y, comp)))
        assert img.size == (256, 256)
    with pytest.raises(tiles.TileNotFound):  # x = 1 does not exist at zoom 0
        tiles.render(p, "quicklook", 0, 1, 0, "truecolor")


def test_s1_quicklook_vv_vh_composite(tmp_path):
    from terrawatch_dev.samples import synthetic_s1

    synthetic_s1(tmp_path / "s1.tif", size=256)
    scene = scene_from_item(item_from_geotiff(tmp_path / "s1.tif", scene_id="s1-ql",
                                              sensing_time=datetime(2024, 5, 1, tzinfo=timezone.utc)))
    with SceneReader(scene) as r:
        grid = r.grid
    p = write_quicklook(scene, grid, tmp_path / "ql1.tif")
    with rasterio.open(p) as ds:
        assert ds.count == 3 and ds.width == 256
        vv = ds.read(1)
    assert vv.min() >= 1  # every pixel has data
    t = _centre_tile(p)
    img = Image.open(io.BytesIO(tiles.render(p, "quicklook", t.z, t.x, t.y, "vvvh")))
    assert img.size == (256, 256)
    # a composite the scene does not have is refused (400), never another composite in its place
    for comp in ("truecolor", "falsecolor"):
        with pytest.raises(tiles.CompositeNotApplicable, match="vvvh"):
            tiles.render(p, "quicklook", t.z, t.x, t.y, comp)


def test_composites_apply_only_where_the_bands_exist():
    assert tiles.quicklook_bands("quicklook", 4, None) == tiles.COMPOSITES["truecolor"]
    assert tiles.quicklook_bands("quicklook", 4, "falsecolor") == (4, 1, 2)
    assert tiles.quicklook_bands("quicklook", 3, None) == tiles.COMPOSITES["vvvh"]
    assert tiles.quicklook_bands("flood", 2, None) is None
    for product, count, comp in (("quicklook", 4, "vvvh"), ("quicklook", 3, "falsecolor"), ("flood", 2, "vvvh"),
                                 ("quicklook", 2, None)):
        with pytest.raises(tiles.CompositeNotApplicable):
            tiles.quicklook_bands(product, count, comp)


@pytest.fixture()
def client(products):
    from terrawatch.api.app import create_app

    s = Settings(products_root=products, api_public_read=True)
    return TestClient(create_app(s))


def test_raster_routes(client, products):
    tj = client.get("/raster/scenes/S1/flood.json")
    assert tj.status_code == 200, tj.text
    body = tj.json()
    assert body["tilejson"] == "3.0.0" and len(body["bounds"]) == 4 and "{z}/{x}/{y}.png" in body["tiles"][0]
    t = _centre_tile(products / "S1" / "flood_likelihood.tif")
    for fmt, media in (("png", "image/png"), ("webp", "image/webp")):
        r = client.get(f"/raster/scenes/S1/flood/{t.z}/{t.x}/{t.y}.{fmt}")
        assert r.status_code == 200 and r.headers["content-type"] == media
        assert Image.open(io.BytesIO(r.content)).size == (256, 256)
    assert client.get(f"/raster/scenes/S1/flood/{t.z}/0/0.png").status_code == 404  # outside the product
    assert client.get("/raster/scenes/S1/flood/3/9/0.png").status_code == 404  # outside the tile matrix
    assert client.get("/raster/scenes/S1/mining.json").status_code == 404
    assert client.get("/raster/scenes/nope/flood.json").status_code == 404


def test_stac_item_of_a_scenes_products(products):
    import pystac
    from shapely.geometry import box

    from terrawatch.products.stac import COLLECTION_ID, collection, item
    from terrawatch.store.product_scenes import SceneRow

    row = SceneRow("S1", "sentinel-2", "sentinel-2b", datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
                   box(-3.0, 41.8, -2.7, 42.0), "L2A", {"mining": "mining_s2 takes sentinel-2 L1C only"})
    d = item(row, products / "S1", "http://api/stac", "http://api")
    it = pystac.Item.from_dict(d)
    assert it.collection_id == COLLECTION_ID and set(it.assets) == {"flood_likelihood"}
    a = d["assets"]["flood_likelihood"]
    assert a["proj:code"] == "EPSG:32630" and a["proj:shape"] == [N, N] and len(a["proj:transform"]) == 6
    assert a["raster:bands"][0]["nodata"] == 255 and a["raster:bands"][0]["data_type"] == "uint8"
    assert a["file:size"] == (products / "S1" / "flood_likelihood.tif").stat().st_size
    assert a["href"] == "http://api/stac/assets/S1/flood.tif" and a["terrawatch:tilejson"].endswith("/S1/flood.json")
    exts = " ".join(d["stac_extensions"])
    assert "projection" in exts and "raster" in exts and "file" in exts
    assert d["properties"]["terrawatch:skipped"]["mining"].startswith("mining_s2")
    assert item(row._replace(id="none") if hasattr(row, "_replace") else SceneRow(
        "none", *list(row.__dict__.values())[1:]), products / "none", "http://api/stac", "http://api") is None
    c = pystac.Collection.from_dict(collection("http://api/stac", [-3, 41, -2, 42], [row.sensing_time, None]))
    assert c.id == COLLECTION_ID


def test_fused_flood_product_is_served_and_listed(products, client):
    """flood_fused.tif (the pipeline's fused S1 + S2 flood) is a product: file lookup, raster tile, STAC asset."""
    import shutil

    from shapely.geometry import box

    from terrawatch.products.stac import item
    from terrawatch.store.product_scenes import SceneRow

    shutil.copy(products / "S1" / "flood_likelihood.tif", products / "S1" / "flood_fused.tif")
    assert tiles.product_file(products, "S1", "flood_fused") == (products / "S1" / "flood_fused.tif").resolve()
    t = _centre_tile(products / "S1" / "flood_fused.tif")
    z, x, y = t.z, t.x, t.y
    png = tiles.render(products / "S1" / "flood_fused.tif", "flood_fused", z, x, y)
    assert Image.open(io.BytesIO(png)).size == (256, 256)
    r = client.get(f"/raster/scenes/S1/flood_fused/{z}/{x}/{y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert client.get("/raster/scenes/S1/flood_fused.json").json()["tilejson"] == "3.0.0"
    row = SceneRow("S1", "sentinel-1", "sentinel-1a", datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
                   box(-3.0, 41.8, -2.7, 42.0), "GRD", {})
    d = item(row, products / "S1", "http://api/stac", "http://api")
    assert set(d["assets"]) == {"flood_likelihood", "flood_fused"}
    assert "source" in d["assets"]["flood_fused"]["description"]
    assert d["assets"]["flood_fused"]["href"] == "http://api/stac/assets/S1/flood_fused.tif"
