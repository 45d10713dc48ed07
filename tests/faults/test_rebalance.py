"""A partition revoked while its scenes are in flight (issue 17).

A worker keeps 4 scenes in flight, one on each partition of the scenes topic; a second worker joins the
group, the cooperative-sticky assignor moves two partitions to it and the first worker's scenes on them
are revoked mid-scene. The first worker waits ``revoke_drain_s`` (3 s here, shorter than a scene) for
them, commits what finished and abandons the rest uncommitted; the second worker processes the abandoned
scenes again while the first may still be finishing them. Every scene is stored once: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.helpers import (
    SLOW_TILING, audit, log_events, publish_to_partition, river_scene, stop_worker, subscribe, wait_processed, wait_webhooks,
)
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_partition_revoked_with_scenes_in_flight(stack, tmp_path, fault_report):
    s = isolated(stack.settings, "revoke", scenes_in_flight=4, revoke_drain_s=3.0, **SLOW_TILING)
    assert s.topic_partitions == 4
    s2 = s.model_copy(update={"metrics_port": s.metrics_port + 1})  # another static member id
    items = [river_scene(tmp_path, f"revoke{i}", size=1024) for i in range(4)]
    later = [river_scene(tmp_path, f"revoke-late{i}", size=512) for i in range(2)]
    sub = subscribe(s, items + later)
    log1, log2 = tmp_path / "worker1.log", tmp_path / "worker2.log"
    t0 = time.monotonic()
    w1 = start_worker(s, log1)
    w2 = None
    try:
        for partition, item in enumerate(items):  # a scene on every partition: whichever two move, they hold one
            publish_to_partition(s, item, partition)
        wait_for(lambda: log1.read_text(errors="replace").count("tiling") >= 2, 240,
                 "two scenes tiling at once in the first worker", interval=0.2)
        w2 = start_worker(s2, log2)
        wait_for(lambda: "revoked partitions drained" in log1.read_text(errors="replace"), 240,
                 "the first worker to give up two partitions", interval=0.5)
        publish(s, *later)
        wait_processed(s, items + later, 900, "every scene after the rebalance")
        wait_webhooks(s, items + later, sub, 120)
        assert w1.poll() is None and w2.poll() is None, "both workers keep running"
    finally:
        stop_worker(w1)
        if w2 is not None:
            stop_worker(w2)
        sub.close()
    drained = [e for e in log_events(log1) if e.get("msg", "").startswith("revoked partitions drained")]
    committed = sum(e.get("committed", 0) for e in drained)
    abandoned = sum(e.get("abandoned", 0) for e in drained)
    assert committed + abandoned >= 1, "no scene was in flight on a revoked partition: the test proved nothing"
    handled_by_2 = sum(1 for e in log_events(log2) if e.get("msg", "").startswith("event "))
    res = audit(s, items + later, sub)
    fault_report.add("partition revoked with 4 scenes in flight", res, time.monotonic() - t0,
                     f"{committed + abandoned} scenes in flight on revoked partitions: {committed} drained and "
                     f"committed, {abandoned} abandoned (re-processed by the new owner); "
                     f"2nd worker handled {handled_by_2} events")
    assert all(len(runs_for(s, it["id"])) == 1 for it in items + later), "one run per scene"
    assert (res.lost, res.duplicated) == (0, 0), res.problems
