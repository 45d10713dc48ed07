"""CAP 1.2 (OASIS Common Alerting Protocol) payloads for alert webhooks.

Valid against ``alerts/schemas/CAP-v1.2.xsd`` (tested with lxml). Mapping
(see docs/alerting.md):

- ``msgType``: ``Alert`` for the first message a subscriber gets about an alert,
  ``Update`` afterwards, ``Cancel`` when an operator marks it a false positive;
  ``references`` names the earlier messages about this alert that *this subscriber* was sent
  (``sender,identifier,sent`` each, space-separated); a subscriber that was sent none gets a fresh
  ``Alert`` even for a later version.
- ``severity``: the rule's area ladder, minor/moderate/severe/extreme -> Minor/Moderate/Severe/Extreme.
- ``urgency`` and ``certainty``: from the confidence tier via the rule's ``cap`` section
  (defaults low/high/highest -> Possible/Likely/Observed); a resolved or false-positive alert
  has urgency ``Past`` (and certainty ``Unlikely`` if false positive).
- ``area``: at most :data:`MAX_POLYGONS` ``<polygon>`` of at most :data:`MAX_VERTICES` points each (what CAP
  aggregators accept): nearby parts are merged (a morphological closing) and rings simplified until both
  bounds hold, WGS 84 ``lat,lon`` pairs, first = last (CAP has no holes: interior rings are left out, so the
  CAP area over-covers); the exact geometry is linked as a ``<resource>`` when the API's public URL is known.
  ``areaDesc`` names the nearest populated place, its region and country (offline, :mod:`.places`).
- Backfills (the last observation older than the rule's merge window, :func:`is_backfill`): urgency
  ``Past``, no ``expires`` (it would be in the past) and a ``note`` saying so; only subscribers that opted in
  (``include_backfills``) are sent them at all (:mod:`.outbox`).
- ``parameter``: alert id, status, confidence, area, likelihood, sensors, observations, version and
  every top-level key of ``alert.context`` as ``context:<key>`` (JSON text for non-strings).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import shapely
from shapely.geometry import MultiPolygon, Polygon

from terrawatch.domain.alerts import Alert, AlertStatus, HazardPolicy, is_backfill

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_CONTENT_TYPE = "application/cap+xml"
SEVERITY = {"minor": "Minor", "moderate": "Moderate", "severe": "Severe", "extreme": "Extreme"}
COORD_DECIMALS = 6  # ~0.1 m at the equator
MAX_POLYGONS = 10  # per <info>; aggregators (e.g. Google Public Alerts) reject larger areas
MAX_VERTICES = 100  # points per <polygon>, the closing point included
ET.register_namespace("", CAP_NS)


def cap_time(t: datetime) -> str:
    """CAP dateTime: ``YYYY-MM-DDThh:mm:ss+00:00`` (no fractions, no ``Z``), in UTC."""
    return t.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def identifier(a: Alert, version: int | None = None) -> str:
    return f"terrawatch-{a.id}-v{a.version if version is None else version}"


def _parts(geom) -> list[Polygon]:
    return list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom] if isinstance(geom, Polygon) else []


def bounded_polygons(geom, max_polygons: int = MAX_POLYGONS, max_vertices: int = MAX_VERTICES) -> list[Polygon]:
    """Exterior rings of ``geom`` (lon/lat) reduced to at most ``max_polygons`` polygons of at most
    ``max_vertices`` points. More than ``max_polygons`` parts are replaced by their convex hulls and merged by
    closing with growing radii (0.001 to 0.1 degrees: the result covers the original), then, if still too many, the convex hull of everything; each ring is simplified with
    growing tolerance (a metre upwards) and grown by that tolerance so it still covers the part."""
    parts = [Polygon(p.exterior) for p in _parts(geom) if not p.is_empty]
    if len(parts) > max_polygons:  # merge on convex hulls: they cover the parts and buffer cheaply
        parts = [p.convex_hull for p in parts]
    for radius in (0.001, 0.003, 0.01, 0.03, 0.1):
        if len(parts) <= max_polygons:
            break
        merged = shapely.union_all(parts).buffer(radius, quad_segs=2).buffer(-radius, quad_segs=2)
        parts = [Polygon(p.exterior) for p in _parts(shapely.union_all([merged, *parts])) if not p.is_empty]
    if len(parts) > max_polygons:
        parts = [shapely.union_all(parts).convex_hull]
    parts.sort(key=lambda p: -p.area)
    out = []
    for p in parts:
        tol = 1e-5
        q = p
        while len(q.exterior.coords) > max_vertices and tol < 1.0:
            # simplify, then grow by the tolerance (mitred: no new arc vertices) so the ring still covers
            q = p.simplify(tol, preserve_topology=True).buffer(tol, join_style="mitre", mitre_limit=3.0)
            q = max(_parts(q), key=lambda x: x.area) if not isinstance(q, Polygon) else Polygon(q.exterior)
            tol *= 2
        if len(q.exterior.coords) > max_vertices:
            q = p.convex_hull.simplify(tol).buffer(tol, join_style="mitre", mitre_limit=3.0)
        out.append(q)
    return out


def cap_polygons(geom, max_polygons: int = MAX_POLYGONS, max_vertices: int = MAX_VERTICES) -> list[str]:
    """CAP ``polygon`` strings (``lat,lon lat,lon ...``, closed) of :func:`bounded_polygons` of ``geom``."""
    out = []
    for p in bounded_polygons(geom, max_polygons, max_vertices):
        ring = list(p.exterior.coords)
        if len(ring) < 4:
            continue
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        out.append(" ".join(f"{y:.{COORD_DECIMALS}f},{x:.{COORD_DECIMALS}f}" for x, y, *_ in ring))
    return out


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    el = _sub(parent, tag)
    _sub(el, "valueName", name)
    _sub(el, "value", value)


def sent_message(payload: str) -> tuple[str, str, str] | None:
    """(sender, identifier, sent) of a CAP document this module rendered (None if it is not one)."""
    try:
        root = ET.fromstring(payload.encode())
    except ET.ParseError:
        return None
    fields = [root.findtext(f"{{{CAP_NS}}}{tag}") for tag in ("sender", "identifier", "sent")]
    return tuple(fields) if all(fields) else None  # type: ignore[return-value]


def cap_alert(a: Alert, event_type: str, policy: HazardPolicy, sender: str, first_message: bool,
              reason: str | None = None, references: list[tuple[str, str, str]] | None = None,
              public_url: str = "", now: datetime | None = None) -> str:
    """One CAP 1.2 ``<alert>`` document (UTF-8 XML text) for version ``a.version`` of an alert.

    ``references``: (sender, identifier, sent) of the messages about this alert the recipient was sent
    before; an empty list makes this a fresh ``Alert``. None (no recipient history known) references
    version 1. ``public_url``: the API's public base URL; when given, the exact geometry is linked.
    """
    from terrawatch.alerting.places import describe

    status = AlertStatus(a.status)
    now = now or datetime.now(timezone.utc)
    sent = a.updated_at or now
    backfill = is_backfill(a, policy, now)
    if references is not None and not references:
        first_message = True
    if first_message:
        msg_type = "Alert"
    elif status == AlertStatus.FALSE_POSITIVE:
        msg_type = "Cancel"
    else:
        msg_type = "Update"
    closed = status in (AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE)
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", identifier(a))
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(sent))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", msg_type)
    _sub(root, "source", "terrawatch satellite monitoring")
    _sub(root, "scope", "Public")
    if closed and reason:
        _sub(root, "note", f"{status.value}: {reason}")
    elif backfill:
        _sub(root, "note", f"Backfill: last observed {cap_time(a.last_sensed)}, more than "
                           f"{policy.merge_window_days:g} days before this message; a record, not a new event.")
    if msg_type != "Alert" and references:
        _sub(root, "references", " ".join(",".join(r) for r in references))
    elif msg_type != "Alert" and a.created_at is not None:
        _sub(root, "references", f"{sender},{identifier(a, 1)},{cap_time(a.created_at)}")
    _sub(root, "incidents", str(a.id))

    cap = policy.cap
    info = _sub(root, "info")
    _sub(info, "language", "en-US")
    _sub(info, "category", cap.category)
    _sub(info, "event", cap.event)
    _sub(info, "responseType", "AllClear" if status == AlertStatus.RESOLVED
         else "None" if status == AlertStatus.FALSE_POSITIVE else cap.response)
    _sub(info, "urgency", "Past" if closed or backfill else cap.urgency.get(a.confidence, "Unknown"))
    _sub(info, "severity", SEVERITY.get(a.severity, "Unknown"))
    _sub(info, "certainty", "Unlikely" if status == AlertStatus.FALSE_POSITIVE
         else cap.certainty.get(a.confidence, "Unknown"))
    _pair(info, "eventCode", "terrawatch:hazard", a.hazard)
    _pair(info, "eventCode", "terrawatch:event", event_type)
    _sub(info, "effective", cap_time(sent))
    _sub(info, "onset", cap_time(a.first_sensed))
    if not closed and not backfill:
        _sub(info, "expires", cap_time(a.last_sensed + timedelta(days=policy.merge_window_days)))
    _sub(info, "senderName", "terrawatch")
    _sub(info, "headline", f"{cap.event}: {a.area_ha:.1f} ha, {a.confidence} confidence ({status.value})")
    legality = a.context.get("legality") if isinstance(a.context, dict) else None
    desc = (f"{cap.event} of {a.area_ha:.2f} ha detected from satellite imagery ({', '.join(a.sensors)}) in "
            f"{a.observations} observation(s) between {cap_time(a.first_sensed)} and {cap_time(a.last_sensed)}; "
            f"mean model likelihood {a.likelihood:.0f}/100; status {status.value}.")
    if isinstance(legality, dict) and legality:
        desc += f" Legality: {legality.get('status')} ({legality.get('rule')}). Verdict: " + json.dumps(legality, sort_keys=True, ensure_ascii=False, default=str)
    _sub(info, "description", desc)
    for name, value in (("alert_id", str(a.id)), ("status", status.value), ("confidence", a.confidence),
                        ("area_ha", f"{a.area_ha:.4f}"), ("likelihood", f"{a.likelihood:.1f}"),
                        ("sensors", ",".join(a.sensors)), ("observations", str(a.observations)),
                        ("version", str(a.version))):
        _pair(info, "parameter", f"terrawatch:{name}", value)
    if isinstance(legality, dict) and legality.get("status"):
        feature = legality.get("feature") or {}
        evidence = feature.get("feature_name") or feature.get("feature_id") or (legality.get("coverage") or {}).get(
            "source") or "none"
        _pair(info, "parameter", "terrawatch:legality", str(legality["status"]))
        _pair(info, "parameter", "terrawatch:legality_rule", str(legality.get("rule")))
        _pair(info, "parameter", "terrawatch:legality_evidence", str(evidence))
    for key, value in sorted((a.context or {}).items()):
        _pair(info, "parameter", f"context:{key}",
              value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))
    if public_url:
        res = _sub(info, "resource")
        _sub(res, "resourceDesc", "exact alert geometry (GeoJSON)")
        _sub(res, "mimeType", "application/geo+json")
        _sub(res, "uri", f"{public_url.rstrip('/')}/ogc/collections/alerts/items/{a.id}?f=json")
    area = _sub(info, "area")
    c = a.geom.centroid if not a.geom.is_empty else None
    place = describe(c.x, c.y) if c is not None else ""
    _sub(area, "areaDesc", f"{cap.event} area {place}, {a.area_ha:.2f} ha".replace("  ", " ")
         if place else f"{cap.event} area, {a.area_ha:.2f} ha (WGS 84)")
    for poly in cap_polygons(a.geom):
        _sub(area, "polygon", poly)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
