"""Dependencies failing while scenes are in flight: Kafka, PostGIS, Triton, the webhook receiver.

Each test stops or crashes one service of the session stack and always brings it back (finally),
so the tests after it run on a healthy stack.
"""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import text

from terrawatch.ingest import kafka_io
from terrawatch.service import dlq as dlq_svc
from terrawatch.store.uow import engine_for
from tests.faults.helpers import (
    audit, blobs_scene, river_scene, stop_worker, subscribe, wait_processed, wait_webhooks,
)
from tests.integration.helpers import isolated, publish, read_dlq, runs_for, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KAFKA_OUTAGE_S = 30


def _ensure_up(svc) -> None:
    if not svc.healthy():
        svc.start()
        svc.wait()


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
        _ensure_up(stack.kafka)
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


def _writing_detections(s) -> bool:
    with engine_for(s.db_url).connect() as c:
        return bool(c.execute(text(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and pid <> pg_backend_pid() and query ilike 'insert into detections%'")).scalar_one())


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
        wait_for(lambda: _writing_detections(s), 240, "the store transaction to be inserting detections",
                 interval=0.05)
        assert not runs_for(s, items[0]["id"])
        stack.postgres.proc.stop(sig=signal.SIGQUIT, timeout=30)  # immediate shutdown: no clean rollback
        time.sleep(3)
        stack.postgres.start()
        stack.postgres.wait()
        wait_processed(s, items, 300)
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None
    finally:
        _ensure_up(stack.postgres)
        stop_worker(w)
        sub.close()
    assert "PostGIS unavailable" in log.read_text(errors="replace"), "the crash did not hit the worker"
    res = audit(s, items, sub)
    fault_report.add("PostGIS crash + restart mid-write", res, time.monotonic() - t0,
                     f"{runs_for(s, items[0]['id'])[0]['detections']} detections in the interrupted scene")
    assert (res.lost, res.duplicated) == (0, 0), res.problems


def test_triton_down_dlq_then_redrive(stack, tmp_path, fault_report):
    """Triton stops mid-scene: each scene is retried with backoff, then dead-lettered with the reason
    after 3 attempts; once Triton is back, re-driving the DLQ (the ops API's service function)
    processes them exactly once."""
    s = isolated(stack.settings, "tritondown")
    items = [river_scene(tmp_path, f"tritondown{i}") for i in range(2)]
    sub = subscribe(s, items)
    log = tmp_path / "worker.log"
    t0 = time.monotonic()
    w = start_worker(s, log)
    try:
        publish(s, *items)
        wait_for(lambda: "tiling" in log.read_text(errors="replace"), 180, "tiling to start", interval=0.1)
        stack.triton.stop()
        dlq = read_dlq(s, expect=len(items), timeout=180)
        assert len(dlq) == len(items)
        assert not any(runs_for(s, i["id"]) for i in items)
        stack.triton.start()
        stack.triton.wait()
        entries = dlq_svc.list_entries(s, engine_for(s.db_url))
        assert sorted(e.record.source.key for e in entries) == sorted(i["id"] for i in items)
        assert {e.record.kind for e in entries} == {"transient"}
        out = dlq_svc.redrive(s, engine_for(s.db_url), kafka_io.producer(s), [e.id for e in entries], "fault-test")
        assert sorted(out["redriven"]) == sorted(e.id for e in entries)
        assert dlq_svc.counts(s, engine_for(s.db_url))["pending"] == 0
        wait_processed(s, items, 300, "re-driven scenes")
        wait_webhooks(s, items, sub, 90)
        assert w.poll() is None
    finally:
        _ensure_up(stack.triton)
        stop_worker(w)
        sub.close()
    for d in dlq:
        assert d["error_code"] == "transient" and d["attempts"] == 3, d
        assert d["reason"].startswith("gave up after 3 attempts") and "triton" in d["reason"].lower(), d["reason"]
        assert d["payload"] and d["source"]["topic"] == s.scenes_topic
    text_log = log.read_text(errors="replace")
    for it in items:  # retried with backoff before the DLQ
        assert f"scene {it['id']} attempt 1 failed" in text_log and f"scene {it['id']} attempt 2 failed" in text_log
    res = audit(s, items, sub)
    fault_report.add("Triton down -> DLQ -> re-drive", res, time.monotonic() - t0,
                     f"{len(dlq)} DLQ entries re-driven")
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
