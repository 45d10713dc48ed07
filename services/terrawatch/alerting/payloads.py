"""Webhook payloads. GeoJSON: a Standard Webhooks envelope whose ``data`` is a GeoJSON Feature (EPSG:4326).

``properties.context`` carries the alert's context unchanged (scene ids, and for
mining the ``legality`` verdict with its rule and reference-layer feature).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from shapely.geometry import mapping

from terrawatch.domain.alerts import Alert

GEOJSON_CONTENT_TYPE = "application/json"


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _legality(a: Alert) -> dict:
    v = (a.context or {}).get("legality") if isinstance(a.context, dict) else None
    if not isinstance(v, dict):
        return {"legality": None}
    feature = v.get("feature") or {}
    coverage = v.get("coverage") or {}
    return {"legality": v.get("status"), "legality_rule": v.get("rule"),
            "legality_feature": feature.get("feature_name") or feature.get("feature_id"),
            "legality_coverage": coverage.get("source")}


def alert_feature(a: Alert) -> dict:
    """The alert as a GeoJSON Feature; geometry a MultiPolygon in lon/lat (RFC 7946), area in ha."""
    return {
        "type": "Feature",
        "id": str(a.id),
        "geometry": mapping(a.geom),
        "properties": {
            "alert_id": str(a.id),
            "hazard": a.hazard,
            "status": a.status,
            "confidence": a.confidence,
            "severity": a.severity,
            "area_ha": round(a.area_ha, 4),
            "likelihood": round(a.likelihood, 1),
            "sensors": a.sensors,
            "observations": a.observations,
            "first_sensed": a.first_sensed.isoformat(),
            "last_sensed": a.last_sensed.isoformat(),
            "created_at": _iso(a.created_at),
            "updated_at": _iso(a.updated_at),
            "version": a.version,
            # mining: illegal / licensed / unknown with its rule and the feature or coverage used (full verdict
            # in context.legality); null for hazards without a legality step
            **_legality(a),
            "context": a.context,
        },
    }


def geojson_event(event_type: str, a: Alert, backfill: bool = False) -> str:
    """Standard Webhooks envelope ``{type, timestamp, data}``; ``timestamp`` is when this alert version was written.
    ``data.properties.backfill``: the last observation is older than the rule's merge window (history, not news)."""
    feature = alert_feature(a)
    feature["properties"]["backfill"] = backfill
    return json.dumps({
        "type": event_type,
        "timestamp": (a.updated_at or datetime.now(timezone.utc)).isoformat(),
        "data": feature,
    }, separators=(",", ":"), default=str)
