"""The ports of the worker and the scene pipeline: what :class:`terrawatch.service.worker.Worker` and
:class:`terrawatch.service.pipeline.ScenePipeline` need from the outside world.

One real implementation of each is built by :mod:`terrawatch.service.bootstrap` (Kafka in ``ingest/``,
Ray in ``tiling/``, Triton in ``inference/``, PostGIS in ``store/``, rasterio in ``imagery/``); unit tests
pass in-memory fakes (``tests/unit/fakes.py``). This module imports only ``domain/``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from terrawatch.domain.alerts import Alert
    from terrawatch.domain.jobs import HazardJob, SceneTiles
    from terrawatch.domain.polygons import Detection
    from terrawatch.domain.scene import Scene

Probe = Callable[[], object]
"""A readiness probe: returns a detail, raises when the dependency is not ready."""
Probes = Mapping[str, Probe]
"""Readiness probes by dependency name (``postgis``, ``triton``, ``ray``), in the order an unexplained
error is checked in."""
ModelVersionLookup = Callable[[str], str]
"""Model name (a key of ``inference.triton.MODELS``) -> the version served (raises DependencyUnavailable)."""
EventResolver = Callable[[bytes | str, Callable[[str], None] | None], bytes | str]
"""(raw event, URL check) -> a terrawatch scene event (``imagery.stac.resolve_event``: reference events and foreign
STAC Items resolved; raises InvalidEvent or TransientError)."""
OutageTest = Callable[[BaseException], bool]
"""Whether an error means PostGIS dropped the connection (``store.uow.is_db_outage``)."""


def as_is(raw: bytes | str, check_url: Callable[[str], None] | None = None) -> bytes | str:
    """An :data:`EventResolver` that resolves nothing (the event is already a terrawatch scene event)."""
    return raw


def never_outage(exc: BaseException) -> bool:
    """An :data:`OutageTest` for a process without a database."""
    return False



class Tiler(Protocol):
    """Runs hazard models over a scene's tiles (``tiling.ray_tiler.RayTiler``), for the scene pipeline."""

    def run(self, scene: Scene, grid, jobs: list[HazardJob], tile_size: int, overlap: int, now_iso: str,
            products: dict[str, str] | None = None, cloud_mask: str | None = None) -> SceneTiles: ...
    def check_cluster(self) -> None: ...


class SceneGrid(Protocol):
    """The grid a scene is read onto (``imagery.reader.Grid``): ``transform`` an affine.Affine from
    pixel (col, row) to ``crs`` coordinates; ``width`` x ``height`` pixels."""

    width: int
    height: int
    transform: Any
    crs: Any


class OpenScene(Protocol):
    """An opened scene (``imagery.reader.SceneReader``), a context manager; only its ``grid`` is read here."""

    grid: SceneGrid

    def __enter__(self) -> OpenScene: ...
    def __exit__(self, exc_type, exc, tb) -> object: ...


ReaderFactory = Callable[["Scene"], OpenScene]
"""Scene -> an :class:`OpenScene` (``imagery.reader.SceneReader``)."""


class SceneRepository(Protocol):
    """Scene rows, run markers (``(scene_id, hazard, model_version)``), skipped hazards, status, and the
    earlier scenes a scene pairs with (``store.repositories.Scenes``). Items are STAC Item dicts."""

    def lock(self, key: str) -> None: ...
    def upsert(self, scene: Scene) -> None: ...
    def run_exists(self, scene_id: str, hazard: str, model_version: str) -> bool: ...
    def add_run(self, scene_id: str, hazard: str, model_version: str, tiles: int, detections: int) -> None: ...
    def record_skip(self, scene_id: str, hazard: str, reason: str) -> None: ...
    def set_status(self, scene_id: str, status: str, reason: str | None = None, hazards: dict | None = None,
                   dlq_ref: str | None = None) -> None: ...
    def finish(self, scene_id: str, status: str, hazards: dict) -> str: ...
    def previous(self, scene: Scene, min_overlap: float = 0.5) -> dict | None: ...
    def pre_event_s1(self, scene: Scene, max_age: timedelta, min_overlap: float = 0.5) -> tuple[dict | None, str]: ...
    def flood_partners(self, scene: Scene, window: timedelta, min_overlap: float = 0.25,
                       limit: int = 20) -> list[tuple[str, datetime]]: ...


class DetectionRepository(Protocol):
    """A run's detections (lon/lat) and their links to alerts (``store.repositories.Detections``)."""

    def add(self, scene: Scene, model_version: str, dets: Iterable[Detection]) -> list[int]: ...
    def link(self, alert_id: uuid.UUID, detection_ids: list[int]) -> None: ...
    def supersede(self, scene_id: str, hazard: str, model_version: str) -> set[uuid.UUID]: ...
    def supporting(self, alert_id: uuid.UUID) -> list[dict]: ...


class AlertRepository(Protocol):
    """Alerts and their lifecycle events (``store.repositories.Alerts``)."""

    def mergeable(self, hazard: str, geom: BaseGeometry, distance_m: float, since: datetime,
                  open_statuses: Iterable[str]) -> Alert | None: ...
    def get(self, alert_id: uuid.UUID, for_update: bool = False) -> Alert | None: ...
    def insert(self, a: Alert) -> None: ...
    def update(self, a: Alert) -> None: ...
    def set_context(self, alert_id: uuid.UUID, context: dict) -> None: ...
    def add_event(self, alert_id: uuid.UUID, actor: str, src: str | None, dst: str, reason: str,
                  alert_version: int | None = None) -> None: ...
    def events(self, alert_id: uuid.UUID) -> list[dict]: ...
    def confirmed_by_pipeline(self, alert_id: uuid.UUID) -> bool: ...


class ReferenceRepository(Protocol):
    """Reference water (a loaded layer, the archive's history) and mining legality, lon/lat
    (``store.repositories.Reference``)."""

    def water(self, footprint: BaseGeometry) -> list[BaseGeometry]: ...
    def water_covers(self, geom: BaseGeometry) -> bool: ...
    def history(self, scene: Scene, min_gap: timedelta) -> tuple[BaseGeometry | None, BaseGeometry | None]: ...
    def save_observed_water(self, scene: Scene, model_version: str, water: BaseGeometry | None) -> None: ...
    def legality(self, geom: BaseGeometry) -> dict: ...


class OutboxRepository(Protocol):
    """Matching subscribers and webhook outbox rows (``store.repositories.Outbox``)."""

    def matching_subscribers(self, alert: Alert, confidence_ranks: dict[str, int]) -> list[dict]: ...
    def has_delivery(self, alert_id: uuid.UUID, subscriber_id: uuid.UUID) -> bool: ...
    def sent_payloads(self, alert_id: uuid.UUID, subscriber_id: uuid.UUID, content_type: str) -> list[str]: ...
    def enqueue(self, alert: Alert, subscriber_id: uuid.UUID, event_type: str, payload: str, content_type: str,
                msg_id: str | None = None) -> str: ...


class UnitOfWork(Protocol):
    """One transaction and its repositories (``store.uow.UnitOfWork``): a context manager that commits on a
    clean exit and rolls back on an exception."""

    scenes: SceneRepository
    detections: DetectionRepository
    alerts: AlertRepository
    reference: ReferenceRepository
    outbox: OutboxRepository
    conn: Any
    """The transaction's connection, for a use case's ``audit(conn, target, details)`` callback."""

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, exc_type, exc, tb) -> object: ...


UnitOfWorkFactory = Callable[[str], UnitOfWork]
"""Operation label (``check``, ``status``, ``reference``, ``fusion``, ``scene``; docs/metrics.md) -> a new
:class:`UnitOfWork` (``store.uow.uow_factory``)."""


class Message(Protocol):
    """One consumed event (a confluent-kafka ``Message``)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class SceneConsumer(Protocol):
    """The scenes topic as a consumer-group member (``ingest.kafka_io.SceneConsumer``)."""

    on_revoke: Callable[[list[tuple[str, int]]], None] | None
    """Called from :meth:`poll` with the (topic, partition) pairs being revoked, while still assigned."""

    def membership(self) -> str: ...
    def subscribe(self) -> None: ...
    def poll(self, timeout_s: float, log_errors: bool = True) -> Message | None: ...
    def commit(self, msg: Message, stop: threading.Event) -> None: ...
    def hold(self, msg: Message) -> None: ...
    def pause_all(self) -> None: ...
    def resume_all(self) -> None: ...
    def lag(self) -> dict[int, int]: ...
    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    """The DLQ writer (``ingest.dlq.DlqSink``). ``send`` returns the record's reference
    (``topic[partition]@offset``) once the broker has it; raises ``domain.errors.DlqWriteError`` otherwise."""

    def send(self, msg: Message, reason: str, code: str, attempts: int, stop: threading.Event,
             dependency: str | None = None) -> str: ...
    def flush(self, timeout_s: float) -> None: ...


class DlqLog(Protocol):
    """The DLQ topic as the operators' use cases read it (``service.dlq.KafkaDlqLog`` on ``ingest.dlq``): records
    are ``(partition, offset, record)`` with ``record`` an ``ingest.dlq.DlqRecord``, oldest first per partition."""

    def read(self, wanted: dict[int, set[int]] | None = None, limit: int = 100) -> list[tuple[int, int, Any]]: ...
    def watermarks(self) -> dict[int, tuple[int, int]]: ...
    def republish(self, records: list) -> None: ...


class DlqStates(Protocol):
    """What operators did with DLQ entries (``service.dlq.PostgisDlqStates`` on ``store.dlq_state``), keyed by
    (partition, offset); ``transaction()`` is a context manager whose value is passed to ``mark`` and to the
    caller's audit callback (one transaction)."""

    def states(self, positions: list[tuple[int, int]]) -> dict[tuple[int, int], dict]: ...
    def not_pending(self, ranges: dict[int, tuple[int, int]]) -> dict[str, int]: ...
    def positions_in_state(self, state: str, ranges: dict[int, tuple[int, int]],
                           limit: int) -> list[tuple[int, int]]: ...
    def earlier_redriven(self, source_key: str, position: tuple[int, int], before: datetime | None) -> list[dict]: ...
    def transaction(self) -> Any: ...
    def mark(self, conn: Any, partition: int, offset: int, state: str, actor: str, at: datetime,
             error_code: str | None = None, kind: str | None = None, source_key: str | None = None) -> None: ...


class UrlPolicy(Protocol):
    def check_url(self, url: str) -> None: ...


class AssetChecks(UrlPolicy, Protocol):
    """Which hrefs an event may make us open (``imagery.asset_policy.AssetPolicy``): raises UnreadableAsset."""

    def check_scene(self, scene: Scene) -> None: ...


class SceneOutcome(Protocol):
    """What the worker reads of a processed scene (``service.pipeline.SceneOutcome``)."""

    scene_id: str
    outcome: str  # processed | duplicate | outside_aoa
    tiles: int
    detections: int
    alerts_created: int
    alerts_updated: int


class SceneProcessor(Protocol):
    """One scene end to end (``service.pipeline.ScenePipeline``); ``assets`` vets the hrefs of an event."""

    assets: UrlPolicy

    def process(self, scene: Scene) -> SceneOutcome: ...


class WorkerStore(Protocol):
    """What the worker itself reads and writes in PostGIS (``service.bootstrap.PostgisWorkerStore``)."""

    def consumption_paused(self) -> bool: ...
    def mark_failed(self, scene: Scene, reason: str, dlq_ref: str | None) -> None: ...


class Redriver(Protocol):
    """Automatic re-drive of transient DLQ entries (``service.auto_redrive.TransientRedriver``)."""

    def backlog(self) -> int: ...
    def run(self) -> list[str]: ...
    def close(self) -> None: ...


class ErrorModel(Protocol):
    """How the compute runtime's errors read (``tiling.ray_tiler``): unwrap a remote task's error to its
    cause, describe one in a line."""

    def unwrap(self, exc: BaseException) -> BaseException: ...
    def describe(self, exc: BaseException) -> str: ...


class PlainErrors:
    """An :class:`ErrorModel` for errors raised in this process."""

    @staticmethod
    def unwrap(exc: BaseException) -> BaseException:
        return exc

    @staticmethod
    def describe(exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}"
