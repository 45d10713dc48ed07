"""Remote COG windowed reads over real HTTP with Range requests (https:// and s3:// hrefs), bytes counted.

No stack needed: a local HTTP server (tests/integration/standins.py) serves the
COG and counts every byte it sends.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin

from terrawatch.domain.errors import UnreadableAsset
from terrawatch.domain.scene import scene_from_item
from terrawatch.imagery.reader import SceneReader
from terrawatch.ingest.stac_items import item_from_geotiff
from tests.integration.standins import StandIn

pytestmark = pytest.mark.localhttp  # no stack: stand-in servers on 127.0.0.1

SIZE = 3072  # px; 2 float32 bands -> ~75 MB of pixels


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    """A 3072 x 3072 x 2 (VV, VH dB) COG, 256 px blocks, deflate; values quantized to 0.1 dB."""
    root = tmp_path_factory.mktemp("cog")
    rng = np.random.default_rng(7)
    data = (rng.integers(-250, -20, size=(2, SIZE, SIZE), dtype=np.int16) / 10).astype(np.float32)
    plain = root / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=SIZE, height=SIZE, count=2, dtype="float32",
                       crs="EPSG:32630", transform=from_origin(400_000, 4_500_000, 10, 10), nodata=np.nan) as ds:
        ds.write(data)
    path = root / "bucket" / "s1" / "scene.tif"
    path.parent.mkdir(parents=True)
    rasterio.shutil.copy(plain, path, driver="COG", COMPRESS="DEFLATE", LEVEL="1", BLOCKSIZE="256",
                         OVERVIEWS="NONE")
    plain.unlink()
    return root, path


def _item_with_href(path, href):
    item = item_from_geotiff(path, scene_id="remote-cog")
    item["assets"]["data"]["href"] = href
    return item


def _check_window_read(server: StandIn, path, href, prefix):
    local = scene_from_item(item_from_geotiff(path, scene_id="remote-cog"))
    remote = scene_from_item(_item_with_href(path, href))
    with SceneReader(local) as lr:
        expected = lr.read(1500, 1700, 256)
    with SceneReader(remote) as rr:
        assert (rr.grid.width, rr.grid.height) == (SIZE, SIZE)
        got = rr.read(1500, 1700, 256)
    np.testing.assert_array_equal(got, expected)
    file_size = path.stat().st_size
    sent = server.sent(prefix)
    gets = server.requests("GET", prefix)
    print(f"{href}: {sent:,} of {file_size:,} bytes ({sent / file_size:.2%}) in {len(gets)} GETs")
    assert gets and all(r["range"] and r["status"] == 206 for r in gets), "every GET must be a range request"
    assert sent < 0.05 * file_size, f"one 256 px window pulled {sent} of {file_size} bytes"
    return sent


def test_https_cog_window_transfers_a_small_fraction_of_the_file(cog):
    root, path = cog
    with StandIn(root) as server:
        server.serve_files()
        rel = path.relative_to(root).as_posix()
        _check_window_read(server, path, f"{server.url}/files/{rel}", "/files/")


def test_s3_href_reads_through_an_s3_endpoint_with_ranges(cog, monkeypatch):
    """s3://bucket/key goes to AWS_S3_ENDPOINT (path-style, unsigned) with the same range reads."""
    root, path = cog
    with StandIn(root) as server:
        server.serve_files(prefix="/")
        monkeypatch.setenv("AWS_S3_ENDPOINT", server.url.removeprefix("http://"))
        monkeypatch.setenv("AWS_HTTPS", "NO")
        monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "FALSE")
        monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
        rel = path.relative_to(root).as_posix()  # bucket/s1/scene.tif
        _check_window_read(server, path, f"s3://{rel}", "/bucket/")


def test_missing_remote_asset_is_unreadable(cog):
    root, path = cog
    with StandIn(root) as server:
        server.serve_files()
        scene = scene_from_item(_item_with_href(path, f"{server.url}/files/nope.tif"))
        with pytest.raises(UnreadableAsset, match="cannot open asset"):
            SceneReader(scene)
