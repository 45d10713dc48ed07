"""SQL for reference layers (tables ``reference_features`` and ``reference_layer_coverage``): mining
concessions, protected areas, indigenous territories, reference water. Geometries are lon/lat
(EPSG:4326) shapely objects on this module's side; the unit of work reads them (legality, water)."""

from __future__ import annotations

from geoalchemy2.shape import from_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t


def replace_reference_layer(conn: Connection, layer: str, rows: list[dict],
                            coverage: BaseGeometry | None = None, coverage_source: str | None = None) -> int:
    """Replace ``layer``'s features with ``rows`` (reference_features values: layer, name, properties, geom as
    a lon/lat shapely geometry) and record what the layer
    covers: ``coverage`` (lon/lat) as declared by the loader, else the extent (bounding box) of its
    features. Returns how many features were replaced."""
    rf, rc = t.reference_features, t.reference_layer_coverage
    rows = [{**r, "geom": from_shape(r["geom"], srid=4326)} if isinstance(r["geom"], BaseGeometry) else r
            for r in rows]
    replaced = conn.execute(delete(rf).where(rf.c.layer == layer)).rowcount
    if rows:
        conn.execute(insert(rf), rows)
    conn.execute(delete(rc).where(rc.c.layer == layer))
    if coverage is not None:
        cov = func.ST_Multi(func.ST_GeomFromWKB(from_shape(coverage, srid=4326).data, 4326))
        source = coverage_source or "declared coverage"
    else:
        cov = (select(func.ST_Multi(func.ST_SetSRID(func.ST_Envelope(func.ST_Extent(rf.c.geom)), 4326)))
               .where(rf.c.layer == layer).scalar_subquery())
        source = "layer extent (bounding box of its features)"
    conn.execute(insert(rc).values(layer=layer, coverage=cov, coverage_source=source, features=len(rows)))
    return replaced


def drop_reference_layer(conn: Connection, layer: str) -> int:
    """Delete ``layer``'s features and coverage; returns how many features were deleted."""
    rc = t.reference_layer_coverage
    conn.execute(delete(rc).where(rc.c.layer == layer))
    return conn.execute(delete(t.reference_features).where(t.reference_features.c.layer == layer)).rowcount
