"""Polygons cut by tile borders are merged back: tiled == whole-raster polygonization."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from terrawatch.domain.tiles import TileGrid
from terrawatch.vectorize.polygonize import merge_parts, tile_parts


def _tiled_parts(mask, lk, size, overlap):
    grid = TileGrid(*mask.shape, size, overlap)
    parts = []
    for t in grid:
        core = (slice(t.core_row, t.core_row + t.core_h), slice(t.core_col, t.core_col + t.core_w))
        parts += tile_parts(mask[core], lk[core], t.core_row, t.core_col)
    return merge_parts(parts)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(20, 160), w=st.integers(20, 160),
       size=st.sampled_from([24, 32, 64]), density=st.floats(0.3, 0.7))
def test_tiled_equals_whole(seed, h, w, size, density):
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random((h, w)), 2.0) > np.quantile(
        ndimage.gaussian_filter(rng.random((h, w)), 2.0), 1 - density)
    lk = rng.integers(0, 101, (h, w)).astype(np.uint8)
    whole = tile_parts(mask, lk, 0, 0)
    tiled = _tiled_parts(mask, lk, size, overlap=4)
    assert sorted(p.pixels for p in tiled) == sorted(p.pixels for p in whole)
    assert sum(p.likelihood_sum for p in tiled) == sum(p.likelihood_sum for p in whole)
    total_area = sum(shapely.area(p.geom) for p in tiled)
    assert total_area == mask.sum()  # pixel units: area conserved, no gaps, no overlaps
    assert all(p.geom.is_valid for p in tiled)
    n_labels = ndimage.label(mask, structure=np.ones((3, 3)))[1]
    assert len(tiled) == n_labels


@settings(max_examples=25, deadline=None)
@example(seed=3175, h=63, w=100, size=24, northing=100000.0, simplify=0.0)  # sums differed by 1.0e-9 relative
@given(seed=st.integers(0, 10_000), h=st.integers(20, 120), w=st.integers(20, 120),
       size=st.sampled_from([24, 32, 64]), northing=st.floats(100_000, 9_000_000), simplify=st.sampled_from([0.0, 0.5]))
def test_tiled_detections_in_lon_lat_are_valid_and_conserve_area(seed, h, w, size, northing, simplify):
    """Through reprojection to EPSG:4326: valid (multi)polygons, and without simplification the geodesic
    area equals the mask's pixel area (UTM scale error < 0.5 %) and the whole-raster result."""
    from affine import Affine

    from terrawatch.vectorize.polygonize import to_detections

    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((h, w)), 2.0)
    mask = smooth > np.quantile(smooth, 0.5)
    lk = rng.integers(0, 101, (h, w)).astype(np.uint8)
    transform = Affine(10, 0, 500_000, 0, -10, northing)  # 10 m pixels, UTM 32N central meridian
    tiled = to_detections(_tiled_parts(mask, lk, size, overlap=4), transform, "EPSG:32632", "flood", 0.0, simplify)
    whole = to_detections(tile_parts(mask, lk, 0, 0), transform, "EPSG:32632", "flood", 0.0, simplify)
    assert all(d.geometry.is_valid and not d.geometry.is_empty and d.geometry.geom_type == "MultiPolygon"
               for d in tiled)
    assert len(tiled) == len(whole)
    if simplify == 0.0:
        area = sum(d.area_ha for d in tiled)
        # Merged border parts are re-noded after reprojection, so the sums differ in the last bits (1.0e-9
        # relative was seen); one pixel of 14,400 would be 7e-5, far above this tolerance.
        assert area == pytest.approx(sum(d.area_ha for d in whole), rel=1e-7)
        assert area == pytest.approx(mask.sum() * 0.01, rel=5e-3)  # 1 px = 100 m2 = 0.01 ha
