"""Synthetic layer rows (scenes, detections, alerts) for API tests, the tile bench and map checks.

Rows go through :class:`~terrawatch.store.uow.UnitOfWork` like the pipeline's.
Detection outlines mimic polygonized 10 m rasters: many vertices on a jagged
ring, 1-60 ha each, spread over a ``spread_deg`` square around ``center``
(lon, lat, EPSG:4326).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, box, mapping
from shapely.ops import unary_union

from terrawatch.domain.alerts import Alert
from terrawatch.domain.hazards import HAZARDS
from terrawatch.domain.polygons import Detection, geodesic_area_ha
from terrawatch.domain.scene import Scene, Sensor
from terrawatch.store.uow import UnitOfWork

CONFIDENCES = ("low", "high", "highest")
STATUSES = ("new", "acknowledged", "confirmed")


@dataclass
class Seeded:
    scene_ids: list[str] = field(default_factory=list)
    detection_ids: list[int] = field(default_factory=list)
    alert_ids: list[uuid.UUID] = field(default_factory=list)
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    times: tuple[datetime, datetime] | None = None


def jagged_polygon(rng: np.random.Generator, lon: float, lat: float, radius_m: float, vertices: int) -> Polygon:
    """A ring of ``vertices`` points with a noisy radius (metres) around (lon, lat)."""
    ang = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    r = radius_m * (1 + 0.35 * np.sin(3 * ang + rng.uniform(0, 6)) + 0.08 * rng.standard_normal(vertices))
    r = np.clip(r, radius_m * 0.3, None)
    dlat = r * np.sin(ang) / 111_320.0
    dlon = r * np.cos(ang) / (111_320.0 * math.cos(math.radians(lat)))
    return Polygon(np.column_stack([lon + dlon, lat + dlat])).buffer(0)


def seed_layers(engine, *, center: tuple[float, float] = (-3.0, 40.0), spread_deg: float = 0.5,
                scenes: int = 2, detections_per_scene: int = 20, vertices: int = 120, per_alert: int = 4,
                start: datetime | None = None, tag: str | None = None, seed: int = 0) -> Seeded:
    """Insert ``scenes`` scenes (one day apart) with detections and alerts; return their ids and bounds."""
    rng = np.random.default_rng(seed)
    tag = tag or uuid.uuid4().hex[:8]
    start = start or datetime.now(timezone.utc) - timedelta(days=scenes)
    lon0, lat0 = center
    half = spread_deg / 2
    footprint = box(lon0 - half, lat0 - half, lon0 + half, lat0 + half)
    out = Seeded(bounds=footprint.bounds)
    times = []
    k = 0
    for s in range(scenes):
        when = start + timedelta(days=s)
        times.append(when)
        sid = f"seed-{tag}-{s}"
        sensor = Sensor.S1 if s % 2 == 0 else Sensor.S2
        platform = "sentinel-1a" if sensor is Sensor.S1 else "sentinel-2b"
        item = {"type": "Feature", "stac_version": "1.0.0", "id": sid, "geometry": mapping(footprint),
                "bbox": list(footprint.bounds), "properties": {"datetime": when.isoformat(), "platform": platform,
                                                                "constellation": sensor.value},
                "assets": {}, "links": []}
        scene = Scene(id=sid, sensor=sensor, platform=platform, sensing_time=when,
                      footprint=MultiPolygon([footprint]), bands=(), hazards=HAZARDS, item=item)
        dets = []
        for _ in range(detections_per_scene):
            lon = rng.uniform(lon0 - half * 0.95, lon0 + half * 0.95)
            lat = rng.uniform(lat0 - half * 0.95, lat0 + half * 0.95)
            poly = jagged_polygon(rng, lon, lat, radius_m=rng.uniform(60, 450), vertices=vertices)
            geom = poly if isinstance(poly, MultiPolygon) else MultiPolygon([poly])
            dets.append(Detection(hazard=HAZARDS[k % 3], geometry=geom, area_ha=geodesic_area_ha(geom),
                                  likelihood=float(rng.uniform(55, 99)), pixels=0))
            k += 1
        with UnitOfWork(engine, "seed") as uow:
            uow.scenes.upsert(scene)
            ids = uow.detections.add(scene, "seed-1", dets)
            for h in HAZARDS:
                uow.scenes.add_run(sid, h, "seed-1", tiles=1, detections=sum(d.hazard == h for d in dets))
            uow.scenes.finish(sid, "processed", {h: {"status": "processed", "model": "seed-1"} for h in HAZARDS})
            for a0 in range(0, len(dets), per_alert):
                group = [(i, d) for i, d in zip(ids[a0:a0 + per_alert], dets[a0:a0 + per_alert])]
                hazard = group[0][1].hazard
                members = [(i, d) for i, d in group if d.hazard == hazard]
                geom = unary_union([d.geometry for _, d in members])
                geom = geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])
                n = len(out.alert_ids)
                alert = Alert(
                    id=uuid.uuid4(), hazard=hazard, status=STATUSES[n % 3], confidence=CONFIDENCES[n % 3],
                    severity="minor", geom=geom, area_ha=sum(d.area_ha for _, d in members),
                    likelihood=float(np.mean([d.likelihood for _, d in members])), sensors=[sensor.value],
                    observations=1 + n % 3, first_sensed=when, last_sensed=when,
                    context={"scene_ids": [sid], "seeded": tag}, version=1)
                uow.alerts.insert(alert)
                uow.detections.link(alert.id, [i for i, _ in members])
                out.alert_ids.append(alert.id)
        out.scene_ids.append(sid)
        out.detection_ids.extend(ids)
    out.times = (min(times), max(times))
    return out


def delete_seeded(engine, seeded: Seeded) -> None:
    """Remove what :func:`seed_layers` inserted (detections and runs cascade from scenes)."""
    from terrawatch.store.scenes import delete_scenes_and_alerts

    delete_scenes_and_alerts(engine, seeded.scene_ids, seeded.alert_ids)
