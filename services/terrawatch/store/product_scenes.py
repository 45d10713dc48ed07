"""Scene lookups for the STAC products collection (read-only SQL; the API read role: no ``scenes.item``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import func, literal_column, select
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t


@dataclass(frozen=True)
class SceneRow:
    id: str
    sensor: str
    platform: str
    sensing_time: datetime
    footprint: Any  # shapely MultiPolygon, EPSG:4326
    level: str | None
    skipped: dict[str, str]


def scenes(conn: Connection, *, bbox: tuple[float, float, float, float] | None = None,
           start: datetime | None = None, end: datetime | None = None, ids: list[str] | None = None,
           limit: int = 100, offset: int = 0, intersects: Any = None) -> tuple[list[SceneRow], int]:
    """Scenes intersecting ``bbox`` (lon/lat) or the shapely geometry ``intersects`` (EPSG:4326) sensed in
    [start, end], newest first; and the number matched."""
    where = []
    if bbox is not None:
        where.append(func.ST_Intersects(t.scenes.c.footprint, func.ST_MakeEnvelope(*bbox, 4326)))
    if intersects is not None:
        where.append(func.ST_Intersects(t.scenes.c.footprint, func.ST_GeomFromText(intersects.wkt, 4326)))
    if start is not None:
        where.append(t.scenes.c.sensing_time >= start)
    if end is not None:
        where.append(t.scenes.c.sensing_time <= end)
    if ids:
        where.append(t.scenes.c.id.in_(ids))
    # The generated column (migration 25a): the API read role may not read scenes.item itself.
    level = literal_column("scenes.processing_level")
    q = (select(t.scenes.c.id, t.scenes.c.sensor, t.scenes.c.platform, t.scenes.c.sensing_time,
                t.scenes.c.footprint, level).where(*where)
         .order_by(t.scenes.c.sensing_time.desc(), t.scenes.c.id).limit(limit).offset(offset))
    rows = conn.execute(q).all()
    total = conn.execute(select(func.count()).select_from(t.scenes).where(*where)).scalar_one()
    skips: dict[str, dict[str, str]] = {}
    if rows:
        for sid, hazard, reason in conn.execute(select(
                t.scene_hazard_skips.c.scene_id, t.scene_hazard_skips.c.hazard, t.scene_hazard_skips.c.reason
        ).where(t.scene_hazard_skips.c.scene_id.in_([r[0] for r in rows]))):
            skips.setdefault(sid, {})[hazard] = reason
    return [SceneRow(r[0], r[1], r[2], r[3], to_shape(r[4]), r[5], skips.get(r[0], {})) for r in rows], total
