"""Process one scene: tile + infer on Ray/Triton, vectorize, store, alert - exactly once in effect.

Idempotency key: (scene id, hazard, model version). Everything a scene yields
is written in one transaction together with its run marker, so a re-delivered
event either finds the marker (and does nothing) or finds nothing at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import shapely
from shapely.geometry.base import BaseGeometry

from terrawatch.alerting.outbox import fan_out
from terrawatch.domain.alerts import (
    CONFIDENCE_RANKS, OPEN_STATUSES, Acquisition, Alert, Cluster, HazardPolicy, InvalidAlertRules, admits,
    merge_cluster,
)
from terrawatch.domain.errors import NoValidPixels, UnsupportedScene
from terrawatch.domain.polygons import Detection, as_multipolygon, cluster
from terrawatch.domain.reference_water import HISTORY_MIN_GAP_DAYS, subtract_reference
from terrawatch.domain.aoa import OUTSIDE, PARTIAL, relate
from terrawatch.domain.hazards import HAZARDS, REGISTRY, STEP_LEGALITY, STEP_REFERENCE_WATER, model_for
from terrawatch.domain.scene import Scene, Sensor
from terrawatch.observability.metrics import (
    ALERTS, DETECTIONS, PIXELS_OUTSIDE_AOA, SCENES_OUTSIDE_AOA, SENSING_TO_ALERT_SECONDS, STAGE_SECONDS, TILES,
)
from terrawatch.service.pairing import alert_evidence, fuse_flood, pre_event_scene
from terrawatch.service.reprocess import rebuild_alerts, reference_source, reprocess_tag
from terrawatch.service.ports import (
    AssetChecks, ModelVersionLookup, ReaderFactory, Tiler, UnitOfWork, UnitOfWorkFactory,
)
from terrawatch.settings import Settings
from terrawatch.domain.jobs import HazardJob
from terrawatch.domain.products import QUICKLOOK_FILE, likelihood_file
from terrawatch.vectorize.polygonize import to_detections

log = logging.getLogger(__name__)

__all__ = ["CONFIDENCE_RANKS", "ScenePipeline", "SceneOutcome", "unsupported_reason"]


def unsupported_reason(scene: Scene, hazard: str) -> str | None:
    """Why ``hazard`` cannot run on ``scene``: no registry model for its sensor, or not for its processing
    level (e.g. mining_s2, trained on the 13 L1C top-of-atmosphere bands, on an L2A scene). None = it can."""
    hm = model_for(scene.sensor, hazard)
    if hm is None:
        return f"no {hazard} model for {scene.sensor.value}"
    if scene.level not in hm.levels:
        return f"{hm.model} takes {scene.sensor.value} {'/'.join(hm.levels)} only; this scene is {scene.level}"
    return None


@dataclass
class SceneOutcome:
    scene_id: str
    outcome: str  # processed | duplicate | outside_aoa (every hazard asked for is outside its model's AoA)
    tiles: int = 0
    detections: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    webhooks_enqueued: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    hazard_status: dict[str, dict] = field(default_factory=dict)  # per hazard, as stored in scenes.hazard_status


class ScenePipeline:
    """One scene end to end; built by the composition root (:func:`terrawatch.service.bootstrap.build_pipeline`)
    from ports (:mod:`terrawatch.service.ports`), so unit tests pass in-memory fakes."""

    def __init__(self, settings: Settings, *, tiler: Tiler, unit_of_work: UnitOfWorkFactory, reader: ReaderFactory,
                 model_version: ModelVersionLookup, policies: Mapping[str, HazardPolicy],
                 aoa: Mapping[str, BaseGeometry], assets: AssetChecks) -> None:
        """``tiler`` runs the models over a scene's tiles (RayTiler); ``unit_of_work(operation)`` opens one
        transaction (store.uow); ``reader(scene)`` opens a scene (imagery.reader.SceneReader) for its grid;
        ``model_version(name)`` asks Triton; ``policies``: the alert rules per hazard (already loaded and
        validated, one for every hazard of the registry); ``aoa``: each registry model's area of
        applicability (lon/lat); ``assets``: which hrefs an event may make us open. Nothing is loaded here."""
        missing = sorted(set(HAZARDS) - set(policies))
        if missing:
            raise InvalidAlertRules(f"no alert rule for hazard(s) {missing}")
        no_aoa = sorted({hm.model for hm in REGISTRY} - set(aoa))
        if no_aoa:
            raise ValueError(f"no area of applicability for model(s) {no_aoa}")
        self.s = settings
        self.assets = assets
        self.tiler = tiler
        self.unit_of_work = unit_of_work
        self.reader = reader
        self.model_version = model_version
        self.policies = dict(policies)
        self.aoa = dict(aoa)
        # scene id -> [lock, users]: two deliveries of one event in flight at once run one after the other,
        # so the second finds the first's run marker (a duplicate) instead of inferring again and writing
        # the same product files concurrently
        self._scene_locks: dict[str, list] = {}
        self._scene_locks_guard = threading.Lock()

    def jobs_for(self, scene: Scene, uow: UnitOfWork, skipped: dict | None = None,
                 changes: dict | None = None) -> list[HazardJob]:
        """The hazard jobs that apply to ``scene``; deforestation needs an earlier scene of the footprint
        (hazards skipped for want of one are added to ``skipped``); S1 flood takes a pre-event scene when one
        is found (per hazard, what change detection did is put in ``changes``)."""
        jobs = []
        for h in scene.hazards:
            hm = model_for(scene.sensor, h)
            reason = unsupported_reason(scene, h)
            if hm is None or reason is not None:
                if hm is not None:  # a model exists, not for this scene's level: record why
                    log.info("scene %s: %s skipped: %s", scene.id, h, reason)
                    uow.scenes.record_skip(scene.id, h, reason)
                    if skipped is not None:
                        skipped[h] = {"status": "skipped", "model": hm.model, "reason": reason}
                continue
            pre = None
            if hm.kind == "bitemporal":
                pre = uow.scenes.previous(scene)
                if pre is None:
                    reason = f"no earlier {scene.level} scene of this footprint to compare with"
                    log.info("scene %s: %s skipped: %s", scene.id, h, reason)
                    uow.scenes.record_skip(scene.id, h, reason)
                    if skipped is not None:
                        skipped[h] = {"status": "no_earlier_scene", "model": hm.model, "reason": reason}
                    continue
            elif hm.change_gate:
                pre, change = pre_event_scene(self.s, self.assets, scene, uow)
                if changes is not None:
                    changes[h] = change
            jobs.append(HazardJob(h, hm.model, getattr(self.s, hm.threshold_setting), hm.kind, self.s.mining_stride,
                                  pre, hm.excluded_flag, pre_cloud_mask=self._pre_cloud_mask(scene, pre)))
        return jobs

    def _product_paths(self, scene: Scene, jobs: list[HazardJob]) -> dict[str, str]:
        """Likelihood + exclusion GeoTIFF per hazard under ``products_dir/<scene id>/`` (written while tiling)."""
        if not self.s.write_products:
            return {}
        d = self.s.products_dir / scene.id
        d.mkdir(parents=True, exist_ok=True)
        return {j.hazard: str(d / likelihood_file(j.hazard)) for j in jobs}

    def _start_quicklook(self, scene: Scene, grid, products: dict[str, str]):
        """The scene's quicklook COG (display bands of the input; served as raster tiles, listed in the STAC
        products collection), written in a thread while the scene is tiled: it needs no inference, and in
        the tail of a scene it left a core idle (docs/performance.md). Returns the thread, or None."""
        if not products:
            return None
        import threading

        from terrawatch.products.quicklook import write_quicklook

        def run() -> None:
            try:
                write_quicklook(scene, grid, self.s.products_dir / scene.id / QUICKLOOK_FILE)
            except Exception:  # noqa: BLE001 - the quicklook is for display; detections must still be stored
                log.warning("scene %s: quicklook not written", scene.id, exc_info=True)

        t = threading.Thread(target=run, name=f"quicklook-{scene.id[:40]}", daemon=True)
        t.start()
        return t

    def _finish_products(self, products: dict[str, str], quicklook) -> None:
        """Likelihood GeoTIFFs -> COGs with overviews; wait for the quicklook. A product failure is logged,
        never fails the scene."""
        from terrawatch.products.cog import LIKELIHOOD_RESAMPLING, to_cog

        for path in products.values():
            to_cog(path, resampling=LIKELIHOOD_RESAMPLING)  # band 1 likelihood averaged, band 2 flags by majority
        if quicklook is not None:
            quicklook.join()

    def process(self, scene: Scene) -> SceneOutcome:
        """Process ``scene`` (see :meth:`_process`), one delivery of a scene id at a time per process."""
        with self._scene_locks_guard:
            entry = self._scene_locks.setdefault(scene.id, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                return self._process(scene)
        finally:
            with self._scene_locks_guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._scene_locks[scene.id]

    def _process(self, scene: Scene) -> SceneOutcome:
        reasons = {h: unsupported_reason(scene, h) for h in scene.hazards}
        if all(reasons.values()):
            raise UnsupportedScene("; ".join(f"{h}: {r}" for h, r in reasons.items()))
        skipped: dict[str, dict] = {}
        tc = time.perf_counter()
        with self.unit_of_work("check") as uow:
            uow.scenes.upsert(scene)  # idempotent; a later scene may need it as its pre-event reference
            changes: dict[str, dict] = {}
            jobs = self.jobs_for(scene, uow, skipped, changes)
            run_tag = reprocess_tag(scene)  # a re-processing run gets its own version (service/reprocess.py)
            versions = {j.hazard: f"{j.model}:{self.model_version(j.model)}" + (f"#{run_tag}" if run_tag else "")
                        for j in jobs}
            todo = [j for j in jobs if not uow.scenes.run_exists(scene.id, j.hazard, versions[j.hazard])]
            if todo or not jobs:
                uow.scenes.set_status(scene.id, "processing", hazards=skipped)
        jobs, out = todo, SceneOutcome(scene.id, "processed" if todo else "duplicate", hazard_status=skipped)
        if not jobs:
            if skipped and out.outcome == "duplicate" and not versions:  # nothing could run: say why
                with self.unit_of_work("status") as uow:
                    uow.scenes.set_status(scene.id, "processed", reason="; ".join(
                        f"{h}: {v['status']}" for h, v in skipped.items()))
                out.outcome = "processed"
            return out
        t0 = time.perf_counter()
        check_s = t0 - tc
        self.assets.check_scene(scene)
        with self.reader(scene) as reader:
            grid = reader.grid
        t_open = time.perf_counter()
        jobs = self._clip_to_aoa(scene, jobs, grid, out)
        if not jobs:  # every hazard asked for lies outside its model's area of applicability
            with self.unit_of_work("status") as uow:
                uow.scenes.finish(scene.id, "outside_aoa", out.hazard_status)
            out.outcome = "outside_aoa"
            return out
        log.info("scene %s: tiling %dx%d px for %s", scene.id, grid.width, grid.height,
                 ", ".join(versions[j.hazard] for j in jobs))
        products = self._product_paths(scene, jobs)
        quicklook = self._start_quicklook(scene, grid, products)
        t_mask = time.perf_counter()
        cloud_mask, mask_status = self._cloud_mask(scene, grid)
        mask_s = time.perf_counter() - t_mask  # its own stage, not part of tiling_wall
        if mask_status is not None:
            out.stages["cloud_mask"] = mask_s
        try:
            tiled = self.tiler.run(scene, grid, jobs, self.s.tile_size, self.s.tile_overlap,
                                   datetime.now(timezone.utc).isoformat(), products, cloud_mask)
        except BaseException:
            if quicklook is not None:
                quicklook.join()  # it writes under the scene's products dir: never leave it running
            raise
        if tiled.valid_pixels == 0:
            if quicklook is not None:
                quicklook.join()
            raise NoValidPixels(f"no valid pixels: every pixel of the {grid.width}x{grid.height} px scene is "
                                "NaN or nodata in at least one band")
        t_tiled = time.perf_counter()
        self._finish_products(products, quicklook)
        fusion = fuse_flood(self.s, self.unit_of_work, scene, products)
        t1 = time.perf_counter()
        dets = {j.hazard: to_detections(tiled.parts[j.hazard], grid.transform, grid.crs, j.hazard,
                                        self.s.min_mapping_unit_ha) for j in jobs}
        water: dict[str, dict] = {}  # per flood hazard: observed water and the history's coverage
        for j in jobs:
            if STEP_REFERENCE_WATER in model_for(scene.sensor, j.hazard).steps:
                # flood = observed water minus reference (permanent/seasonal) water, like GFM: a loaded layer
                # and the water of other acquisitions of the place (history, docs/alerting.md)
                observed = (shapely.union_all([d.geometry for d in dets[j.hazard]]) if dets[j.hazard] else None)
                with self.unit_of_work("reference") as uow:
                    ref = uow.reference.water(scene.footprint)
                    hist, hist_cov = uow.reference.history(
                        scene, timedelta(days=max(HISTORY_MIN_GAP_DAYS, self.policies[j.hazard].merge_window_days)))
                water[j.hazard] = {"observed": observed, "history_coverage": hist_cov}
                log.info("scene %s: %s reference water: %d layer feature(s), history %s", scene.id, j.hazard,
                         len(ref), "none" if hist_cov is None else
                         f"{0 if hist is None else hist.area:.3g} deg2 of water over {hist_cov.area:.3g} deg2 observed")
                if dets[j.hazard]:
                    dets[j.hazard] = subtract_reference(dets[j.hazard], ref + ([hist] if hist is not None else []),
                                                        self.s.min_mapping_unit_ha)
        t2 = time.perf_counter()
        stored = 0
        for j in jobs:
            # the scene's status for this hazard commits with its run marker (and the hazards not run)
            out.hazard_status[j.hazard] = {"status": "processed", "model": versions[j.hazard],
                                           "detections": len(dets[j.hazard]),
                                           "pixels_outside_aoa": tiled.outside_aoa.get(j.hazard, 0),
                                           **({"cloud_mask": mask_status} if mask_status else {}),
                                           **({"change_detection": changes[j.hazard]} if j.hazard in changes else {}),
                                           **({"fusion": fusion} if fusion and j.hazard == "flood" else {})}
            status = {h: v for h, v in out.hazard_status.items() if h == j.hazard or v["status"] != "processed"}
            counts = self._store(scene, j.hazard, versions[j.hazard], dets[j.hazard], tiled.tiles, status,
                                 alert_evidence(changes.get(j.hazard)), water.get(j.hazard), run_tag)
            if counts is None:  # the same event was in flight twice: the first stored it, this one is a no-op
                log.info("scene %s: %s run %s already stored by another delivery", scene.id, j.hazard,
                         versions[j.hazard])
                continue
            stored += 1
            created, updated, enq = counts
            TILES.labels(j.hazard).inc(tiled.tiles)
            out.detections += len(dets[j.hazard])
            out.alerts_created += created
            out.alerts_updated += updated
            out.webhooks_enqueued += enq
            DETECTIONS.labels(j.hazard).inc(len(dets[j.hazard]))
            if tiled.outside_aoa.get(j.hazard):
                PIXELS_OUTSIDE_AOA.labels(j.hazard).inc(tiled.outside_aoa[j.hazard])
        t3 = time.perf_counter()
        if not stored:
            out.outcome = "duplicate"
        out.tiles = tiled.tiles
        out.stages = {**out.stages, "check": check_s, "open": t_open - t0, "read": tiled.read_s,
                      "infer": tiled.infer_s, "tiling_wall": t_tiled - t_open - mask_s,
                      "products": t1 - t_tiled, "vectorize": t2 - t1, "store": t3 - t2}
        for stage in out.stages:  # cloud_mask: only for S2 L1C scenes with the mask on
            STAGE_SECONDS.labels(stage).observe(out.stages[stage])
        return out

    def _cloud_mask(self, scene: Scene, grid) -> tuple[str | None, dict | None]:
        """The S2 L1C scene's cloud/shadow mask (products/cloud_mask.py), computed once before tiling: (path the
        tile actors read, status for hazard_status), or (None, None) for other scenes or with the setting off.
        A failed mask does not lose the scene: it is processed without one and its hazard_status says so."""
        if scene.sensor is not Sensor.S2 or scene.level != "L1C" or not self.s.l1c_cloud_mask:
            return None, None
        from terrawatch.products.cloud_mask import FILENAME, write_cloud_mask

        try:
            m = write_cloud_mask(scene, grid, self.s.products_dir / scene.id / FILENAME)
        except Exception as exc:  # noqa: BLE001 - a missing mask degrades the scene, it must not lose it
            log.warning("scene %s: cloud mask failed, processed WITHOUT a cloud mask: %s", scene.id, exc,
                        exc_info=True)
            return None, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]}
        log.info("scene %s: cloud mask %.2f %% cloud/shadow (%s, %.0f m, thin cirrus %.2f %% not masked) in %.2f s",
                 scene.id, 100 * m.share, m.cloud_source, m.gsd_m, 100 * m.thin_share, m.seconds)
        return str(m.path), {"status": "applied", "share": round(m.share, 4), "gsd_m": round(m.gsd_m, 1),
                             "source": m.cloud_source}

    def _pre_cloud_mask(self, scene: Scene, pre: dict | None) -> str | None:
        """The pre-event L1C scene's cloud mask written when it was processed (None: not L1C, mask off, or none)."""
        if pre is None or scene.sensor is not Sensor.S2 or scene.level != "L1C" or not self.s.l1c_cloud_mask:
            return None
        from terrawatch.products.cloud_mask import FILENAME

        pid = str(pre.get("id") or "")
        if pid in ("", ".", "..") or "/" in pid:
            return None
        path = self.s.products_dir / pid / FILENAME
        return str(path) if path.is_file() else None

    def _clip_to_aoa(self, scene: Scene, jobs: list[HazardJob], grid, out: SceneOutcome) -> list[HazardJob]:
        """Drop jobs whose model's AoA misses the scene (recorded in ``out.hazard_status``, counted in
        terrawatch_scenes_outside_aoa_total); give partly covered jobs the AoA in the grid's CRS."""
        from rasterio.warp import transform_geom
        from shapely.geometry import mapping

        kept = []
        for j in jobs:
            where, part = relate(scene.footprint, self.aoa[j.model])
            if where == OUTSIDE:
                out.hazard_status[j.hazard] = {"status": "outside_aoa", "model": j.model,
                                               "pixels_outside_aoa": grid.width * grid.height}
                SCENES_OUTSIDE_AOA.labels(j.hazard).inc()
                PIXELS_OUTSIDE_AOA.labels(j.hazard).inc(grid.width * grid.height)
                log.info("scene %s: outside the area of applicability of %s, %s not inferred", scene.id, j.model,
                         j.hazard)
                continue
            if where == PARTIAL:
                j = replace(j, aoa=transform_geom("EPSG:4326", grid.crs, mapping(part)))
            kept.append(j)
        return kept

    def _store(self, scene: Scene, hazard: str, version: str, dets: list[Detection], n_tiles: int,
               hazard_status: dict[str, dict], evidence: dict | None = None, water: dict | None = None,
               run_tag: str | None = None) -> tuple[int, int, int] | None:
        """Store one hazard's run in one transaction: (alerts created, updated, webhooks enqueued), or None
        when that run is already stored (a duplicate delivery that was in flight at the same time).
        ``evidence``: added to the context of every alert the run creates or updates. ``water`` (flood):
        the observed water (recorded for the history) and the history's coverage. ``run_tag``: a
        re-processing run, which replaces the scene's earlier runs in its alerts (service/reprocess.py)."""
        policy = self.policies[hazard]
        steps = model_for(scene.sensor, hazard).steps
        created = updated = enqueued = 0
        with self.unit_of_work("scene") as uow:
            uow.scenes.lock(f"{scene.id}/{hazard}/{version}")
            if uow.scenes.run_exists(scene.id, hazard, version):  # another delivery (or worker) stored it first
                return None
            uow.scenes.upsert(scene)
            if water is not None:
                uow.reference.save_observed_water(scene, version, water["observed"])
            affected = uow.detections.supersede(scene.id, hazard, version) if run_tag else set()
            ids = uow.detections.add(scene, version, dets)
            uow.scenes.add_run(scene.id, hazard, version, n_tiles, len(dets))
            uow.scenes.finish(scene.id, "processed", hazard_status)
            alerted: list[Alert] = []
            for group in cluster([d.geometry for d in dets], policy.merge_distance_m):
                geom = as_multipolygon(shapely.union_all([dets[i].geometry for i in group]))
                area = sum(dets[i].area_ha for i in group)
                lk = sum(dets[i].likelihood * dets[i].area_ha for i in group) / max(area, 1e-9)
                if not admits(area, lk, policy):
                    continue
                extra = {**(evidence or {}), **({"legality": uow.reference.legality(geom)} if STEP_LEGALITY in steps else {})}
                known = True
                if STEP_REFERENCE_WATER in steps:  # is this water known not to be permanent water?
                    source = reference_source(uow, geom, evidence, (water or {}).get("history_coverage"))
                    known = source is not None
                    extra["reference_water"] = source or "unknown"
                alert, action = self._merge_or_create(uow, scene, hazard, geom, area, lk, policy, extra, known)
                uow.detections.link(alert.id, [ids[i] for i in group])
                if run_tag and action == "same_acquisition":  # re-derived below from what supports it now
                    affected.add(alert.id)
                    continue
                if action == "same_acquisition":
                    ALERTS.labels(hazard, action).inc()
                    continue
                is_new = action == "created"
                created += is_new
                updated += not is_new
                event_type = "alert.created" if is_new else "alert.updated"
                enqueued += len(fan_out(uow, alert, event_type, policy, self.s.cap_sender))
                alerted.append(alert)
                ALERTS.labels(hazard, action).inc()
            if affected:
                u, enq = rebuild_alerts(uow, affected, policy, self.s.cap_sender, run_tag, evidence,
                                        (water or {}).get("history_coverage"), STEP_REFERENCE_WATER in steps)
                updated += u
                enqueued += enq
        now = datetime.now(timezone.utc)
        for _ in alerted:
            SENSING_TO_ALERT_SECONDS.labels(hazard).observe((now - scene.sensing_time).total_seconds())
        return created, updated, enqueued

    def _merge_or_create(self, uow: UnitOfWork, scene: Scene, hazard: str, geom, area: float, lk: float,
                         policy: HazardPolicy, extra: dict, reference_known: bool = True) -> tuple[Alert, str]:
        """Load the nearest open alert, let :func:`merge_cluster` decide, save. Returns (alert, action)."""
        existing = uow.alerts.mergeable(hazard, geom, policy.merge_distance_m,
                                        scene.sensing_time - timedelta(days=policy.merge_window_days),
                                        [s.value for s in OPEN_STATUSES])
        acq = Acquisition(scene.platform, scene.sensor.value, scene.sensing_time, (scene.id,))
        decision = merge_cluster(existing, Cluster(geom, area, lk, acq), policy, reference_known)
        a = decision.alert
        if decision.action == "same_acquisition":
            # nothing rises and no new version (no webhook); only the extra scene id is kept
            uow.alerts.set_context(a.id, a.context)
            return a, "same_acquisition"
        a.context = {**a.context, **extra}
        a.updated_at = datetime.now(timezone.utc)
        if decision.action == "create":
            a.created_at = a.updated_at
            uow.alerts.insert(a)
            uow.alerts.add_event(a.id, "pipeline", None, a.status, decision.reason, a.version)
            return a, "created"
        uow.alerts.update(a)
        uow.alerts.add_event(a.id, "pipeline", existing.status, a.status, decision.reason, a.version)
        return a, "updated"
