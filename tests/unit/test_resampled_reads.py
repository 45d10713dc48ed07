"""Resampled band reads (20/60 m onto 10 m) without boundless VRTs: same pixels, NaN outside the raster."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from terrawatch.imagery.reader import _read_resampled_window


@pytest.fixture(scope="module")
def band20(tmp_path_factory):
    path = tmp_path_factory.mktemp("r") / "b20.tif"
    rng = np.random.default_rng(3)
    with rasterio.open(path, "w", driver="GTiff", width=300, height=200, count=1, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=from_origin(500_000, 5_000_000, 20, 20)) as ds:
        data = rng.integers(100, 5000, size=(200, 300), dtype=np.uint16)
        data[50:60, 70:90] = 0  # nodata
        ds.write(data, 1)
    return path


@pytest.mark.parametrize("col, row", [(40.0, 30.0), (-20.0, 10.0), (250.0, 150.0), (-64.0, -64.0), (290.0, 5.0),
                                      (500.0, 500.0)])
def test_matches_rasterio_boundless_read(band20, col, row):
    """A 256 px tile at 10 m = a 128 px window at 20 m, anywhere relative to the raster."""
    win = Window(col, row, 128, 128)
    with rasterio.open(band20) as ds:
        got = _read_resampled_window(ds, 1, win, 256)
        ref = ds.read(1, window=win, out_shape=(256, 256), boundless=True, masked=True,
                      resampling=Resampling.bilinear)
    ref = np.where(np.ma.getmaskarray(ref), np.nan, ref.data.astype(np.float32))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[~np.isnan(got)], ref[~np.isnan(ref)], atol=1)  # uint16 rounding
    inside = max(0, min(300, col + 128) - max(0, col)) * max(0, min(200, row + 128) - max(0, row)) * 4
    assert (~np.isnan(got)).sum() <= inside
