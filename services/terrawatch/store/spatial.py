"""Spatial SQL expressions shared by the store's queries (PostGIS, EPSG:4326)."""

from __future__ import annotations

from geoalchemy2.shape import from_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func

from terrawatch.store import tables as t


def sql_geom(g: BaseGeometry):
    """A lon/lat geometry as an EPSG:4326 SQL expression (bound WKB) for spatial predicates."""
    return func.ST_GeomFromWKB(from_shape(g, srid=4326).data, 4326)


def scene_covers(fp, share: float):
    """SQL condition: a stored scene's footprint covers at least ``share`` (0-1) of ``fp`` (a :func:`sql_geom`);
    the intersection test first, so the footprint index is used."""
    return (func.ST_Intersects(t.scenes.c.footprint, fp)
            & (func.ST_Area(func.ST_Intersection(t.scenes.c.footprint, fp)) >= share * func.ST_Area(fp)))
