"""The pipeline worker: consume scene events, process each exactly once in effect, commit.

Offsets are committed only after a scene's results are durably in PostGIS (or
its event is durably in the DLQ). Bad input never stops the loop.

Up to ``scenes_in_flight`` scenes are processed at once, each on its own thread; the main thread alone
polls and commits, in offset order per partition; rebalances and stops drain or abandon (service.inflight).

Dependency outages (Triton, Ray, PostGIS) do not dead-letter scenes: the worker pauses its Kafka
partitions, holds the scene in flight uncommitted, probes the dependency with backoff and resumes by
itself when it is ready (domain.recovery decides; this module classifies and acts). Only an outage
longer than ``outage_window_s`` dead-letters the scene as ``transient``; such entries are re-driven
automatically once every dependency is ready (service.auto_redrive).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from terrawatch.domain.errors import (
    DEPENDENCIES, DependencyUnavailable, DlqWriteError, InvalidEvent, TerrawatchError, TransientError,
)
from terrawatch.domain.recovery import (
    Action, Failure, RecoveryPolicy, RestartRequired, pause_reason, probe_delays,
)
from terrawatch.domain.scene import parse_event
from terrawatch.observability.logging import RepeatLimiter
from terrawatch.observability.metrics import (
    CONSUMER_LAG, CONSUMPTION_PAUSED, DEPENDENCY_OUTAGE_SECONDS, EVENTS_CONSUMED, EVENTS_INVALID,
    OUTAGE_WINDOW_SECONDS, SCENES, SCENES_IN_FLIGHT,
)
from terrawatch.service.ports import (
    DeadLetterSink, ErrorModel, EventResolver, Message, OutageTest, PlainErrors, Probes, Redriver, SceneConsumer,
    SceneProcessor, WorkerStore, as_is, never_outage,
)
from terrawatch.service.inflight import Entry, OffsetKeeper, _Interrupted, _RestartRequested, wait_any
from terrawatch.settings import Settings

log = logging.getLogger(__name__)


def classify(exc: BaseException, probes: Mapping[str, Callable[[], object]],
             db_outage: OutageTest = never_outage) -> tuple[Failure, str | None]:
    """Whose fault is ``exc``: the scene's (BAD_INPUT), a dependency's (DEPENDENCY, with its name), or
    unknown. An error that names a dependency, and any unexplained error, is checked against the
    dependencies' readiness probes (the suspected one first): only a failing probe makes it an outage, so
    a scene whose content makes a healthy dependency fail keeps spending its attempts. ``db_outage``: whether
    an error means PostGIS dropped the connection (``store.uow.is_db_outage``): then PostGIS is probed first."""
    if isinstance(exc, TerrawatchError) and not isinstance(exc, TransientError):
        return Failure.BAD_INPUT, None
    suspect = exc.dependency if isinstance(exc, DependencyUnavailable) else "postgis" if db_outage(exc) else None
    for name in sorted(probes, key=lambda n: n != suspect):
        try:
            probes[name]()
        except Exception:  # noqa: BLE001 - a failing probe, whatever it raises, means "down"
            return Failure.DEPENDENCY, name
    return Failure.UNKNOWN, None


class Worker:
    """Consumes scene events and processes each through ``pipeline``; every collaborator is a port
    (:mod:`terrawatch.service.ports`), built by :func:`terrawatch.service.bootstrap.build_worker`."""

    def __init__(self, settings: Settings, *, pipeline: SceneProcessor, consumer: SceneConsumer,
                 dlq: DeadLetterSink, store: WorkerStore, probes: Probes, redriver: Redriver | None = None,
                 errors: ErrorModel = PlainErrors(), resolve: EventResolver = as_is,
                 db_outage: OutageTest = never_outage, max_attempts: int = 3, retry_base_s: float = 2.0,
                 probe_first_s: float = 0.5) -> None:
        self.s = settings
        self.policy = RecoveryPolicy(settings.outage_window_s, max_attempts, retry_base_s)
        self._stop = threading.Event()
        self.pipeline = pipeline
        self.consumer = consumer
        self.dlq = dlq
        self.store = store
        self.probes = dict(probes)  # readiness probes; their order is the order an unexplained error is checked in
        self.redriver = redriver
        self.err = errors
        self.resolve = resolve  # reference events / foreign STAC Items -> scene events (imagery.stac.resolve_event)
        self.db_outage = db_outage
        self.probe_first_s = probe_first_s  # first wait (s) between probes of a dependency that is down
        self.paused = threading.Event()  # paused by the operator's control flag
        self._down: dict[str, int] = {}  # dependency -> scenes riding out its outage (consumption paused)
        self._down_lock = threading.Lock()
        self.flight = OffsetKeeper(consumer, self._stop, settings.revoke_drain_s)  # scenes in flight, commits
        # Set when a scene in flight finishes: the polling loop, waiting while every slot is taken, starts
        # the next scene at once instead of after its poll timeout (measured bubbles, docs/performance.md).
        self._slot_freed = threading.Event()
        self._outage_since: dict[str, float] = {}  # dependency -> monotonic start of its current outage
        self._redrive_due = 0.0
        self._errors = RepeatLimiter(log)
        OUTAGE_WINDOW_SECONDS.set(settings.outage_window_s)
        for dep in DEPENDENCIES:
            CONSUMPTION_PAUSED.labels(dep).set(0)
            DEPENDENCY_OUTAGE_SECONDS.labels(dep).set(0)

    @property
    def restart_requested(self) -> bool:
        """The Ray head was replaced: this process must restart (the CLI re-execs)."""
        return self.flight.restart_requested

    def stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    @property
    def dependency_down(self) -> str | None:
        """A dependency some scene in flight is waiting for (consumption is paused meanwhile), or None."""
        with self._down_lock:
            return next(iter(self._down), None)

    def run(self, max_idle_s: float | None = None) -> None:
        """Consume until stopped (or idle for ``max_idle_s`` seconds, for batch runs), keeping up to
        ``scenes_in_flight`` scenes in flight; commit each partition's finished scenes in offset order."""
        log.info("joining consumer group %s as %s (%d scenes in flight)", self.s.consumer_group,
                 self.consumer.membership(), self.s.scenes_in_flight)
        self.consumer.on_revoke = self.flight.on_revoke
        self.consumer.subscribe()
        limit = max(1, self.s.scenes_in_flight)
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="scene")
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
                self._slot_freed.clear()  # before the state is read: a scene finishing after this sets it
                self.flight.commit_finished()
                if self.flight.halt is not None:
                    break
                inflight = self.flight.inflight
                full = inflight.running() >= limit or len(inflight) >= 4 * limit  # 4x: finished,
                # waiting for a slow predecessor's commit
                hold = self.paused.is_set() or self.dependency_down is not None or full
                self.flight.hold_all(hold)
                only_full = full and not self.paused.is_set() and self.dependency_down is None
                # poll(0) while only full: it still serves rebalance callbacks; then wait for a free slot
                msg = self.consumer.poll(0 if only_full else 0.2 if len(inflight) else 1.0)
                if msg is None and only_full:
                    self._slot_freed.wait(0.2)
                if msg is None:
                    if len(inflight):
                        idle_since = time.monotonic()
                    elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        break
                    continue
                if hold:  # fetched before the pause took hold: rewind, handle after resume
                    self.consumer.hold(msg)
                    continue
                entry = Entry(msg.topic(), msg.partition(), msg.offset(), None, msg=msg)
                entry.future = pool.submit(self.handle, msg, entry.abandoned)
                entry.future.add_done_callback(lambda _f: self._slot_freed.set())
                inflight.add(entry)
                idle_since = time.monotonic()
        finally:
            self.flight.drain(pool)
            if self.redriver is not None:
                self.redriver.close()
            self.consumer.close()
            self.dlq.flush(10)
        halt = self.flight.halt
        if halt is not None and not isinstance(halt, (_Interrupted, _RestartRequested, DlqWriteError)):
            raise halt

    def _apply_pause_flag(self) -> None:
        """Honour the ``consumption_paused`` control flag (set by POST /ops/consumption/pause).

        Paused partitions still poll, so the consumer keeps its group membership.
        """
        try:
            paused = self.store.consumption_paused()
        except Exception:  # noqa: BLE001 - a flag read must not stop consumption
            log.debug("control flag read failed", exc_info=True)
            return
        if paused:
            self.consumer.pause_all()  # re-applied every check: partitions assigned by a rebalance start unpaused
            if not self.paused.is_set():
                self.paused.set()
                log.info("consumption paused by the control flag")
        elif self.paused.is_set():
            self.consumer.resume_all()
            self.paused.clear()
            log.info("consumption resumed")

    def _report_lag(self) -> None:
        try:
            for part, n in self.consumer.lag().items():
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
                                     name, self.err.describe(exc), dependency=name)
                    self.redriver.close()
                    return
                self._errors.clear(("redrive-wait", name))
            self.redriver.run()
        except Exception as exc:  # noqa: BLE001 - re-drive is best effort; the entries stay in the DLQ
            self._errors.warning(("redrive", type(exc).__name__), "automatic DLQ re-drive failed: %s",
                                 self.err.describe(exc), dependency="kafka")

    # one scene ----------------------------------------------------------------
    def handle(self, msg: Message, abandoned: threading.Event | None = None) -> str:
        """Process one message; return the outcome. Never raises for bad input. Runs on a scene thread;
        never touches the consumer.

        Raises _Interrupted (stop requested, or ``abandoned`` set: the partition was revoked) or
        _RestartRequested (the Ray head was replaced) with the scene unfinished: it stays uncommitted."""
        cancel = abandoned or threading.Event()
        EVENTS_CONSUMED.labels(msg.topic()).inc()
        log.info("event %s[%d]@%d received", msg.topic(), msg.partition(), msg.offset(),
                 extra={"partition": msg.partition(), "offset": msg.offset()})
        try:  # STAC references / catalogue Items are resolved to terrawatch Items first (imagery.stac)
            scene = parse_event(self.resolve(msg.value() or b"", self.pipeline.assets.check_url))
        except InvalidEvent as exc:
            return self._dead_letter(msg, exc, 1, platform="unknown", cancel=cancel)
        except TransientError as exc:  # the catalogue or asset host did not answer: not a dependency we probe
            return self._dead_letter(msg, exc, 1, platform="unknown", cancel=cancel)
        except Exception as exc:  # noqa: BLE001 - a poison event must never crash-loop the consumer
            return self._dead_letter(msg, InvalidEvent(f"unparseable event: {self.err.describe(exc)}"), 1,
                                     platform="unknown", cancel=cancel)
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
                    exc = self.err.unwrap(raw)
                    failure, dep = classify(exc, self.probes, self.db_outage)
                    if failure is Failure.UNKNOWN:
                        attempts += 1
                    decision = self.policy.decide(failure, self.err.describe(exc), max(attempts, 1), waited, dep)
                    if decision.action is Action.DEAD_LETTER:
                        if failure is Failure.BAD_INPUT:
                            return self._dead_letter(msg, exc, max(attempts, 1), scene.platform, scene, cancel=cancel)
                        return self._dead_letter(msg, TransientError(decision.reason), max(attempts, 1),
                                                 scene.platform, scene, dependency=dep, cancel=cancel)
                    if self._stop.is_set() or cancel.is_set():
                        raise _Interrupted(f"scene {scene.id}: {self.err.describe(exc)}")
                    if decision.action is Action.RETRY:
                        log.warning("scene %s attempt %d failed: %s", scene.id, attempts, self.err.describe(exc))
                        wait_any(decision.wait_s, self._stop, cancel)
                        continue
                    ready, seconds = self._ride_out(dep, scene.id, self.err.describe(exc), self.s.outage_window_s - waited,
                                                    cancel)
                    waited += seconds
                    if not ready:
                        d = self.policy.decide(Failure.DEPENDENCY, self.err.describe(exc), max(attempts, 1), waited, dep)
                        return self._dead_letter(msg, TransientError(d.reason), max(attempts, 1), scene.platform,
                                                 scene, dependency=dep, cancel=cancel)
        finally:
            SCENES_IN_FLIGHT.dec()

    def _ride_out(self, dep: str, scene_id: str, error: str, budget_s: float,
                  cancel: threading.Event) -> tuple[bool, float]:
        """Hold this scene while ``dep`` is down: consumption is paused (run() pauses every partition and
        keeps polling, so the worker stays in its group) and ``dep`` is probed with backoff until it is
        ready (True) or ``budget_s`` s have passed (False). Returns (ready, seconds waited). Raises
        _Interrupted on stop or when the scene is abandoned, _RestartRequested when the Ray head came back
        as a new session."""
        t0 = time.monotonic()
        since = self._outage_since.setdefault(dep, t0)
        with self._down_lock:
            self._down[dep] = self._down.get(dep, 0) + 1
        CONSUMPTION_PAUSED.labels(dep).set(1)
        self._errors.warning(("outage", dep), "%s; scene %s held uncommitted (%s)",
                             pause_reason(dep, t0 - since, self.s.outage_window_s), scene_id, error,
                             dependency=dep, scene_id=scene_id)
        delays = probe_delays(self.probe_first_s, self.s.outage_probe_max_s)
        try:
            while True:
                now = time.monotonic()
                DEPENDENCY_OUTAGE_SECONDS.labels(dep).set(now - since)
                if now - t0 >= budget_s:
                    log.warning("%s still unavailable after %.0f s: scene %s goes to the DLQ as transient",
                                dep, now - since, scene_id, extra={"dependency": dep})
                    return False, now - t0
                wait_any(min(next(delays), budget_s - (now - t0)), self._stop, cancel)
                if self._stop.is_set() or cancel.is_set():
                    raise _Interrupted(f"scene {scene_id}: {dep} unavailable")
                try:
                    self.probes[dep]()
                except RestartRequired as exc:
                    raise _RestartRequested(str(exc)) from exc
                except Exception as exc:  # noqa: BLE001 - still down
                    self._errors.warning(("outage", dep), "%s still unavailable: %s", dep, self.err.describe(exc),
                                         dependency=dep)
                    continue
                log.info("%s is ready again after %.0f s: consumption resumes, scene %s is retried", dep,
                         time.monotonic() - since, scene_id, extra={"dependency": dep})
                self._errors.clear(("outage", dep))
                self._outage_since.pop(dep, None)
                self._redrive_due = 0.0  # transient entries of the outage can go back now
                return True, time.monotonic() - t0
        finally:
            with self._down_lock:
                self._down[dep] -= 1
                last = self._down[dep] <= 0
                if last:
                    del self._down[dep]
            if last:
                CONSUMPTION_PAUSED.labels(dep).set(0)
                if dep not in self._outage_since:
                    DEPENDENCY_OUTAGE_SECONDS.labels(dep).set(0)

    def _dead_letter(self, msg: Message, exc: BaseException, attempts: int, platform: str, scene=None,
                     dependency: str | None = None, cancel: threading.Event | None = None) -> str:
        if cancel is not None and cancel.is_set():  # the partition went to another worker: it decides there
            raise _Interrupted(f"{msg.topic()}[{msg.partition()}]@{msg.offset()} abandoned (partition revoked)")
        code = getattr(exc, "code", "error")
        reason = getattr(exc, "reason", None) or self.err.describe(exc)
        ref = self.dlq.send(msg, reason, code, attempts, self._stop, dependency=dependency)
        if scene is not None:  # a valid event whose scene failed: its footprint is shown as failed
            try:
                self.store.mark_failed(scene, f"{code}: {reason}", ref)
            except Exception:  # noqa: BLE001 - the DLQ has the event; a status write must not stop the worker
                log.warning("could not record scene %s as failed", scene.id, exc_info=True)
        EVENTS_INVALID.labels(code).inc()
        SCENES.labels("failed", platform).inc()
        log.warning("event at %s[%d]@%d sent to DLQ: %s", msg.topic(), msg.partition(), msg.offset(), reason)
        return "dlq"
