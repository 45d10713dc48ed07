"""The composition root: builds the real adapters (Kafka, Ray, Triton, PostGIS) and wires them into the
worker. Nothing else constructs them for the worker; unit tests build a ``Worker`` from in-memory fakes
of the ports in :mod:`terrawatch.service.ports` instead."""

from __future__ import annotations

from typing import TYPE_CHECKING

from terrawatch.store.db import Engine

from terrawatch.domain.scene import Scene
from terrawatch.settings import Settings
from terrawatch.service.ports import ModelVersionLookup, Tiler
from terrawatch.service.worker import Worker

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from terrawatch.domain.alerts import HazardPolicy
    from terrawatch.service.pipeline import ScenePipeline


class PostgisWorkerStore:
    """The worker's ``WorkerStore`` port on PostGIS (statements in ``store/``)."""

    def __init__(self, engine: Engine, consumer_group: str) -> None:
        self.engine, self.consumer_group = engine, consumer_group

    def consumption_paused(self) -> bool:
        from terrawatch.store.control import consumption_paused

        return consumption_paused(self.engine, self.consumer_group)

    def mark_failed(self, scene: Scene, reason: str, dlq_ref: str | None) -> None:
        from terrawatch.store.uow import mark_scene_failed

        mark_scene_failed(self.engine, scene, reason, dlq_ref)


def pipeline_config(settings: Settings) -> tuple[dict[str, HazardPolicy], dict[str, BaseGeometry]]:
    """What the scene pipeline reads from files, loaded and validated once at startup: the alert rules per
    hazard (``alerts/rules/*.yaml``; one for every registry hazard, else InvalidAlertRules) and each model's
    area of applicability, lon/lat (``models/<model>/aoa.geojson`` or ``TERRAWATCH_AOA_OVERRIDES``)."""
    from terrawatch.domain.alerts import InvalidAlertRules, load_rules
    from terrawatch.domain.aoa import load_aoa
    from terrawatch.domain.hazards import HAZARDS, REGISTRY

    # the vectorizer's minimum mapping unit stays TERRAWATCH_MIN_MAPPING_UNIT_HA; the rules' min_area_ha gates alerts
    policies = load_rules(settings.alert_rules_dir)
    missing = sorted(set(HAZARDS) - set(policies))
    if missing:
        raise InvalidAlertRules(f"no alert rule in {settings.alert_rules_dir} for hazard(s) {missing}")
    aoa = {hm.model: load_aoa(settings.aoa_overrides.get(hm.model, settings.model_repository / hm.aoa))
           for hm in REGISTRY}
    return policies, aoa


def build_pipeline(settings: Settings, tiler: Tiler, engine: Engine, model_version: ModelVersionLookup
                   ) -> ScenePipeline:
    """The scene pipeline on PostGIS (``engine``: one unit of work per transaction), rasterio scene readers,
    the asset policy of ``settings`` and the rules and areas of applicability loaded here."""
    from terrawatch.imagery.asset_policy import AssetPolicy
    from terrawatch.imagery.reader import SceneReader
    from terrawatch.service.pipeline import ScenePipeline
    from terrawatch.store.uow import uow_factory

    policies, aoa = pipeline_config(settings)
    return ScenePipeline(settings, tiler=tiler, unit_of_work=uow_factory(engine), reader=SceneReader,
                         model_version=model_version, policies=policies, aoa=aoa,
                         assets=AssetPolicy.from_settings(settings))


def build_worker(settings: Settings, max_attempts: int = 3, retry_base_s: float = 2.0) -> Worker:
    """A worker on the real services named by ``settings``: joins the Ray cluster, starts the tile actors,
    opens the Kafka consumer and producer and the worker's PostGIS pool."""
    from terrawatch.inference.triton import ModelVersions, triton_ready
    from terrawatch.ingest import kafka_io
    from terrawatch.ingest.dlq import DlqSink
    from terrawatch.store.uow import engine_for, probe_db
    from terrawatch.tiling.ray_cluster import RayErrors, join_cluster
    from terrawatch.tiling.ray_tiler import RayTiler

    join_cluster(settings.ray, settings.ray_driver_env)
    tiler = RayTiler(settings.triton, workers=settings.tile_workers, batch=settings.triton_batch,
                     max_in_flight=settings.max_in_flight_tiles, address=settings.ray)
    engine = engine_for(settings.worker_db_url)
    pipeline = build_pipeline(settings, tiler, engine, ModelVersions(settings.triton))
    probes = {  # the order is the order an unexplained error is checked in
        "postgis": lambda: probe_db(engine),
        "triton": lambda: triton_ready(settings.triton),
        "ray": tiler.check_cluster,
    }
    producer = kafka_io.producer(settings)
    redriver = None
    if settings.dlq_auto_redrive:
        from terrawatch.service.auto_redrive import TransientRedriver

        redriver = TransientRedriver(settings, engine, producer)
    return Worker(settings, pipeline=pipeline, consumer=kafka_io.SceneConsumer(settings),
                  dlq=DlqSink(producer, settings), store=PostgisWorkerStore(engine, settings.consumer_group),
                  probes=probes, redriver=redriver, errors=RayErrors(), max_attempts=max_attempts,
                  retry_base_s=retry_base_s)
