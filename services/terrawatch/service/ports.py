"""The worker's ports: what :class:`terrawatch.service.worker.Worker` needs from the outside world.

One real implementation of each is built by :mod:`terrawatch.service.bootstrap` (Kafka in ``ingest/``,
Ray in ``tiling/``, Triton in ``inference/``, PostGIS in ``store/``); unit tests pass in-memory fakes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from terrawatch.domain.jobs import HazardJob, SceneTiles
    from terrawatch.domain.scene import Scene

Probe = Callable[[], object]
"""A readiness probe: returns a detail, raises when the dependency is not ready."""
Probes = Mapping[str, Probe]
"""Readiness probes by dependency name (``postgis``, ``triton``, ``ray``), in the order an unexplained
error is checked in."""
ModelVersionLookup = Callable[[str], str]
"""Model name (a key of ``inference.triton.MODELS``) -> the version served (raises DependencyUnavailable)."""


class Tiler(Protocol):
    """Runs hazard models over a scene's tiles (``tiling.ray_tiler.RayTiler``), for the scene pipeline."""

    def run(self, scene: Scene, grid, jobs: list[HazardJob], tile_size: int, overlap: int, now_iso: str,
            products: dict[str, str] | None = None, cloud_mask: str | None = None) -> SceneTiles: ...
    def check_cluster(self) -> None: ...


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
    (``topic[partition]@offset``) once the broker has it; raises ``ingest.dlq.DlqWriteError`` otherwise."""

    def send(self, msg: Message, reason: str, code: str, attempts: int, stop: threading.Event,
             dependency: str | None = None) -> str: ...
    def flush(self, timeout_s: float) -> None: ...


class UrlPolicy(Protocol):
    def check_url(self, url: str) -> None: ...


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
