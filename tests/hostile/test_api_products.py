"""Hostile requests to the product routes (raster tiles, TileJSON, STAC search and asset files): always 4xx
with a message, never 5xx, never a file outside the products folder (traversal by ``..``, encoded slashes,
symlinks), absurd numbers, bad dates and bodies. Checked before any database access, so no stack needed."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.transform import from_origin

from terrawatch.products.cog import to_cog
from terrawatch.settings import Settings

HOSTILE = [
    "/raster/scenes/../flood.json",
    "/raster/scenes/%2e%2e/flood.json",
    "/raster/scenes/..%2f..%2fetc/flood.json",
    "/raster/scenes/%2e%2e%2f%2e%2e%2fsecret/flood/0/0/0.png",
    "/raster/scenes/S1/..%2f..%2fsecret%2fflood.json",
    "/raster/scenes/S1/%2e%2e/0/0/0.png",
    "/raster/scenes/escape/flood.json",
    "/raster/scenes/escape/flood/0/0/0.png",
    "/raster/scenes/.../flood.json",
    "/raster/scenes/S1%00/flood.json",
    "/raster/scenes/S1/flood%00.json",
    "/raster/scenes/" + "A" * 5000 + "/flood.json",
    "/raster/scenes/S1/FLOOD.json",
    "/raster/scenes/S1/likelihood.json",
    "/raster/scenes/S1/quicklook.json",
    "/raster/scenes/S1/flood/99/0/0.png",
    "/raster/scenes/S1/flood/-1/0/0.png",
    "/raster/scenes/S1/flood/5/-1/0.png",
    "/raster/scenes/S1/flood/5/0/99999999999999999999999999.png",
    "/raster/scenes/S1/flood/5/0/1e3.png",
    "/raster/scenes/S1/flood/5/0/0.gif",
    "/raster/scenes/S1/flood/5/0/0.png?composite=<script>",
    "/raster/scenes/S1/flood/22/4194303/4194303.png",
    "/raster/scenes/S1/flood/0/0/0.tif",
    "/raster/scenes/S1/flood.json?composite=" + "x" * 10000,
    "/stac/assets/../flood",
    "/stac/assets/%2e%2e/flood",
    "/stac/assets/%2e%2e%2f%2e%2e%2fsecret/flood",
    "/stac/assets/escape/flood",
    "/stac/assets/S1/..%2fflood",
    "/stac/assets/S1/FLOOD",
    "/stac/assets/S1/mining",
    "/stac/search?bbox=1,2,3",
    "/stac/search?bbox=nan,1,2,3",
    "/stac/search?bbox=inf,1,2,3",
    "/stac/search?bbox=-200,0,0,0",
    "/stac/search?bbox=0,10,1,5",
    "/stac/search?bbox=10,0,-10,1",
    "/stac/search?bbox=" + "1," * 500 + "1",
    "/stac/search?datetime=garbage",
    "/stac/search?datetime=2024-01-02T00:00:00Z/2024-01-01T00:00:00Z",
    "/stac/search?datetime=..",
    "/stac/search?datetime=" + "2" * 200,
    "/stac/search?limit=100000",
    "/stac/search?limit=0",
    "/stac/search?offset=-1",
    "/stac/search?ids=../../etc",
    "/stac/collections/nope",
    "/stac/collections/nope/items",
    "/stac/collections/terrawatch-products/items/...",
    "/stac/collections/terrawatch-products/items/%2e%2e%2fx",
    "/stac/search?intersects=garbage",
    "/stac/search?intersects=%7B%22type%22%3A%22Polygon%22%7D",
    '/stac/search?intersects={"type":"Point","coordinates":[500,0]}',
    '/stac/search?intersects={"type":"Point","coordinates":[0,0]}&bbox=0,0,1,1',
    '/stac/search?intersects={"type":"GeometryCollection","geometries":[]}',
    "/stac/search?hazard=flood",
    "/stac/collections/terrawatch-products/items?intersects=x",
    "/stac?x=1",
    "/stac/assets/S1/flood.tif.aux.xml",
    "/stac/assets/S1/flood.tif.ovr",
    "/stac/assets/S1/flood.msk",
]

HOSTILE_BODIES = [
    {"bbox": [1, 2]},
    {"bbox": [1, 2, 3, 4, 5, 6, 7]},
    {"bbox": ["a", 1, 2, 3]},
    {"bbox": [0, 10, 1, 5]},
    {"datetime": "garbage"},
    {"limit": 10 ** 9},
    {"offset": -5},
    {"ids": ["../../x"]},
    {"ids": ["x" * 300]},
    {"collections": "terrawatch-products"},
    {"unknown": 1},
    [1, 2, 3],
    "not an object",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from terrawatch.api.app import create_app

    base = tmp_path_factory.mktemp("raster")
    root = base / "products"
    (root / "S1").mkdir(parents=True)
    secret = base / "secret"
    secret.mkdir()
    for folder in (root / "S1", secret):
        with rasterio.open(folder / "flood_likelihood.tif", "w", driver="GTiff", width=64, height=64, count=2,
                           dtype="uint8", crs="EPSG:32630", transform=from_origin(500000, 4650000, 10, 10),
                           nodata=255) as ds:
            ds.write(np.zeros((2, 64, 64), dtype=np.uint8))
        to_cog(folder / "flood_likelihood.tif")
    (root / "escape").symlink_to(secret, target_is_directory=True)
    return TestClient(create_app(Settings(products_root=root, api_public_read=True)), raise_server_exceptions=False)


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_raster_request_is_4xx_with_a_message(client, url):
    r = client.get(url)
    assert 400 <= r.status_code < 500, (url[:80], r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith(("application/json", "application/problem+json")), r.headers
    assert r.text and "Traceback" not in r.text


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_stac_search_body_is_4xx(client, body):
    r = client.post("/stac/search", json=body)
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text[:200])


def test_the_real_product_is_served(client):
    assert client.get("/raster/scenes/S1/flood.json").status_code == 200
    r = client.get("/stac/assets/S1/flood", headers={"Range": "bytes=0-15"})
    assert r.status_code == 206 and len(r.content) == 16  # HTTP Range, as GDAL's /vsicurl/ uses
    tif = client.get("/stac/assets/S1/flood.tif", headers={"Range": "bytes=0-15"})
    assert tif.status_code == 206 and tif.content == r.content  # the href form, ending in .tif
    head = client.head("/stac/assets/S1/flood.tif")
    assert head.status_code == 200 and int(head.headers["content-length"]) > 16 and head.content == b""
    for sidecar in ("flood.tif.aux.xml", "flood.tif.ovr", "flood.tif.msk", "flood.aux.xml"):
        assert client.get(f"/stac/assets/S1/{sidecar}").status_code == 404  # GDAL's probes: absent, not 422
