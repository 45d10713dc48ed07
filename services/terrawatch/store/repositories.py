"""The repositories of a unit of work (:class:`terrawatch.store.uow.UnitOfWork`): each one a view of one
aggregate on the unit of work's connection (one transaction), SQLAlchemy Core with bound parameters only.

``uow.scenes`` (scene rows, run markers, skipped hazards, status, earlier scenes), ``uow.detections``,
``uow.alerts`` (alerts and their lifecycle events), ``uow.reference`` (reference water, history, legality),
``uow.outbox`` (matching subscribers and webhook outbox rows). Their abstract versions are the Protocols of
:mod:`terrawatch.service.ports`; ``tests/unit/fakes.py`` keeps the in-memory ones. Geometries are shapely,
lon/lat (EPSG:4326); areas in hectares; times timezone-aware UTC.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import any_, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from terrawatch.domain.alerts import Alert
from terrawatch.domain.polygons import Detection, as_multipolygon
from terrawatch.domain.scene import Scene
from terrawatch.store import tables as t
from terrawatch.store.outbox import OutboxStatus
from terrawatch.store.spatial import scene_covers, sql_geom


def _geom(g: BaseGeometry):
    return from_shape(as_multipolygon(g), srid=4326)


def alert_from_row(row) -> Alert:
    """An ``alerts`` row (a mapping) as the domain's :class:`Alert`."""
    return Alert(
        id=row["id"], hazard=row["hazard"], status=row["status"], confidence=row["confidence"],
        severity=row["severity"], geom=to_shape(row["geom"]), area_ha=row["area_ha"],
        likelihood=row["likelihood"], sensors=list(row["sensors"]), observations=row["observations"],
        first_sensed=row["first_sensed"], last_sensed=row["last_sensed"], context=dict(row["context"] or {}),
        version=row["version"], created_at=row.get("created_at"), updated_at=row.get("updated_at"))


def new_message_id() -> str:
    """A Standard Webhooks ``webhook-id`` (also the outbox primary key)."""
    return f"msg_{uuid.uuid4().hex}"


class _Repo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn


class Scenes(_Repo):
    """Scene rows, run markers (the idempotency key ``(scene_id, hazard, model_version)``), skipped hazards,
    scene status, and the earlier scenes a scene pairs with."""

    def lock(self, key: str) -> None:
        """Serialise concurrent workers on ``key`` (a scene/run; transaction-scoped advisory lock)."""
        self.conn.execute(text("select pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})

    def upsert(self, scene: Scene) -> None:
        """Insert the scene row unless it exists (idempotent)."""
        self.conn.execute(pg_insert(t.scenes).values(
            id=scene.id, sensor=scene.sensor.value, platform=scene.platform, sensing_time=scene.sensing_time,
            footprint=_geom(scene.footprint), item=scene.item,
        ).on_conflict_do_nothing(index_elements=["id"]))

    def run_exists(self, scene_id: str, hazard: str, model_version: str) -> bool:
        q = select(t.scene_runs.c.scene_id).where(
            t.scene_runs.c.scene_id == scene_id, t.scene_runs.c.hazard == hazard,
            t.scene_runs.c.model_version == model_version)
        return self.conn.execute(q).first() is not None

    def add_run(self, scene_id: str, hazard: str, model_version: str, tiles: int, detections: int) -> None:
        """The run marker: this (scene, hazard, model version) is stored."""
        self.conn.execute(insert(t.scene_runs).values(
            scene_id=scene_id, hazard=hazard, model_version=model_version, tiles=tiles, detections=detections))

    def record_skip(self, scene_id: str, hazard: str, reason: str) -> None:
        """Record that ``hazard`` was not run on the scene and why (idempotent; the latest reason wins)."""
        self.conn.execute(pg_insert(t.scene_hazard_skips).values(scene_id=scene_id, hazard=hazard, reason=reason)
                          .on_conflict_do_update(index_elements=["scene_id", "hazard"],
                                                 set_={"reason": reason, "at": func.now()}))

    def skips(self, scene_id: str) -> dict[str, str]:
        """hazard -> reason for the hazards a scene was not run for."""
        q = select(t.scene_hazard_skips.c.hazard, t.scene_hazard_skips.c.reason).where(
            t.scene_hazard_skips.c.scene_id == scene_id)
        return {h: r for h, r in self.conn.execute(q)}

    def set_status(self, scene_id: str, status: str, reason: str | None = None,
                   hazards: dict | None = None, dlq_ref: str | None = None) -> None:
        """Set a scene's status (processing | processed | failed | outside_aoa) with its reason and DLQ
        reference; ``hazards`` is merged into its per-hazard status."""
        values: dict[str, Any] = {"status": status, "status_reason": reason, "dlq_ref": dlq_ref,
                                  "status_at": func.now()}
        if hazards:
            values["hazard_status"] = t.scenes.c.hazard_status.op("||")(literal(hazards, type_=JSONB))
        self.conn.execute(update(t.scenes).where(t.scenes.c.id == scene_id).values(**values))

    def finish(self, scene_id: str, status: str, hazards: dict) -> str:
        """Merge ``hazards`` into the scene's per-hazard status; the scene is ``processed`` if any hazard
        was processed (now or by an earlier run), else ``status``. Returns the status set."""
        row = self.conn.execute(select(t.scenes.c.hazard_status).where(t.scenes.c.id == scene_id)
                                .with_for_update()).first()
        merged = {**(dict(row[0]) if row else {}), **hazards}
        if any(isinstance(v, dict) and v.get("status") == "processed" for v in merged.values()):
            status = "processed"
        self.conn.execute(update(t.scenes).where(t.scenes.c.id == scene_id).values(
            status=status, status_reason=None, dlq_ref=None, hazard_status=merged, status_at=func.now()))
        return status

    def previous(self, scene: Scene, min_overlap: float = 0.5) -> dict | None:
        """STAC Item of the latest earlier scene of the same sensor and level (S2 L1C TOA and L2A surface
        reflectance are not compared) covering >= ``min_overlap`` of ``scene``."""
        fp = sql_geom(as_multipolygon(scene.footprint))
        level = func.coalesce(t.scenes.c.item["properties"]["processing:level"].astext, "L1C")
        same_level = (level == "L2A") if scene.is_l2a else (level != "L2A")
        q = (select(t.scenes.c.item)
             .where(t.scenes.c.sensor == scene.sensor.value, t.scenes.c.id != scene.id, same_level,
                    t.scenes.c.sensing_time < scene.sensing_time, t.scenes.c.status != "failed",
                    scene_covers(fp, min_overlap))
             .order_by(t.scenes.c.sensing_time.desc()).limit(1))
        row = self.conn.execute(q).first()
        return dict(row[0]) if row else None

    def pre_event_s1(self, scene: Scene, max_age: timedelta, min_overlap: float = 0.5) -> tuple[dict | None, str]:
        """S1 change detection's pre-event scene (:func:`terrawatch.store.pairing.pre_event_s1`)."""
        from terrawatch.store.pairing import pre_event_s1

        return pre_event_s1(self.conn, scene, max_age, min_overlap)

    def flood_partners(self, scene: Scene, window: timedelta, min_overlap: float = 0.25,
                       limit: int = 20) -> list[tuple[str, datetime]]:
        """Other-sensor flood scenes for the fused product (:func:`terrawatch.store.pairing.flood_partners`)."""
        from terrawatch.store.pairing import flood_partners

        return flood_partners(self.conn, scene, window, min_overlap, limit)


class Detections(_Repo):
    """A run's detections (lon/lat polygons) and their links to alerts."""

    def add(self, scene: Scene, model_version: str, dets: Iterable[Detection]) -> list[int]:
        """Insert the detections; returns their ids in the order given."""
        ids = []
        for d in dets:
            ids.append(self.conn.execute(insert(t.detections).values(
                scene_id=scene.id, hazard=d.hazard, model_version=model_version, geom=_geom(d.geometry),
                area_ha=d.area_ha, likelihood=d.likelihood, sensing_time=scene.sensing_time,
            ).returning(t.detections.c.id)).scalar_one())
        return ids

    def link(self, alert_id: uuid.UUID, detection_ids: list[int]) -> None:
        self.conn.execute(update(t.detections).where(t.detections.c.id.in_(detection_ids)).values(alert_id=alert_id))

    def supersede(self, scene_id: str, hazard: str, model_version: str) -> set[uuid.UUID]:
        """Unlink the scene's ``hazard`` detections of every other run from their alerts (a re-processing run
        replaces them); returns the alerts they supported."""
        d = t.detections
        where = (d.c.scene_id == scene_id, d.c.hazard == hazard, d.c.model_version != model_version,
                 d.c.alert_id.is_not(None))
        alerts = {r[0] for r in self.conn.execute(select(d.c.alert_id).where(*where).distinct())}
        self.conn.execute(update(d).where(*where).values(alert_id=None))  # RETURNING would give the new NULL
        return alerts

    def supporting(self, alert_id: uuid.UUID) -> list[dict]:
        """The detections linked to an alert: scene_id, geom (lon/lat), area_ha, likelihood."""
        d = t.detections
        rows = self.conn.execute(select(d.c.scene_id, d.c.geom, d.c.area_ha, d.c.likelihood)
                                 .where(d.c.alert_id == alert_id).order_by(d.c.id)).mappings().all()
        return [{**r, "geom": to_shape(r["geom"])} for r in rows]


class Alerts(_Repo):
    """Alerts (:class:`terrawatch.domain.alerts.Alert`) and their lifecycle events."""

    def mergeable(self, hazard: str, geom: BaseGeometry, distance_m: float, since: datetime,
                  open_statuses: Iterable[str]) -> Alert | None:
        """The nearest open ``hazard`` alert within ``distance_m`` metres of ``geom`` last sensed at or after
        ``since``, locked for update; None when there is none."""
        g = sql_geom(geom)
        # Bounding-box prefilter (index, cheap) before the geodesic test: geography ST_DWithin has no
        # bbox short-cut, and on a many-part alert (thousands of flood polygons) it took minutes per row.
        lat = min(max(abs(geom.bounds[1]), abs(geom.bounds[3])), 89.0)
        margin_deg = 1.1 * distance_m / (111_320.0 * math.cos(math.radians(lat)))
        q = (select(t.alerts)
             .where(t.alerts.c.hazard == hazard, t.alerts.c.status.in_(list(open_statuses)),
                    t.alerts.c.last_sensed >= since,
                    t.alerts.c.geom.op("&&")(func.ST_Expand(g, margin_deg)),
                    # planar prefilter in degrees (a necessary condition, same margin): it exits early, while
                    # the geodesic test of a candidate that is near in bbox but farther than the merge distance
                    # took 0.6 s on a many-part flood alert (8.7 ms with this; docs/performance.md)
                    func.ST_DWithin(t.alerts.c.geom, g, margin_deg),
                    # on the sphere (use_spheroid false): <= 0.5 % off the spheroid, metres at a 500 m merge distance
                    func.ST_DWithin(func.Geography(t.alerts.c.geom), func.Geography(g), distance_m, False))
             # nearest first by PostGIS' KNN distance on lon/lat: it only ranks the few candidates within the
             # merge distance, where a geodesic ST_Distance of two many-part geometries is costly
             .order_by(t.alerts.c.geom.op("<->")(g), t.alerts.c.id)
             .limit(1).with_for_update())
        row = self.conn.execute(q).mappings().first()
        return alert_from_row(row) if row else None

    def get(self, alert_id: uuid.UUID, for_update: bool = False) -> Alert | None:
        q = select(t.alerts).where(t.alerts.c.id == alert_id)
        row = self.conn.execute(q.with_for_update() if for_update else q).mappings().first()
        return alert_from_row(row) if row else None

    def insert(self, a: Alert) -> None:
        self.conn.execute(insert(t.alerts).values(
            id=a.id, hazard=a.hazard, status=a.status, confidence=a.confidence, severity=a.severity,
            geom=_geom(a.geom), area_ha=a.area_ha, likelihood=a.likelihood, sensors=a.sensors,
            observations=a.observations, first_sensed=a.first_sensed, last_sensed=a.last_sensed,
            context=a.context, version=a.version,
            **({"created_at": a.created_at, "updated_at": a.updated_at or a.created_at} if a.created_at else {})))

    def update(self, a: Alert) -> None:
        self.conn.execute(update(t.alerts).where(t.alerts.c.id == a.id).values(
            status=a.status, confidence=a.confidence, severity=a.severity, geom=_geom(a.geom),
            area_ha=a.area_ha, likelihood=a.likelihood, sensors=a.sensors, observations=a.observations,
            first_sensed=a.first_sensed, last_sensed=a.last_sensed, context=a.context, version=a.version,
            updated_at=a.updated_at or func.now()))

    def set_context(self, alert_id: uuid.UUID, context: dict) -> None:
        """Record bookkeeping in an alert's context without a new version (no change a subscriber sees)."""
        self.conn.execute(update(t.alerts).where(t.alerts.c.id == alert_id).values(context=context))

    def add_event(self, alert_id: uuid.UUID, actor: str, src: str | None, dst: str, reason: str,
                  alert_version: int | None = None) -> None:
        self.conn.execute(insert(t.alert_events).values(
            alert_id=alert_id, actor=actor, from_status=src, to_status=dst, reason=reason,
            alert_version=alert_version))

    def events(self, alert_id: uuid.UUID) -> list[dict]:
        q = select(t.alert_events).where(t.alert_events.c.alert_id == alert_id).order_by(t.alert_events.c.id)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def confirmed_by_pipeline(self, alert_id: uuid.UUID) -> bool:
        """Whether the alert's latest move to ``confirmed`` was the pipeline's (an independent acquisition)."""
        e = t.alert_events
        actor = self.conn.execute(select(e.c.actor).where(e.c.alert_id == alert_id, e.c.to_status == "confirmed")
                                  .order_by(e.c.id.desc()).limit(1)).scalar()
        return actor == "pipeline"


class Reference(_Repo):
    """Reference layers read by the pipeline: reference water (a loaded layer and the archive's history of
    observed water) and mining legality."""

    def water(self, footprint: BaseGeometry) -> list[BaseGeometry]:
        """Reference-water features (lon/lat) intersecting ``footprint``, clipped to it."""
        from terrawatch.domain.reference_water import REFERENCE_WATER

        fp = sql_geom(as_multipolygon(footprint))
        rf = t.reference_features
        rows = self.conn.execute(
            select(func.ST_Intersection(rf.c.geom, fp))
            .where(rf.c.layer == REFERENCE_WATER, func.ST_Intersects(rf.c.geom, fp))).all()
        return [g for g in (to_shape(r[0]) for r in rows) if not g.is_empty]

    def water_covers(self, geom: BaseGeometry) -> bool:
        """Whether a loaded reference-water layer's declared coverage (or extent) covers ``geom`` (lon/lat)."""
        from terrawatch.domain.reference_water import REFERENCE_WATER

        rc = t.reference_layer_coverage
        g = sql_geom(as_multipolygon(geom))
        return self.conn.execute(select(rc.c.layer).where(
            rc.c.layer == REFERENCE_WATER, func.coalesce(func.ST_Covers(rc.c.coverage, g), False))).first() is not None

    def history(self, scene: Scene, min_gap: timedelta) -> tuple[BaseGeometry | None, BaseGeometry | None]:
        """Reference water grown from the archive for ``scene``: (water, coverage), lon/lat, or None each
        (:func:`terrawatch.domain.reference_water.history_reference` over ``observed_water``)."""
        from terrawatch.domain.reference_water import history_reference
        from terrawatch.store.reference_history import history_inputs

        obs, floods = history_inputs(self.conn, scene)
        return history_reference(scene.sensing_time, obs, floods, min_gap)

    def save_observed_water(self, scene: Scene, model_version: str, water: BaseGeometry | None) -> None:
        """Record the water a flood run observed in ``scene`` (before reference water was subtracted)."""
        from terrawatch.store.reference_history import save_observed_water

        save_observed_water(self.conn, scene, model_version, water)

    def legality(self, geom: BaseGeometry) -> dict:
        """Mining legality of a lon/lat area against the reference layers and the concession layer's
        coverage (see domain/legality.py)."""
        from terrawatch.domain.legality import CONCESSION, REFERENCE_KINDS, assess

        g = sql_geom(as_multipolygon(geom))
        rf = t.reference_features
        rows = self.conn.execute(
            select(rf.c.id, rf.c.layer, rf.c.name, func.ST_Covers(rf.c.geom, g).label("covers"))
            .where(rf.c.layer.in_(REFERENCE_KINDS), func.ST_Intersects(rf.c.geom, g))
            .order_by(rf.c.layer, rf.c.id)).mappings().all()
        rc = t.reference_layer_coverage
        cov = self.conn.execute(
            select(rc.c.coverage_source.label("source"), rc.c.loaded_at, rc.c.features,
                   func.coalesce(func.ST_Covers(rc.c.coverage, g), False).label("covers"))
            .where(rc.c.layer == CONCESSION)).mappings().first()
        coverage = None if cov is None else {**cov, "loaded_at": cov["loaded_at"].isoformat()}
        return assess([dict(r) for r in rows], coverage)


class Outbox(_Repo):
    """Who hears of an alert, and the webhook outbox rows written with the alert's change."""

    def matching_subscribers(self, alert: Alert, confidence_ranks: dict[str, int]) -> list[dict]:
        """Active subscribers whose hazards, AOI and minimum confidence match ``alert`` (rows as dicts)."""
        g = sql_geom(alert.geom)
        rank = confidence_ranks[alert.confidence]
        allowed = [c for c, r in confidence_ranks.items() if r <= rank]
        q = select(t.subscribers).where(
            t.subscribers.c.active.is_(True),
            any_(t.subscribers.c.hazards) == alert.hazard,
            t.subscribers.c.min_confidence.in_(allowed),
            (t.subscribers.c.aoi.is_(None)) | func.ST_Intersects(t.subscribers.c.aoi, g),
        )
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def has_delivery(self, alert_id: uuid.UUID, subscriber_id: uuid.UUID) -> bool:
        """Whether ``subscriber_id`` was already sent a message about this alert."""
        q = select(t.webhook_outbox.c.id).where(t.webhook_outbox.c.alert_id == alert_id,
                                                t.webhook_outbox.c.subscriber_id == subscriber_id).limit(1)
        return self.conn.execute(q).first() is not None

    def sent_payloads(self, alert_id: uuid.UUID, subscriber_id: uuid.UUID, content_type: str) -> list[str]:
        """Payloads of ``content_type`` about this alert delivered or still to be delivered to this subscriber
        (not the ones that failed for good), oldest version first."""
        ob = t.webhook_outbox
        q = (select(ob.c.payload).where(ob.c.alert_id == alert_id, ob.c.subscriber_id == subscriber_id,
                                        ob.c.content_type == content_type,
                                        ob.c.status.in_((OutboxStatus.PENDING, OutboxStatus.DELIVERED)))
             .order_by(ob.c.alert_version, ob.c.created_at))
        return [r[0] for r in self.conn.execute(q)]

    def enqueue(self, alert: Alert, subscriber_id: uuid.UUID, event_type: str, payload: str,
                content_type: str, msg_id: str | None = None) -> str:
        """One outbox row (a delivery of ``payload`` to the subscriber); returns its ``webhook-id``."""
        msg_id = msg_id or new_message_id()
        self.conn.execute(insert(t.webhook_outbox).values(
            id=msg_id, alert_id=alert.id, alert_version=alert.version, subscriber_id=subscriber_id,
            event_type=event_type, payload=payload, content_type=content_type))
        return msg_id
