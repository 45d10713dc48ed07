"""After a pipeline run on the real stack (the Sen1Floods11 Spain S1 chip): the products are COGs, the
STAC API lists them in ``terrawatch-products`` (read with pystac-client: bbox/datetime search, proj /
raster / file fields, the COG readable over HTTP Range), the raster tiles decode, and the /map page
in headless Chromium shows the basemap, the likelihood raster under the flood polygons and the alerts."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import httpx
import morecantile
import pytest
import rasterio
from PIL import Image
from shapely.geometry import shape

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch.products.cog import is_cog
from terrawatch_dev.samples import SPAIN_S1, spain_sensing_time
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, process_scene

pytestmark = pytest.mark.integration
TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def processed(stack, tmp_path_factory):
    """The Spain S1 chip processed once by a worker writing products to a temporary folder."""
    tmp = tmp_path_factory.mktemp("products-api")
    s = isolated(stack.settings, "prod", products_root=tmp / "products")
    item = item_from_geotiff(SPAIN_S1, scene_id=f"spain-s1-prod-{uuid.uuid4().hex[:6]}",
                             sensing_time=spain_sensing_time("s1"))
    runs = process_scene(s, item, tmp / "worker.log")
    assert {r["hazard"] for r in runs} == {"flood"}
    return s, item, tmp


def test_products_are_cogs_and_discoverable_with_pystac_client(processed):
    from pystac_client import Client

    s, item, _ = processed
    folder = s.products_dir / item["id"]
    assert is_cog(folder / "flood_likelihood.tif") and is_cog(folder / "quicklook.tif")
    viewer = role_keys(s, "stac")["viewer"]
    with live_api(s) as base:
        client = Client.open(f"{base}/stac", headers=hdr(viewer))
        assert client.conforms_to("ITEM_SEARCH")
        col = client.get_collection("terrawatch-products")
        assert col.id == "terrawatch-products"
        w, so, e, n = item["bbox"]
        t = spain_sensing_time("s1")
        found = list(client.search(collections=["terrawatch-products"], bbox=[w, so, e, n],
                                   datetime=f"{(t - timedelta(hours=1)).isoformat()}/{(t + timedelta(hours=1)).isoformat()}",
                                   max_items=50).items())
        mine = [i for i in found if i.id == item["id"]]
        assert len(mine) == 1, [i.id for i in found]
        it = mine[0]
        assert set(it.assets) == {"flood_likelihood", "quicklook"}
        lk = it.assets["flood_likelihood"]
        assert lk.media_type.startswith("image/tiff; application=geotiff; profile=cloud-optimized")
        assert lk.extra_fields["proj:code"].startswith("EPSG:") and len(lk.extra_fields["proj:shape"]) == 2
        assert lk.extra_fields["raster:bands"][0]["nodata"] == 255
        assert lk.extra_fields["file:size"] == (folder / "flood_likelihood.tif").stat().st_size
        assert any(e.startswith("https://stac-extensions.github.io/projection/") for e in it.stac_extensions)
        # elsewhere in time or space: not found
        far = list(client.search(collections=["terrawatch-products"], bbox=[100, 10, 101, 11], max_items=5).items())
        assert item["id"] not in {i.id for i in far}
        # intersects (pystac-client; POST and GET): only scenes whose footprint meets the polygon
        here_poly = {"type": "Polygon", "coordinates": [[[w, so], [e, so], [e, n], [w, n], [w, so]]]}
        away_poly = {"type": "Polygon", "coordinates": [[[100, 10], [101, 10], [101, 11], [100, 11], [100, 10]]]}
        near = {i.id for i in client.search(collections=["terrawatch-products"], intersects=here_poly,
                                            max_items=50).items()}
        assert item["id"] in near
        assert item["id"] not in {i.id for i in client.search(collections=["terrawatch-products"],
                                                              intersects=away_poly, max_items=50).items()}
        for poly, expected in ((here_poly, True), (away_poly, False)):
            r = httpx.get(f"{base}/stac/search", headers=hdr(viewer),
                          params={"intersects": json.dumps(poly), "limit": 100})
            assert r.status_code == 200, r.text
            assert (item["id"] in {f["id"] for f in r.json()["features"]}) is expected
            assert all(shape(f["geometry"]).intersects(shape(poly)) for f in r.json()["features"])
        assert httpx.get(f"{base}/stac/search", headers=hdr(viewer), params={"foo": "1"}).status_code == 400
        raw = httpx.get(f"{base}/stac/collections/terrawatch-products/items/{item['id']}",
                        headers=hdr(viewer)).json()["assets"]["flood_likelihood"]  # pystac migrates proj:epsg away
        assert lk.href.endswith("/flood.tif") and raw["proj:epsg"] == int(raw["proj:code"].split(":")[1])
        early = list(client.search(collections=["terrawatch-products"], bbox=[w, so, e, n],
                                   datetime="2000-01-01T00:00:00Z/2000-01-02T00:00:00Z", max_items=5).items())
        assert early == []
        # the asset is a COG GDAL reads through the API (HTTP Range), with the API key
        with rasterio.Env(GDAL_HTTP_HEADERS=f"X-API-Key: {viewer}", GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), \
                rasterio.open(f"/vsicurl/{lk.href}") as ds:
            assert ds.count == 2 and ds.overviews(1) is not None and ds.read(1, window=((0, 64), (0, 64))).size
        # raster tiles of both products decode as 256 px PNG; a tile elsewhere is 404
        for product in ("flood", "quicklook"):
            tj = httpx.get(f"{base}/raster/scenes/{item['id']}/{product}.json", headers=hdr(viewer)).json()
            bw, bs, be, bn = tj["bounds"]
            tile = TMS.tile((bw + be) / 2, (bs + bn) / 2, tj["maxzoom"] - 2)
            url = tj["tiles"][0].format(z=tile.z, x=tile.x, y=tile.y)
            r = httpx.get(url, headers=hdr(viewer))
            assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (256, 256)
            away = httpx.get(tj["tiles"][0].format(z=tile.z, x=0, y=0), headers=hdr(viewer))
            assert away.status_code == 404


def test_map_shows_basemap_likelihood_under_flood_polygons_and_the_alerts(processed):
    """Headless Chromium on /map after the pipeline run: the offline basemap renders (land and sea pixels
    differ), the flood likelihood raster renders under the flood polygons (pixels there change when it is
    hidden), the initial view contains the alerts, the popup has the analyst's fields and links."""
    import json
    import shutil
    import subprocess

    from terrawatch.api.routes.map import WEB_DIST
    from terrawatch.settings import REPO_ROOT

    s, item, tmp = processed
    web = WEB_DIST.parent
    assert (WEB_DIST / "basemap" / "land.geojson").exists(), "map bundle missing: run `make web`"
    if shutil.which("chromium") is None:
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-chromium.sh")], check=True)
    viewer = role_keys(s, "map18")["viewer"]
    shot = tmp / "map.png"  # test artifacts: map.png (data view), map-raster.png, map-world.png
    env = {**__import__("os").environ, "CHECK_RASTER_BBOX": ",".join(str(v) for v in item["bbox"])}
    with live_api(s) as base:
        res = subprocess.run(["node", "check-map.mjs", f"{base}/map#key={viewer}", str(shot)], cwd=web, env=env,
                             capture_output=True, text=True, timeout=360)
    assert res.stdout.strip(), res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    print(f"screenshots: {shot} {shot.with_name('map-raster.png')} {shot.with_name('map-world.png')}")
    assert out["state"] == "ready", out
    assert out["console_errors"] == [], out["console_errors"]
    assert out["basemap"]["differ"], out["basemap"]
    assert out["rasters"]["likelihood"] >= 1 and out["rasters"]["quicklook"] >= 1, out["rasters"]
    rf = out["raster_under_flood"]
    assert rf["points"] >= 10 and rf["differing"] >= 0.5 * rf["points"], rf
    view = out["initial_view"]  # the first view shows the newest alert at a readable size
    assert view["contains_newest"] is True and max(view["newest_px"]) >= 24, view
    for words in ("flood detections", "flood likelihood raster", "scene footprint (failed", "reference layer",
                  "observed water"):
        assert words in out["legend"], out["legend"]  # every colour on screen has a legend entry
    water = out["observed_water"]  # the scene's observed water: off by default, drawn when toggled on
    assert water["off"] == 0 and water["on"] >= 1 and water["off_again"] == 0, water
    print(f"map ready after {out['ready_ms']} ms (vector layers drawn; measured by the page)")
    assert int(out["status_text"].split()[0]) == out["distinct_features"]
    assert out["click"] and out["popup"]
    if "alert" in out["popup"][:10]:
        for field in ("hazard", "confidence", "status", "legality", "area", "first sensed", "last sensed"):
            assert field in out["popup"], out["popup"]
        assert "lifecycle events" in out["popup"] and "need a viewer key" not in out["popup"], out["popup"]
    assert shot.stat().st_size > 10_000


def test_debian_gdal_36_reads_an_asset_silently_and_mosaics_a_search(processed):
    """The GIS-client floor: Debian 12's gdal-bin (3.6). `gdalinfo /vsicurl/<asset>` prints no warning (sidecar
    probes get 404, HEAD works, the href ends in .tif); `STACIT:"<search>":asset=flood_likelihood` opens the
    search as a mosaic (it needs proj:epsg)."""
    import os
    import shutil
    import subprocess

    from terrawatch.settings import REPO_ROOT

    s, item, _tmp = processed
    if shutil.which("gdalinfo") is None:
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-gdal.sh")], check=True)
    viewer = role_keys(s, "gdal36")["viewer"]
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"X-API-Key: {viewer}", "CPL_DEBUG": "OFF"}
    with live_api(s) as base:
        href = f"{base}/stac/assets/{item['id']}/flood.tif"
        res = subprocess.run(["gdalinfo", f"/vsicurl/{href}"], capture_output=True, text=True, timeout=120, env=env)
        assert res.returncode == 0, res.stderr
        assert "Warning" not in res.stderr and "ERROR" not in res.stderr, res.stderr
        assert "Band 1" in res.stdout and "Overviews" in res.stdout, res.stdout
        w, so, e, n = item["bbox"]
        search = f"{base}/stac/search?collections=terrawatch-products&bbox={w},{so},{e},{n}"
        res = subprocess.run(["gdalinfo", f'STACIT:"{search}":asset=flood_likelihood'], capture_output=True,
                             text=True, timeout=180, env=env)
        assert res.returncode == 0, res.stderr
        # STACIT builds a VRT mosaic of the search's assets (GDAL 3.6 reports the VRT driver)
        assert "Driver: VRT" in res.stdout or "Driver: STACIT" in res.stdout, res.stdout
        assert f"/vsicurl/{href}" in res.stdout and "Band 1" in res.stdout, res.stdout
