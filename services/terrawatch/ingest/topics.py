"""Create the scene and dead-letter topics when missing."""

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
