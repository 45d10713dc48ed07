"""Scenes in flight in one worker, per partition in offset order, and which offsets may be committed.

The worker processes up to ``scenes_in_flight`` scenes at once (scene N+1 is read and inferred while
scene N is vectorized and stored), but Kafka offsets mean "everything before this is done", so an offset
is committed only when every earlier scene of its partition has finished too: a scene that finishes early
waits for its predecessors. A scene that did not finish (interrupted by a stop, abandoned on a
rebalance, failed with an unexpected error) is never committed and holds back the later ones of its
partition; they are redelivered after a restart and are no-ops there (run markers).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

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
