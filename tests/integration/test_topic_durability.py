"""Topic durability on the single-node stack (issue 30): terrawatch creates its topics with the replication
factor and min.insync.replicas the cluster allows (1/1 on one broker), readiness accepts them, and reports
them - not ready, with what is missing - to a deployment that requires 3/2; a topic that cannot be created
as required fails loudly. The 3-node cases are in tests/faults/test_multinode_kafka.py."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaException

from terrawatch.ingest import kafka_io
from terrawatch.ingest.topics import TopicsTooWeak, admin, ensure_topics, min_insync, readiness

pytestmark = pytest.mark.integration


def test_single_broker_topics_are_ready_and_weaker_than_a_3_2_requirement(stack):
    s = stack.settings
    assert readiness(s) == "1 broker(s), replication factor >= 1, min.insync.replicas >= 1"
    a = admin(s)
    md = a.list_topics(timeout=10)
    for t in (s.scenes_topic, s.dlq_topic):
        assert {len(pm.replicas) for pm in md.topics[t].partitions.values()} == {1}
    assert min_insync(a, [s.scenes_topic, s.dlq_topic]) == {s.scenes_topic: 1, s.dlq_topic: 1}
    strict = s.model_copy(update={"kafka_replication_factor": 3, "kafka_min_insync_replicas": 2})
    with pytest.raises(RuntimeError) as err:
        readiness(strict)
    msg = str(err.value)
    assert f"{s.scenes_topic}: replication factor 1 < 3 on partition(s) 0,1,2,3" in msg
    assert f"{s.scenes_topic}: min.insync.replicas 1 < 2" in msg
    assert f"{s.dlq_topic}: replication factor 1 < 3 on partition(s) 0" in msg
    c = kafka_io.SceneConsumer(strict.model_copy(update={"consumer_group": f"durability-{uuid.uuid4().hex[:6]}"}))
    try:  # a worker with that requirement refuses to consume from these topics
        with pytest.raises(TopicsTooWeak, match="replication factor 1 < 3"):
            c.subscribe()
    finally:
        c.close()


def test_a_topic_that_cannot_be_replicated_as_required_is_not_created(stack):
    tag = uuid.uuid4().hex[:6]
    s = stack.settings.model_copy(update={"scenes_topic": f"durability-{tag}", "dlq_topic": f"durability-{tag}.dlq",
                                          "kafka_replication_factor": 3})
    with pytest.raises(KafkaException, match="INVALID_REPLICATION_FACTOR|replication factor"):
        ensure_topics(s)
    with pytest.raises(RuntimeError, match="topics missing"):
        readiness(s)
