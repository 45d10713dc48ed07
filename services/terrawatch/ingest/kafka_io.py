"""Kafka adapters: scene event producer, the worker's consumer (:class:`SceneConsumer`) and lag reporting
(confluent-kafka).

The DLQ (record type, writer, reader, re-drive cursor) is in :mod:`terrawatch.ingest.dlq`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from terrawatch.ingest.dlq import kafka_errors, partitions, probe_consumer
from terrawatch.ingest.kafka_config import client_config
from terrawatch.observability.logging import RepeatLimiter
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
    """Idempotent producer acknowledged by every in-sync replica (``acks=all``: with the topics'
    ``min.insync.replicas`` 2, an acknowledged event survives the loss of a broker)."""
    return Producer(client_config(settings, **{"enable.idempotence": True, "acks": "all", "linger.ms": 5}))


def publish_scene(p: Producer, settings: Settings, item: dict) -> None:
    """Publish one STAC Item keyed by its id (same scene -> same partition)."""
    p.produce(settings.scenes_topic, key=item.get("id", "").encode(), value=json.dumps(item).encode())


def publish_items(p: Producer, settings: Settings, items: list[dict], timeout_s: float = 30.0) -> None:
    """Publish scene events and wait until the broker acknowledged all of them; raises KafkaUnavailable."""
    from terrawatch.ingest.dlq import KafkaUnavailable

    try:
        for item in items:
            publish_scene(p, settings, item)
            p.poll(0)
        remaining = p.flush(timeout_s)
    except (BufferError, KafkaException) as exc:
        raise KafkaUnavailable(f"Kafka rejected the publish: {exc}") from exc
    if remaining:
        raise KafkaUnavailable(f"Kafka did not acknowledge {remaining} message(s) within {timeout_s:.0f} s")


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
    conf = client_config(settings, **{
        "group.id": settings.consumer_group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": 1_800_000,
        "session.timeout.ms": int(settings.consumer_session_timeout_s * 1000),
        "partition.assignment.strategy": "cooperative-sticky",
        **extra,
    })
    static = instance_id(settings)
    if static:
        conf["group.instance.id"] = static
    return Consumer(conf)


def _offsets(c: Consumer, topic: str, parts: list[int]) -> list[dict]:
    """Per partition of ``topic``: the group's committed offset (None if none), high watermark and lag
    (messages from the committed offset, or from the low watermark, to the high watermark)."""
    out = []
    for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=5):
        low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5, cached=False)
        committed = tp.offset if tp.offset >= 0 else None
        out.append({"partition": tp.partition, "committed": committed, "high_watermark": high,
                    "lag": max(0, high - (low if committed is None else committed))})
    return out


def lag(c: Consumer, topic: str) -> dict[int, int]:
    """Messages behind per assigned partition (high watermark - committed offset)."""
    parts = [tp.partition for tp in c.assignment() if tp.topic == topic]
    return {o["partition"]: o["lag"] for o in _offsets(c, topic, parts)} if parts else {}


@kafka_errors
def group_lag(settings: Settings) -> list[dict]:
    """Per partition of the scenes topic: committed offset of the pipeline's consumer group, high
    watermark and lag (messages). Read with a probe consumer that never subscribes, so it does not
    join (or rebalance) the group; Kafka errors become ``KafkaUnavailable``."""
    c = probe_consumer(settings, group=settings.consumer_group)
    try:
        return _offsets(c, settings.scenes_topic, partitions(c, settings.scenes_topic))
    finally:
        c.close()


def is_fatal(err: KafkaError) -> bool:
    """A consumer error after which librdkafka's consumer is unusable (e.g. FENCED_INSTANCE_ID)."""
    return err.fatal() or err.code() == KafkaError._FATAL


class SceneConsumer:
    """The worker's consumer of the scenes topic (the ``SceneConsumer`` port of
    :mod:`terrawatch.service.ports`): a group member with manual commits (see :func:`consumer`).

    Consumer errors are handled here: a fatal one replaces the consumer (same static member id), others
    are logged (rate-limited); :meth:`poll` returns only messages or None."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.topic = settings.scenes_topic
        self.instance_id = instance_id(settings)
        self._c = consumer(settings)
        self._checked = False
        self._errors = RepeatLimiter(log)
        # Called with [(topic, partition)] when partitions are revoked or lost, from poll(), while they are
        # still ours: the worker drains or abandons their scenes in flight (service.worker).
        self.on_revoke: Callable[[list[tuple[str, int]]], None] | None = None

    def membership(self) -> str:
        return f"static member {self.instance_id}" if self.instance_id else "a dynamic member"

    def subscribe(self) -> None:
        """Join the group. The first time, refuse (``topics.TopicsTooWeak``) a scenes or DLQ topic that is
        replicated less than configured: the worker fails at start with the reason instead of consuming."""
        if not self._checked:
            from terrawatch.ingest.topics import require_durable

            require_durable(self.s)
            self._checked = True
        self._c.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, parts) -> None:
        log.info("partitions assigned: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in parts),
                 extra={"partitions": [p.partition for p in parts], "instance_id": self.instance_id})
        # Not paused here (the assignment is applied after this callback): a message fetched from them while
        # consumption is paused is rewound by hold(), and the pause flag is re-applied every control_poll_s.

    def _on_revoke(self, consumer, parts) -> None:
        if self.on_revoke is not None:
            self.on_revoke([(p.topic, p.partition) for p in parts])
        else:
            log.info("partitions revoked: %s", ", ".join(f"{p.topic}[{p.partition}]" for p in parts))

    def poll(self, timeout_s: float, log_errors: bool = True) -> Message | None:
        """The next message, or None (nothing within ``timeout_s`` s, or a consumer error: logged when
        ``log_errors``; a fatal one replaces the consumer)."""
        msg = self._c.poll(timeout_s)
        if msg is None or not msg.error():
            return msg
        err = msg.error()
        if is_fatal(err):
            self._renew(err)
        elif log_errors:
            self._errors.warning(("kafka", str(err)), "kafka consumer error: %s", err, dependency="kafka")
        return None

    def _renew(self, err) -> None:
        """Replace a consumer that hit a fatal error. After a broker/coordinator restart a static member can
        be fenced by its own re-join under a new member id (FENCED_INSTANCE_ID is fatal in librdkafka); a
        new consumer with the same group.instance.id takes the partitions back. Uncommitted events are
        redelivered (a no-op where already stored)."""
        log.warning("kafka consumer failed fatally (%s): replacing it with a new one (same static member id)", err)
        try:
            self._c.close()
        except Exception:  # noqa: BLE001 - a fatal consumer may refuse a clean close
            log.debug("closing the failed consumer raised", exc_info=True)
        self._c = consumer(self.s)
        self.subscribe()

    def commit(self, msg: Message, stop: threading.Event) -> None:
        """Commit ``msg``'s offset; retry while the broker or group coordinator is unreachable, so a
        Kafka outage never stops the worker (until ``stop`` is set). Other failures (the partition moved
        to another member) are not retried: the event is redelivered there and is a no-op (run marker)."""
        delay = 0.5
        while True:
            try:
                self._c.commit(message=msg, asynchronous=False)
                return
            except KafkaException as exc:
                err = exc.args[0]
                where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
                if not commit_retriable(err) or stop.is_set():
                    log.warning("offset commit for %s failed (%s); left to redelivery", where, err)
                    return
                log.warning("offset commit for %s failed (%s); retrying in %.1f s", where, err, delay)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def hold(self, msg: Message) -> None:
        """Rewind to ``msg`` and pause its partition: it is fetched again after :meth:`resume_all`."""
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self._c.pause([tp])
        self._c.seek(tp)

    def pause_all(self) -> None:
        """Pause every assigned partition (they still poll, so the member stays in its group)."""
        parts = self._c.assignment()
        if parts:
            self._c.pause(parts)

    def resume_all(self) -> None:
        parts = self._c.assignment()
        if parts:
            self._c.resume(parts)

    def lag(self) -> dict[int, int]:
        """Messages behind per assigned partition of the scenes topic."""
        return lag(self._c, self.topic)

    def close(self) -> None:
        self._c.close()
