"""SQL reading scenes and what the pipeline made of them (tables ``scenes``, ``scene_runs``,
``detections``, ``alerts``, ``webhook_outbox``): replay, the STAC collection's extent, the demo's
progress and truth report, removal of seeded sample data."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Engine, delete, func, select

from terrawatch.domain.alerts import Alert
from terrawatch.store import tables as t
from terrawatch.store.repositories import alert_from_row as _alert


def stored_item(engine: Engine, scene_id: str) -> tuple[dict | None, list[dict]]:
    """The scene's stored STAC Item (None if the scene is unknown) and its runs (hazard, model_version,
    finished_at)."""
    with engine.connect() as conn:
        item = conn.execute(select(t.scenes.c.item).where(t.scenes.c.id == scene_id)).scalar_one_or_none()
        runs = [dict(r) for r in conn.execute(
            select(t.scene_runs.c.hazard, t.scene_runs.c.model_version, t.scene_runs.c.finished_at)
            .where(t.scene_runs.c.scene_id == scene_id)).mappings()]
    return item, runs


def extent(engine: Engine) -> tuple[list[float] | None, list[datetime | None]]:
    """(bbox [west, south, east, north] lon/lat of every scene footprint or None, [first, last] sensing time)."""
    fp = t.scenes.c.footprint
    with engine.connect() as conn:
        ext = conn.execute(select(func.ST_XMin(func.ST_Extent(fp)), func.ST_YMin(func.ST_Extent(fp)),
                                  func.ST_XMax(func.ST_Extent(fp)), func.ST_YMax(func.ST_Extent(fp)),
                                  func.min(t.scenes.c.sensing_time), func.max(t.scenes.c.sensing_time))).one()
    bbox = [float(v) for v in ext[:4]] if ext[0] is not None else None
    return bbox, ([ext[4], ext[5]] if ext[4] is not None else [None, None])


def delete_scenes_and_alerts(engine: Engine, scene_ids: list[str], alert_ids: list[uuid.UUID]) -> None:
    """Delete scenes (their runs and detections cascade) and alerts, in one transaction."""
    with engine.begin() as conn:
        conn.execute(delete(t.scenes).where(t.scenes.c.id.in_(scene_ids)))
        conn.execute(delete(t.alerts).where(t.alerts.c.id.in_(alert_ids)))


def _alert_ids_of(ids: list[str]):
    return select(t.detections.c.alert_id).where(t.detections.c.scene_id.in_(ids), t.detections.c.alert_id.is_not(None))


def scenes_and_alerts(engine: Engine, ids: list[str]) -> tuple[list[dict], list[Alert]]:
    """(id, status, hazard_status of these scenes; the alerts their detections belong to)."""
    with engine.connect() as conn:
        scenes = [dict(r) for r in conn.execute(select(t.scenes.c.id, t.scenes.c.status, t.scenes.c.hazard_status)
                                                .where(t.scenes.c.id.in_(ids))).mappings()]
        alerts = [_alert(r) for r in conn.execute(select(t.alerts).where(t.alerts.c.id.in_(_alert_ids_of(ids))))
                  .mappings()]
    return scenes, alerts


def progress(engine: Engine, ids: list[str], subscriber_ids: list[uuid.UUID]) -> dict:
    """How far the pipeline got with scenes ``ids``: ``status`` (id -> status), ``runs`` (scene_runs rows),
    ``alert_ids``, ``deliveries`` (status -> count, of those alerts to ``subscriber_ids``), ``detections``
    (count) and ``latency_s`` (per alert: created_at - last_sensed, seconds)."""
    with engine.connect() as conn:
        status = dict(conn.execute(select(t.scenes.c.id, t.scenes.c.status).where(t.scenes.c.id.in_(ids))).all())
        runs = [dict(r) for r in conn.execute(select(t.scene_runs).where(t.scene_runs.c.scene_id.in_(ids))).mappings()]
        alert_ids = [r[0] for r in conn.execute(_alert_ids_of(ids).distinct())]
        outbox = dict(conn.execute(select(t.webhook_outbox.c.status, func.count())
                                   .where(t.webhook_outbox.c.alert_id.in_(alert_ids),
                                          t.webhook_outbox.c.subscriber_id.in_(subscriber_ids))
                                   .group_by(t.webhook_outbox.c.status)).all())
        n_det = conn.execute(select(func.count()).select_from(t.detections)
                             .where(t.detections.c.scene_id.in_(ids))).scalar_one()
        lat = [float(r[0]) for r in conn.execute(
            select(func.extract("epoch", t.alerts.c.created_at - t.alerts.c.last_sensed))
            .where(t.alerts.c.id.in_(alert_ids)))]
    return {"status": status, "runs": runs, "alert_ids": alert_ids, "deliveries": outbox, "detections": int(n_det),
            "latency_s": lat}


def last_sensed_by_platform(engine: Engine) -> list[dict]:
    """Per platform: the latest sensing time and run finish of its processed scenes, and how many scenes."""
    q = (select(t.scenes.c.platform, func.max(t.scenes.c.sensing_time).label("last_sensing_time"),
                func.max(t.scene_runs.c.finished_at).label("last_finished_at"),
                func.count(func.distinct(t.scenes.c.id)).label("scenes"))
         .select_from(t.scenes.join(t.scene_runs, t.scene_runs.c.scene_id == t.scenes.c.id))
         .group_by(t.scenes.c.platform).order_by(t.scenes.c.platform))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
