"""Pairing scenes in PostGIS: S1 change detection's pre-event scene and the fused S1 + S2 flood product's
partner (read by ``service/pairing.py`` through ``uow.scenes``, :class:`terrawatch.store.repositories.Scenes`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, literal, select
from sqlalchemy.engine import Connection

from terrawatch.domain.polygons import as_multipolygon
from terrawatch.domain.scene import Scene
from terrawatch.store import tables as t
from terrawatch.store.spatial import scene_covers, sql_geom


def pre_event_s1(conn: Connection, scene: Scene, max_age: timedelta, min_overlap: float = 0.5) -> tuple[dict | None, str]:
    """Pre-event reference of an S1 scene for change detection: (STAC Item, how it was chosen) or (None, why not).

    A processed, earlier S1 scene of the same processing level covering >= ``min_overlap`` of ``scene``
    and at most ``max_age`` older, of the same relative orbit (``sat:relative_orbit``; one geometry of
    incidence), whose flood detections raised no alert: a scene already in flood would hide the water that is
    still there, so an ongoing flood is compared with the last scene before it. The scene named by the event
    (``terrawatch:pre_event_scene``) when it names one (and it qualifies), else the latest such scene."""
    orbit, named = scene.relative_orbit, scene.pre_event_scene
    if orbit is None and named is None:
        return None, "the event has no sat:relative_orbit and names no terrawatch:pre_event_scene"
    fp = sql_geom(as_multipolygon(scene.footprint))
    props = t.scenes.c.item["properties"]
    q = (select(t.scenes.c.id, t.scenes.c.item)
         .where(t.scenes.c.sensor == scene.sensor.value, t.scenes.c.id != scene.id,
                func.coalesce(props["processing:level"].astext, "GRD") == scene.level,
                t.scenes.c.sensing_time < scene.sensing_time,
                t.scenes.c.sensing_time >= scene.sensing_time - max_age,
                t.scenes.c.status == "processed", scene_covers(fp, min_overlap)))
    if orbit is not None:
        q = q.where(props["sat:relative_orbit"].astext == str(int(orbit)))
    alerted = (select(literal(1)).select_from(t.detections)
               .where(t.detections.c.scene_id == t.scenes.c.id, t.detections.c.hazard == "flood",
                      t.detections.c.alert_id.is_not(None)).exists())
    if named is not None:
        # the event's word is not trusted further than the automatic choice: a scene already in flood would
        # hide the water still there (an event naming one could silence an alert), so it is refused too
        row = conn.execute(q.where(t.scenes.c.id == named, ~alerted)).first()
        if row is None:
            return None, (f"the named pre-event scene {named!r} is not a processed earlier {scene.level} scene of "
                          f"this footprint{' and relative orbit' if orbit is not None else ''} within "
                          f"{max_age.days} days that raised no flood alert")
        return dict(row.item), "named in the event"
    row = conn.execute(q.where(~alerted).order_by(t.scenes.c.sensing_time.desc()).limit(1)).first()
    if row is None:
        return None, (f"no processed earlier {scene.level} scene of relative orbit {orbit} covering this footprint "
                      f"within {max_age.days} days that raised no flood alert")
    return dict(row.item), "latest of its relative orbit without a flood alert"


def flood_partners(conn: Connection, scene: Scene, window: timedelta, min_overlap: float = 0.25,
                   limit: int = 20) -> list[tuple[str, datetime]]:
    """Scenes of the *other* sensor with a stored flood run, sensed within ``window`` of ``scene`` and
    covering >= ``min_overlap`` of its footprint: [(id, sensing time)], nearest in time first (the fused
    S1 + S2 flood product)."""
    fp = sql_geom(as_multipolygon(scene.footprint))
    other = "sentinel-2" if scene.sensor.value == "sentinel-1" else "sentinel-1"
    has_flood_run = (select(literal(1)).select_from(t.scene_runs)
                     .where(t.scene_runs.c.scene_id == t.scenes.c.id, t.scene_runs.c.hazard == "flood").exists())
    q = (select(t.scenes.c.id, t.scenes.c.sensing_time)
         .where(t.scenes.c.sensor == other, t.scenes.c.status == "processed", has_flood_run,
                t.scenes.c.sensing_time.between(scene.sensing_time - window, scene.sensing_time + window),
                scene_covers(fp, min_overlap))
         .order_by(func.abs(func.extract("epoch", t.scenes.c.sensing_time - scene.sensing_time)))
         .limit(limit))
    return [(r.id, r.sensing_time) for r in conn.execute(q)]
