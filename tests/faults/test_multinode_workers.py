"""Faults of a multi-node deployment (issue 30) on the test stack with a second Ray node and two pipeline
workers in one consumer group (static members, session timeout 10 s), started once for this module:

- the second Ray node is killed (SIGKILL of its raylet, agents and TileWorker actors) while an actor on it
  reads a scene: its actors restart on the head, their tile tasks are retried, the scene is stored once;
- PostGIS is crashed and restarted while both workers are inside their store transaction (both held on a
  lock of the detections table, so both are mid-write when it goes down);
- one of the two workers is killed mid-scene: the other takes its partitions over after the session
  timeout and stores the killed worker's scenes once.

Each row: 0 lost, 0 duplicated, webhooks exactly once per alert change, stall = fault -> next stored scene.
The tests run in this order (the worker kill last); the second Ray node is the multi-node stack's own
(``Settings.ray_nodes`` 2) or one started for this module (``ray_node2`` in conftest.py).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from terrawatch.ingest import kafka_io
from terrawatch.settings import Settings
from terrawatch.store.uow import engine_for
from tests.faults.helpers import (
    SLOW_TILING, audit, crash_node, crash_restart_postgres, ensure_up, group_assignment, publish_to_partition,
    ray_workers_with_open, river_scene, scene_path, stop_worker, subscribe, tile_workers, wait_processed,
    wait_webhooks, writing_detections,
)
from tests.integration.helpers import isolated, runs_for, start_worker, wait_for
from tests.integration.test_stack_security import _bound_sockets, _loopback, _tree

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.multinode]


@dataclass
class Pair:
    settings: list[Settings]  # one group and topic; the second differs in its metrics port (its static member id)
    procs: list
    logs: list[Path]
    owned: list[list[int]]  # partitions of each worker once both joined

    @property
    def s(self) -> Settings:
        return self.settings[0]

    def partitions(self, i: int) -> list[int]:
        """Partitions worker ``i`` owns now (the group's coordinator says)."""
        return group_assignment(self.s).get(kafka_io.instance_id(self.settings[i]), [])


@pytest.fixture(scope="module")
def pair(stack, ray_node2, tmp_path_factory):
    s = isolated(stack.settings, "pair", consumer_session_timeout_s=10.0, **SLOW_TILING)
    s2 = s.model_copy(update={"metrics_port": s.metrics_port + 1})
    d = tmp_path_factory.mktemp("pair")
    logs = [d / "worker1.log", d / "worker2.log"]
    p = Pair([s, s2], [start_worker(s, logs[0]), start_worker(s2, logs[1])], logs, [])
    try:
        def split() -> list[list[int]] | None:
            owned = [p.partitions(i) for i in (0, 1)]
            return owned if all(owned) and sum(map(len, owned)) == s.topic_partitions else None

        p.owned = wait_for(split, 300, "both workers to own partitions", interval=1.0)
        # RayTiler's actors are placed SPREAD: the pools of two (one per worker) reach both nodes
        wait_for(lambda: tile_workers(ray_node2), 120, "TileWorker actors on the second Ray node")
        yield p
    finally:
        for w in p.procs:
            stop_worker(w)


def _stored(s: Settings, items: list[dict]) -> int:
    return sum(1 for i in items if runs_for(s, i["id"]))


def _stall(s: Settings, items: list[dict], since: float, before: int, timeout: float = 420) -> float:
    """Seconds from ``since`` (a time.monotonic()) until more than ``before`` of ``items`` are stored."""
    wait_for(lambda: _stored(s, items) > before, timeout, "the next scene stored after the fault", interval=0.3)
    return time.monotonic() - since


def test_ray_worker_node_killed_while_it_holds_tiles(pair, ray_node2, stack, tmp_path, fault_report):
    s = pair.s
    items = [river_scene(tmp_path, f"nodekill{i}", size=1024) for i in range(2)]
    sub = subscribe(s, items)
    try:
        for i, item in enumerate(items):  # one scene to each worker: both read tiles on the second node
            publish_to_partition(s, item, pair.owned[i][0])
        holders = wait_for(lambda: [p.pid for it in items if not runs_for(s, it["id"])
                                    for p in ray_workers_with_open(ray_node2, scene_path(it))] or None,
                           240, "a TileWorker on the second Ray node reading a scene", interval=0.2)
        node_sockets = _bound_sockets(_tree(ray_node2.proc.pid()))  # the node, its agents and actors, all busy
        before = _stored(s, items)
        t_kill = time.monotonic()
        crash_node(ray_node2)
        stall = _stall(s, items, t_kill, before)
        wait_processed(s, items, 420, "scenes after the Ray node kill")
        wait_webhooks(s, items, sub, 90)
        assert all(w.poll() is None for w in pair.procs), "the workers must survive a Ray node dying"
    finally:
        sub.close()
    outside = [x for x in node_sockets if not _loopback(x[2].rsplit(":", 1)[0])]
    assert node_sockets and not outside, f"the second Ray node listens outside loopback: {outside}"
    on_head = len(tile_workers(stack.ray))
    res = audit(s, items, sub)
    fault_report.add("Ray worker node killed holding tiles (2 nodes)", res, stall,
                     f"{len(holders)} actor(s) on it reading a scene; {on_head} TileWorkers on the head after; "
                     "stall = kill -> next scene stored")
    assert on_head >= 4, f"the killed node's actors did not move to the head ({on_head} TileWorkers there)"
    assert all(len(runs_for(s, it["id"])) == 1 for it in items), "one run per scene"
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_postgis_restarted_while_both_workers_write(pair, stack, tmp_path, fault_report):
    """A lock on the detections table (SHARE: reads go on, inserts wait) holds both workers inside their
    store transaction until PostGIS is crashed (immediate shutdown) and restarted."""
    s = pair.s
    items = [river_scene(tmp_path, f"pgboth{i}") for i in range(2)]
    sub = subscribe(s, items)
    lock = engine_for(s.db_url).connect()
    try:
        tx = lock.begin()
        lock.execute(text("lock table detections in share mode"))
        for i, item in enumerate(items):
            publish_to_partition(s, item, pair.owned[i][0])
        wait_for(lambda: writing_detections(s) >= 2, 300, "both workers inside their store transaction", interval=0.2)
        assert _stored(s, items) == 0
        t_crash = time.monotonic()
        crash_restart_postgres(stack)
        stall = _stall(s, items, t_crash, 0, 300)
        wait_processed(s, items, 300, "scenes after the PostGIS restart")
        wait_webhooks(s, items, sub, 90)
        assert all(w.poll() is None for w in pair.procs), "both workers keep running"
    finally:
        try:
            tx.rollback()
            lock.close()
        except Exception:  # noqa: BLE001 - the crash closed it
            lock.invalidate()
        ensure_up(stack.postgres)
        sub.close()
    res = audit(s, items, sub)
    fault_report.add("PostGIS crash + restart, 2 workers mid-write", res, stall,
                     "both store transactions open when it went down; stall = crash -> next scene stored")
    assert all(len(runs_for(s, it["id"])) == 1 for it in items), "one run per scene"
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_one_of_two_workers_killed_mid_scene(pair, tmp_path, fault_report):
    s = pair.s
    mine, theirs = pair.owned
    first = river_scene(tmp_path, "workerkill0", size=1024)
    items = [first, river_scene(tmp_path, "workerkill1"), river_scene(tmp_path, "workerkill2")]
    sub = subscribe(s, items)
    try:
        publish_to_partition(s, first, mine[0])
        publish_to_partition(s, items[1], mine[-1])  # the killed worker's too
        publish_to_partition(s, items[2], theirs[0])
        wait_for(lambda: f"scene {first['id']}: tiling" in pair.logs[0].read_text(errors="replace"), 240,
                 "the first worker tiling its scene", interval=0.1)
        os.killpg(pair.procs[0].pid, signal.SIGKILL)
        t_kill = time.monotonic()
        pair.procs[0].wait(30)
        assert not runs_for(s, first["id"]), "the scene was stored before the kill: make it bigger"
        before = _stored(s, items[:2])
        wait_for(lambda: sorted(pair.partitions(1)) == sorted(mine + theirs), 120,
                 "the survivor to own every partition", interval=0.5)
        takeover = time.monotonic() - t_kill
        stall = _stall(s, items[:2], t_kill, before)
        wait_processed(s, items, 420, "every scene after the worker kill")
        wait_webhooks(s, items, sub, 90)
        assert pair.procs[1].poll() is None, "the surviving worker keeps running"
    finally:
        sub.close()
    res = audit(s, items, sub)
    fault_report.add("kill -9 one of 2 workers mid-scene", res, stall,
                     f"survivor owned all partitions {takeover:.0f} s after the kill (session timeout 10 s); "
                     "stall = kill -> next of the killed worker's scenes stored")
    assert all(len(runs_for(s, it["id"])) == 1 for it in items), "one run per scene"
    assert (res.lost, res.duplicated) == (0, 0), res.problems
