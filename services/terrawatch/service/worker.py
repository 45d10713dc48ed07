"""The pipeline worker: consume scene events, process each exactly once in effect, commit.

Offsets are committed only after a scene's results are durably in PostGIS (or
its event is durably in the DLQ). Bad input never stops the loop.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timezone

import ray
from confluent_kafka import KafkaException
from ray.exceptions import RayActorError, RayTaskError

from terrawatch.domain.errors import InvalidEvent, TerrawatchError, TransientError, UnreadableAsset
from terrawatch.domain.scene import parse_event
from terrawatch.imagery.stac import resolve_event
from terrawatch.ingest import kafka_io
from terrawatch.observability.metrics import (
    CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_INVALID, SCENES, SCENES_IN_FLIGHT,
)
from terrawatch.settings import Settings
from terrawatch.store.uow import engine_for, is_db_outage, mark_scene_failed, wait_for_db

log = logging.getLogger(__name__)

DB_OUTAGE_MAX_S = 600.0  # how long one scene waits for PostGIS to come back (s), < max.poll.interval.ms
DB_OUTAGE_WAITS = 5  # outages one scene may wait out before they count as failed attempts


def _unwrap(exc: BaseException) -> BaseException:
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        return exc.cause
    return exc


class Worker:
    def __init__(self, settings: Settings, max_attempts: int = 3, retry_base_s: float = 2.0) -> None:
        from terrawatch.inference.triton import MODELS, TritonModel
        from terrawatch.service.pipeline import ScenePipeline
        from terrawatch.tiling.ray_tiler import RayTiler

        self.s = settings
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self._stop = threading.Event()
        if not ray.is_initialized():
            ray.init(address=settings.ray, logging_level=logging.WARNING, log_to_driver=False)
        self.tiler = RayTiler(settings.triton, batch=settings.triton_batch, max_in_flight=settings.max_in_flight_tiles)
        self._versions: dict[str, tuple[float, str]] = {}

        def model_version(name: str) -> str:
            cached = self._versions.get(name)
            if cached and time.monotonic() - cached[0] < 30:
                return cached[1]
            v = TritonModel(settings.triton, MODELS[name]).model_version()
            self._versions[name] = (time.monotonic(), v)
            return v

        self.pipeline = ScenePipeline(settings, self.tiler, engine_for(settings.worker_db_url), model_version)
        self.producer = kafka_io.producer(settings)
        self.consumer = kafka_io.consumer(settings)
        self.paused = threading.Event()

    def stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, max_idle_s: float | None = None) -> None:
        """Consume until stopped (or idle for ``max_idle_s`` seconds, for batch runs)."""
        self.consumer.subscribe([self.s.scenes_topic])
        idle_since = time.monotonic()
        last_lag = last_control = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_lag > 5:
                    self._report_lag()
                    last_lag = time.monotonic()
                if time.monotonic() - last_control > self.s.control_poll_s:
                    self._apply_pause_flag()
                    last_control = time.monotonic()
                msg = self.consumer.poll(1.0)
                if msg is None:
                    if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        break
                    continue
                if msg.error():
                    log.warning("kafka error: %s", msg.error())
                    continue
                if self.paused.is_set():  # fetched before the pause took hold: rewind, handle after resume
                    self._hold(msg)
                    continue
                try:
                    self.handle(msg)
                except (_Interrupted, kafka_io.DlqWriteError) as exc:
                    log.warning("stopping before %s[%d]@%d was finished (%s); it stays uncommitted",
                                msg.topic(), msg.partition(), msg.offset(), exc)
                    break
                self._commit(msg)
                idle_since = time.monotonic()
        finally:
            self.consumer.close()
            self.producer.flush(10)

    def _commit(self, msg) -> None:
        """Commit ``msg``'s offset; retry while the broker or group coordinator is unreachable, so a
        Kafka outage never stops the worker. Other failures (the partition moved to another member)
        are not retried: the event is redelivered there and is a no-op (run marker)."""
        delay = 0.5
        while True:
            try:
                self.consumer.commit(message=msg, asynchronous=False)
                return
            except KafkaException as exc:
                err = exc.args[0]
                where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
                if not kafka_io.commit_retriable(err) or self._stop.is_set():
                    log.warning("offset commit for %s failed (%s); left to redelivery", where, err)
                    return
                log.warning("offset commit for %s failed (%s); retrying in %.1f s", where, err, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _apply_pause_flag(self) -> None:
        """Honour the ``consumption_paused`` control flag (set by POST /ops/consumption/pause).

        Paused partitions still poll, so the consumer keeps its group membership.
        """
        from terrawatch.store.control import consumption_paused

        try:
            paused = consumption_paused(self.pipeline.engine, self.s.consumer_group)
        except Exception:  # noqa: BLE001 - a flag read must not stop consumption
            log.debug("control flag read failed", exc_info=True)
            return
        parts = self.consumer.assignment()
        if paused:
            if parts:  # re-applied every check: partitions assigned by a rebalance start unpaused
                self.consumer.pause(parts)
            if not self.paused.is_set():
                self.paused.set()
                log.info("consumption paused by the control flag")
        elif self.paused.is_set():
            if parts:
                self.consumer.resume(parts)
            self.paused.clear()
            log.info("consumption resumed")

    def _hold(self, msg) -> None:
        from confluent_kafka import TopicPartition

        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self.consumer.pause([tp])
        self.consumer.seek(tp)

    def _report_lag(self) -> None:
        try:
            for part, n in kafka_io.lag(self.consumer, self.s.scenes_topic).items():
                CONSUMER_LAG.labels(self.s.scenes_topic, str(part)).set(n)
        except Exception:  # noqa: BLE001 - metrics must not stop consumption
            log.debug("lag report failed", exc_info=True)

    def handle(self, msg) -> str:
        """Process one message; return the outcome. Never raises for bad input."""
        EVENTS_CONSUMED.labels(msg.topic()).inc()
        try:  # STAC references / catalogue Items are resolved to terrawatch Items first (imagery.stac)
            scene = parse_event(resolve_event(msg.value() or b"", self.pipeline.assets.check_url))
        except (InvalidEvent, TransientError) as exc:
            return self._dead_letter(msg, exc, 1, platform="unknown")
        except Exception as exc:  # noqa: BLE001 - a poison event must never crash-loop the consumer
            return self._dead_letter(msg, InvalidEvent(f"unparseable event: {_describe(exc)}"), 1, platform="unknown")
        SCENES_IN_FLIGHT.inc()
        try:
            attempt = db_waits = 0
            while True:
                attempt += 1
                try:
                    res = self.pipeline.process(scene)
                    SCENES.labels(res.outcome, scene.platform).inc()
                    log.info("scene %s %s: %d tiles, %d detections, %d alerts", scene.id, res.outcome,
                             res.tiles, res.detections, res.alerts_created + res.alerts_updated)
                    return res.outcome
                except Exception as raw:  # noqa: BLE001 - classified below
                    exc = _unwrap(raw)
                    if isinstance(exc, TerrawatchError) and not isinstance(exc, TransientError):
                        return self._dead_letter(msg, exc, attempt, scene.platform, scene)
                    if is_db_outage(exc) and db_waits < DB_OUTAGE_WAITS and not self._stop.is_set():
                        # A PostGIS outage is not the scene's fault: wait for the database, then retry
                        # without spending an attempt (the failed transaction was rolled back).
                        db_waits += 1
                        log.warning("scene %s: PostGIS unavailable (%s); waiting up to %.0f s", scene.id,
                                    _describe(exc), DB_OUTAGE_MAX_S)
                        if wait_for_db(self.pipeline.engine, DB_OUTAGE_MAX_S, self._stop):
                            attempt -= 1
                            continue
                    if self._stop.is_set():
                        raise _Interrupted(f"scene {scene.id}: {_describe(exc)}")
                    if attempt >= self.max_attempts:
                        wrapped = TransientError(f"gave up after {attempt} attempts: {_describe(exc)}")
                        return self._dead_letter(msg, wrapped, attempt, scene.platform, scene)
                    log.warning("scene %s attempt %d failed: %s", scene.id, attempt, _describe(exc))
                    self._stop.wait(self.retry_base_s * 2 ** (attempt - 1))
        finally:
            SCENES_IN_FLIGHT.dec()

    def _dead_letter(self, msg, exc: BaseException, attempts: int, platform: str, scene=None) -> str:
        code = getattr(exc, "code", "error")
        reason = getattr(exc, "reason", None) or _describe(exc)
        ref = kafka_io.send_to_dlq(self.producer, self.s, msg, reason, code, attempts, stop=self._stop)
        if scene is not None:  # a valid event whose scene failed: its footprint is shown as failed
            try:
                mark_scene_failed(self.pipeline.engine, scene, f"{code}: {reason}", ref)
            except Exception:  # noqa: BLE001 - the DLQ has the event; a status write must not stop the worker
                log.warning("could not record scene %s as failed", scene.id, exc_info=True)
        EVENTS_INVALID.labels(code).inc()
        SCENES.labels("failed", platform).inc()
        log.warning("event at %s[%d]@%d sent to DLQ: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        return "dlq"


class _Interrupted(Exception):
    """Shutdown was requested while a scene was failing: leave it uncommitted (not in the DLQ)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (RayActorError,)):
        return f"ray worker died: {exc}"
    return f"{type(exc).__name__}: {exc}"


def sync_static_subscribers(settings: Settings) -> int:
    """Upsert subscribers given as ``url|secret`` pairs in TERRAWATCH_WEBHOOK_SUBSCRIBERS."""
    import uuid

    from sqlalchemy.dialects.postgresql import insert

    from terrawatch.domain.hazards import HAZARDS
    from terrawatch.store import tables as t

    pairs = [p.split("|", 1) for p in settings.webhook_subscribers.split(",") if p.strip()]
    if not pairs:
        return 0
    with engine_for(settings.worker_db_url).begin() as conn:
        for url, secret in pairs:
            conn.execute(insert(t.subscribers).values(
                id=uuid.uuid4(), url=url.strip(), secret=secret.strip(),
                hazards=list(HAZARDS), min_confidence="low", format="geojson",
            ).on_conflict_do_update(index_elements=["url"], set_={"secret": secret.strip(), "active": True}))
    return len(pairs)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
