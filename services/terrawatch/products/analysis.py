"""Point and area questions on a likelihood product (TiTiler's ``/point`` and ``/statistics``), rio-tiler reads.

A likelihood product (``products/tiles.py`` ``FILES``): band 1 likelihood 0-100 (255 = excluded), band 2 the
exclusion bit flags (``domain.tiles`` ``EXCLUDED_*``). Inputs are lon/lat (EPSG:4326); reads are at the
product's full resolution in its own CRS (no resampling: every value is a pixel the model wrote).

- :func:`point_value`: the pixel containing a lon/lat (rio-tiler ``Reader.point``).
- :func:`polygon_statistics`: the pixels whose **centre** lies inside a polygon (GDAL's rasterization rule,
  ``all_touched=False``), read with rio-tiler ``Reader.part`` on the product's own grid
  (``align_bounds_with_dataset``); the read is refused before anything is read when the polygon's bounding
  box covers more than ``max_pixels`` pixels at full resolution.
- Areas (hectares) per pixel: a **geographic** product (EPSG:4326, the Sen1Floods11 chips) gets the exact
  area of each pixel on the WGS84 ellipsoid (an ellipsoidal zone between the pixel's two latitudes, which
  depends only on its row: :func:`row_areas_m2`); a **projected** product gets ``|a x e|`` of its transform in
  its linear unit converted to metres (the map projection's own area; UTM's scale factor keeps that within
  about 0.2 % of the ground area). The polygon's own area is geodesic (pyproj ``Geod``, WGS84).
- Over the threshold = ``likelihood >= threshold x 100``, the comparison the pipeline makes before it
  vectorizes (``tiling/ray_tiler.py``); the likelihood is the model's observation (for flood: observed
  water; reference water is subtracted from the alerts, not from this band).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from rio_tiler.errors import PointOutsideBounds
from rio_tiler.io import Reader

from terrawatch.domain.errors import BadRequest, NotFound
from terrawatch.domain.tiles import EXCLUDED_AOA, EXCLUDED_CLOUD, EXCLUDED_NODATA, EXCLUDED_RADAR

WGS84 = "EPSG:4326"
NODATA = 255  # band 1: excluded
MAX_VERTICES = 10_000  # of a statistics polygon
M2_PER_HA = 10_000.0
FLAG_NAMES = {EXCLUDED_NODATA: "no data", EXCLUDED_CLOUD: "cloud or shadow", EXCLUDED_RADAR: "radar shadow or layover",
              EXCLUDED_AOA: "outside the model's area of applicability"}
# WGS84 ellipsoid: semi-major axis (m) and flattening
A_M, F = 6378137.0, 1 / 298.257223563


class OutsideProduct(NotFound, LookupError):
    """The point or polygon does not meet the product; the API answers 404."""


class ReadTooCostly(BadRequest, ValueError):
    """The polygon's bounding box covers more pixels than the cap; the API answers 400."""


def check_lonlat(lon: float, lat: float) -> tuple[float, float]:
    """``(lon, lat)`` if finite and in range (degrees, EPSG:4326), else :class:`BadRequest` naming the parameter."""
    if not (isinstance(lon, (int, float)) and math.isfinite(lon) and -180 <= lon <= 180):
        raise BadRequest("lon must be a finite longitude in [-180, 180] (EPSG:4326)")
    if not (isinstance(lat, (int, float)) and math.isfinite(lat) and -90 <= lat <= 90):
        raise BadRequest("lat must be a finite latitude in [-90, 90] (EPSG:4326)")
    return float(lon), float(lat)


def parse_polygon(body: object, max_vertices: int = MAX_VERTICES):
    """A shapely Polygon/MultiPolygon (lon/lat) from a GeoJSON Feature or Polygon/MultiPolygon geometry.

    :class:`BadRequest` (naming what is wrong) for anything else: another type, no or non-numeric
    coordinates, non-finite or out-of-range lon/lat, more than ``max_vertices`` vertices, an empty or
    invalid polygon (self-intersection: the area would be ambiguous; the reason is given)."""
    import shapely
    from shapely.geometry import shape

    if not isinstance(body, dict):
        raise BadRequest("body must be a GeoJSON Feature or a Polygon/MultiPolygon geometry (EPSG:4326)")
    geometry = body
    if body.get("type") == "Feature":
        unknown = set(body) - {"type", "geometry", "properties", "id", "bbox"}
        if unknown:
            raise BadRequest(f"unknown member of the Feature: {sorted(unknown)[0][:40]!r}")
        geometry = body.get("geometry")
        if not isinstance(geometry, dict):
            raise BadRequest("geometry: the Feature has no geometry object")
    kind = geometry.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise BadRequest(f"geometry type must be Polygon or MultiPolygon, not {str(kind)[:40]!r}")
    unknown = set(geometry) - {"type", "coordinates", "bbox"}
    if unknown:
        raise BadRequest(f"unknown member of the geometry: {sorted(unknown)[0][:40]!r}")
    coords = geometry.get("coordinates")
    if _count_positions(coords, 4 if kind == "MultiPolygon" else 3, max_vertices + 1) > max_vertices:
        raise BadRequest(f"coordinates: the polygon has more than {max_vertices} vertices")
    rings = coords if kind == "Polygon" else [r for p in coords if isinstance(p, list) for r in p]
    for ring in rings if isinstance(rings, list) else []:
        if isinstance(ring, list) and ring and (len(ring) < 4 or ring[0] != ring[-1]):
            raise BadRequest("coordinates: every ring must be closed (first position = last) with at least 4 "
                             "positions (GeoJSON, RFC 7946 3.1.6)")
    try:
        with np.errstate(all="ignore"):
            geom = shape({"type": kind, "coordinates": coords})
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, shapely.errors.GEOSException) as exc:
        raise BadRequest(f"coordinates: not a valid {kind}: {str(exc)[:60]}") from None
    if geom.is_empty:
        raise BadRequest("coordinates: the polygon is empty")
    b = geom.bounds
    if not all(map(math.isfinite, b)) or b[0] < -180 or b[2] > 180 or b[1] < -90 or b[3] > 90:
        raise BadRequest("coordinates must be finite lon/lat in EPSG:4326 (lon -180..180, lat -90..90)")
    if not geom.is_valid:
        raise BadRequest(f"coordinates: the polygon is not valid ({shapely.is_valid_reason(geom)[:80]})")
    if geom.area == 0:
        raise BadRequest("coordinates: the polygon has no area")
    return geom


def _count_positions(coords: object, depth: int, stop: int) -> int:
    """Positions in a GeoJSON coordinates array nested ``depth`` deep (counting stops past ``stop``);
    :class:`BadRequest` when the nesting is not arrays of arrays."""
    if depth == 1:
        return 1
    if not isinstance(coords, list):
        raise BadRequest("coordinates: must be nested arrays of [lon, lat] positions")
    n = 0
    for c in coords:
        n += _count_positions(c, depth - 1, stop)
        if n > stop:
            break
    return n


def geodesic_area_m2(geom) -> float:
    """Area of a lon/lat shapely geometry on the WGS84 ellipsoid (m2)."""
    from pyproj import Geod

    return abs(Geod(ellps="WGS84").geometry_area_perimeter(geom)[0])


def _q(lat_rad: np.ndarray) -> np.ndarray:
    """Authalic-latitude helper q(phi) of the WGS84 ellipsoid (Snyder 1987, eq. 3-12), without its (1 - e2)."""
    e2 = F * (2 - F)
    e = math.sqrt(e2)
    s = np.sin(lat_rad)
    return s / (1 - e2 * s * s) + np.log((1 + e * s) / (1 - e * s)) / (2 * e)


def row_areas_m2(transform, crs, row0: int, rows: int) -> np.ndarray:
    """Area (m2) of one pixel in each of ``rows`` rows from ``row0`` of a north-up raster.

    Geographic CRS: the exact WGS84 area of a cell ``|a|`` degrees wide between its rows' latitudes.
    Projected CRS: ``|a x e|`` times the square of the linear unit in metres, the same for every row."""
    if transform.b or transform.d:
        raise BadRequest("the product is rotated; point and area questions need a north-up raster")
    if crs.is_geographic:
        e2 = F * (2 - F)
        b2 = (A_M * math.sqrt(1 - e2)) ** 2
        top = transform.f + transform.e * np.arange(row0, row0 + rows + 1, dtype=np.float64)
        q = _q(np.radians(np.clip(top, -90, 90)))
        return np.abs(np.diff(q)) * b2 / 2 * math.radians(abs(transform.a))
    factor = crs.linear_units_factor[1]
    return np.full(rows, abs(transform.a * transform.e) * factor * factor)


def flags(value: int) -> list[str]:
    """Names of the exclusion bits set in a band-2 value."""
    return [name for bit, name in FLAG_NAMES.items() if value & bit]


@dataclass(frozen=True)
class PointValue:
    likelihood: int | None  # 0-100, None where excluded
    flags: int  # band 2 bits
    row: int
    col: int


def point_value(path: Path, lon: float, lat: float) -> PointValue:
    """The pixel of ``path`` containing (lon, lat): band 1 (None when 255) and band 2, with its row/col.
    :class:`OutsideProduct` outside the product's extent."""
    with Reader(str(path)) as r:
        try:
            pt = r.point(lon, lat, indexes=(1, 2))
        except PointOutsideBounds:
            raise OutsideProduct("the point is outside the product") from None
        x, y = rasterio.warp.transform(WGS84, r.dataset.crs, [lon], [lat])
        row, col = r.dataset.index(x[0], y[0])
    lk, fl = (int(v) for v in pt.array.data)
    return PointValue(None if lk > 100 else lk, fl, int(row), int(col))


@dataclass(frozen=True)
class Stats:
    """Pixels whose centre is inside the polygon: ``inside`` all of them, ``valid`` (likelihood 0-100),
    ``excluded`` (255), ``over`` (valid and >= the threshold); areas in m2; mean over the valid pixels."""

    inside: int
    valid: int
    excluded: int
    over: int
    area_inside_m2: float
    area_valid_m2: float
    area_over_m2: float
    mean_likelihood: float | None
    window_pixels: int  # pixels read (the polygon's bounding box on the product grid)
    excluded_by_flag: dict[str, int]


def read_window(path: Path, geom):
    """The window of the product grid under the polygon's bounding box, clipped to the product (its
    ``width x height`` is what a read costs), and the polygon clipped to the product's lon/lat box (so a
    polygon elsewhere on Earth is never projected into the product's CRS); :class:`OutsideProduct` when
    they do not meet."""
    from shapely.geometry import box

    with rasterio.open(path) as ds:
        footprint = box(*transform_bounds(ds.crs, WGS84, *ds.bounds, densify_pts=21))
        geom = geom.intersection(footprint)
        if geom.is_empty or geom.area == 0:
            raise OutsideProduct("the polygon does not overlap the product")
        left, bottom, right, top = transform_bounds(WGS84, ds.crs, *geom.bounds, densify_pts=21)
        t = ds.transform
        c0, c1 = math.floor(round((left - t.c) / t.a, 6)), math.ceil(round((right - t.c) / t.a, 6))
        r0, r1 = math.floor(round((top - t.f) / t.e, 6)), math.ceil(round((bottom - t.f) / t.e, 6))
        c0, r0, c1, r1 = max(0, c0), max(0, r0), min(ds.width, c1), min(ds.height, r1)
        if c0 >= c1 or r0 >= r1:
            raise OutsideProduct("the polygon does not overlap the product")
        return Window(c0, r0, c1 - c0, r1 - r0), geom


def polygon_statistics(path: Path, geom, threshold_pct: float, max_pixels: int, what: str = "polygon") -> Stats:
    """:class:`Stats` of the pixels of ``path`` whose centre lies inside ``geom`` (lon/lat shapely polygon).

    Refused with :class:`ReadTooCostly` (nothing read) when the polygon's bounding box covers more than
    ``max_pixels`` pixels at full resolution; :class:`OutsideProduct` when it misses the product."""
    win, geom = read_window(path, geom)
    pixels = int(win.width * win.height)
    if pixels > max_pixels:
        raise ReadTooCostly(
            f"{what}: its bounding box covers {pixels} pixels of the product at full resolution, over the cap of "
            f"{max_pixels} (TERRAWATCH_RASTER_MAX_SOURCE_PIXELS); ask about a smaller polygon")
    with Reader(str(path)) as r:
        crs, t = r.dataset.crs, r.dataset.window_transform(win)
        img = r.read(indexes=(1, 2), window=win)  # the product's own grid: no warp, no resampling
    shape_native = transform_geom(WGS84, crs, geom.__geo_interface__)
    lk, fl = img.array.data[0], img.array.data[1]
    inside = ~geometry_mask([shape_native], out_shape=lk.shape, transform=t, all_touched=False)
    valid = inside & (lk <= 100)
    over = valid & (lk >= threshold_pct)
    excluded = inside & (lk > 100)
    per = np.broadcast_to(row_areas_m2(t, crs, 0, lk.shape[0])[:, None], lk.shape)
    by_flag = {name: int(np.count_nonzero(excluded & ((fl & bit) != 0))) for bit, name in FLAG_NAMES.items()}
    n_valid = int(np.count_nonzero(valid))
    return Stats(
        inside=int(np.count_nonzero(inside)), valid=n_valid, excluded=int(np.count_nonzero(excluded)),
        over=int(np.count_nonzero(over)), area_inside_m2=float(per[inside].sum()),
        area_valid_m2=float(per[valid].sum()), area_over_m2=float(per[over].sum()),
        mean_likelihood=float(lk[valid].mean()) if n_valid else None, window_pixels=pixels,
        excluded_by_flag={k: v for k, v in by_flag.items() if v})
