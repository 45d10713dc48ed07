"""The scene dead-letter queue (Kafka topic ``TERRAWATCH_DLQ_TOPIC``): its one record type and its Kafka I/O.

:class:`DlqRecord` is the JSON value of every DLQ message: the reason, a machine-readable
``error_code``, its ``kind`` (``permanent``: the event itself is bad, re-driving cannot help until
it is fixed; ``transient``: a dependency failed through every attempt, a re-drive once it is back
may succeed), the attempts made, when, where the event came from (topic/partition/offset/key) and
the original payload, byte for byte (UTF-8 text, else base64).

A DLQ entry is addressed by its position in the DLQ topic, ``partition/offset`` (e.g. ``0/12``).
What operators did with it (re-driven, purged) lives in PostGIS (``store.dlq_state``), keyed by
DLQ topic/partition/offset: Kafka records are immutable and cannot be deleted one by one.

Everything here talks to Kafka only (confluent-kafka); the use cases (list, show, re-drive, purge,
depth) are in :mod:`terrawatch.service.dlq`, shared by the ops API and ``terrawatch dlq``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from collections.abc import Iterator
from typing import Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import BaseModel, Field, ValidationError

from terrawatch.domain.errors import DlqWriteError, TransientError  # DlqWriteError: raised here, read by the worker
from terrawatch.ingest.kafka_config import client_config
from terrawatch.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["permanent", "transient"]


def kind_for(error_code: str) -> Kind:
    """``transient`` for a dependency failure (error code ``transient``), else ``permanent``."""
    return "transient" if error_code == "transient" else "permanent"


class DlqSource(BaseModel):
    topic: str
    partition: int
    offset: int
    key: str = ""


class DlqRecord(BaseModel):
    """The value of one DLQ message (JSON)."""

    reason: str = Field(description="Human-readable reason the event was rejected.")
    error_code: str = Field(description="Machine-readable class, e.g. invalid_event, unreadable_asset, transient.")
    kind: Kind = Field(default="permanent", description="permanent (fix the event) or transient (re-drive later).")
    attempts: int = Field(default=1, description="Processing attempts made before dead-lettering.")
    failed_at: datetime | None = Field(default=None, description="When it was dead-lettered (UTC).")
    source: DlqSource | None = Field(default=None, description="Where the event was read from.")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload: str | None = Field(default=None, description="The original event value (see payload_encoding).")
    dependency: str | None = Field(
        default=None, description="transient: the dependency that was down (triton, ray, postgis), if known.")
    redrives: int = Field(default=0, description="Re-drives of this event before it came back to the DLQ "
                                                 "(its terrawatch-redrives header).")

    @classmethod
    def from_message(cls, msg: Message, reason: str, code: str, attempts: int = 1,
                     kind: Kind | None = None, dependency: str | None = None) -> DlqRecord:
        raw = msg.value() or b""
        try:
            payload, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(raw).decode(), "base64"
        return cls(reason=reason, error_code=code, kind=kind or kind_for(code), attempts=attempts,
                   failed_at=datetime.now(timezone.utc),
                   source=DlqSource(topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                                    key=(msg.key() or b"").decode("utf-8", "replace")),
                   payload_encoding=encoding, payload=payload, dependency=dependency, redrives=redrives_of(msg))

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse(cls, raw: bytes | None) -> DlqRecord:
        """Parse a DLQ message value; a value that is not a record still yields one (reason says why)."""
        try:
            data = json.loads(raw or b"")
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if "kind" not in data and isinstance(data.get("error_code"), str):  # records written before `kind`
                data["kind"] = kind_for(data["error_code"])
            return cls.model_validate(data)
        except (ValueError, ValidationError) as exc:
            return cls(reason=f"unparseable DLQ record: {str(exc).splitlines()[0][:200]}",
                       error_code="unparseable_dlq_record", payload=None)

    def original_payload(self) -> bytes | None:
        """The event's original bytes (None when the record did not keep them)."""
        if self.payload is None:
            return None
        return base64.b64decode(self.payload) if self.payload_encoding == "base64" else self.payload.encode()

    @property
    def source_key(self) -> bytes | None:
        key = self.source.key if self.source else ""
        return key.encode() if key else None


REDRIVES_HEADER = "terrawatch-redrives"  # re-drives of the event so far, set on every re-driven message


def redrives_of(msg: Message) -> int:
    """How many times the event in ``msg`` was re-driven from the DLQ (its ``terrawatch-redrives`` header)."""
    for key, value in msg.headers() or []:
        if key == REDRIVES_HEADER:
            try:
                return max(0, int((value or b"0").decode()))
            except ValueError:
                return 0
    return 0


class KafkaUnavailable(TransientError):
    """Kafka could not be reached or refused a DLQ read/write (the API answers 503)."""

    code = "unavailable"


def send_to_dlq(p: Producer, settings: Settings, msg: Message, reason: str, code: str, attempts: int = 1,
                timeout_s: float = 30.0, stop: threading.Event | None = None, kind: Kind | None = None,
                dependency: str | None = None) -> str:
    """Write the original payload and the reason to the DLQ and wait until the broker has it.

    Waits up to ``timeout_s`` s, or with ``stop`` given until ``stop`` is set: through a broker outage
    the record stays queued in the (idempotent) producer, so waiting longer never duplicates it; a
    record the producer gave up on (message.timeout.ms) is produced again. Raises DlqWriteError.
    Returns the DLQ record's reference ``topic[partition]@offset`` (kept with a failed scene's status).
    """
    record = DlqRecord.from_message(msg, reason, code, attempts, kind, dependency)
    report: list = []
    deadline = time.monotonic() + timeout_s
    while True:
        p.produce(settings.dlq_topic, key=msg.key(), value=record.to_bytes(),
                  headers=[("terrawatch-reason", reason[:1000].encode()), ("terrawatch-error-code", code.encode()),
                           ("terrawatch-kind", record.kind.encode())],
                  on_delivery=lambda err, m: report.append((err, m)))
        while not report:
            p.flush(1.0)
            if stop is None and time.monotonic() > deadline:
                raise DlqWriteError(f"DLQ write not acknowledged by the broker within {timeout_s:.0f} s")
            if stop is not None and stop.is_set() and not report:
                raise DlqWriteError("DLQ write not acknowledged before shutdown")
        err, delivered = report.pop()
        if err is None:
            return f"{delivered.topic()}[{delivered.partition()}]@{delivered.offset()}"
        if stop is None or stop.is_set():
            raise DlqWriteError(f"DLQ write failed: {err}")
        log.warning("DLQ write failed (%s); producing it again", err)
        stop.wait(1.0)


class DlqSink:
    """The worker's dead-letter sink (the ``DeadLetterSink`` port of :mod:`terrawatch.service.ports`):
    :func:`send_to_dlq` on one producer."""

    def __init__(self, producer: Producer, settings: Settings) -> None:
        self.producer, self.s = producer, settings

    def send(self, msg: Message, reason: str, code: str, attempts: int, stop: threading.Event,
             dependency: str | None = None) -> str:
        return send_to_dlq(self.producer, self.s, msg, reason, code, attempts, stop=stop, dependency=dependency)

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)


# reading ---------------------------------------------------------------------------------------

def kafka_errors(fn):
    """Turn Kafka client errors into :class:`KafkaUnavailable`; retry a transient coordinator error twice."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for attempt in range(3):
            try:
                return fn(*args, **kwargs)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and err.code() in (
                    KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                    KafkaError.COORDINATOR_NOT_AVAILABLE)
                if retriable and attempt < 2:
                    time.sleep(1.0)
                    continue
                raise KafkaUnavailable(f"Kafka: {err.str() if isinstance(err, KafkaError) else exc}") from exc
        raise AssertionError("unreachable")

    return wrapper


def probe_consumer(settings: Settings, group: str | None = None) -> Consumer:
    """A consumer that only reads watermarks/committed offsets or assigned partitions; it never
    subscribes, so it never joins (or rebalances) the pipeline's group."""
    return Consumer(client_config(settings, **{
        "group.id": group or f"tw-probe-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "socket.timeout.ms": 5000}))


def partitions(consumer: Consumer, topic: str) -> list[int]:
    md = consumer.list_topics(topic, timeout=5)
    tm = md.topics.get(topic)
    if tm is None or tm.error is not None:
        raise KafkaUnavailable(f"topic {topic} is not available")
    return sorted(tm.partitions)


@kafka_errors
def watermarks(settings: Settings) -> dict[int, tuple[int, int]]:
    """Per DLQ partition: (low, high) offsets; messages ``low <= offset < high`` are retained."""
    c = probe_consumer(settings)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(settings.dlq_topic, p), timeout=5, cached=False)
                for p in partitions(c, settings.dlq_topic)}
    finally:
        c.close()


@kafka_errors
def read(settings: Settings, wanted: dict[int, set[int]] | None = None, limit: int = 100,
         timeout_s: float = 20.0) -> list[tuple[int, int, DlqRecord]]:
    """(partition, offset, record) oldest first per partition: all retained (up to ``limit``), or exactly
    the positions in ``wanted`` ({partition: {offsets}}) that are still retained."""
    c = probe_consumer(settings)
    out: list[tuple[int, int, DlqRecord]] = []
    try:
        for p in partitions(c, settings.dlq_topic):
            if wanted is not None and p not in wanted:
                continue
            low, high = c.get_watermark_offsets(TopicPartition(settings.dlq_topic, p), timeout=5, cached=False)
            start = max(low, min(wanted[p])) if wanted else low
            if start >= high:
                continue
            c.assign([TopicPartition(settings.dlq_topic, p, start)])
            pos, deadline = start, time.monotonic() + timeout_s
            while pos < high and time.monotonic() < deadline and (wanted is not None or len(out) < limit):
                msg = c.poll(1.0)
                if msg is None or msg.error():
                    continue
                pos = msg.offset() + 1
                if wanted is None or msg.offset() in wanted[p]:
                    out.append((p, msg.offset(), DlqRecord.parse(msg.value())))
                if wanted is not None and pos > max(wanted[p]):
                    break
            c.unassign()
        return out[:limit] if wanted is None else out
    finally:
        c.close()


class DlqCursor:
    """A cursor over the DLQ topic kept as the committed offsets of consumer group ``group`` (it never
    subscribes: partitions are assigned one at a time). Used by the automatic re-drive of transient entries
    (:mod:`terrawatch.service.auto_redrive`). Opened lazily; :meth:`close` it after each pass (an idle client
    would keep reconnecting, and logging, through a broker outage)."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.s, self.group = settings, group
        self._c: Consumer | None = None

    def _consumer(self) -> Consumer:
        if self._c is None:
            self._c = Consumer(client_config(self.s, **{
                "group.id": self.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "socket.timeout.ms": 5000}))
        return self._c

    def ranges(self) -> dict[int, tuple[int, int]]:
        """Partition -> (cursor, high watermark) for DLQ partitions with entries past the cursor."""
        c = self._consumer()
        md = c.list_topics(self.s.dlq_topic, timeout=5).topics.get(self.s.dlq_topic)
        if md is None or md.error is not None:
            return {}
        parts = [TopicPartition(self.s.dlq_topic, p) for p in md.partitions]
        out = {}
        for tp in c.committed(parts, timeout=5):
            low, high = c.get_watermark_offsets(TopicPartition(self.s.dlq_topic, tp.partition), timeout=5,
                                                cached=False)
            start = max(tp.offset if tp.offset >= 0 else low, low)
            if high > start:
                out[tp.partition] = (start, high)
        return out

    def scan(self, partition: int, start: int, high: int, timeout_s: float) -> Iterator[tuple[int, DlqRecord]]:
        """(offset, record) for ``start <= offset < high`` of ``partition``, until ``timeout_s`` s passed."""
        c = self._consumer()
        c.assign([TopicPartition(self.s.dlq_topic, partition, start)])
        pos, deadline = start, time.monotonic() + timeout_s
        try:
            while pos < high and time.monotonic() < deadline:
                msg = c.poll(1.0)
                if msg is None or msg.error():
                    continue
                pos = msg.offset() + 1
                yield msg.offset(), DlqRecord.parse(msg.value())
        finally:
            c.unassign()

    def advance(self, partition: int, offset: int) -> None:
        """Move the cursor of ``partition`` to ``offset`` (the next entry to look at)."""
        self._consumer().commit(offsets=[TopicPartition(self.s.dlq_topic, partition, offset)], asynchronous=False)

    def close(self) -> None:
        if self._c is not None:
            self._c, c = None, self._c
            c.close()


def high_watermarks(settings: Settings) -> int:
    """Records ever written to the DLQ topic (sum of its partitions' high watermarks)."""
    return sum(high for _, high in watermarks(settings).values())


def republish(producer: Producer, settings: Settings, records: list[DlqRecord]) -> None:
    """Produce each record's original payload to the scenes topic under its original key; wait for acks."""
    try:
        for r in records:
            producer.produce(settings.scenes_topic, key=r.source_key, value=r.original_payload(),
                             headers=[(REDRIVES_HEADER, str(r.redrives + 1).encode())])
        remaining = producer.flush(15)
    except (BufferError, KafkaException) as exc:
        raise KafkaUnavailable(f"Kafka rejected the re-drive: {exc}") from exc
    if remaining:
        raise KafkaUnavailable(f"Kafka did not acknowledge {remaining} message(s) within 15 s")
