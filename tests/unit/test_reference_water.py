"""Flood = observed water minus reference water (domain, pure)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer
import shapely
from shapely.geometry import box

from terrawatch.domain.reference_water import subtract_reference
from terrawatch.vectorize.polygonize import polygonize

UTM = "EPSG:32630"
T = Affine(10, 0, 500_000, 0, -10, 4_650_000)  # 10 m pixels
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform


def _px_box(r0, c0, r1, c1):
    """Pixel rows/cols -> lon/lat box (UTM 30N, 10 m pixels)."""
    x0, y0 = T * (c0, r0)
    x1, y1 = T * (c1, r1)
    return shapely.transform(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)),
                             lambda xy: np.column_stack(TO_LONLAT(xy[:, 0], xy[:, 1])))


def _water():
    mask = np.zeros((100, 100), bool)
    mask[10:60, 10:60] = True  # 25 ha: a "river" half of which is permanent water
    mask[80:90, 80:90] = True  # 1 ha flooded field
    return polygonize(mask, np.where(mask, 90, 0).astype(np.uint8), T, UTM, "flood", min_area_ha=0.2)


def test_reference_water_is_removed_and_area_recomputed():
    dets = _water()
    big = max(dets, key=lambda d: d.area_ha)
    out = subtract_reference(dets, [_px_box(10, 10, 60, 35)], min_area_ha=0.2)  # left half permanent
    assert len(out) == 2
    rest = max(out, key=lambda d: d.area_ha)
    assert rest.area_ha == pytest.approx(big.area_ha / 2, rel=0.02)
    assert rest.likelihood == big.likelihood and rest.geometry.is_valid
    assert rest.geometry.intersection(_px_box(11, 11, 59, 34)).area == pytest.approx(0.0, abs=1e-12)
    assert rest.pixels == pytest.approx(big.pixels / 2, rel=0.02)


def test_fully_permanent_or_below_mmu_is_dropped_and_no_reference_keeps_all():
    dets = _water()
    assert subtract_reference(dets, [], 0.2) == dets
    # the field entirely inside reference water disappears; the 25 ha body is cut to 0.5 ha < 1 ha MMU
    out = subtract_reference(dets, [_px_box(79, 79, 91, 91), _px_box(5, 5, 60, 59)], min_area_ha=1.0)
    assert out == []
