"""Kafka adapters: scene event producer, consumer and lag reporting (confluent-kafka).

The DLQ (record type, writer, reader, re-drive) is in :mod:`terrawatch.ingest.dlq`; ``send_to_dlq`` and
``DlqWriteError`` are re-exported here for the worker.
"""

from __future__ import annotations

import json
import logging

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from terrawatch.ingest.dlq import DlqWriteError, kafka_errors, partitions, probe_consumer, send_to_dlq  # noqa: F401 - DlqWriteError, send_to_dlq re-exported for the worker
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


def instance_id(settings: Settings) -> str | None:
    """This worker's static group membership id (``group.instance.id``), None for dynamic membership.

    Default ``<hostname>-<metrics port>``: the same after a restart of the process (so the broker hands
    the restarted member its partitions back without a rebalance), and distinct for several workers on
    one host (each serves /metrics on its own port)."""
    import socket

    if settings.consumer_instance_id is not None:
        return settings.consumer_instance_id.strip() or None
    return f"{socket.gethostname()}-{settings.metrics_port}"[:200]


def consumer(settings: Settings, **extra) -> Consumer:
    """The pipeline's consumer: manual commits, cooperative-sticky assignment, static membership
    (docs/scaling.md). A worker holding a scene through a dependency outage keeps polling its paused
    partitions, so it stays in the group; the outage window stays below ``max.poll.interval.ms``."""
    conf = {
        "bootstrap.servers": settings.bootstrap,
        "group.id": settings.consumer_group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 1_800_000,
        "session.timeout.ms": int(settings.consumer_session_timeout_s * 1000),
        "partition.assignment.strategy": "cooperative-sticky",
        **extra,
    }
    static = instance_id(settings)
    if static:
        conf["group.instance.id"] = static
    return Consumer(conf)


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


@kafka_errors
def group_lag(settings: Settings) -> list[dict]:
    """Per partition of the scenes topic: committed offset of the pipeline's consumer group, high
    watermark and lag (messages). Read with a probe consumer that never subscribes, so it does not
    join (or rebalance) the group; Kafka errors become ``KafkaUnavailable``."""
    c = probe_consumer(settings, group=settings.consumer_group)
    try:
        parts = partitions(c, settings.scenes_topic)
        committed = c.committed([TopicPartition(settings.scenes_topic, p) for p in parts], timeout=5)
        out = []
        for tp in committed:
            low, high = c.get_watermark_offsets(TopicPartition(settings.scenes_topic, tp.partition), timeout=5,
                                                cached=False)
            pos = tp.offset if tp.offset >= 0 else low
            out.append({"partition": tp.partition, "committed": tp.offset if tp.offset >= 0 else None,
                        "high_watermark": high, "lag": max(0, high - pos)})
        return out
    finally:
        c.close()
