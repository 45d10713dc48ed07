"""kill -9 of pipeline processes mid-scene: the consumer (worker) and the Ray TileWorker actors."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.helpers import (
    SLOW_TILING, audit, ray_workers_with_open, river_scene, scene_path, stop_worker, subscribe, wait_processed,
    wait_webhooks,
)
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_killed_consumer_mid_scene_yields_exactly_one_result_set(stack, tmp_path, fault_report):
    """kill -9 the worker after tiling started and before commit; the restart processes it once.

    A second scene queued behind the first is processed by the restarted worker too.
    """
    s = isolated(stack.settings, "kill", **SLOW_TILING)
    items = [river_scene(tmp_path, "kill", size=1024), river_scene(tmp_path, "kill-next", size=512)]
    sub = subscribe(s, items)
    log = tmp_path / "worker1.log"
    t0 = time.monotonic()
    w1 = start_worker(s, log)
    try:
        publish(s, items[0])
        wait_for(lambda: "tiling" in log.read_text(errors="replace"), 180, "tiling to start", interval=0.2)
        time.sleep(1.0)
        assert not runs_for(s, items[0]["id"]), "scene finished before the kill; make it bigger"
        publish(s, items[1])
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait(30)
        w2 = start_worker(s, tmp_path / "worker2.log")
        try:
            wait_processed(s, items, 300, "scenes after restart")
            wait_webhooks(s, items, sub, 90)
        finally:
            stop_worker(w2)
    finally:
        if w1.poll() is None:
            w1.kill()
        sub.close()
    res = audit(s, items, sub)
    fault_report.add("kill -9 consumer mid-scene", res, time.monotonic() - t0, "restarted worker")
    assert res.alerts >= 1 and res.webhooks >= res.alerts
    assert (res.lost, res.duplicated) == (0, 0), res.problems
    assert len(sub.rx.verified_ids) == res.webhooks, "one webhook per alert, no duplicates"


def test_killed_ray_tile_workers_mid_scene(stack, tmp_path, fault_report):
    """kill -9 every TileWorker actor process reading a scene, three times in a row (more deaths than an
    actor with a finite restart budget survives); Ray restarts them, the tasks or the scene are retried,
    and every scene is stored once."""
    s = isolated(stack.settings, "raykill", **SLOW_TILING)
    items = [river_scene(tmp_path, f"raykill{i}", size=1024) for i in range(2)] + [
        river_scene(tmp_path, "raykill-last", size=512)]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    killed: set[int] = set()
    try:
        publish(s, *items)

        for _ in range(3):
            # Both actors (RayTiler's pool of 2) once both are reading an unfinished scene; one if only
            # one gets there within 20 s.
            since = time.monotonic()

            def victims():
                procs = [p for it in items if not runs_for(s, it["id"])
                         for p in ray_workers_with_open(stack, scene_path(it)) if p.pid not in killed]
                return procs if len(procs) >= 2 or (procs and time.monotonic() - since > 20) else None

            for p in wait_for(victims, 180, "TileWorkers reading an unfinished scene", interval=0.2):
                os.kill(p.pid, signal.SIGKILL)
                killed.add(p.pid)
        wait_processed(s, items, 420, "scenes after the actor kills")
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None, "the worker must survive its Ray actors dying"
    finally:
        stop_worker(w)
        sub.close()
    res = audit(s, items, sub)
    fault_report.add("kill -9 Ray TileWorkers x3", res, time.monotonic() - t0, f"{len(killed)} actor processes killed")
    assert (res.lost, res.duplicated) == (0, 0), res.problems
