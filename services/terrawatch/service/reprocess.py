"""Re-processing stored scenes (issue 26): ``terrawatch reprocess``, ``POST /ops/reprocess``, and what the
worker does with such a run.

:func:`reprocess` (API and CLI) selects stored scenes (ids, or an area and period) and republishes each
stored STAC Item with ``properties["terrawatch:reprocess"]`` = a new run tag (``rp-<UTC time>-<hex>``). The
worker's idempotency key becomes ``model:version#tag``, so the scene is processed again against the
current reference layers, history, thresholds and models. Its store step (:func:`rebuild_alerts`) unlinks
the scene's earlier detections from their alerts and re-derives every alert they supported from what
supports it now: ``unchanged``, ``update`` (shrunk or grown: version + 1, ``alert.updated``) or
``withdraw`` (nothing left: status ``false_positive``, ``alert.withdrawn``, the CAP ``Cancel``), each
with a lifecycle event (actor ``reprocess <tag>``) and webhooks through the outbox. The request is
audited as ``scene.reprocess`` (target: the run tag), committed once the broker has every event.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime, timezone

from shapely.geometry.base import BaseGeometry

from terrawatch.alerting.outbox import fan_out
from terrawatch.domain.alerts import OPEN_STATUSES, HazardPolicy, rebuild_alert
from terrawatch.domain.errors import BadRequest, InvalidEvent, NotFound
from terrawatch.settings import Settings
from terrawatch.store.audit import Audit

TAG = re.compile(r"^rp-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$")
MAX_SCENES = 500  # the most scenes one request re-processes (narrow the area or period beyond)


def new_tag(now: datetime | None = None) -> str:
    """A run tag: ``rp-YYYYmmddTHHMMSS-<6 hex>`` (UTC)."""
    return f"rp-{(now or datetime.now(timezone.utc)).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def reprocess_tag(scene) -> str | None:
    """The run tag a scene event carries (``terrawatch:reprocess``), or None for a normal event."""
    tag = (scene.item.get("properties") or {}).get("terrawatch:reprocess")
    if tag is None:
        return None
    if not isinstance(tag, str) or not TAG.match(tag):
        raise InvalidEvent(f"terrawatch:reprocess {str(tag)[:64]!r} is not a run tag (rp-YYYYmmddTHHMMSS-xxxxxx)")
    return tag


def reprocess(settings: Settings, engine, producer=None, scene_ids: list[str] | None = None,
              bbox: tuple[float, float, float, float] | None = None, since: datetime | None = None,
              until: datetime | None = None, dry_run: bool = False, audit: Audit | None = None) -> dict:
    """Republish stored scenes for a new processing run; returns run, scenes (id, runs), missing ids,
    outcome (``new``: the worker processes them again under the run tag; ``dry_run``; ``none``: nothing
    matched, a no-op) with a note. ``scene_ids`` or ``bbox`` (lon/lat w, s, e, n, with optional
    ``since``/``until``, UTC, until exclusive). Raises BadRequest, NotFound (none of the ids is stored)."""
    from terrawatch.ingest import kafka_io
    from terrawatch.store.reprocess_scenes import select_scenes

    if (scene_ids is None) == (bbox is None):
        raise BadRequest("give either scene_ids or bbox (with since/until for a period)")
    if scene_ids is not None and (since is not None or until is not None):
        raise BadRequest("since/until select scenes of an area (bbox); with scene_ids they are not used")
    if scene_ids is not None and not (1 <= len(scene_ids) <= MAX_SCENES):
        raise BadRequest(f"scene_ids: 1 to {MAX_SCENES} ids")
    if bbox is not None:
        w, s, e, n = bbox
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise BadRequest("bbox: west,south,east,north in degrees with west < east and south < north")
    for name, v in (("since", since), ("until", until)):
        if v is not None and v.tzinfo is None:
            raise BadRequest(f"{name}: a time with a UTC offset")
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be before until")
    rows = select_scenes(engine, scene_ids, bbox, since, until, MAX_SCENES)
    if len(rows) > MAX_SCENES:
        raise BadRequest(f"more than {MAX_SCENES} scenes match; narrow the area or the period")
    missing = sorted(set(scene_ids or []) - {r["id"] for r in rows})
    if scene_ids is not None and not rows:
        raise NotFound(f"no stored scene among {', '.join(repr(i[:64]) for i in missing[:10])}")
    tag = new_tag()
    scenes = [{"id": r["id"], "sensing_time": r["sensing_time"].isoformat(), "runs": list(r["runs"] or [])}
              for r in rows]
    out = {"run": tag, "scenes": scenes, "missing": missing, "topic": settings.scenes_topic, "dry_run": dry_run}
    if not rows:
        return {**out, "outcome": "none", "note": "no stored scene matches: nothing is published (a no-op)"}
    if dry_run:
        return {**out, "outcome": "dry_run", "note": f"{len(rows)} scene(s) would be processed again as run {tag}"}
    items = []
    for r in rows:
        item = dict(r["item"])
        item["properties"] = {**(item.get("properties") or {}), "terrawatch:reprocess": tag}
        items.append(item)
    p = producer or kafka_io.producer(settings)
    details = {"scenes": [r["id"] for r in rows][:100], "count": len(rows), "missing": missing[:100],
               "bbox": list(bbox) if bbox else None, "since": since.isoformat() if since else None,
               "until": until.isoformat() if until else None, "topic": settings.scenes_topic}
    if audit is None:
        kafka_io.publish_items(p, settings, items)
    else:
        with engine.begin() as conn:
            audit(conn, tag, details)
            kafka_io.publish_items(p, settings, items)
    return {**out, "outcome": "new",
            "note": (f"{len(rows)} scene(s) published as run {tag}: the worker processes each again (a new run "
                     "version) and updates or withdraws the alerts the new run no longer supports")}


# worker side (called from ScenePipeline._store, inside its transaction) ---------------------------------

def reference_source(uow, geom: BaseGeometry, evidence: dict | None, history_coverage: BaseGeometry | None
                     ) -> str | None:
    """Where a flood alert's reference water comes from: ``pre_event_scene`` (change detection ran),
    ``reference_layer`` (a loaded layer's coverage covers it), ``history`` (other acquisitions of the place
    cover it: 99 % of its area), or None (unknown)."""
    if (evidence or {}).get("change_detection"):
        return "pre_event_scene"
    if uow.reference.water_covers(geom):
        return "reference_layer"
    if history_coverage is not None and geom.difference(history_coverage).area <= 0.01 * geom.area:
        return "history"
    return None


def rebuild_alerts(uow, alert_ids: set[uuid.UUID], policy: HazardPolicy, sender: str, tag: str,
                   evidence: dict | None, history_coverage: BaseGeometry | None, water_step: bool) -> tuple[int, int]:
    """Re-derive each open alert in ``alert_ids`` from the detections linked to it now
    (:func:`terrawatch.domain.alerts.rebuild_alert`); write the change, its event and its webhooks.
    Returns (alerts updated or withdrawn, webhooks enqueued)."""
    changed = enqueued = 0
    actor = f"reprocess {tag}"
    for alert_id in sorted(alert_ids, key=str):
        a = uow.alerts.get(alert_id, for_update=True)
        if a is None or a.status not in {s.value for s in OPEN_STATUSES}:
            continue
        support = [(d["scene_id"], d["geom"], d["area_ha"], d["likelihood"]) for d in uow.detections.supporting(a.id)]
        source = None
        if water_step and support:
            import shapely

            source = reference_source(uow, shapely.union_all([g for _, g, *_ in support]), evidence, history_coverage)
        decision = rebuild_alert(a, support, policy, reference_known=not water_step or source is not None,
                                 pipeline_confirmed=uow.alerts.confirmed_by_pipeline(a.id))
        if decision.action == "unchanged":
            continue
        new = decision.alert
        new.updated_at = datetime.now(timezone.utc)
        reason = f"{actor}: {decision.reason}"
        if water_step and support:
            new.context = {**new.context, "reference_water": source or "unknown"}
        if decision.action == "withdraw":
            new.context = {**new.context, "withdrawn": {"run": tag, "at": new.updated_at.isoformat(),
                                                        "reason": decision.reason}}
        uow.alerts.update(new)
        uow.alerts.add_event(new.id, actor, a.status, new.status, reason, new.version)
        if decision.action == "withdraw":  # only subscribers who heard of it hear of its withdrawal
            ids = fan_out(uow, new, "alert.withdrawn", policy, sender, only_informed=True, reason=reason)
        else:
            ids = fan_out(uow, new, "alert.updated", policy, sender)
        changed += 1
        enqueued += len(ids)
    return changed, enqueued
