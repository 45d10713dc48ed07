"""Webhook payloads. GeoJSON: a Standard Webhooks envelope whose ``data`` is a GeoJSON Feature (EPSG:4326)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from shapely.geometry import mapping

from terrawatch.store.uow import AlertRow


def alert_feature(a: AlertRow) -> dict:
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
            "version": a.version,
            "context": a.context,
        },
    }


def geojson_event(event_type: str, a: AlertRow) -> str:
    return json.dumps({
        "type": event_type,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "data": alert_feature(a),
    }, separators=(",", ":"))
