"""Kafka adapters: scene event producer, DLQ writer and lag reporting (confluent-kafka)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from datetime import datetime, timezone

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from terrawatch.settings import Settings

log = logging.getLogger(__name__)

# Commit failures worth retrying: the broker or group coordinator is unreachable or moving.
RETRIABLE_COMMIT_ERRORS = frozenset({
    KafkaError._WAIT_COORD, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
    KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NETWORK_EXCEPTION,
})


def commit_retriable(err: KafkaError) -> bool:
    """Whether a failed offset commit should be retried (vs. given up: the partition moved, the event is
    redelivered to its new owner and is a no-op there)."""
    return err.code() in RETRIABLE_COMMIT_ERRORS or err.retriable()


def producer(settings: Settings) -> Producer:
    return Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True, "acks": "all",
                     "linger.ms": 5})


def publish_scene(p: Producer, settings: Settings, item: dict) -> None:
    """Publish one STAC Item keyed by its id (same scene -> same partition)."""
    p.produce(settings.scenes_topic, key=item.get("id", "").encode(), value=json.dumps(item).encode())


def dlq_record(msg: Message, reason: str, code: str, attempts: int = 1) -> bytes:
    raw = msg.value() or b""
    try:
        payload, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode(), "base64"
    return json.dumps({
        "reason": reason,
        "error_code": code,
        "attempts": attempts,
        "failed_at": datetime.now(timezone.utc).isoformat(),
        "source": {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                   "key": (msg.key() or b"").decode("utf-8", "replace")},
        "payload_encoding": encoding,
        "payload": payload,
    }).encode()


class DlqWriteError(RuntimeError):
    """The DLQ record was not acknowledged (broker down); the source offset must not be committed."""


def send_to_dlq(p: Producer, settings: Settings, msg: Message, reason: str, code: str, attempts: int = 1,
                timeout_s: float = 30.0, stop: threading.Event | None = None) -> None:
    """Write the original payload and the reason to the DLQ and wait until the broker has it.

    Waits up to ``timeout_s`` s, or with ``stop`` given until ``stop`` is set: through a broker outage
    the record stays queued in the (idempotent) producer, so waiting longer never duplicates it; a
    record the producer gave up on (message.timeout.ms) is produced again. Raises DlqWriteError.
    """
    report: list = []
    deadline = time.monotonic() + timeout_s
    while True:
        p.produce(settings.dlq_topic, key=msg.key(), value=dlq_record(msg, reason, code, attempts),
                  headers=[("terrawatch-reason", reason[:1000].encode()), ("terrawatch-error-code", code.encode())],
                  on_delivery=lambda err, _m: report.append(err))
        while not report:
            p.flush(1.0)
            if stop is None and time.monotonic() > deadline:
                raise DlqWriteError(f"DLQ write not acknowledged by the broker within {timeout_s:.0f} s")
            if stop is not None and stop.is_set() and not report:
                raise DlqWriteError("DLQ write not acknowledged before shutdown")
        err = report.pop()
        if err is None:
            return
        if stop is None or stop.is_set():
            raise DlqWriteError(f"DLQ write failed: {err}")
        log.warning("DLQ write failed (%s); producing it again", err)
        stop.wait(1.0)


def consumer(settings: Settings) -> Consumer:
    return Consumer({
        "bootstrap.servers": settings.bootstrap,
        "group.id": settings.consumer_group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 1_800_000,
        "session.timeout.ms": 30_000,
        "partition.assignment.strategy": "cooperative-sticky",
    })


def lag(c: Consumer, topic: str) -> dict[int, int]:
    """Messages behind per assigned partition (high watermark - committed offset)."""
    parts = [tp for tp in c.assignment() if tp.topic == topic]
    if not parts:
        return {}
    out = {}
    for tp in c.committed(parts, timeout=5):
        low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5, cached=False)
        committed = tp.offset if tp.offset >= 0 else low
        out[tp.partition] = max(0, high - committed)
    return out
