"""The broker leading the scene topic's partitions killed under the running pipeline (issue 30): worker,
Ray, Triton and PostGIS of the test stack on its three-node SASL/SCRAM Kafka. Runs only on that stack:
``TERRAWATCH_TEST_KAFKA_BROKERS=3 pytest -m multinode tests/faults`` (skipped on the default one-node stack,
where there is no follower to take over; the Kafka-level faults of tests/faults/test_multinode_kafka.py run
on their own cluster either way)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from terrawatch.ingest.topics import admin
from tests.faults.helpers import audit, river_scene, stop_worker, subscribe, wait_processed, wait_webhooks
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = [
    pytest.mark.integration, pytest.mark.faults, pytest.mark.multinode,
    # Decided before the `stack` fixture starts anything.
    pytest.mark.skipif(int(os.environ.get("TERRAWATCH_TEST_KAFKA_BROKERS", "1")) < 3,
                       reason="needs the 3-node test stack: TERRAWATCH_TEST_KAFKA_BROKERS=3"),
]


def _leaders(s) -> dict[int, int]:
    md = admin(s).list_topics(timeout=10)
    return {p: pm.leader for p, pm in md.topics[s.scenes_topic].partitions.items()}


def _stored(s, items: list[dict]) -> int:
    return sum(1 for i in items if runs_for(s, i["id"]))


def test_leader_broker_killed_under_the_pipeline(stack, tmp_path, fault_report):
    assert stack.settings.kafka_brokers >= 3
    s = isolated(stack.settings, "leaderkill", scenes_in_flight=2)
    items = [river_scene(tmp_path, f"leaderkill{i}", size=768) for i in range(8)]
    sub = subscribe(s, items)
    w = start_worker(s, tmp_path / "worker.log")
    leaders = wait_for(lambda: (lambda ld: ld if all(b >= 0 for b in ld.values()) else None)(_leaders(s)), 60,
                       "leaders of the scenes topic")
    victim = max(set(leaders.values()), key=lambda b: sum(1 for v in leaders.values() if v == b))
    node = stack.kafka.nodes[victim - 1]
    try:
        publish(s, *items[:4])
        wait_for(lambda: _stored(s, items) >= 1, 600, "the first scene stored")
        before = _stored(s, items)
        assert node.stop(sig=signal.SIGKILL)
        t_kill = time.monotonic()
        publish(s, *items[4:])  # acks=all: waits for the new leaders
        wait_for(lambda: _stored(s, items) > before, 600, "a scene stored after the kill", interval=0.5)
        stall = time.monotonic() - t_kill
        wait_processed(s, items, 900, "every scene after the leader kill")
        wait_webhooks(s, items, sub, 180)
        assert w.poll() is None, "the worker keeps running"
    finally:
        stop_worker(w)
        sub.close()
        stack.kafka.start_node(victim)
        stack.kafka.wait(180)
    res = audit(s, items, sub)
    fault_report.add("kafka: leader broker killed under the pipeline (3 nodes)", res, stall,
                     f"broker {victim} led partitions {sorted(p for p, b in leaders.items() if b == victim)}; "
                     f"stall = kill -> next scene stored; {before} of 8 stored before the kill")
    assert all(len(runs_for(s, it["id"])) == 1 for it in items), "one run per scene"
    assert (res.lost, res.duplicated) == (0, 0), res.problems
