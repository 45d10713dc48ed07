"""Kafka adapters: scene event producer, DLQ writer and lag reporting (confluent-kafka)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from terrawatch.settings import Settings


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


def send_to_dlq(p: Producer, settings: Settings, msg: Message, reason: str, code: str, attempts: int = 1) -> None:
    """Write the original payload and the reason to the DLQ and wait until the broker has it."""
    p.produce(settings.dlq_topic, key=msg.key(), value=dlq_record(msg, reason, code, attempts),
              headers=[("terrawatch-reason", reason[:1000].encode()), ("terrawatch-error-code", code.encode())])
    remaining = p.flush(30)
    if remaining:
        raise RuntimeError("DLQ write not acknowledged by the broker")


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
