"""The composition root: builds the real adapters (Kafka, Ray, Triton, PostGIS) and wires them into the
worker. Nothing else constructs them for the worker; unit tests build a ``Worker`` from in-memory fakes
of the ports in :mod:`terrawatch.service.ports` instead."""

from __future__ import annotations

from terrawatch.store.db import Engine

from terrawatch.domain.scene import Scene
from terrawatch.settings import Settings
from terrawatch.service.worker import Worker


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


def build_worker(settings: Settings, max_attempts: int = 3, retry_base_s: float = 2.0) -> Worker:
    """A worker on the real services named by ``settings``: joins the Ray cluster, starts the tile actors,
    opens the Kafka consumer and producer and the worker's PostGIS pool."""
    from terrawatch.inference.triton import ModelVersions, triton_ready
    from terrawatch.ingest import kafka_io
    from terrawatch.ingest.dlq import DlqSink
    from terrawatch.service.pipeline import ScenePipeline
    from terrawatch.store.uow import engine_for, probe_db
    from terrawatch.tiling.ray_cluster import RayErrors, join_cluster
    from terrawatch.tiling.ray_tiler import RayTiler

    join_cluster(settings.ray, settings.ray_driver_env)
    tiler = RayTiler(settings.triton, workers=settings.tile_workers, batch=settings.triton_batch,
                     max_in_flight=settings.max_in_flight_tiles, address=settings.ray)
    engine = engine_for(settings.worker_db_url)
    pipeline = ScenePipeline(settings, tiler, engine, ModelVersions(settings.triton))
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
