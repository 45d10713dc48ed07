"""Sentinel-2 L2A: Earth Search and Planetary Computer ``sentinel-2-l2a`` Item shapes normalise to 12-band
scenes with an SCL mask; the reader removes the BOA offset only where the DN carry it, reads SCL with
nearest-neighbour resampling as cloud/no-data flags, and leaves B10 absent (NaN)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrawatch.domain.errors import InvalidEvent
from terrawatch.domain.scene import S2_BANDS, S2_L2A_BANDS, parse_event, scene_from_item
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_NODATA
from terrawatch.imagery.reader import SceneReader
from terrawatch.imagery.stac import normalize_item, resolve_event
from tests.stac_shapes import S2_KEYS, earth_search_s2, planetary_computer_s2

# UTM 33N inside the stac_shapes footprint (lon 14.0-14.06, lat 45.0-45.04): 120 x 120 px at 10 m
X0, Y0 = 421000.0, 4984000.0
DN = 1500  # stored DN of every reflectance pixel


def _write(path, arr, res, dtype):
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1, dtype=dtype,
                       crs="EPSG:32633", transform=from_origin(X0, Y0, res, res), nodata=0) as ds:
        ds.write(arr.astype(dtype), 1)


@pytest.fixture()
def l2a_assets(tmp_path):
    """Local stand-ins for an L2A granule's COGs: 12 bands at native resolution + SCL at 20 m."""
    hrefs = {}
    for band in S2_L2A_BANDS:
        gsd = S2_KEYS[band][3]
        n = 1200 // gsd  # 1.2 km: whole pixels at 10, 20 and 60 m
        _write(tmp_path / f"{band}.tif", np.full((n, n), DN), gsd, "uint16")
        hrefs[band] = (tmp_path / f"{band}.tif").as_uri()
    scl = np.full((60, 60), 4, dtype=np.uint8)  # vegetation
    scl[:8, :8] = 9  # cloud high probability -> 16 x 16 px at 10 m
    scl[8:10, :8] = 3  # cloud shadow -> 4 x 16 px
    scl[28:32, 28:32] = 0  # no data -> 8 x 8 px at 10 m rows/cols 56-63
    _write(tmp_path / "SCL.tif", scl, 20, "uint8")
    hrefs["SCL"] = (tmp_path / "SCL.tif").as_uri()
    return hrefs


def _event(item: dict):
    return parse_event(resolve_event(json.dumps(item)))


def test_earth_search_l2a_offset_applied_is_not_subtracted(l2a_assets):
    item = earth_search_s2("S2B_33TVL_20240501_0_L2A", l2a_assets, level="L2A", offset_applied=True)
    scene = _event(item)
    assert scene.is_l2a and scene.band_names() == S2_L2A_BANDS and scene.processing_baseline is None
    with SceneReader(scene) as r:
        x = r.read(0, 0, 64)
        assert x.shape == (13, 64, 64) and r.present.tolist() == [b != "B10" for b in S2_BANDS]
        assert np.isnan(x[S2_BANDS.index("B10")]).all()
        assert np.allclose(x[r.present], DN)  # harmonised by the catalogue: DN are reflectance x 10000


def test_planetary_computer_l2a_baseline_05_offset_is_removed(l2a_assets):
    scene = _event(planetary_computer_s2("S2A_MSIL2A_20240502T100559_R022_T33TVL", l2a_assets, level="L2A",
                                         baseline="05.10"))
    assert scene.is_l2a and scene.processing_baseline == "05.10" and scene.platform == "sentinel-2a"
    with SceneReader(scene) as r:
        assert np.allclose(r.read(0, 0, 64)[r.present], DN - 1000)  # BOA_ADD_OFFSET -1000 from baseline 04.00


def test_planetary_computer_l2a_old_baseline_keeps_dn(l2a_assets):
    scene = _event(planetary_computer_s2("S2A_MSIL2A_OLD", l2a_assets, level="L2A", baseline="03.01"))
    with SceneReader(scene) as r:
        assert np.allclose(r.read(0, 0, 64)[r.present], DN)


def test_scl_read_nearest_as_cloud_and_nodata_flags(l2a_assets):
    scene = _event(planetary_computer_s2("S2A_MSIL2A_SCL", l2a_assets, level="L2A"))
    with SceneReader(scene) as r:
        m = r.read_mask(0, 0, 64)
        assert m is not None and m.shape == (64, 64) and m.dtype == np.uint8
        assert (m[:20, :16] == EXCLUDED_CLOUD).all()  # cloud + shadow blocks, upsampled without blur
        assert (m[-8:, -8:] == EXCLUDED_NODATA).all()
        assert (m == 0).sum() == 64 * 64 - 20 * 16 - 64
        assert set(np.unique(m).tolist()) == {0, EXCLUDED_NODATA, EXCLUDED_CLOUD}
        # a window reaching outside the raster: no data there
        assert (r.read_mask(100, 100, 32)[20:, :] == EXCLUDED_NODATA).all()


def test_l2a_without_scl_has_no_mask(l2a_assets):
    hrefs = {b: h for b, h in l2a_assets.items() if b != "SCL"}
    scene = _event(earth_search_s2("S2B_NOSCL_L2A", hrefs, level="L2A", offset_applied=True, jp2_twins=False))
    assert scene.mask_band is None
    with SceneReader(scene) as r:
        assert r.read_mask(0, 0, 64) is None


def test_l2a_missing_a_reflectance_band_is_named(l2a_assets):
    hrefs = {b: h for b, h in l2a_assets.items() if b != "B11"}
    with pytest.raises(InvalidEvent, match="B11"):
        normalize_item(earth_search_s2("S2B_NOB11_L2A", hrefs, level="L2A"))


def test_terrawatch_l2a_item_needs_12_bands_not_b10(l2a_assets):
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "tw-l2a",
            "geometry": {"type": "Polygon", "coordinates": [[[14.0, 45.0], [14.06, 45.0], [14.06, 45.04],
                                                             [14.0, 45.04], [14.0, 45.0]]]},
            "properties": {"datetime": "2024-05-01T10:00:00Z", "platform": "sentinel-2b",
                           "constellation": "sentinel-2", "processing:level": "L2A"},
            "assets": {b: {"href": h, "roles": ["data"]} for b, h in l2a_assets.items()}}
    item["assets"]["SCL"]["terrawatch:units"] = "class"
    scene = scene_from_item(item)
    assert scene.band_names() == S2_L2A_BANDS and scene.mask_band.name == "SCL"
    item["properties"]["processing:level"] = "L1C"  # an L1C scene still needs B10
    with pytest.raises(InvalidEvent, match="B10"):
        scene_from_item(item)
