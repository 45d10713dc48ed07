"""The pipeline worker: consume scene events, process each exactly once in effect, commit.

Offsets are committed only after a scene's results are durably in PostGIS (or
its event is durably in the DLQ). Bad input never stops the loop.

Dependency outages (Triton, Ray, PostGIS) do not dead-letter scenes: the worker pauses its Kafka
partitions, holds the scene in flight uncommitted, probes the dependency with backoff and resumes by
itself when it is ready (domain.recovery decides; this module classifies and acts). Only an outage
longer than ``outage_window_s`` dead-letters the scene as ``transient``; such entries are re-driven
automatically once every dependency is ready (ingest.redrive).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

import ray
from confluent_kafka import KafkaException
from ray.exceptions import RayActorError, RayTaskError

from terrawatch.domain.errors import (
    DEPENDENCIES, DependencyUnavailable, InvalidEvent, TerrawatchError, TransientError,
)
from terrawatch.domain.recovery import Action, Failure, RecoveryPolicy, pause_reason, probe_delays
from terrawatch.domain.scene import parse_event
from terrawatch.imagery.stac import resolve_event
from terrawatch.ingest import kafka_io
from terrawatch.observability.logging import RepeatLimiter
from terrawatch.observability.metrics import (
    CONSUMER_LAG, CONSUMPTION_PAUSED, DEPENDENCY_OUTAGE_SECONDS, EVENTS_CONSUMED, EVENTS_INVALID,
    OUTAGE_WINDOW_SECONDS, SCENES, SCENES_IN_FLIGHT,
)
from terrawatch.settings import Settings
from terrawatch.store.uow import engine_for, is_db_outage, mark_scene_failed, probe_db

log = logging.getLogger(__name__)


def _unwrap(exc: BaseException) -> BaseException:
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        return exc.cause
    return exc


def classify(exc: BaseException, probes: Mapping[str, Callable[[], object]]) -> tuple[Failure, str | None]:
    """Whose fault is ``exc``: the scene's (BAD_INPUT), a dependency's (DEPENDENCY, with its name), or
    unknown. An error that names a dependency, and any unexplained error, is checked against the
    dependencies' readiness probes (the suspected one first): only a failing probe makes it an outage, so
    a scene whose content makes a healthy dependency fail keeps spending its attempts."""
    if isinstance(exc, TerrawatchError) and not isinstance(exc, TransientError):
        return Failure.BAD_INPUT, None
    suspect = exc.dependency if isinstance(exc, DependencyUnavailable) else "postgis" if is_db_outage(exc) else None
    for name in sorted(probes, key=lambda n: n != suspect):
        try:
            probes[name]()
        except Exception:  # noqa: BLE001 - a failing probe, whatever it raises, means "down"
            return Failure.DEPENDENCY, name
    return Failure.UNKNOWN, None


class Worker:
    def __init__(self, settings: Settings, max_attempts: int = 3, retry_base_s: float = 2.0) -> None:
        from terrawatch.inference.triton import MODELS, TritonModel, triton_ready
        from terrawatch.service.pipeline import ScenePipeline
        from terrawatch.tiling.ray_tiler import RayTiler

        self.s = settings
        self.policy = RecoveryPolicy(settings.outage_window_s, max_attempts, retry_base_s)
        self._stop = threading.Event()
        self.restart_requested = False  # the Ray head was replaced: this process must restart (cli re-execs)
        # A failed scene drops its other tile tasks in flight; their errors are the same outage, already
        # classified and logged once here, not worth a traceback each from Ray's "unhandled error" hook.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
        if not ray.is_initialized():
            ray.init(address=settings.ray, logging_level=logging.WARNING, log_to_driver=False)
        self.tiler = RayTiler(settings.triton, batch=settings.triton_batch, max_in_flight=settings.max_in_flight_tiles,
                              address=settings.ray)
        self._versions: dict[str, tuple[float, str]] = {}

        def model_version(name: str) -> str:
            cached = self._versions.get(name)
            if cached and time.monotonic() - cached[0] < 30:
                return cached[1]
            v = TritonModel(settings.triton, MODELS[name]).model_version()
            self._versions[name] = (time.monotonic(), v)
            return v

        engine = engine_for(settings.worker_db_url)
        self.pipeline = ScenePipeline(settings, self.tiler, engine, model_version)
        # Readiness probes (raise when not ready); the order is the order an unexplained error is checked in.
        self.probes: dict[str, Callable[[], object]] = {
            "postgis": lambda: probe_db(engine),
            "triton": lambda: triton_ready(settings.triton),
            "ray": self.tiler.check_cluster,
        }
        self.producer = kafka_io.producer(settings)
        self.consumer = kafka_io.consumer(settings)
        self.paused = threading.Event()  # paused by the operator's control flag
        self.dependency_down: str | None = None
        self._outage_since: dict[str, float] = {}  # dependency -> monotonic start of its current outage
        self._redrive_due = 0.0
        self.redriver = None
        if settings.dlq_auto_redrive:
            from terrawatch.service.auto_redrive import TransientRedriver

            self.redriver = TransientRedriver(settings, engine, self.producer)
        self._errors = RepeatLimiter(log)
        OUTAGE_WINDOW_SECONDS.set(settings.outage_window_s)
        for dep in DEPENDENCIES:
            CONSUMPTION_PAUSED.labels(dep).set(0)
            DEPENDENCY_OUTAGE_SECONDS.labels(dep).set(0)

    def stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def _on_assign(self, consumer, parts) -> None:
        log.info("partitions assigned: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in parts),
                 extra={"partitions": [p.partition for p in parts], "instance_id": kafka_io.instance_id(self.s)})
        # Not paused here (the assignment is applied after this callback): a message fetched from them while
        # consumption is paused is rewound by _hold, and the pause flag is re-applied every control_poll_s.

    def _on_revoke(self, consumer, parts) -> None:
        log.info("partitions revoked: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in parts))

    def run(self, max_idle_s: float | None = None) -> None:
        """Consume until stopped (or idle for ``max_idle_s`` seconds, for batch runs)."""
        log.info("joining consumer group %s as %s", self.s.consumer_group,
                 f"static member {kafka_io.instance_id(self.s)}" if kafka_io.instance_id(self.s) else "a dynamic member")
        self._subscribe()
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
                if self.redriver is not None and not self.paused.is_set() and time.monotonic() >= self._redrive_due:
                    self._auto_redrive()
                msg = self.consumer.poll(1.0)
                if msg is None:
                    if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        break
                    continue
                if msg.error():
                    if _fatal(msg.error()):
                        self._renew_consumer(msg.error())
                        continue
                    self._errors.warning(("kafka", str(msg.error())), "kafka consumer error: %s", msg.error(),
                                         dependency="kafka")
                    continue
                if self.paused.is_set():  # fetched before the pause took hold: rewind, handle after resume
                    self._hold(msg)
                    continue
                try:
                    self.handle(msg)
                except _RestartRequested as exc:
                    log.warning("restarting the worker process: %s; %s[%d]@%d stays uncommitted", exc,
                                msg.topic(), msg.partition(), msg.offset())
                    self.restart_requested = True
                    break
                except (_Interrupted, kafka_io.DlqWriteError) as exc:
                    log.warning("stopping before %s[%d]@%d was finished (%s); it stays uncommitted",
                                msg.topic(), msg.partition(), msg.offset(), exc)
                    break
                self._commit(msg)
                idle_since = time.monotonic()
        finally:
            if self.redriver is not None:
                self.redriver.close()
            self.consumer.close()
            self.producer.flush(10)

    def _subscribe(self) -> None:
        self.consumer.subscribe([self.s.scenes_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _renew_consumer(self, err) -> None:
        """Replace a consumer that hit a fatal error. After a broker/coordinator restart a static member can
        be fenced by its own re-join under a new member id (FENCED_INSTANCE_ID is fatal in librdkafka); a
        new consumer with the same group.instance.id takes the partitions back. Uncommitted events are
        redelivered (a no-op where already stored)."""
        log.warning("kafka consumer failed fatally (%s): replacing it with a new one (same static member id)", err)
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001 - a fatal consumer may refuse a clean close
            log.debug("closing the failed consumer raised", exc_info=True)
        self.consumer = kafka_io.consumer(self.s)
        self._subscribe()

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

    # automatic re-drive ------------------------------------------------------
    def _auto_redrive(self) -> None:
        """Re-drive new transient DLQ entries, but only while every dependency answers its probe."""
        self._redrive_due = time.monotonic() + self.s.dlq_auto_redrive_interval_s
        try:
            if not self.redriver.backlog():
                self.redriver.close()
                return
            for name, probe in self.probes.items():
                try:
                    probe()
                except Exception as exc:  # noqa: BLE001
                    self._errors.log(logging.INFO, ("redrive-wait", name), "transient DLQ entries wait for %s: %s",
                                     name, _describe(exc), dependency=name)
                    self.redriver.close()
                    return
                self._errors.clear(("redrive-wait", name))
            self.redriver.run()
        except Exception as exc:  # noqa: BLE001 - re-drive is best effort; the entries stay in the DLQ
            self._errors.warning(("redrive", type(exc).__name__), "automatic DLQ re-drive failed: %s",
                                 _describe(exc), dependency="kafka")

    # one scene ----------------------------------------------------------------
    def handle(self, msg) -> str:
        """Process one message; return the outcome. Never raises for bad input.

        Raises _Interrupted (stop requested) or _RestartRequested (the Ray head was replaced) with the
        scene unfinished: the caller leaves it uncommitted."""
        EVENTS_CONSUMED.labels(msg.topic()).inc()
        log.info("event %s[%d]@%d received", msg.topic(), msg.partition(), msg.offset(),
                 extra={"partition": msg.partition(), "offset": msg.offset()})
        try:  # STAC references / catalogue Items are resolved to terrawatch Items first (imagery.stac)
            scene = parse_event(resolve_event(msg.value() or b"", self.pipeline.assets.check_url))
        except InvalidEvent as exc:
            return self._dead_letter(msg, exc, 1, platform="unknown")
        except TransientError as exc:  # the catalogue or asset host did not answer: not a dependency we probe
            return self._dead_letter(msg, exc, 1, platform="unknown")
        except Exception as exc:  # noqa: BLE001 - a poison event must never crash-loop the consumer
            return self._dead_letter(msg, InvalidEvent(f"unparseable event: {_describe(exc)}"), 1, platform="unknown")
        SCENES_IN_FLIGHT.inc()
        try:
            attempts, waited = 0, 0.0  # failed attempts (outages not counted); s waited for dependencies
            while True:
                try:
                    res = self.pipeline.process(scene)
                    SCENES.labels(res.outcome, scene.platform).inc()
                    log.info("scene %s %s: %d tiles, %d detections, %d alerts", scene.id, res.outcome,
                             res.tiles, res.detections, res.alerts_created + res.alerts_updated)
                    return res.outcome
                except Exception as raw:  # noqa: BLE001 - classified below
                    exc = _unwrap(raw)
                    failure, dep = classify(exc, self.probes)
                    if failure is Failure.UNKNOWN:
                        attempts += 1
                    decision = self.policy.decide(failure, _describe(exc), max(attempts, 1), waited, dep)
                    if decision.action is Action.DEAD_LETTER:
                        if failure is Failure.BAD_INPUT:
                            return self._dead_letter(msg, exc, max(attempts, 1), scene.platform, scene)
                        return self._dead_letter(msg, TransientError(decision.reason), max(attempts, 1),
                                                 scene.platform, scene, dependency=dep)
                    if self._stop.is_set():
                        raise _Interrupted(f"scene {scene.id}: {_describe(exc)}")
                    if decision.action is Action.RETRY:
                        log.warning("scene %s attempt %d failed: %s", scene.id, attempts, _describe(exc))
                        self._stop.wait(decision.wait_s)
                        continue
                    ready, seconds = self._ride_out(dep, scene.id, _describe(exc), self.s.outage_window_s - waited)
                    waited += seconds
                    if not ready:
                        d = self.policy.decide(Failure.DEPENDENCY, _describe(exc), max(attempts, 1), waited, dep)
                        return self._dead_letter(msg, TransientError(d.reason), max(attempts, 1), scene.platform,
                                                 scene, dependency=dep)
        finally:
            SCENES_IN_FLIGHT.dec()

    def _ride_out(self, dep: str, scene_id: str, error: str, budget_s: float) -> tuple[bool, float]:
        """Pause consumption while ``dep`` is down: probe it with backoff (polling the paused consumer, so
        the worker stays in its group) until it is ready (True) or ``budget_s`` s have passed (False).
        Returns (ready, seconds waited). Raises _Interrupted on stop, _RestartRequested when the Ray head
        came back as a new session."""
        from terrawatch.tiling.ray_tiler import RayHeadRestarted

        t0 = time.monotonic()
        since = self._outage_since.setdefault(dep, t0)
        self.dependency_down = dep
        parts = self.consumer.assignment()
        if parts:
            self.consumer.pause(parts)
        CONSUMPTION_PAUSED.labels(dep).set(1)
        self._errors.warning(("outage", dep), "%s; scene %s held uncommitted (%s)",
                             pause_reason(dep, t0 - since, self.s.outage_window_s), scene_id, error,
                             dependency=dep, scene_id=scene_id)
        delays = probe_delays(0.5, self.s.outage_probe_max_s)
        try:
            while True:
                now = time.monotonic()
                DEPENDENCY_OUTAGE_SECONDS.labels(dep).set(now - since)
                if now - t0 >= budget_s:
                    log.warning("%s still unavailable after %.0f s: scene %s goes to the DLQ as transient",
                                dep, now - since, scene_id, extra={"dependency": dep})
                    return False, now - t0
                end = now + min(next(delays), budget_s - (now - t0))
                while not self._stop.is_set() and time.monotonic() < end:
                    msg = self.consumer.poll(max(0.0, min(0.5, end - time.monotonic())))
                    if msg is not None and not msg.error():
                        self._hold(msg)  # fetched before the pause, or from a newly assigned partition
                    elif msg is not None and _fatal(msg.error()):
                        self._renew_consumer(msg.error())
                if self._stop.is_set():
                    raise _Interrupted(f"scene {scene_id}: {dep} unavailable")
                try:
                    self.probes[dep]()
                except RayHeadRestarted as exc:
                    raise _RestartRequested(str(exc)) from exc
                except Exception as exc:  # noqa: BLE001 - still down
                    self._errors.warning(("outage", dep), "%s still unavailable: %s", dep, _describe(exc),
                                         dependency=dep)
                    continue
                log.info("%s is ready again after %.0f s: consumption resumes, scene %s is retried", dep,
                         time.monotonic() - since, scene_id, extra={"dependency": dep})
                self._errors.clear(("outage", dep))
                self._outage_since.pop(dep, None)
                self._redrive_due = 0.0  # transient entries of the outage can go back now
                return True, time.monotonic() - t0
        finally:
            CONSUMPTION_PAUSED.labels(dep).set(0)
            if dep not in self._outage_since:
                DEPENDENCY_OUTAGE_SECONDS.labels(dep).set(0)
            self.dependency_down = None
            parts = self.consumer.assignment()
            if parts and not self.paused.is_set():
                self.consumer.resume(parts)

    def _dead_letter(self, msg, exc: BaseException, attempts: int, platform: str, scene=None,
                     dependency: str | None = None) -> str:
        code = getattr(exc, "code", "error")
        reason = getattr(exc, "reason", None) or _describe(exc)
        ref = kafka_io.send_to_dlq(self.producer, self.s, msg, reason, code, attempts, stop=self._stop,
                                 dependency=dependency)
        if scene is not None:  # a valid event whose scene failed: its footprint is shown as failed
            try:
                mark_scene_failed(self.pipeline.engine, scene, f"{code}: {reason}", ref)
            except Exception:  # noqa: BLE001 - the DLQ has the event; a status write must not stop the worker
                log.warning("could not record scene %s as failed", scene.id, exc_info=True)
        EVENTS_INVALID.labels(code).inc()
        SCENES.labels("failed", platform).inc()
        log.warning("event at %s[%d]@%d sent to DLQ: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        return "dlq"


def _fatal(err) -> bool:
    """A consumer error after which librdkafka's consumer is unusable (e.g. FENCED_INSTANCE_ID)."""
    from confluent_kafka import KafkaError

    return err.fatal() or err.code() == KafkaError._FATAL


class _Interrupted(Exception):
    """Shutdown was requested while a scene was failing: leave it uncommitted (not in the DLQ)."""


class _RestartRequested(Exception):
    """The Ray head was replaced: a Ray driver cannot re-join in-process, so the worker restarts (cli)."""


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
