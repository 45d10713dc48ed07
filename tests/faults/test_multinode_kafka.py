"""Multi-node Kafka (issue 30): three KRaft nodes with SASL/SCRAM, topics replicated 3 with
min.insync.replicas 2, the project's own producer, consumer and readiness probe.

- a client without SCRAM credentials (or with wrong ones) is refused;
- topics created by terrawatch are replicated 3 / min.insync 2; a topic with weaker settings is reported
  by readiness, not used;
- with one broker down the producer keeps publishing; with two down it fails loudly (KafkaUnavailable), and the
  worker's dead-letter write waits (its scene stays uncommitted) until the brokers return, then lands once;
- the broker that leads most of the scene topic's partitions is killed (SIGKILL) mid-stream: every
  acknowledged event is consumed (0 lost), no event is in the log twice (idempotent producer: 0 duplicated),
  and the stall (fault -> next event consumed from a partition the dead broker led) is a fault-table row.

Runs on its own ports (24092 + TERRAWATCH_TEST_PORT_OFFSET, nodes 10 apart: below Linux's ephemeral range
32768-60999, where any outgoing connection may hold a port) and state dir; no other stack.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from terrawatch.ingest import kafka_io
from terrawatch.ingest.dlq import DlqSink, KafkaUnavailable
from terrawatch.ingest.kafka_config import client_config
from terrawatch.ingest.topics import TopicsTooWeak, ensure_topics, min_insync, readiness
from terrawatch.settings import Settings
from terrawatch_dev.stack.kafka import Kafka

# `stack`: it starts real Kafka nodes (Java, the Maven jars), so `make test-unit` (-m "not stack") leaves it out.
pytestmark = [pytest.mark.multinode, pytest.mark.faults, pytest.mark.stack]

_OFF = int(os.environ.get("TERRAWATCH_TEST_PORT_OFFSET", "0"))
PORT = int(os.environ.get("TERRAWATCH_TEST_MULTINODE_KAFKA_PORT", str(24092 + _OFF)))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    s = Settings(state_dir=tmp_path_factory.mktemp("kafka3"), kafka_brokers=3, kafka_port=PORT,
                 kafka_controller_port=PORT + 1, kafka_security_protocol="SASL_PLAINTEXT",
                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="terrawatch",
                 kafka_sasl_password=secrets.token_urlsafe(18), consumer_instance_id="",
                 scenes_topic="mn.scenes", dlq_topic="mn.scenes.dlq", topic_partitions=4)
    k = Kafka(s)
    k.install()
    k.start()
    try:
        k.wait(180)
        ensure_topics(s)
        wait_in_sync(s, ["mn.scenes", "mn.scenes.dlq"])
    except Exception:
        k.stop()
        raise
    yield k
    k.stop()


def wait_in_sync(s: Settings, topics: list[str], timeout: float = 120) -> dict[int, int]:
    """Wait until every partition of ``topics`` has all its replicas in sync; {partition: leader} of the
    first topic."""
    a = AdminClient(client_config(s))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            md = a.list_topics(timeout=5)
            parts = [pm for t in topics for pm in md.topics[t].partitions.values()]
            if parts and all(len(pm.isrs) == len(pm.replicas) and pm.leader >= 0 for pm in parts):
                return {p: pm.leader for p, pm in md.topics[topics[0]].partitions.items()}
        except (KafkaException, KeyError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{topics} not fully in sync after {timeout:.0f} s")


def restart(k: Kafka, *nodes: int) -> None:
    for n in nodes:
        k.start_node(n)
    k.wait(180)
    wait_in_sync(k.s, [k.s.scenes_topic, k.s.dlq_topic])


def kill(k: Kafka, node: int) -> None:
    assert k.nodes[node - 1].stop(sig=signal.SIGKILL)


def test_clients_without_scram_credentials_are_refused(cluster):
    s = cluster.s
    assert "3 broker(s)" in readiness(s)
    plain = s.model_copy(update={"kafka_security_protocol": "", "kafka_sasl_mechanism": "",
                                 "kafka_sasl_username": "", "kafka_sasl_password": ""})
    with pytest.raises(KafkaException):
        AdminClient(client_config(plain)).list_topics(timeout=5)
    reports: list[KafkaError | None] = []
    p = Producer(client_config(plain, **{"message.timeout.ms": 5000}))
    p.produce(s.scenes_topic, value=b"unauthenticated", on_delivery=lambda err, msg: reports.append(err))
    p.flush(20)
    assert len(reports) == 1 and reports[0] is not None, "a plaintext client's event was accepted"
    wrong = s.model_copy(update={"kafka_sasl_password": "not-the-password"})
    errors: list[KafkaError] = []
    p = Producer(client_config(wrong, error_cb=errors.append))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not errors:
        p.poll(0.5)
    assert [e.code() for e in errors][:1] == [KafkaError._AUTHENTICATION], errors
    assert "invalid credentials" in errors[0].str()


def test_topics_are_replicated_and_weaker_ones_are_not_ready(cluster):
    s = cluster.s
    a = AdminClient(client_config(s))
    md = a.list_topics(timeout=10)
    for t in (s.scenes_topic, s.dlq_topic):
        assert {len(pm.replicas) for pm in md.topics[t].partitions.values()} == {3}
    assert min_insync(a, [s.scenes_topic, s.dlq_topic]) == {s.scenes_topic: 2, s.dlq_topic: 2}
    weak_rf, weak_isr = f"mn.weak-rf-{uuid.uuid4().hex[:6]}", f"mn.weak-isr-{uuid.uuid4().hex[:6]}"
    for fut in a.create_topics([NewTopic(weak_rf, 1, 1), NewTopic(weak_isr, 1, 3, config={
            "min.insync.replicas": "1"})]).values():
        fut.result(timeout=30)
    # A created topic reaches every broker's metadata a moment after the controller accepts it (readiness
    # once saw "topics missing"): ask again, bounded, while that is the answer.
    def readiness_error(update: dict) -> Exception | None:
        deadline = time.monotonic() + 30
        while True:
            try:
                readiness(s.model_copy(update=update))
                return None
            except Exception as exc:  # noqa: BLE001 - judged below
                if "topics missing" not in str(exc) or time.monotonic() > deadline:
                    return exc
            time.sleep(0.2)

    rf_err, isr_err = readiness_error({"scenes_topic": weak_rf}), readiness_error({"dlq_topic": weak_isr})
    assert isinstance(rf_err, RuntimeError) and re.search(
        rf"{weak_rf}: replication factor 1 < 3 on partition\(s\) 0", str(rf_err)), rf_err
    assert isinstance(isr_err, TopicsTooWeak) and re.search(rf"{weak_isr}: min.insync.replicas 1 < 2", str(isr_err)), isr_err
    worker_consumer = kafka_io.SceneConsumer(s.model_copy(update={"scenes_topic": weak_rf}))
    try:  # the worker does not consume from it either: it fails at start, saying why
        with pytest.raises(TopicsTooWeak, match=rf"{weak_rf}: replication factor 1 < 3"):
            worker_consumer.subscribe()
    finally:
        worker_consumer.close()


def _items(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}-{i}", "seq": i} for i in range(n)]


def _one_message(s: Settings, item: dict):
    """Publish ``item`` and read it back: a real consumed Message (what the worker dead-letters)."""
    kafka_io.publish_items(kafka_io.producer(s), s, [item], timeout_s=60)
    c = Consumer(client_config(s, **{"group.id": f"mn-one-{uuid.uuid4().hex}", "enable.auto.commit": False,
                                     "auto.offset.reset": "earliest"}))
    try:
        c.subscribe([s.scenes_topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error() and m.key() == item["id"].encode():
                return m
        raise AssertionError(f"{item['id']} not read back")
    finally:
        c.close()


def _dlq_records_for(s: Settings, key: bytes) -> int:
    c = Consumer(client_config(s, **{"group.id": f"mn-dlq-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    try:
        low, high = c.get_watermark_offsets(TopicPartition(s.dlq_topic, 0), timeout=10, cached=False)
        c.assign([TopicPartition(s.dlq_topic, 0, low)])
        n, pos, deadline = 0, low, time.monotonic() + 30
        while pos < high and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                pos = m.offset() + 1
                n += m.key() == key
        return n
    finally:
        c.close()


def test_one_broker_down_keeps_publishing_two_down_fails_loudly(cluster):
    """One broker down: publishing goes on. Two down: a publish fails loudly, and the worker's dead-letter
    write waits (holding its scene uncommitted) instead of losing the event; after the brokers return it
    lands exactly once."""
    s = cluster.s
    msg = _one_message(s, {"id": f"to-dlq-{uuid.uuid4().hex[:6]}", "seq": -1})
    kill(cluster, 3)
    stop = threading.Event()
    written: list[str] = []
    writer = threading.Thread(target=lambda: written.append(
        DlqSink(kafka_io.producer(s), s).send(msg, "multinode test", "test_error", 1, stop)))
    try:
        p = kafka_io.producer(s)
        kafka_io.publish_items(p, s, _items("one-down", 40), timeout_s=60)  # raises unless all acknowledged
        kill(cluster, 2)
        p = kafka_io.producer(s)
        writer.start()
        with pytest.raises(KafkaUnavailable):
            kafka_io.publish_items(p, s, _items("two-down", 8), timeout_s=15)
        p.purge()
        assert writer.is_alive() and not written, "a DLQ write was acknowledged with one broker of three"
    finally:
        restart(cluster, 2, 3)
        writer.join(timeout=120)
        stop.set()
    assert written and written[0].startswith(f"{s.dlq_topic}[0]@"), written
    assert _dlq_records_for(s, msg.key()) == 1
    kafka_io.publish_items(kafka_io.producer(s), s, _items("back", 8), timeout_s=60)


def _read_all(s: Settings, topic: str) -> list[dict]:
    c = Consumer(client_config(s, **{"group.id": f"mn-read-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    try:
        out = []
        for p, pm in c.list_topics(topic, timeout=10).topics[topic].partitions.items():
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            c.assign([TopicPartition(topic, p, low)])
            pos, deadline = low, time.monotonic() + 30
            while pos < high and time.monotonic() < deadline:
                m = c.poll(1.0)
                if m is not None and not m.error():
                    pos = m.offset() + 1
                    out.append(json.loads(m.value()))
        return out
    finally:
        c.close()


def test_leader_killed_mid_stream_loses_and_duplicates_nothing(cluster, fault_report):
    n, kill_after = 240, 60  # events acknowledged before the kill; the producer sends 25/s, ~7 s still to go
    s = cluster.s.model_copy(update={"scenes_topic": f"mn.stream-{uuid.uuid4().hex[:6]}",
                                     "consumer_group": f"mn-{uuid.uuid4().hex[:6]}"})
    ensure_topics(s)
    leaders = wait_in_sync(s, [s.scenes_topic])
    victim = max(set(leaders.values()), key=lambda b: sum(1 for v in leaders.values() if v == b))
    victim_parts = {p for p, b in leaders.items() if b == victim}
    consumed: dict[int, list[tuple[int, int]]] = {}  # seq -> [(partition, offset)]
    after_fault: list[float] = []
    killed_at: list[float] = []
    stop = threading.Event()
    acked: list[int] = []
    failed: list[str] = []

    def produce() -> None:
        p = kafka_io.producer(s)
        for item in _items("stream", n):
            item["sent"] = time.monotonic()
            p.produce(s.scenes_topic, key=item["id"].encode(), value=json.dumps(item).encode(),
                      on_delivery=lambda err, msg, seq=item["seq"]: (failed.append(str(err)) if err
                                                                     else acked.append(seq)))
            p.poll(0)
            time.sleep(0.04)
        if p.flush(120):
            failed.append("unacknowledged at the end")

    c = kafka_io.SceneConsumer(s)
    c.subscribe()
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and len(consumed) < n:
            if not killed_at and len(acked) >= kill_after:
                kill(cluster, victim)
                killed_at.append(time.monotonic())
            m = c.poll(0.5, log_errors=False)
            if m is None:
                continue
            event = json.loads(m.value())
            consumed.setdefault(event["seq"], []).append((m.partition(), m.offset()))
            if killed_at and m.partition() in victim_parts and event["sent"] > killed_at[0] and not after_fault:
                after_fault.append(time.monotonic())
            c.commit(m, stop)
        producer.join(timeout=130)
    finally:
        stop.set()
        c.close()
        restart(cluster, victim)
    assert killed_at, f"only {len(acked)} of {n} events acknowledged before the fault was due"
    log_seqs = [r["seq"] for r in _read_all(s, s.scenes_topic)]
    lost = len(set(acked) - set(consumed))
    duplicated = len(log_seqs) - len(set(log_seqs))
    redelivered = sum(len(offs) - 1 for offs in consumed.values())  # same event again: uncommitted at the fault
    stall = after_fault[0] - killed_at[0] if after_fault else float("inf")
    fault_report.add(
        "kafka: leader broker killed mid-stream (3 nodes, RF 3, min.insync 2)",
        SimpleNamespace(scenes=n, lost=lost, duplicated=duplicated, alerts="-", webhooks="-"), stall,
        f"broker {victim} led partitions {sorted(victim_parts)}; stall = kill -> first event sent after the kill "
        f"consumed from them; "
        f"{len(acked)} acked, {len(failed)} failed sends, {redelivered} redelivered to the consumer")
    print(f"kafka leader kill: stall {stall:.1f} s, lost {lost}, duplicated {duplicated}")
    assert not failed, failed[:3]
    assert sorted(acked) == list(range(n)), "every event acknowledged once"
    assert (lost, duplicated) == (0, 0)
    assert sorted(consumed) == list(range(n))
    assert after_fault, "no event consumed from the dead broker's partitions after the fault"
