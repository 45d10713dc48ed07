"""Detections (polygons in EPSG:4326) and their grouping into clusters.

Areas are geodesic, in hectares, on the WGS84 ellipsoid. Distances for
clustering are metres in an azimuthal equidistant projection centred on the
detections, which keeps metre distances true near the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Detection:
    """One connected region of a hazard mask, in EPSG:4326."""

    hazard: str
    geometry: MultiPolygon
    area_ha: float
    likelihood: float  # mean per-pixel likelihood inside the polygon, 0-100
    pixels: int


def geodesic_area_ha(geom: BaseGeometry) -> float:
    """Geodesic area of a lon/lat geometry, in hectares."""
    area, _ = _GEOD.geometry_area_perimeter(geom)
    return abs(area) / 10_000.0


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    geom = shapely.make_valid(geom) if not geom.is_valid else geom
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    parts: list[Polygon] = []
    for p in polys:
        parts.extend(p.geoms if isinstance(p, MultiPolygon) else [p])
    return MultiPolygon(parts)


def local_metric_transformer(geoms: list[BaseGeometry]) -> Transformer:
    """lon/lat -> metres in an azimuthal equidistant projection centred on ``geoms``."""
    c = shapely.union_all(geoms).centroid
    aeqd = CRS.from_proj4(f"+proj=aeqd +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
    return Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)


def cluster(geoms: list[BaseGeometry], distance_m: float) -> list[list[int]]:
    """Group lon/lat geometries whose mutual distance is <= ``distance_m`` (single linkage)."""
    if not geoms:
        return []
    tr = local_metric_transformer(geoms)
    metric = [shapely.transform(g, tr.transform, interleaved=False) for g in geoms]
    tree = shapely.STRtree(metric)
    parent = np.arange(len(metric))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    left, right = tree.query(metric, predicate="dwithin", distance=distance_m)
    for a, b in zip(left, right):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(len(metric)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())
