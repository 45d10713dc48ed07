"""Scenes in flight in one worker, per partition in offset order, and which offsets may be committed.

The worker processes up to ``scenes_in_flight`` scenes at once (scene N+1 is read and inferred while
scene N is vectorized and stored), but Kafka offsets mean "everything before this is done", so an offset
is committed only when every earlier scene of its partition has finished too: a scene that finishes early
waits for its predecessors. A scene that did not finish (interrupted by a stop, abandoned on a
rebalance, failed with an unexpected error) is never committed and holds back the later ones of its
partition; they are redelivered after a restart and are no-ops there (run markers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field

from terrawatch.domain.errors import DlqWriteError
from terrawatch.observability.metrics import STAGE_SECONDS

log = logging.getLogger("terrawatch.service.worker")

TopicPartitionKey = tuple[str, int]


@dataclass(eq=False)
class Entry:
    """One scene event in flight: where it came from and the future of its processing."""

    topic: str
    partition: int
    offset: int
    future: Future | None = None
    msg: object = None  # the consumed message (what the consumer commits)
    abandoned: threading.Event = field(default_factory=threading.Event)  # set: give up retrying, stay uncommitted

    @property
    def key(self) -> TopicPartitionKey:
        return self.topic, self.partition

    def finished_ok(self) -> bool:
        """Done, with an outcome (stored, duplicate, dead-lettered): its offset may be committed."""
        return self.future.done() and not self.future.cancelled() and self.future.exception() is None

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class InFlight:
    """The in-flight scenes of one consumer, per partition in the order they were polled."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, deque[Entry]] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._parts.values())

    def add(self, entry: Entry) -> None:
        q = self._parts.setdefault(entry.key, deque())
        if q and entry.offset <= q[-1].offset:
            raise ValueError(f"{entry.where()} polled after offset {q[-1].offset} of the same partition")
        q.append(entry)

    def entries(self, keys: set[TopicPartitionKey] | None = None) -> list[Entry]:
        return [e for k, q in self._parts.items() if keys is None or k in keys for e in q]

    def running(self) -> int:
        """Scenes still being processed (not done)."""
        return sum(1 for e in self.entries() if not e.future.done())

    def committable(self, keys: set[TopicPartitionKey] | None = None) -> list[Entry]:
        """Remove the leading finished-ok scenes of every partition (of ``keys``, default all); return,
        per partition where any were removed, the last one removed: committing its offset commits them
        all (Kafka stores "next to read" = that offset + 1)."""
        out = []
        for key, q in self._parts.items():
            if keys is not None and key not in keys:
                continue
            last = None
            while q and q[0].finished_ok():
                last = q.popleft()
            if last is not None:
                out.append(last)
        for key in [k for k, q in self._parts.items() if not q]:
            del self._parts[key]
        return out

    def failed(self) -> list[Entry]:
        """Finished entries that raised (never committable)."""
        return [e for e in self.entries() if e.future.done() and not e.finished_ok()]

    def forget(self, keys: set[TopicPartitionKey]) -> list[Entry]:
        """Drop the partitions ``keys`` (revoked); return their entries still in flight or unfinished."""
        dropped = []
        for key in keys:
            dropped.extend(self._parts.pop(key, ()))
        return dropped


class _Interrupted(Exception):
    """Shutdown was requested while a scene was failing: leave it uncommitted (not in the DLQ)."""


class _RestartRequested(Exception):
    """The Ray head was replaced: a Ray driver cannot re-join in-process, so the worker restarts (cli)."""


def wait_any(seconds: float, *events: threading.Event) -> None:
    """Sleep ``seconds`` or until any of ``events`` is set."""
    end = time.monotonic() + max(0.0, seconds)
    while not any(e.is_set() for e in events):
        left = end - time.monotonic()
        if left <= 0:
            return
        events[0].wait(min(left, 0.25))


class OffsetKeeper:
    """The worker's scenes-in-flight bookkeeping on the main (polling) thread: pause while full, commit in
    order, drain on stop, drain or abandon on a rebalance. Owned by the worker (composition); it shares
    only the worker's ``stop`` event, which it sets when a scene fails so badly the worker must stop.

    ``halt``: why the worker stops taking scenes (restart, interrupted, bug), or None.
    ``restart_requested``: the Ray head was replaced; the process must restart (the CLI re-execs).
    """

    def __init__(self, consumer, stop: threading.Event, revoke_drain_s: float, restart_drain_s: float = 30.0) -> None:
        self.consumer = consumer
        self.stop = stop
        self.revoke_drain_s = revoke_drain_s  # s a revoked partition's scenes may take to finish
        self.restart_drain_s = restart_drain_s  # on a restart, s the other scenes in flight may take to finish
        self.inflight = InFlight()
        self.held = False  # every partition paused (full, paused, or a dependency down)
        self.halt: BaseException | None = None
        self.restart_requested = False

    def __len__(self) -> int:
        return len(self.inflight)

    def hold_all(self, hold: bool) -> None:
        """Pause every assigned partition while ``hold`` (re-applied: a rebalance assigns unpaused ones);
        resume them when it ends."""
        if hold:
            self.consumer.pause_all()
            self.held = True
        elif self.held:
            self.consumer.resume_all()
            self.held = False

    def commit_finished(self) -> None:
        """Commit every partition's finished scenes (in offset order); note why a scene that raised stopped
        the worker (it stays uncommitted, and so do the later scenes of its partition)."""
        for entry in self.inflight.committable():
            t0 = time.perf_counter()
            self.consumer.commit(entry.msg, self.stop)
            STAGE_SECONDS.labels("commit").observe(time.perf_counter() - t0)
        for entry in self.inflight.failed():
            if self.halt is not None:
                continue
            exc = entry.future.exception()
            self.halt = exc
            if isinstance(exc, _RestartRequested):
                log.warning("restarting the worker process: %s; %s stays uncommitted", exc, entry.where())
                self.restart_requested = True
            elif isinstance(exc, (_Interrupted, DlqWriteError)):
                log.warning("stopping before %s was finished (%s); it stays uncommitted", entry.where(), exc)
            else:
                log.error("scene at %s failed unexpectedly; the worker stops, the scene stays uncommitted",
                          entry.where(), exc_info=exc)
            self.stop.set()  # the other scenes in flight finish, or stay uncommitted where they fail

    def drain(self, pool: ThreadPoolExecutor) -> None:
        """Let every scene in flight finish (a failing one gives up on stop and stays uncommitted), then
        commit what finished in order. When the process must restart (the Ray head was replaced) the other
        scenes cannot finish on the old cluster: they get ``restart_drain_s`` s, then are left uncommitted
        (redelivered to the restarted process, a no-op where stored)."""
        pending = [e.future for e in self.inflight.entries()]
        if pending:
            log.info("stopping: waiting for %d scenes in flight", len(pending))
        deadline = time.monotonic() + self.restart_drain_s if self.restart_requested else None
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                log.warning("restarting with %d scenes in flight: left uncommitted", len(pending))
                break
            _, rest = wait_futures(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            self.commit_finished()
            pending = list(rest)
        self.commit_finished()
        for entry in self.inflight.entries():
            entry.abandoned.set()
        pool.shutdown(wait=deadline is None, cancel_futures=True)

    def on_revoke(self, keys: list[tuple[str, int]]) -> None:
        """Partitions ``keys`` are taken away (a rebalance; called from poll on the main thread, while
        they are still ours). Wait up to ``revoke_drain_s`` for their scenes in flight, commit the finished
        ones, abandon the rest uncommitted: the new owner processes them again (a no-op where stored)."""
        keys = set(keys)
        entries = self.inflight.entries(keys)
        log.info("partitions revoked: %s; %d of their scenes in flight", ", ".join(f"{t}[{p}]" for t, p in sorted(keys)),
                 len(entries), extra={"partitions": sorted(p for _, p in keys), "in_flight": len(entries)})
        if not entries:
            return
        wait_futures([e.future for e in entries], timeout=self.revoke_drain_s)
        for entry in self.inflight.committable(keys):
            self.consumer.commit(entry.msg, self.stop)
        abandoned = self.inflight.forget(keys)
        for entry in abandoned:
            entry.abandoned.set()  # gives up retrying and never dead-letters; a write in progress may finish
        log.info("revoked partitions drained: %d scenes committed, %d abandoned uncommitted (%s)",
                 len(entries) - len(abandoned), len(abandoned), ", ".join(e.where() for e in abandoned) or "none",
                 extra={"committed": len(entries) - len(abandoned), "abandoned": len(abandoned)})
