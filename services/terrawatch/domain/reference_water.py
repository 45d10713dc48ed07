"""Flood = observed water minus reference water (pure).

Like Copernicus GFM, a flood is water observed now that is not normally water. Reference
(permanent or seasonal) water is a layer loaded into PostGIS (``terrawatch layers load <file>
--kind reference_water``; e.g. JRC Global Surface Water occurrence polygons, OSM water bodies),
subtracted from the observed-water polygons with :func:`subtract_reference`. The previous scene
is not used: during a flood lasting several passes it is already flooded (docs/alerting.md).

Geometries are EPSG:4326 lon/lat; areas are geodesic hectares.
"""

from __future__ import annotations

import shapely
from shapely.geometry.base import BaseGeometry

from terrawatch.domain.polygons import Detection, as_multipolygon, geodesic_area_ha

REFERENCE_WATER = "reference_water"


def subtract_reference(dets: list[Detection], reference: list[BaseGeometry], min_area_ha: float) -> list[Detection]:
    """``dets`` minus the union of ``reference``; parts left below ``min_area_ha`` (ha) are dropped.

    A detection's likelihood is kept; its pixel count is scaled by the area that remains.
    """
    if not reference or not dets:
        return list(dets)
    ref = shapely.union_all([shapely.make_valid(g) for g in reference])
    shapely.prepare(ref)
    out = []
    for d in dets:
        if not ref.intersects(d.geometry):
            out.append(d)
            continue
        rest = as_multipolygon(d.geometry.difference(ref))
        if rest.is_empty:
            continue
        area = geodesic_area_ha(rest)
        if area < min_area_ha:
            continue
        pixels = max(1, round(d.pixels * area / d.area_ha)) if d.area_ha > 0 else d.pixels
        out.append(Detection(d.hazard, rest, area, d.likelihood, pixels))
    return out
