"""Areas of applicability (AoA): where a model's training data came from, so where its output means something.

Each model ships ``models/<model>/aoa.geojson`` (lon/lat polygons, documented in its model card);
``TERRAWATCH_AOA_OVERRIDES`` (JSON ``{"<model>": "<path>"}``) replaces one, e.g. after retraining on a
wider region. Pixels outside a hazard's AoA are not inferred for that hazard (the tiler skips
tiles without an AoA pixel and flags the rest ``EXCLUDED_AOA``); a scene entirely outside is
recorded with status ``outside_aoa`` for that hazard.
"""

from __future__ import annotations

import json
from pathlib import Path

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

INSIDE, PARTIAL, OUTSIDE = "inside", "partial", "outside"


class InvalidAoA(ValueError):
    """An AoA file is missing, not GeoJSON, or has no polygon."""


def load_aoa(path: Path) -> BaseGeometry:
    """The union of the (multi)polygons of a GeoJSON FeatureCollection/Feature/geometry, lon/lat."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidAoA(f"area of applicability {path}: {exc}") from exc
    geoms = [f.get("geometry") for f in doc.get("features", [])] if doc.get("type") == "FeatureCollection" else (
        [doc.get("geometry")] if doc.get("type") == "Feature" else [doc])
    try:
        polys = [g for g in (shape(x) for x in geoms if x) if g.geom_type in ("Polygon", "MultiPolygon")]
    except Exception as exc:  # noqa: BLE001 - shapely raises several types for bad coordinates
        raise InvalidAoA(f"area of applicability {path}: bad geometry: {exc}") from exc
    if not polys:
        raise InvalidAoA(f"area of applicability {path} has no polygon")
    out = shapely.union_all([p if p.is_valid else shapely.make_valid(p) for p in polys])
    shapely.prepare(out)
    return out


def relate(footprint: BaseGeometry, aoa: BaseGeometry) -> tuple[str, BaseGeometry | None]:
    """(``inside`` | ``partial`` | ``outside``, the part of the footprint inside the AoA for ``partial``)."""
    if aoa.covers(footprint):
        return INSIDE, None
    if not aoa.intersects(footprint):
        return OUTSIDE, None
    part = footprint.intersection(aoa)
    if part.is_empty or part.area == 0:
        return OUTSIDE, None
    return PARTIAL, part
