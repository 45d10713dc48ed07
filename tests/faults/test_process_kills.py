"""kill -9 of pipeline processes mid-scene: the consumer (worker) and the Ray TileWorker actors."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime

import pytest

from tests.faults.helpers import (
    SLOW_TILING, audit, log_events, ray_workers_with_open, river_scene, scene_path, stop_worker, subscribe,
    wait_processed,
    wait_webhooks,
)
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _ts(rec: dict) -> float:
    return datetime.fromisoformat(rec["ts"].replace("Z", "+00:00")).timestamp()


def _first(events: list[dict], prefix: str) -> dict:
    return next(e for e in events if e.get("msg", "").startswith(prefix))


def test_killed_consumer_mid_scene_yields_exactly_one_result_set(stack, tmp_path, fault_report):
    """kill -9 the worker after tiling started and before commit; the restart processes it once.

    A second scene queued behind the first is processed by the restarted worker too. The restarted worker
    is the same static group member (group.instance.id), so the broker hands it its partitions back at once
    instead of after the session timeout (set to 60 s here, to tell the two apart on a loaded machine).
    """
    s = isolated(stack.settings, "kill", consumer_session_timeout_s=60.0, **SLOW_TILING)
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
        killed_at = time.time()
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
    ev1, ev2 = log_events(log), log_events(tmp_path / "worker2.log")
    before, after = _first(ev1, "partitions assigned"), _first(ev2, "partitions assigned")
    joined = _first(ev2, "joining consumer group")
    consumed = _first(ev2, "event ")
    assert before["instance_id"] == after["instance_id"] and before["instance_id"], "not a static member"
    assert sorted(after["partitions"]) == sorted(before["partitions"]), "the restarted member got other partitions"
    rejoin_s = _ts(after) - _ts(joined)  # subscribe -> partitions back
    consume_s = _ts(consumed) - _ts(joined)  # subscribe -> first event of its partitions handled
    startup_s = _ts(joined) - killed_at  # process start (imports, Ray, Triton clients) -> subscribe
    # Dynamic membership would wait for the killed member's 60 s session timeout before the rebalance.
    assert rejoin_s < 20, f"partitions came back {rejoin_s:.1f} s after the restarted worker joined"
    res = audit(s, items, sub)
    fault_report.add("kill -9 consumer mid-scene", res, time.monotonic() - t0,
                     f"static member rejoined: partitions back {rejoin_s:.1f} s, consuming {consume_s:.1f} s "
                     f"after joining ({startup_s:.0f} s process start-up)")
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
                # by pid: with several scenes in flight one actor reads (has open) more than one scene
                procs = list({p.pid: p for it in items if not runs_for(s, it["id"])
                              for p in ray_workers_with_open(stack.ray, scene_path(it)) if p.pid not in killed}.values())
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


def _attempt_rows(s, delivery_id: str) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from terrawatch.store import tables as t
    from terrawatch.store.uow import engine_for

    wa = t.webhook_attempts
    with engine_for(s.db_url).connect() as c:
        return [(r.attempt, r.outcome) for r in c.execute(
            select(wa.c.attempt, wa.c.outcome).where(wa.c.delivery_id == delivery_id).order_by(wa.c.id))]


def _outbox_attempts(s, delivery_id: str) -> int:
    from sqlalchemy import select

    from terrawatch.store import tables as t
    from terrawatch.store.uow import engine_for

    with engine_for(s.db_url).connect() as c:
        return c.execute(select(t.webhook_outbox.c.attempts).where(t.webhook_outbox.c.id == delivery_id)).scalar_one()


def test_killed_worker_mid_webhook_send_leaves_an_unknown_attempt(stack, tmp_path, fault_report):
    """kill -9 the worker (and its dispatcher) while a webhook request is in flight (the receiver stalls
    20 s, then accepts it): the attempt row written before the request left stays ``sending``; the
    restarted dispatcher marks it ``unknown`` and re-sends under the same webhook-id."""
    s = isolated(stack.settings, "hookkill", webhook_lease_s=5.0)
    items = [river_scene(tmp_path, "hookkill")]
    sub = subscribe(s, items, delays=[20.0])
    t0 = time.monotonic()
    w1 = start_worker(s, tmp_path / "worker1.log")
    try:
        publish(s, *items)
        wait_for(lambda: sub.rx.attempts, 240, "the first webhook request to arrive", interval=0.05)
        hook_id = next(iter(sub.rx.attempts))
        os.killpg(w1.pid, signal.SIGKILL)
        w1.wait(30)
        assert _attempt_rows(s, hook_id) == [(1, "sending")], "the attempt in flight left no trace"
        w2 = start_worker(s, tmp_path / "worker2.log")
        try:
            wait_for(lambda: sub.rx.attempts.get(hook_id, 0) >= 2, 180, "the re-send of the cut-short webhook")
            wait_webhooks(s, items, sub, 90)
            wait_for(lambda: _attempt_rows(s, hook_id)[-1][1] == "succeeded", 30, "the re-send's outcome")
        finally:
            stop_worker(w2)
    finally:
        if w1.poll() is None:
            w1.kill()
        sub.close()
    rows = _attempt_rows(s, hook_id)
    assert rows[0] == (1, "unknown") and rows[-1][1] == "succeeded", rows
    assert _outbox_attempts(s, hook_id) == len(rows), "outbox attempts and attempt rows disagree"
    res = audit(s, items, sub)
    fault_report.add("kill -9 worker mid-webhook-send", res, time.monotonic() - t0,
                     f"attempts {', '.join(o for _, o in rows)}; same webhook-id sent {sub.rx.attempts[hook_id]}x")
    assert (res.lost, res.duplicated) == (0, 0), res.problems
