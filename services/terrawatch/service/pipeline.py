"""Process one scene: tile + infer on Ray/Triton, vectorize, store, alert - exactly once in effect.

Idempotency key: (scene id, hazard, model version). Everything a scene yields
is written in one transaction together with its run marker, so a re-delivered
event either finds the marker (and does nothing) or finds nothing at all.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import shapely

from terrawatch.alerting.outbox import fan_out
from terrawatch.domain.alerts import (
    CONFIDENCE_RANKS, OPEN_STATUSES, AlertStatus, HazardPolicy, InvalidAlertRules, admits, confidence, load_rules,
    severity,
)
from terrawatch.domain.errors import NoValidPixels, UnsupportedScene
from terrawatch.domain.polygons import Detection, as_multipolygon, cluster, geodesic_area_ha
from terrawatch.domain.reference_water import subtract_reference
from terrawatch.domain.scene import Scene, Sensor
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_RADAR
from terrawatch.imagery.reader import SceneReader
from terrawatch.observability.metrics import (
    ALERTS, DETECTIONS, SENSING_TO_ALERT_SECONDS, STAGE_SECONDS, TILES,
)
from terrawatch.settings import Settings
from terrawatch.store.uow import AlertRow, UnitOfWork, window_start
from terrawatch.tiling.ray_tiler import HazardJob
from terrawatch.vectorize.polygonize import to_detections

log = logging.getLogger(__name__)

# Which Triton model maps which hazard for which sensor, and how it runs over a tile.
HAZARD_MODELS: dict[tuple[Sensor, str], tuple[str, str]] = {
    (Sensor.S1, "flood"): ("flood_s1", "segment"),
    (Sensor.S2, "flood"): ("flood_s2", "segment"),
    (Sensor.S2, "mining"): ("mining_s2", "patches"),
    (Sensor.S2, "deforestation"): ("deforestation_s2", "bitemporal"),
}
__all__ = ["CONFIDENCE_RANKS", "HAZARD_MODELS", "ScenePipeline", "SceneOutcome"]


@dataclass
class SceneOutcome:
    scene_id: str
    outcome: str  # processed | duplicate
    tiles: int = 0
    detections: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    webhooks_enqueued: int = 0
    stages: dict[str, float] = field(default_factory=dict)


class ScenePipeline:
    def __init__(self, settings: Settings, tiler, engine, model_version) -> None:
        """``tiler`` runs a model over a scene (RayTiler); ``model_version(name)`` asks Triton."""
        self.s = settings
        self.tiler = tiler
        self.engine = engine
        self.model_version = model_version
        # Alert rules (alerts/rules/*.yaml) are validated here, at startup; the vectorizer's minimum
        # mapping unit stays TERRAWATCH_MIN_MAPPING_UNIT_HA, the rules' min_area_ha gates alerts.
        self.policies: dict[str, HazardPolicy] = load_rules(settings.alert_rules_dir)
        missing = sorted({h for (_, h) in HAZARD_MODELS} - set(self.policies))
        if missing:
            raise InvalidAlertRules(f"no alert rule in {settings.alert_rules_dir} for hazard(s) {missing}")

    def jobs_for(self, scene: Scene, uow: UnitOfWork) -> list[HazardJob]:
        """The hazard jobs that apply to ``scene``; deforestation needs an earlier scene of the footprint."""
        thresholds = {"flood": self.s.flood_threshold, "mining": self.s.mining_threshold,
                      "deforestation": self.s.deforestation_threshold}
        jobs = []
        for h in scene.hazards:
            if (scene.sensor, h) not in HAZARD_MODELS:
                continue
            model, kind = HAZARD_MODELS[(scene.sensor, h)]
            pre = None
            if kind == "bitemporal":
                pre = uow.previous_scene(scene)
                if pre is None:
                    log.info("scene %s: no earlier scene of this footprint, %s skipped", scene.id, h)
                    continue
            excluded = EXCLUDED_RADAR if scene.sensor == Sensor.S1 else EXCLUDED_CLOUD
            jobs.append(HazardJob(h, model, thresholds[h], kind, self.s.mining_stride, pre, excluded))
        return jobs

    def _product_paths(self, scene: Scene, jobs: list[HazardJob]) -> dict[str, str]:
        """Likelihood + exclusion GeoTIFF per hazard under ``products_dir/<scene id>/`` (written while tiling)."""
        if not self.s.write_products:
            return {}
        d = self.s.products_dir / scene.id
        d.mkdir(parents=True, exist_ok=True)
        return {j.hazard: str(d / f"{j.hazard}_likelihood.tif") for j in jobs}

    def process(self, scene: Scene) -> SceneOutcome:
        supported = [h for h in scene.hazards if (scene.sensor, h) in HAZARD_MODELS]
        if not supported:
            raise UnsupportedScene(f"no model for hazards {list(scene.hazards)} on {scene.sensor.value}")
        with UnitOfWork(self.engine, "check") as uow:
            uow.upsert_scene(scene)  # idempotent; a later scene may need it as its pre-event reference
            jobs = self.jobs_for(scene, uow)
            versions = {j.hazard: f"{j.model}:{self.model_version(j.model)}" for j in jobs}
            jobs = [j for j in jobs if not uow.run_exists(scene.id, j.hazard, versions[j.hazard])]
        out = SceneOutcome(scene.id, "processed" if jobs else "duplicate")
        if not jobs:
            return out
        t0 = time.perf_counter()
        with SceneReader(scene) as reader:
            grid = reader.grid
        log.info("scene %s: tiling %dx%d px for %s", scene.id, grid.width, grid.height,
                 ", ".join(versions[j.hazard] for j in jobs))
        products = self._product_paths(scene, jobs)
        tiled = self.tiler.run(scene, grid, jobs, self.s.tile_size, self.s.tile_overlap,
                               datetime.now(timezone.utc).isoformat(), products)
        if tiled.valid_pixels == 0:
            raise NoValidPixels(f"no valid pixels: every pixel of the {grid.width}x{grid.height} px scene is "
                                "NaN or nodata in at least one band")
        t1 = time.perf_counter()
        dets = {j.hazard: to_detections(tiled.parts[j.hazard], grid.transform, grid.crs, j.hazard,
                                        self.s.min_mapping_unit_ha) for j in jobs}
        if dets.get("flood"):
            # flood = observed water minus reference (permanent/seasonal) water, like GFM
            with UnitOfWork(self.engine, "reference") as uow:
                ref = uow.reference_water(scene.footprint)
            dets["flood"] = subtract_reference(dets["flood"], ref, self.s.min_mapping_unit_ha)
        t2 = time.perf_counter()
        for j in jobs:
            TILES.labels(j.hazard).inc(tiled.tiles)
            created, updated, enq = self._store(scene, j.hazard, versions[j.hazard], dets[j.hazard], tiled.tiles)
            out.detections += len(dets[j.hazard])
            out.alerts_created += created
            out.alerts_updated += updated
            out.webhooks_enqueued += enq
            DETECTIONS.labels(j.hazard).inc(len(dets[j.hazard]))
        t3 = time.perf_counter()
        out.tiles = tiled.tiles
        out.stages = {"read": tiled.read_s, "infer": tiled.infer_s, "tiling_wall": t1 - t0,
                      "vectorize": t2 - t1, "store": t3 - t2}
        for stage in ("read", "infer", "vectorize", "store"):
            STAGE_SECONDS.labels(stage).observe(out.stages[stage])
        return out

    def _store(self, scene: Scene, hazard: str, version: str, dets: list[Detection], n_tiles: int):
        policy = self.policies[hazard]
        created = updated = enqueued = 0
        with UnitOfWork(self.engine, "scene") as uow:
            uow.lock_scene(f"{scene.id}/{hazard}/{version}")
            if uow.run_exists(scene.id, hazard, version):  # another worker won the race
                return 0, 0, 0
            uow.upsert_scene(scene)
            ids = uow.add_detections(scene, version, dets)
            uow.add_run(scene.id, hazard, version, n_tiles, len(dets))
            alerted: list[AlertRow] = []
            for group in cluster([d.geometry for d in dets], policy.merge_distance_m):
                geom = as_multipolygon(shapely.union_all([dets[i].geometry for i in group]))
                area = sum(dets[i].area_ha for i in group)
                lk = sum(dets[i].likelihood * dets[i].area_ha for i in group) / max(area, 1e-9)
                if not admits(area, lk, policy):
                    continue
                extra = {"legality": uow.legality(geom)} if hazard == "mining" else {}
                alert, is_new = self._merge_or_create(uow, scene, hazard, geom, area, lk, policy, extra)
                uow.link_detections(alert.id, [ids[i] for i in group])
                created += is_new
                updated += not is_new
                event_type = "alert.created" if is_new else "alert.updated"
                enqueued += len(fan_out(uow, alert, event_type, policy, self.s.cap_sender))
                alerted.append(alert)
                ALERTS.labels(hazard, "created" if is_new else "updated").inc()
        now = datetime.now(timezone.utc)
        for _ in alerted:
            SENSING_TO_ALERT_SECONDS.labels(hazard).observe((now - scene.sensing_time).total_seconds())
        return created, updated, enqueued

    def _merge_or_create(self, uow: UnitOfWork, scene: Scene, hazard: str, geom, area: float, lk: float,
                         policy: HazardPolicy, extra: dict) -> tuple[AlertRow, bool]:
        sensor = scene.sensor.value
        existing = uow.mergeable_alert(hazard, geom, policy.merge_distance_m,
                                       window_start(scene.sensing_time, policy.merge_window_days),
                                       [s.value for s in OPEN_STATUSES])
        now = datetime.now(timezone.utc)
        if existing is None:
            a = AlertRow(
                id=uuid.uuid4(), hazard=hazard, status=AlertStatus.NEW.value,
                confidence=confidence(policy, {sensor}, 1, area, lk).value, severity=severity(area, policy),
                geom=geom, area_ha=area, likelihood=lk, sensors=[sensor], observations=1,
                first_sensed=scene.sensing_time, last_sensed=scene.sensing_time,
                context={**extra, "scene_ids": [scene.id]}, version=1, created_at=now, updated_at=now)
            uow.insert_alert(a)
            uow.add_alert_event(a.id, "pipeline", None, a.status, f"first detection in scene {scene.id}", a.version)
            return a, True
        a = existing
        scenes = list(dict.fromkeys([*a.context.get("scene_ids", []), scene.id]))
        a.geom = as_multipolygon(shapely.union_all([a.geom, geom]))
        a.area_ha = geodesic_area_ha(a.geom)
        a.likelihood = max(a.likelihood, lk)
        a.sensors = sorted({*a.sensors, sensor})
        a.observations = len(scenes)
        a.first_sensed = min(a.first_sensed, scene.sensing_time)
        a.last_sensed = max(a.last_sensed, scene.sensing_time)
        a.confidence = confidence(policy, set(a.sensors), a.observations, a.area_ha, a.likelihood).value
        a.severity = severity(a.area_ha, policy)
        a.context = {**a.context, **extra, "scene_ids": scenes}
        a.version += 1
        a.updated_at = now
        src = a.status
        if src == AlertStatus.NEW.value and a.observations >= 2:
            a.status = AlertStatus.CONFIRMED.value
        uow.update_alert(a)
        uow.add_alert_event(a.id, "pipeline", src, a.status, f"scene {scene.id} observed the alert area again",
                            a.version)
        return a, False
