"""Dependencies failing while scenes are in flight: Kafka, PostGIS, Triton, the webhook receiver.

Each test stops or crashes one service of the session stack and always brings it back (finally),
so the tests after it run on a healthy stack.
"""

from __future__ import annotations

import time

import pytest

from terrawatch.service import ops
from terrawatch.service import dlq as dlq_svc
from terrawatch.store.uow import engine_for
from tests.faults.helpers import (
    SLOW_TILING, audit, blobs_scene, crash_node, crash_restart_postgres, ensure_up, river_scene, stop_worker,
    subscribe, wait_processed, wait_webhooks, writing_detections,
)
from tests.integration.helpers import isolated, publish, read_dlq, runs_for, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KAFKA_OUTAGE_S = 30


def test_kafka_broker_down_30s(stack, tmp_path, fault_report):
    """The broker stops while a scene is being tiled and stays down 30 s: the worker keeps running,
    retries its offset commit and its polls, and finishes every scene once the broker is back."""
    s = isolated(stack.settings, "kafkadown")
    items = [river_scene(tmp_path, f"kafkadown{i}") for i in range(3)]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    try:
        publish(s, *items)
        wait_for(lambda: "tiling" in log.read_text(errors="replace"), 180, "tiling to start", interval=0.2)
        stack.kafka.stop()
        time.sleep(KAFKA_OUTAGE_S)
        assert w.poll() is None, "the worker died while the broker was down"
        stack.kafka.start()
        stack.kafka.wait()
        wait_processed(s, items, 300)
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None, "the worker died after the broker came back"
    finally:
        ensure_up(stack.kafka)
        stop_worker(w)
        sub.close()
    text_log = log.read_text(errors="replace")
    commit_failures = text_log.count("offset commit for")  # retried during the outage, given up after it
    consumer_errors = text_log.count("|FAIL|rdkafka#consumer")  # librdkafka: broker connection refused
    assert commit_failures + consumer_errors >= 1, "the worker never saw the outage; the test tested nothing"
    res = audit(s, items, sub)
    fault_report.add(f"Kafka broker down {KAFKA_OUTAGE_S} s", res, time.monotonic() - t0,
                     f"{commit_failures} failed commits, {consumer_errors} consumer connection errors")
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_postgis_crash_restart_mid_write(stack, tmp_path, fault_report):
    """PostGIS is crashed (immediate shutdown, like kill -9 of the cluster) while the worker's store
    transaction is inserting a scene's thousands of detections, then restarted: the half-written
    transaction is gone, the worker waits for the database and stores each scene exactly once."""
    s = isolated(stack.settings, "pgcrash")
    items = [blobs_scene(tmp_path, "pgcrash0"), river_scene(tmp_path, "pgcrash1")]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    try:
        publish(s, *items)
        wait_for(lambda: writing_detections(s), 240, "the store transaction to be inserting detections",
                 interval=0.05)
        assert not runs_for(s, items[0]["id"])
        crash_restart_postgres(stack)
        wait_processed(s, items, 300)
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None
    finally:
        ensure_up(stack.postgres)
        stop_worker(w)
        sub.close()
    text_log = log.read_text(errors="replace")
    assert "postgis unavailable" in text_log or "OperationalError" in text_log, "the crash did not hit the worker"
    res = audit(s, items, sub)
    fault_report.add("PostGIS crash + restart mid-write", res, time.monotonic() - t0,
                     f"{runs_for(s, items[0]['id'])[0]['detections']} detections in the interrupted scene")
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def _paused_for(s, dep: str) -> float | None:
    """Seconds the worker reports ``dep`` down while its consumption is paused for it (what /ops/status says)."""
    for p in ops.dependency_pauses(s) or []:
        if p["dependency"] == dep:
            return p["down_s"]
    return None


TRITON_OUTAGE_S = 60


def _dlq(s) -> dict[str, int]:
    return dlq_svc.counts(s, engine_for(s.db_url))


def test_triton_down_60s_pauses_consumption_without_dead_lettering(stack, tmp_path, fault_report):
    """Triton stops mid-scene for 60 s while scenes keep arriving: the worker pauses consumption (the
    ops status says why), holds its scene uncommitted, resumes by itself when Triton is back; nothing
    goes to the DLQ and every scene is stored once, with no operator action."""
    s = isolated(stack.settings, "tritondown", outage_probe_max_s=2.0)
    items = [river_scene(tmp_path, f"tritondown{i}") for i in range(4)]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    paused_s = 0.0
    try:
        publish(s, *items[:2])
        wait_for(lambda: "tiling" in log.read_text(errors="replace"), 180, "tiling to start", interval=0.1)
        stack.triton.stop()
        down_at = time.monotonic()
        publish(s, *items[2:])  # scenes keep streaming during the outage
        wait_for(lambda: _paused_for(s, "triton") is not None, 60, "the worker to pause for triton", interval=0.5)
        time.sleep(max(0.0, TRITON_OUTAGE_S - (time.monotonic() - down_at)))
        paused_s = _paused_for(s, "triton") or 0.0
        assert _dlq(s)["retained"] == 0, "a scene was dead-lettered during a 60 s Triton outage"
        assert sum(bool(runs_for(s, i["id"])) for i in items) < len(items)
        stack.triton.start()
        stack.triton.wait()
        wait_processed(s, items, 300, "scenes after Triton came back")
        wait_webhooks(s, items, sub, 90)
        assert _paused_for(s, "triton") is None, "still paused after Triton came back"
        assert w.poll() is None
    finally:
        ensure_up(stack.triton)
        stop_worker(w)
        sub.close()
    assert _dlq(s)["retained"] == 0
    text_log = log.read_text(errors="replace")
    assert "consumption paused: triton unavailable" in text_log
    assert "triton is ready again" in text_log
    res = audit(s, items, sub)
    fault_report.add(f"Triton down {TRITON_OUTAGE_S} s (paused)", res, time.monotonic() - t0,
                     f"0 DLQ entries; consumption paused {paused_s:.0f}+ s for triton")
    assert paused_s >= TRITON_OUTAGE_S - 20, f"the worker reported only {paused_s} s of pause"
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_triton_outage_past_window_dead_letters_then_auto_redrives(stack, tmp_path, fault_report):
    """With a short outage window (8 s) a longer Triton outage dead-letters each held scene as
    ``transient`` naming Triton; once Triton is back the worker re-drives those entries by itself and
    every scene is stored exactly once."""
    s = isolated(stack.settings, "tritonwindow", outage_window_s=8.0, outage_probe_max_s=2.0,
                 dlq_auto_redrive_interval_s=3.0)
    items = [river_scene(tmp_path, f"tritonwindow{i}") for i in range(2)]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    try:
        publish(s, *items)
        wait_for(lambda: "tiling" in log.read_text(errors="replace"), 180, "tiling to start", interval=0.1)
        stack.triton.stop()
        dlq = read_dlq(s, expect=len(items), timeout=120)
        assert len(dlq) == len(items)
        assert not any(runs_for(s, i["id"]) for i in items)
        stack.triton.start()
        stack.triton.wait()
        wait_processed(s, items, 300, "automatically re-driven scenes")
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None
    finally:
        ensure_up(stack.triton)
        stop_worker(w)
        sub.close()
    for d in dlq:
        assert d["error_code"] == "transient" and d["dependency"] == "triton", d
        assert d["reason"].startswith("triton unavailable for") and "outage window 8 s" in d["reason"], d["reason"]
        assert d["payload"] and d["source"]["topic"] == s.scenes_topic and d["redrives"] == 0
    assert sorted(d["source"]["key"] for d in dlq) == sorted(i["id"] for i in items)
    assert "re-drove" in log.read_text(errors="replace")
    entries = dlq_svc.list_entries(s, engine_for(s.db_url), "all")
    assert len(entries) == len(items), "a re-driven scene came back to the DLQ"
    assert {(e.state, e.redriven_by, e.record.kind) for e in entries} == {("redriven", "worker:auto-redrive", "transient")}
    res = audit(s, items, sub)
    fault_report.add("Triton down > 8 s window -> auto re-drive", res, time.monotonic() - t0,
                     f"{len(dlq)} transient DLQ entries re-driven automatically")
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_ray_head_restart_mid_scene(stack, tmp_path, fault_report):
    """The Ray head (GCS, raylet, every TileWorker) is killed mid-scene and started again: the worker
    notices the dead tiles, pauses consumption for ray, re-executes itself to join the new head and
    stores every scene once; nothing goes to the DLQ."""
    s = isolated(stack.settings, "rayrestart", outage_probe_max_s=2.0, **SLOW_TILING)
    # The first scene (~480 tiles of 128 px, ~12 s on a quiet 2-core machine) is still being tiled when
    # the head is killed, right after its tiling starts.
    items = [river_scene(tmp_path, "rayrestart0", size=2048)] + [
        river_scene(tmp_path, f"rayrestart{i}") for i in range(1, 3)]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    try:
        publish(s, items[0])
        wait_for(lambda: "tiling" in log.read_text(errors="replace"), 180, "tiling to start", interval=0.1)
        publish(s, *items[1:])
        pid = w.pid
        crash_node(stack.ray)
        assert not runs_for(s, items[0]["id"]), "the large scene was stored before the head went down: nothing tested"
        time.sleep(5)
        stack.ray.start()
        stack.ray.wait()
        wait_processed(s, items, 420, "scenes after the Ray head restart")
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None and w.pid == pid, "the worker process must survive (it re-executes itself)"
    finally:
        ensure_up(stack.ray)
        stop_worker(w)
        sub.close()
    text_log = log.read_text(errors="replace")
    assert "re-executing the worker to join the new Ray head" in text_log
    assert _dlq(s)["retained"] == 0
    res = audit(s, items, sub)
    fault_report.add("Ray head killed mid-scene, restarted", res, time.monotonic() - t0,
                     "0 DLQ entries; worker re-executed")
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_webhook_receiver_slow_and_failing(stack, tmp_path, fault_report):
    """The receiver answers slower than the dispatcher's timeout (having accepted the message) and with
    5xx: deliveries are retried under the same webhook-id until accepted; after deduplication by id
    every alert message arrives exactly once."""
    s = isolated(stack.settings, "slowhook", webhook_timeout_s=1.5, webhook_retry_base_s=0.5,
                 webhook_retry_cap_s=2.0, webhook_breaker_failures=20, webhook_breaker_cooldown_s=1.0)
    items = [river_scene(tmp_path, f"slowhook{i}") for i in range(2)]
    # request 1: accepted after 4 s (sender timed out), 2: 503, 3: 500 after 4 s, then fast 204s
    sub = subscribe(s, items, delays=[4.0, 0.0, 4.0], status_codes=[204, 503, 500])
    t0 = time.monotonic()
    w = start_worker(s, tmp_path / "worker.log")
    try:
        publish(s, *items)
        wait_processed(s, items, 240)
        wait_webhooks(s, items, sub, 120)
    finally:
        stop_worker(w)
        sub.close()
    res = audit(s, items, sub)
    attempts = sum(sub.rx.attempts.values())
    fault_report.add("webhook receiver slow + 5xx", res, time.monotonic() - t0,
                     f"{attempts} requests for {res.webhooks} webhooks, {res.redelivered} deduplicated")
    assert attempts >= res.webhooks + 3, "the faults did not cost retries"
    assert res.redelivered >= 1, "a message accepted after the sender's timeout must be redelivered"
    assert res.alerts >= 1
    assert (res.lost, res.duplicated) == (0, 0), res.problems
