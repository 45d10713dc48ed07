"""Point and area questions on likelihood products (products/analysis.py): pixel areas against pyproj's geodesic
areas, polygon statistics against a direct rasterio read of the same file, hostile polygons refused with 400."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from pyproj import Geod
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box, mapping

from terrawatch.domain.errors import BadRequest
from terrawatch.products import analysis as an
from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, to_cog

GEOD = Geod(ellps="WGS84")


def _product(path, crs, transform, size=300, seed=1):
    """A 2-band likelihood product like the pipeline's: band 1 0-100 with a block of 255 (flag 2), band 2 flags."""
    rng = np.random.default_rng(seed)
    lk = rng.integers(0, 101, (size, size), dtype=np.uint8)
    fl = np.zeros_like(lk)
    lk[10:40, 200:260] = 255
    fl[10:40, 200:260] = 2
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2, dtype="uint8", crs=crs,
                       transform=transform, nodata=255, tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(lk, 1)
        ds.write(fl, 2)
    return to_cog(path, resampling=LIKELIHOOD_RESAMPLING)


@pytest.fixture(scope="module")
def geographic(tmp_path_factory):
    # the Sen1Floods11 Spain chip's grid: EPSG:4326, ~10 m pixels
    return _product(tmp_path_factory.mktemp("an") / "g.tif", "EPSG:4326", from_origin(-0.78, 38.13, 9e-5, 9e-5))


@pytest.fixture(scope="module")
def utm(tmp_path_factory):
    return _product(tmp_path_factory.mktemp("an") / "u.tif", "EPSG:32630", from_origin(700000, 4225000, 10, 10))


def test_row_areas_match_pyproj_geodesic_cells():
    t = from_origin(-0.78, 38.13, 9e-5, 9e-5)
    areas = an.row_areas_m2(t, rasterio.crs.CRS.from_epsg(4326), 0, 300)
    for row in (0, 150, 299):
        top, bot = 38.13 - row * 9e-5, 38.13 - (row + 1) * 9e-5
        cell = Polygon([(-0.78, top), (-0.78 + 9e-5, top), (-0.78 + 9e-5, bot), (-0.78, bot)])
        assert areas[row] == pytest.approx(abs(GEOD.geometry_area_perimeter(cell)[0]), rel=1e-6)
    # big cells at the equator, mid and high latitude: a pixel's edges are parallels, a geodesic polygon's are
    # not, so the cell is densified along its parallels
    for lat in (0.0, 60.0, 89.0):
        t = from_origin(10, lat + 0.5, 0.5, 0.5)
        xs = list(np.linspace(10, 10.5, 2001))
        cell = Polygon([(x, lat) for x in xs] + [(x, lat + 0.5) for x in reversed(xs)])
        got = an.row_areas_m2(t, rasterio.crs.CRS.from_epsg(4326), 0, 1)[0]
        assert got == pytest.approx(abs(GEOD.geometry_area_perimeter(cell)[0]), rel=1e-6)
    utm = an.row_areas_m2(from_origin(0, 0, 10, 10), rasterio.crs.CRS.from_epsg(32630), 0, 3)
    assert list(utm) == [100.0, 100.0, 100.0]


def _expected(path, geom, threshold):
    """The statistics computed with rasterio alone (whole-band read, pixel-centre mask)."""
    from rasterio.warp import transform_geom

    with rasterio.open(path) as ds:
        lk, fl = ds.read(1), ds.read(2)
        shape = transform_geom("EPSG:4326", ds.crs, mapping(geom))
        inside = ~geometry_mask([shape], out_shape=lk.shape, transform=ds.transform, all_touched=False)
        rows = np.nonzero(inside)[0]
        if ds.crs.is_geographic:
            ys = ds.transform.f + ds.transform.e * np.arange(ds.height + 1)
            w = ds.transform.a
            area_of_row = np.array([abs(GEOD.polygon_area_perimeter(
                [0, w, w, 0], [ys[r], ys[r], ys[r + 1], ys[r + 1]])[0]) for r in range(ds.height)])
        else:
            area_of_row = np.full(ds.height, abs(ds.transform.a * ds.transform.e))
    valid = inside & (lk <= 100)
    over = valid & (lk >= threshold)
    per = area_of_row[:, None] * np.ones_like(lk, dtype=float)
    del rows
    return dict(inside=int(inside.sum()), valid=int(valid.sum()), over=int(over.sum()),
                excluded=int((inside & (lk > 100)).sum()), area_over=float(per[over].sum()),
                area_valid=float(per[valid].sum()), mean=float(lk[valid].mean()),
                cloud=int((inside & (lk > 100) & ((fl & 2) > 0)).sum()))


@pytest.mark.parametrize("which", ["geographic", "utm"])
def test_polygon_statistics_equal_a_direct_rasterio_read(which, request):
    path = request.getfixturevalue(which)
    with rasterio.open(path) as ds:
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    # a triangle over part of the product, crossing the excluded block, and one hanging off its edge
    for geom in (Polygon([(w + (e - w) * 0.1, s + (n - s) * 0.2), (w + (e - w) * 0.9, s + (n - s) * 0.95),
                          (w + (e - w) * 0.3, s + (n - s) * 0.9)]),
                 box(w - (e - w) * 0.2, s + (n - s) * 0.5, w + (e - w) * 0.4, n + 0.01)):
        got = an.polygon_statistics(path, geom, 50, 10**7)
        exp = _expected(path, geom, 50)
        assert (got.inside, got.valid, got.over, got.excluded) == (
            exp["inside"], exp["valid"], exp["over"], exp["excluded"])
        assert got.inside > 1000 and got.over > 0
        assert got.area_over_m2 == pytest.approx(exp["area_over"], rel=1e-6)
        assert got.area_valid_m2 == pytest.approx(exp["area_valid"], rel=1e-6)
        assert got.mean_likelihood == pytest.approx(exp["mean"], rel=1e-9)
        assert got.excluded_by_flag.get("cloud or shadow", 0) == exp["cloud"]


def test_point_value_is_the_pixel_rasterio_reads(geographic):
    with rasterio.open(geographic) as ds:
        lk, fl = ds.read(1), ds.read(2)
        for row, col in ((5, 7), (150, 150), (20, 210), (299, 0)):
            lon, lat = ds.xy(row, col)
            got = an.point_value(geographic, lon, lat)
            assert (got.row, got.col) == (row, col)
            assert got.likelihood == (None if lk[row, col] == 255 else int(lk[row, col]))
            assert got.flags == int(fl[row, col])
    with pytest.raises(an.OutsideProduct):
        an.point_value(geographic, 10.0, 10.0)


def test_a_polygon_over_the_cap_is_refused_before_reading(geographic):
    with rasterio.open(geographic) as ds:
        w, s, e, n = ds.bounds
    with pytest.raises(an.ReadTooCostly, match="TERRAWATCH_RASTER_MAX_SOURCE_PIXELS"):
        an.polygon_statistics(geographic, box(w, s, e, n), 50, 300 * 300 - 1)
    assert an.polygon_statistics(geographic, box(w, s, e, n), 50, 300 * 300).window_pixels == 300 * 300
    with pytest.raises(an.OutsideProduct):
        an.polygon_statistics(geographic, box(10, 10, 11, 11), 50, 10**6)


def test_far_and_world_polygons_on_a_projected_product(utm):
    """A polygon on the other side of the world is never projected into the product's UTM zone (where its
    box would cover everything); the whole world covers the whole product."""
    with pytest.raises(an.OutsideProduct):
        an.polygon_statistics(utm, box(170, -89, 179.9, 89), 50, 10**7)
    world = an.polygon_statistics(utm, box(-180, -90, 180, 90), 50, 10**7)
    assert world.inside == world.window_pixels == 300 * 300
    with pytest.raises(an.ReadTooCostly):
        an.polygon_statistics(utm, box(-180, -90, 180, 90), 50, 300 * 300 - 1)


@pytest.mark.parametrize("body, word", [
    ([1, 2], "body"),
    ({"type": "Point", "coordinates": [0, 0]}, "Polygon"),
    ({"type": "Feature", "geometry": None}, "geometry"),
    ({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
      "crs": "x"}, "unknown member"),
    ({"type": "Polygon", "coordinates": "x"}, "coordinates"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0]]]}, "coordinates"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [float("nan"), 0], [1, 1], [0, 0]]]}, "coordinates"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]}, "coordinates"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "not valid"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "coordinates"),
    ({"type": "Polygon", "coordinates": [[[math.cos(i / 2e4), math.sin(i / 2e4)] for i in range(20001)]]},
     "10000 vertices"),
    ({"type": "Polygon", "coordinates": [[[0, 0], ["a", 0], [1, 1], [0, 0]]]}, "coordinates"),
])
def test_hostile_polygons_are_400_naming_what_is_wrong(body, word):
    with pytest.raises(BadRequest, match=word):
        an.parse_polygon(body)


def test_a_feature_and_a_multipolygon_are_read():
    sq = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]
    assert an.parse_polygon({"type": "Feature", "properties": {"a": 1}, "geometry": {
        "type": "Polygon", "coordinates": sq}}).area == 1
    assert an.parse_polygon({"type": "MultiPolygon", "coordinates": [sq]}).area == 1


@pytest.mark.parametrize("lon, lat, word", [(float("nan"), 0, "lon"), (181, 0, "lon"), (0, -91, "lat"),
                                            (0, float("inf"), "lat")])
def test_lonlat_checked(lon, lat, word):
    with pytest.raises(BadRequest, match=word):
        an.check_lonlat(lon, lat)
