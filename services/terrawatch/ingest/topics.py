"""Kafka topics: create the scene and dead-letter topics when missing, replicated as configured; probe the
cluster. A topic that exists with a weaker replication factor or ``min.insync.replicas`` than configured
is reported by :func:`readiness` (not ready), never silently used."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from terrawatch.ingest.kafka_config import client_config
from terrawatch.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Durability:
    replication_factor: int
    min_insync_replicas: int


def durability(settings: Settings, brokers: int) -> Durability:
    """The replication factor and ``min.insync.replicas`` wanted on a cluster of ``brokers`` brokers:
    the settings, else min(3, brokers) and min(2, replication factor)."""
    rf = settings.kafka_replication_factor or max(1, min(3, brokers))
    isr = settings.kafka_min_insync_replicas or min(2, rf)
    if isr > rf:
        raise ValueError(f"TERRAWATCH_KAFKA_MIN_INSYNC_REPLICAS={isr} exceeds the replication factor {rf}: "
                         "no write could ever be acknowledged")
    return Durability(rf, isr)


def weaknesses(topic: str, replicas: dict[int, int], min_insync: int | None, want: Durability) -> list[str]:
    """What makes ``topic`` weaker than ``want``: ``replicas`` = replicas per partition, ``min_insync`` its
    effective ``min.insync.replicas`` (None when it could not be read)."""
    out = []
    low = sorted(p for p, n in replicas.items() if n < want.replication_factor)
    if low:
        least = min(replicas[p] for p in low)
        out.append(f"{topic}: replication factor {least} < {want.replication_factor} on partition(s) "
                   f"{','.join(map(str, low))}")
    if min_insync is None:
        out.append(f"{topic}: min.insync.replicas could not be read")
    elif min_insync < want.min_insync_replicas:
        out.append(f"{topic}: min.insync.replicas {min_insync} < {want.min_insync_replicas}")
    return out


def unwritable(topic: str, in_sync: dict[int, int], min_insync: int | None) -> list[str]:
    """Partitions of ``topic`` with fewer in-sync replicas (``in_sync``: per partition) than its
    ``min.insync.replicas``: an ``acks=all`` producer is refused there (NOT_ENOUGH_REPLICAS)."""
    low = sorted(p for p, n in in_sync.items() if min_insync is not None and n < min_insync)
    if not low:
        return []
    return [f"{topic}: partition(s) {','.join(map(str, low))} have {min(in_sync[p] for p in low)} in-sync "
            f"replica(s) < min.insync.replicas {min_insync}: writes are refused"]


def admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def ensure_topics(settings: Settings) -> None:
    """Create the scenes topic (``topic_partitions``) and the DLQ topic (1 partition) where missing, with the
    wanted replication factor and ``min.insync.replicas``. Existing topics are left as they are
    (:func:`readiness` reports weaker ones)."""
    a = admin(settings)
    md = a.list_topics(timeout=10)
    want = durability(settings, len(md.brokers))
    new = [
        NewTopic(t, num_partitions=p, replication_factor=want.replication_factor,
                 config={"min.insync.replicas": str(want.min_insync_replicas)})
        for t, p in ((settings.scenes_topic, settings.topic_partitions), (settings.dlq_topic, 1))
        if t not in md.topics
    ]
    if new:
        for topic, fut in a.create_topics(new).items():
            try:
                fut.result(timeout=30)
            except Exception as exc:  # noqa: BLE001
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
            else:
                log.info("created topic %s (replication factor %d, min.insync.replicas %d)", topic,
                         want.replication_factor, want.min_insync_replicas)


def brokers_and_topics(settings: Settings, timeout_s: float = 3.0) -> tuple[int, set[str]]:
    """(brokers answering, topic names) of the cluster at ``settings.bootstrap``; raises on a client error."""
    md = admin(settings).list_topics(timeout=timeout_s)
    return len(md.brokers), set(md.topics)


def min_insync(a: AdminClient, topics: list[str], timeout_s: float = 5.0) -> dict[str, int | None]:
    """Effective ``min.insync.replicas`` (topic override or broker default) of each topic."""
    futures = a.describe_configs([ConfigResource("topic", t) for t in topics])
    out: dict[str, int | None] = {}
    for res, fut in futures.items():
        entry = fut.result(timeout=timeout_s).get("min.insync.replicas")
        out[res.name] = int(entry.value) if entry is not None and entry.value is not None else None
    return out


class TopicsTooWeak(RuntimeError):
    """The scenes or DLQ topic exists with a lower replication factor or ``min.insync.replicas`` than
    configured: a broker loss could lose acknowledged events. Fix the topic or lower the setting."""


def check_durability(settings: Settings, timeout_s: float = 3.0) -> tuple[int, Durability, list[str]]:
    """(brokers, wanted durability, weaknesses) of the existing scenes and DLQ topics (missing ones are
    skipped); raises on a client error."""
    a = admin(settings)
    md = a.list_topics(timeout=timeout_s)
    brokers = len(md.brokers)
    want = durability(settings, brokers)
    names = [tp for tp in (settings.scenes_topic, settings.dlq_topic) if tp in md.topics]
    isr = min_insync(a, names, timeout_s) if names else {}
    return brokers, want, [w for tp in names for w in weaknesses(
        tp, {p: len(pm.replicas) for p, pm in md.topics[tp].partitions.items()}, isr.get(tp), want)]


def require_durable(settings: Settings) -> None:
    """Raise :class:`TopicsTooWeak` when an existing scenes/DLQ topic is weaker than configured (the
    worker calls it before it joins its group: it does not consume from such a topic). A Kafka that does
    not answer is not this check's business (the worker rides out outages): logged, not raised."""
    try:
        weak = check_durability(settings, timeout_s=10.0)[2]
    except Exception as exc:  # noqa: BLE001 - any client error: Kafka unreachable, checked by readiness later
        log.warning("could not check the topics' replication (%s); consuming anyway", exc)
        return
    if weak:
        raise TopicsTooWeak("topics weaker than configured (TERRAWATCH_KAFKA_REPLICATION_FACTOR / "
                            "_MIN_INSYNC_REPLICAS): " + "; ".join(weak))


def readiness(settings: Settings, timeout_s: float = 3.0) -> str:
    """Readiness probe of Kafka: brokers answer, the scenes and DLQ topics exist and are replicated as
    configured (replication factor and ``min.insync.replicas``) with enough replicas in sync to accept
    writes. Returns a detail; raises RuntimeError."""
    a = admin(settings)
    md = a.list_topics(timeout=timeout_s)
    brokers = len(md.brokers)
    if not brokers:
        raise RuntimeError("no brokers")
    names = [settings.scenes_topic, settings.dlq_topic]
    missing = [tp for tp in names if tp not in md.topics]
    if missing:
        raise RuntimeError(f"topics missing: {', '.join(missing)}")
    want = durability(settings, brokers)
    isr = min_insync(a, names, timeout_s)
    weak = [w for tp in names
            for w in weaknesses(tp, {p: len(pm.replicas) for p, pm in md.topics[tp].partitions.items()},
                                isr.get(tp), want)]
    if weak:
        raise TopicsTooWeak("topics weaker than configured (TERRAWATCH_KAFKA_REPLICATION_FACTOR / "
                            "_MIN_INSYNC_REPLICAS): " + "; ".join(weak))
    full = [w for tp in names
            for w in unwritable(tp, {p: len(pm.isrs) for p, pm in md.topics[tp].partitions.items()}, isr.get(tp))]
    if full:
        raise RuntimeError("; ".join(full))
    return (f"{brokers} broker(s), replication factor >= {want.replication_factor}, "
            f"min.insync.replicas >= {want.min_insync_replicas}")
