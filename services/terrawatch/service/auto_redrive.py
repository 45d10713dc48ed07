"""Automatic re-drive of ``transient`` DLQ entries once the dependencies are back (TERRAWATCH_DLQ_AUTO_REDRIVE).

A scene is dead-lettered as ``transient`` when a dependency outage outlasted the outage window (or an
unexplained error repeated). Once every dependency answers its readiness probe again, the worker
re-drives those entries through the operators' use case (:func:`terrawatch.service.dlq.redrive`, actor
``worker:auto-redrive``): the original payload goes back to the scenes topic under its original key,
the entry is marked ``redriven`` (``terrawatch dlq list --state redriven`` shows who and when). Every
re-driven message carries a ``terrawatch-redrives`` count; an event that comes back to the DLQ with
``dlq_auto_redrive_max`` re-drives stays ``pending`` for an operator (a scene that crashes a dependency
must not loop). Entries of any other kind (bad input) are never re-driven automatically.

New entries are found cheaply with a cursor: the committed offsets of the consumer group
``<consumer group>.transient-redrive`` on the DLQ topic, advanced only after the re-drive was
acknowledged by the broker (a crash in between re-drives an entry twice, which processing absorbs:
idempotent by scene, hazard and model version).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import Engine

from terrawatch.ingest.dlq import DlqRecord
from terrawatch.observability.metrics import DLQ_AUTO_REDRIVEN
from terrawatch.settings import Settings

log = logging.getLogger(__name__)

ACTOR = "worker:auto-redrive"


def redrivable(record: DlqRecord, max_redrives: int) -> bool:
    """Whether a DLQ record is re-driven automatically: transient, with its payload, under the limit."""
    return record.kind == "transient" and record.payload is not None and record.redrives < max_redrives


class TransientRedriver:
    def __init__(self, settings: Settings, engine: Engine, producer: Producer) -> None:
        self.s = settings
        self.engine = engine
        self.producer = producer
        self.consumer: Consumer | None = None

    def _open(self) -> Consumer:
        # Opened per check and closed after it: an idle client would keep reconnecting (and logging)
        # through a broker outage.
        if self.consumer is None:
            self.consumer = Consumer({"bootstrap.servers": self.s.bootstrap,
                                      "group.id": f"{self.s.consumer_group}.transient-redrive",
                                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                      "socket.timeout.ms": 5000})
        return self.consumer

    def _ranges(self) -> dict[int, tuple[int, int]]:
        """Partition -> (cursor, high watermark) for DLQ partitions with entries past the cursor."""
        md = self.consumer.list_topics(self.s.dlq_topic, timeout=5).topics.get(self.s.dlq_topic)
        if md is None or md.error is not None:
            return {}
        parts = [TopicPartition(self.s.dlq_topic, p) for p in md.partitions]
        out = {}
        for tp in self.consumer.committed(parts, timeout=5):
            low, high = self.consumer.get_watermark_offsets(TopicPartition(self.s.dlq_topic, tp.partition),
                                                            timeout=5, cached=False)
            start = max(tp.offset if tp.offset >= 0 else low, low)
            if high > start:
                out[tp.partition] = (start, high)
        return out

    def backlog(self) -> int:
        """DLQ entries past the cursor (not looked at yet)."""
        self._open()
        try:
            return sum(high - start for start, high in self._ranges().values())
        except BaseException:
            self.close()
            raise

    def run(self, timeout_s: float = 30.0) -> list[str]:
        """Re-drive the redrivable entries past the cursor, advance it; the re-driven entry ids (partition/offset)."""
        self._open()
        try:
            return self._run(timeout_s)
        finally:
            self.close()

    def _run(self, timeout_s: float) -> list[str]:
        from terrawatch.service import dlq as dlq_svc

        done: list[str] = []
        for part, (start, high) in self._ranges().items():
            ids: list[str] = []
            self.consumer.assign([TopicPartition(self.s.dlq_topic, part, start)])
            pos, deadline = start, time.monotonic() + timeout_s
            try:
                while pos < high and time.monotonic() < deadline:
                    msg = self.consumer.poll(1.0)
                    if msg is None or msg.error():
                        continue
                    pos = msg.offset() + 1
                    if redrivable(DlqRecord.parse(msg.value()), self.s.dlq_auto_redrive_max):
                        ids.append(f"{part}/{msg.offset()}")
            finally:
                self.consumer.unassign()
            if ids:  # marks them redriven and republishes in one go; raises (cursor kept) if Kafka refuses
                out = dlq_svc.redrive(self.s, self.engine, self.producer, ids, ACTOR)
                done += out["redriven"]
            if pos > start:
                self.consumer.commit(offsets=[TopicPartition(self.s.dlq_topic, part, pos)], asynchronous=False)
        if done:
            DLQ_AUTO_REDRIVEN.inc(len(done))
            log.info("re-drove %d transient DLQ entries automatically: %s", len(done), ", ".join(done[:20]))
        return done

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer, c = None, self.consumer
            c.close()
