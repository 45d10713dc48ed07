"""SQL: the stored scenes a re-processing request selects (``terrawatch reprocess``, ``POST /ops/reprocess``)."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2.shape import to_shape
from sqlalchemy import ARRAY, Engine, Text, func, literal, select

from terrawatch.store import tables as t


def select_scenes(engine: Engine, scene_ids: list[str] | None = None,
                  bbox: tuple[float, float, float, float] | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int = 500) -> list[dict]:
    """Stored scenes by id, or whose footprint meets ``bbox`` (lon/lat w, s, e, n) sensed in [since, until):
    id, sensing_time, item (the stored STAC Item) and runs (``hazard@model_version``), oldest first, at most
    ``limit`` + 1 rows (so the caller can tell that more matched)."""
    s, r = t.scenes, t.scene_runs
    runs = (select(func.array_agg(r.c.hazard + "@" + r.c.model_version))
            .where(r.c.scene_id == s.c.id).scalar_subquery())
    q = select(s.c.id, s.c.sensing_time, s.c.item, runs.label("runs"))
    if scene_ids is not None:
        q = q.where(s.c.id.in_(scene_ids))
    if bbox is not None:
        q = q.where(func.ST_Intersects(s.c.footprint, func.ST_MakeEnvelope(*bbox, 4326)))
    if since is not None:
        q = q.where(s.c.sensing_time >= since)
    if until is not None:
        q = q.where(s.c.sensing_time < until)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(q.order_by(s.c.sensing_time, s.c.id).limit(limit + 1)).mappings()]


def alerts_naming(engine: Engine, ids: list[str], hazard: str | None = None) -> list[dict]:
    """Alerts whose context names any of the scene ``ids`` (``context.scene_ids``), withdrawn ones included
    (a withdrawn alert keeps no linked detection): id, hazard, status, confidence, context, geom (lon/lat)."""
    a = t.alerts
    q = select(a.c.id, a.c.hazard, a.c.status, a.c.confidence, a.c.context, a.c.geom).where(
        a.c.context["scene_ids"].op("?|")(literal(list(ids), ARRAY(Text))))
    if hazard is not None:
        q = q.where(a.c.hazard == hazard)
    with engine.connect() as conn:
        return [{**r, "geom": to_shape(r["geom"])} for r in conn.execute(q).mappings()]
