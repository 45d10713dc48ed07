"""SQL for the reference-water product grown from the archive (table ``observed_water``, migration 26c).

Every flood run records the water its model observed in the scene (before reference water is subtracted);
a later run of the same place reads the other acquisitions' rows and the established flood alerts there,
and :func:`terrawatch.domain.reference_water.history_reference` (pure) turns them into reference water.
Geometries are lon/lat (EPSG:4326) shapely objects on this module's side.
"""

from __future__ import annotations

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from terrawatch.domain.polygons import as_multipolygon
from terrawatch.domain.reference_water import (
    ESTABLISHED_SOURCES, ESTABLISHED_STATUSES, EstablishedFlood, Observation,
)
from terrawatch.domain.scene import Scene
from terrawatch.store import tables as t

MAX_OBSERVATIONS = 60  # the most other scenes of a place one run reads (the nearest in time first)


def _wkb(g: BaseGeometry):
    return func.ST_GeomFromWKB(from_shape(as_multipolygon(g), srid=4326).data, 4326)


def save_observed_water(conn: Connection, scene: Scene, model_version: str, water: BaseGeometry | None) -> None:
    """Record (replace) the water observed in ``scene`` by its latest flood run (None or empty = no water)."""
    ow = t.observed_water
    geom = None if water is None or water.is_empty else from_shape(as_multipolygon(water), srid=4326)
    values = {"model_version": model_version, "platform": scene.platform, "sensing_time": scene.sensing_time,
              "footprint": from_shape(as_multipolygon(scene.footprint), srid=4326), "geom": geom}
    conn.execute(pg_insert(ow).values(scene_id=scene.id, **values).on_conflict_do_update(
        index_elements=["scene_id"], set_={**values, "updated_at": func.now()}))


def history_inputs(conn: Connection, scene: Scene) -> tuple[list[Observation], list[EstablishedFlood]]:
    """Observed water of the other scenes whose footprint meets ``scene``'s (clipped to it; at most
    :data:`MAX_OBSERVATIONS`, nearest in sensing time first) and the established flood alerts there."""
    ow, a = t.observed_water, t.alerts
    fp = _wkb(scene.footprint)
    rows = conn.execute(
        select(ow.c.scene_id, ow.c.platform, ow.c.sensing_time,
               func.ST_Intersection(ow.c.footprint, fp).label("footprint"),
               func.ST_Intersection(ow.c.geom, fp).label("water"))
        .where(ow.c.scene_id != scene.id, func.ST_Intersects(ow.c.footprint, fp))
        .order_by(func.abs(func.extract("epoch", ow.c.sensing_time - scene.sensing_time)), ow.c.scene_id)
        .limit(MAX_OBSERVATIONS)).mappings().all()
    obs = [Observation(r["scene_id"], r["platform"], r["sensing_time"], to_shape(r["footprint"]),
                       None if r["water"] is None else to_shape(r["water"])) for r in rows]
    floods = conn.execute(
        select(a.c.geom, a.c.first_sensed, a.c.last_sensed)
        .where(a.c.hazard == "flood", func.ST_Intersects(a.c.geom, fp),
               or_(a.c.status.in_(ESTABLISHED_STATUSES),
                   a.c.context["reference_water"].astext.in_(ESTABLISHED_SOURCES)))).mappings().all()
    return obs, [EstablishedFlood(to_shape(r["geom"]), r["first_sensed"], r["last_sensed"]) for r in floods]
