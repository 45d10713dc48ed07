"""Kafka topics: create the scene and dead-letter topics when missing; probe the cluster."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from terrawatch.settings import Settings


def ensure_topics(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [
        NewTopic(t, num_partitions=p, replication_factor=1)
        for t, p in ((settings.scenes_topic, settings.topic_partitions), (settings.dlq_topic, 1))
        if t not in existing
    ]
    if new:
        for topic, fut in admin.create_topics(new).items():
            try:
                fut.result(timeout=30)
            except Exception as exc:  # noqa: BLE001
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise


def brokers_and_topics(settings: Settings, timeout_s: float = 3.0) -> tuple[int, set[str]]:
    """(brokers answering, topic names) of the cluster at ``settings.bootstrap``; raises on a client error."""
    md = AdminClient({"bootstrap.servers": settings.bootstrap}).list_topics(timeout=timeout_s)
    return len(md.brokers), set(md.topics)


def readiness(settings: Settings) -> str:
    """Readiness probe of Kafka: brokers answer and the scenes and DLQ topics exist. Returns a detail;
    raises RuntimeError otherwise."""
    brokers, topics = brokers_and_topics(settings)
    if not brokers:
        raise RuntimeError("no brokers")
    missing = [tp for tp in (settings.scenes_topic, settings.dlq_topic) if tp not in topics]
    if missing:
        raise RuntimeError(f"topics missing: {', '.join(missing)}")
    return f"{brokers} broker(s)"
