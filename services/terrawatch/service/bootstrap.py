"""The composition root of the pipeline processes (``terrawatch run`` and ``terrawatch dispatch``) and of the
runbook's services (:func:`build_runbook`, for the API and the CLI): builds the real adapters (Kafka, Ray, Triton, PostGIS, the webhook HTTP client) once per process and wires them into the
worker, the scene pipeline, the DLQ depth reporter and the dispatcher. Nothing else constructs them for
these; unit tests build a ``Worker`` or a ``ScenePipeline`` from in-memory fakes of the ports in
:mod:`terrawatch.service.ports` instead."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from terrawatch.store.db import Engine

from terrawatch.domain.scene import Scene
from terrawatch.settings import Settings
from terrawatch.service.ports import ModelVersionLookup, Tiler
from terrawatch.service.worker import Worker

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from terrawatch.alerting.dispatcher import Dispatcher
    from terrawatch.domain.alerts import HazardPolicy
    from terrawatch.service.dlq import DepthReporter
    from terrawatch.service.pipeline import ScenePipeline
    from terrawatch.service.runbook import ProducerFactory, Runbook


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


def build_runbook(settings: Settings, engine: Engine, *, read_engine: Engine | None = None,
                  producer: ProducerFactory | None = None) -> Runbook:
    """The runbook's services (:mod:`terrawatch.service.runbook`), once per process: the API's (``ApiDeps.runbook``:
    its write and read pools, its shared producer) and the CLI's (``cli/root.cli_runbook``: ``settings.db_url``,
    a producer built on first publish). Nothing connects here."""
    from terrawatch.service.runbook import build

    return build(settings, engine, read_engine=read_engine, producer=producer)


def worker_pool(settings: Settings) -> Engine:
    """The pipeline process' one PostGIS pool (``TERRAWATCH_WORKER_DATABASE_URL``), shared by the worker, the
    scene pipeline's units of work, the DLQ depth reporter and the dispatcher."""
    from terrawatch.store.uow import create_pool

    return create_pool(settings.worker_db_url)


def build_dispatcher(settings: Settings, engine: Engine) -> Dispatcher:
    """The webhook dispatcher on ``engine`` with its HTTP client (``TERRAWATCH_WEBHOOK_*`` settings)."""
    from terrawatch.alerting.dispatcher import Dispatcher, webhook_client

    return Dispatcher(settings, engine, http=webhook_client(settings.webhook_timeout_s,
                                                            max(1, settings.webhook_workers)))


@dataclass
class PipelineProcess:
    """What ``terrawatch run`` runs: the worker, the DLQ depth reporter and (``--dispatch``) the dispatcher
    on a thread, all on one PostGIS pool."""

    worker: Worker
    depth: DepthReporter
    dispatcher: Dispatcher | None = None
    thread: threading.Thread | None = field(default=None, init=False)

    def run(self, max_idle_s: float | None = None) -> None:
        """Start the depth reporter and the dispatcher's thread, consume until stopped (or idle for
        ``max_idle_s`` s), then stop the dispatcher (its attempts in flight finish on its thread)."""
        self.depth.start()  # terrawatch_dlq_depth
        self.worker.install_signal_handlers()
        if self.dispatcher is not None:
            self.thread = threading.Thread(target=self.dispatcher.run_forever, daemon=True, name="dispatcher")
            self.thread.start()
        try:
            self.worker.run(max_idle_s=max_idle_s)
        finally:
            if self.dispatcher is not None:
                self.dispatcher.stop()


def build_run(settings: Settings, dispatch: bool = True) -> PipelineProcess:
    """``terrawatch run``: one PostGIS pool; the static webhook subscribers synced; the worker
    (:func:`build_worker`); the DLQ depth reporter; the dispatcher when ``dispatch``."""
    from terrawatch.service.dlq import DepthReporter
    from terrawatch.service.subscriptions import sync_static

    engine = worker_pool(settings)
    sync_static(engine, settings)
    worker = build_worker(settings, engine)
    return PipelineProcess(worker, DepthReporter(settings, engine, settings.dlq_depth_interval_s),
                           build_dispatcher(settings, engine) if dispatch else None)


def build_worker(settings: Settings, engine: Engine | None = None, max_attempts: int = 3,
                 retry_base_s: float = 2.0) -> Worker:
    """A worker on the real services named by ``settings``: joins the Ray cluster, starts the tile actors,
    opens the Kafka consumer and producer; ``engine``: the process' PostGIS pool (default: a new
    :func:`worker_pool`)."""
    from terrawatch.inference.triton import ModelVersions, triton_ready
    from terrawatch.ingest import kafka_io
    from terrawatch.ingest.dlq import DlqSink
    from terrawatch.imagery.stac import resolve_event
    from terrawatch.store.uow import is_db_outage, probe_db
    from terrawatch.tiling.ray_cluster import RayErrors, join_cluster
    from terrawatch.tiling.ray_tiler import RayTiler

    join_cluster(settings.ray, settings.ray_driver_env)
    tiler = RayTiler(settings.triton, workers=settings.tile_workers, batch=settings.triton_batch,
                     max_in_flight=settings.max_in_flight_tiles, address=settings.ray)
    engine = engine if engine is not None else worker_pool(settings)
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
                  probes=probes, redriver=redriver, errors=RayErrors(), resolve=resolve_event,
                  db_outage=is_db_outage, max_attempts=max_attempts,
                  retry_base_s=retry_base_s)
