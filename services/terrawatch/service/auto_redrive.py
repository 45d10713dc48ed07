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

from terrawatch.ingest.dlq import DlqCursor, DlqRecord
from terrawatch.observability.metrics import DLQ_AUTO_REDRIVEN
from terrawatch.settings import Settings
from terrawatch.store.db import Engine

log = logging.getLogger(__name__)

ACTOR = "worker:auto-redrive"


def redrivable(record: DlqRecord, max_redrives: int) -> bool:
    """Whether a DLQ record is re-driven automatically: transient, with its payload, under the limit."""
    return record.kind == "transient" and record.payload is not None and record.redrives < max_redrives


class TransientRedriver:
    """The worker's ``Redriver`` port: re-drives transient entries past the cursor (see the module doc)."""

    def __init__(self, settings: Settings, engine: Engine, producer) -> None:
        self.s = settings
        self.engine = engine
        self.producer = producer  # the worker's Kafka producer (ingest.kafka_io.producer)
        self.cursor = DlqCursor(settings, f"{settings.consumer_group}.transient-redrive")

    def backlog(self) -> int:
        """DLQ entries past the cursor (not looked at yet)."""
        try:
            return sum(high - start for start, high in self.cursor.ranges().values())
        except BaseException:
            self.close()
            raise

    def run(self, timeout_s: float = 30.0) -> list[str]:
        """Re-drive the redrivable entries past the cursor, advance it; the re-driven entry ids (partition/offset)."""
        try:
            return self._run(timeout_s)
        finally:
            self.close()

    def _run(self, timeout_s: float) -> list[str]:
        from terrawatch.service import dlq as dlq_svc

        done: list[str] = []
        for part, (start, high) in self.cursor.ranges().items():
            ids: list[str] = []
            pos = start
            for offset, record in self.cursor.scan(part, start, high, timeout_s):
                pos = offset + 1
                if redrivable(record, self.s.dlq_auto_redrive_max):
                    ids.append(f"{part}/{offset}")
            for i in range(0, len(ids), dlq_svc.LIMIT):  # marks and republishes a batch in one go; raises
                out = dlq_svc.redrive(self.s, self.engine, self.producer, ids[i:i + dlq_svc.LIMIT], ACTOR)
                done += out["redriven"]  # (cursor kept) if Kafka refuses
            if pos > start:
                self.cursor.advance(part, pos)
        if done:
            DLQ_AUTO_REDRIVEN.inc(len(done))
            log.info("re-drove %d transient DLQ entries automatically: %s", len(done), ", ".join(done[:20]))
        return done

    def close(self) -> None:
        self.cursor.close()
