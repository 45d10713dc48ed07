"""Topic durability on the test stack (issue 30): terrawatch creates its topics with the replication factor
and min.insync.replicas the cluster allows (1/1 on one broker, 3/2 with TERRAWATCH_TEST_KAFKA_BROKERS=3),
readiness accepts them and reports them - not ready, with what is missing - to a deployment that requires
more; the worker's consumer refuses them too; a topic that cannot be created as required fails loudly.
The broker faults are in tests/faults/test_multinode_kafka.py."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaException

from terrawatch.ingest import kafka_io
from terrawatch.ingest.topics import TopicsTooWeak, admin, ensure_topics, min_insync, readiness

pytestmark = pytest.mark.integration


def test_topics_are_ready_as_created_and_a_stronger_requirement_is_reported(stack):
    s = stack.settings
    a = admin(s)
    md = a.list_topics(timeout=10)
    rf = min(3, len(md.brokers))  # 1 on the default stack, 3 with TERRAWATCH_TEST_KAFKA_BROKERS=3
    isr = min(2, rf)
    assert readiness(s) == f"{len(md.brokers)} broker(s), replication factor >= {rf}, min.insync.replicas >= {isr}"
    for t in (s.scenes_topic, s.dlq_topic):
        assert {len(pm.replicas) for pm in md.topics[t].partitions.values()} == {rf}
    assert min_insync(a, [s.scenes_topic, s.dlq_topic]) == {s.scenes_topic: isr, s.dlq_topic: isr}
    strict = s.model_copy(update={"kafka_replication_factor": rf + 1, "kafka_min_insync_replicas": isr + 1})
    with pytest.raises(TopicsTooWeak) as err:
        readiness(strict)
    msg = str(err.value)
    assert f"{s.scenes_topic}: replication factor {rf} < {rf + 1} on partition(s) 0,1,2,3" in msg
    assert f"{s.scenes_topic}: min.insync.replicas {isr} < {isr + 1}" in msg
    assert f"{s.dlq_topic}: replication factor {rf} < {rf + 1} on partition(s) 0" in msg
    c = kafka_io.SceneConsumer(strict.model_copy(update={"consumer_group": f"durability-{uuid.uuid4().hex[:6]}"}))
    try:  # a worker with that requirement refuses to consume from these topics
        with pytest.raises(TopicsTooWeak, match=f"replication factor {rf} < {rf + 1}"):
            c.subscribe()
    finally:
        c.close()


def test_a_topic_that_cannot_be_replicated_as_required_is_not_created(stack):
    tag = uuid.uuid4().hex[:6]
    brokers = len(admin(stack.settings).list_topics(timeout=10).brokers)
    s = stack.settings.model_copy(update={"scenes_topic": f"durability-{tag}", "dlq_topic": f"durability-{tag}.dlq",
                                          "kafka_replication_factor": brokers + 1})
    with pytest.raises(KafkaException, match="INVALID_REPLICATION_FACTOR|replication factor"):
        ensure_topics(s)
    with pytest.raises(RuntimeError, match="topics missing"):
        readiness(s)
