"""The ops API driving the real pipeline: readiness, pause/resume, DLQ re-drive, replay, backfill, audit."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from geoalchemy2.shape import from_shape
from shapely.geometry import shape

from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.domain.polygons import as_multipolygon
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import count, isolated, publish, runs_for, settings_env, start_worker, wait_for

pytestmark = pytest.mark.integration


def _scene(tmp_path, name: str, origin) -> dict:
    path = tmp_path / f"{name}.tif"
    synthetic_s1(path, size=256, origin=origin)
    return item_from_geotiff(path, scene_id=f"{name}-{uuid.uuid4().hex[:6]}",
                             sensing_time=datetime.now(timezone.utc) - timedelta(minutes=30))


def _worker_gauge(s, name: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    body = httpx.get(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10).text
    return next((fam.samples[0].value for fam in text_string_to_metric_families(body) if fam.name == name), None)


def _cli(s, *args: str) -> subprocess.CompletedProcess:
    """``terrawatch ARGS`` as an operator runs it (the installed entry point), against this test's settings."""
    return subprocess.run([str(Path(sys.executable).with_name("terrawatch")), *args], env=settings_env(s),
                          capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def _subscribe(s, footprint: dict, **rx_kw) -> WebhookReceiver:
    """A flood subscription over ``footprint`` (GeoJSON, EPSG:4326) to a local receiver."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    rx = WebhookReceiver(secret, path=f"/hook/{uuid.uuid4().hex[:8]}", **rx_kw)
    rx.sub_id = uuid.uuid4()
    with engine_for(s.db_url).begin() as c:
        c.execute(t.subscribers.insert().values(
            id=rx.sub_id, url=rx.url, secret=secret, hazards=["flood"], min_confidence="low", format="geojson",
            aoi=from_shape(as_multipolygon(shape(footprint)), srid=4326)))
    return rx


def _metric_contract(s, base: str, rx: WebhookReceiver, tmp_path) -> None:
    from tests.integration import metric_contract as mc

    wait_for(lambda: rx.accepted and max(rx.attempts.values()) >= 2, 120, "a webhook retried, then accepted")
    dispatcher = subprocess.Popen([sys.executable, "-m", "terrawatch.cli", "dispatch"], env=settings_env(s),
                                  stdout=open(tmp_path / "dispatcher.log", "ab"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        d_url = f"http://127.0.0.1:{s.dispatcher_metrics_port}/metrics"
        d_body = wait_for(lambda: _get(d_url), 60, "the standalone dispatcher's /metrics")
    finally:
        dispatcher.terminate()
        dispatcher.wait(30)
    httpx.get(f"{base}/ops/status", headers={"X-API-Key": "tw_nope"}, timeout=30)  # one more API request
    scrapes = {"terrawatch-consumer": _get(f"http://127.0.0.1:{s.metrics_port}/metrics"),
               "terrawatch-dispatcher": d_body, "terrawatch-api": _get(f"{base}/metrics"),
               "triton": _get(f"http://127.0.0.1:{s.triton_metrics_port}/metrics")}
    for job, body in scrapes.items():
        (tmp_path / f"{job}.prom").write_text(body)
    assert mc.check_catalogue(scrapes) == []
    assert mc.check_ownership(scrapes) == []
    assert mc.check_label_values(scrapes) == []
    api_series = mc.parse(scrapes["terrawatch-api"])
    assert ("terrawatch_http_requests_total", {"route": "/ops/status", "method": "GET", "status_class": "4xx"}) in [
        (n, lab) for n, lab, _ in api_series], "the API counts requests by route template and status class"
    assert any(n == "terrawatch_http_request_duration_seconds_bucket" and lab.get("route") == "/ops/dlq"
               for n, lab, _ in api_series)
    assert mc.check_used_metrics() == []
    res = mc.promtool_on_real_series(scrapes, tmp_path)
    assert res.returncode == 0, f"a rule's selector matches no real series:\n{res.stdout[-3000:]}{res.stderr[-2000:]}"


def _get(url: str) -> str | None:
    try:
        r = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 else None


def test_ops_actions_on_the_real_pipeline(stack, tmp_path):
    """Also the metric contract (tests/integration/metric_contract.py): this run dead-letters events,
    retries a webhook (the receiver answers 500 first), processes scenes and serves API requests; then
    the worker (consumer + dispatcher), a standalone dispatcher, the API and Triton are scraped."""
    s = isolated(stack.settings, "ops", api_backfill_roots=str(tmp_path), control_poll_s=1.0,
                 dlq_depth_interval_s=1.0, webhook_retry_base_s=0.2, dispatcher_metrics_port=_free_port())
    keys = role_keys(s, "ops")
    op = hdr(keys["operator"])
    rx = None
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        with live_api(s) as base:
            ready = httpx.get(f"{base}/ops/readyz", timeout=60)
            assert ready.status_code == 200, ready.text
            assert {k: v["ok"] for k, v in ready.json()["checks"].items()} == {
                "kafka": True, "postgis": True, "triton": True, "ray": True}
            models = httpx.get(f"{base}/ops/models", headers=hdr(keys["viewer"]), timeout=30).json()
            assert any(m["name"] == "flood_s1" and m["state"] == "READY" for m in models), models

            # Pause: a scene published while paused waits in Kafka (visible as lag) until resumed.
            paused = httpx.post(f"{base}/ops/consumption/pause", headers=op, json={"reason": "maintenance"})
            assert paused.status_code == 200 and paused.json()["paused"] is True
            # The worker's loop has read the flag (so the check below is not just a slow start).
            wait_for(lambda: "consumption paused" in (tmp_path / "worker.log").read_text(errors="replace"),
                     180, "worker to honour the pause flag")
            a = _scene(tmp_path, "ops-a", (420_000.0, 4_480_000.0))
            rx = _subscribe(s, a["geometry"], status_codes=[500])  # scene a's alerts; the first attempt fails
            publish(s, a)
            time.sleep(12)
            assert runs_for(s, a["id"]) == []
            status = httpx.get(f"{base}/ops/status", headers=hdr(keys["viewer"]), timeout=30).json()
            assert status["consumption_paused"] is True and status["total_lag"] >= 1, status
            assert status["consumption"]["reason"] == "maintenance", status["consumption"]
            assert status["consumption"]["updated_by"].startswith("test-ops-operator"), status["consumption"]
            procs = {p["process"]: p for p in status["processes"]}
            assert set(procs) == {"worker", "dispatcher", "api"}, procs
            assert all(p["up"] and p["version"] and p["since"] and p["last_seen"] for p in procs.values()), procs
            assert procs["dispatcher"]["detail"].startswith("inside the worker"), procs
            # No body: a body whose fields are all optional may be left out (the runbook's form).
            resumed = httpx.post(f"{base}/ops/consumption/resume", headers=op)
            assert resumed.status_code == 200 and resumed.json()["paused"] is False, resumed.text
            wait_for(lambda: runs_for(s, a["id"]), 240, "scene after resume")

            # DLQ re-drive: an event whose asset is missing lands in the DLQ; once the file exists,
            # re-driving that entry processes it.
            late = tmp_path / "late" / "ops-b.tif"
            b = _scene(tmp_path, "ops-b-src", (430_000.0, 4_490_000.0))
            b["id"] = f"ops-b-{uuid.uuid4().hex[:6]}"
            b["assets"]["data"]["href"] = late.as_uri()
            publish(s, b, b'{"malformed": ')
            entries = wait_for(lambda: [e for e in httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json()
                                        if b["id"] in (e["payload"] or "")], 180, "DLQ entry")
            assert "cannot open asset" in entries[0]["reason"] and entries[0]["state"] == "pending"
            assert entries[0]["kind"] == "permanent" and entries[0]["error_code"] == "unreadable_asset"
            malformed = wait_for(lambda: [e for e in httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json()
                                          if e["error_code"] == "invalid_event"], 180, "malformed event's DLQ entry")
            late.parent.mkdir()
            synthetic_s1(late, size=256, origin=(430_000.0, 4_490_000.0))
            # A permanent entry is refused with the reason unless forced (the cause was repaired: the file exists).
            refused = httpx.post(f"{base}/ops/dlq/redrive", headers=op, json={"ids": [entries[0]["id"]]}, timeout=60)
            assert refused.status_code == 409 and "permanent" in refused.json()["description"], refused.text
            assert "force" in refused.json()["description"]
            assert httpx.get(f"{base}/ops/dlq/{entries[0]['id']}", headers=op, timeout=60).json()["state"] == "pending"
            redriven = httpx.post(f"{base}/ops/dlq/redrive", headers=op, json={"ids": [entries[0]["id"]], "force": True},
                                  timeout=60)
            assert redriven.status_code == 202 and redriven.json()["redriven"] == [entries[0]["id"]]
            wait_for(lambda: runs_for(s, b["id"]), 240, "re-driven scene")
            # The entry now says it was re-driven, when and by whom, and is no longer pending.
            shown = httpx.get(f"{base}/ops/dlq/{entries[0]['id']}", headers=op, timeout=60).json()
            assert shown["state"] == "redriven" and shown["redriven_by"].startswith("test-ops-operator")
            assert shown["redriven_at"] and shown["redrives"] == 1
            again = httpx.post(f"{base}/ops/dlq/redrive", headers=op, json={"ids": [entries[0]["id"]], "force": True},
                               timeout=60)
            assert again.json()["redriven"] == [] and again.json()["skipped"] == [
                {"id": entries[0]["id"], "state": "redriven"}]
            pending = httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json()
            assert [e["id"] for e in pending] == [malformed[0]["id"]]
            assert [e["id"] for e in httpx.get(f"{base}/ops/dlq", headers=op, params={"state": "redriven"},
                                               timeout=60).json()] == [entries[0]["id"]]
            assert httpx.get(f"{base}/ops/dlq/0/999999", headers=op, timeout=60).status_code == 404
            # terrawatch_dlq_depth (worker /metrics) = pending entries = the ops API's dlq_size = `terrawatch dlq list`.
            status = wait_for(lambda: (st := httpx.get(f"{base}/ops/status", headers=op, timeout=30).json())
                              and _worker_gauge(s, "terrawatch_dlq_depth") == st["dlq_size"] and st, 60,
                              "terrawatch_dlq_depth to equal the ops API's dlq_size")
            assert status["dlq_size"] == 1 and status["dlq"] == {"pending": 1, "redriven": 1, "purged": 0,
                                                                 "retained": 2}, status
            listed = _cli(s, "dlq", "list")
            assert listed.returncode == 0, listed.stderr
            rows = [ln for ln in listed.stdout.splitlines() if ln.startswith(malformed[0]["id"] + " ")]
            assert len(rows) == 1 and "pending" in rows[0] and "invalid_event" in rows[0], listed.stdout
            assert "1 pending, 1 redriven, 0 purged" in listed.stdout
            shown = json.loads(_cli(s, "dlq", "show", "--json", malformed[0]["id"]).stdout)
            assert shown["payload"] == '{"malformed": ' and shown["state"] == "pending"
            bad = _cli(s, "dlq", "show", "nope")
            assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
            purged = _cli(s, "dlq", "purge", "--json", malformed[0]["id"])
            assert purged.returncode == 0 and json.loads(purged.stdout)["purged"] == [malformed[0]["id"]], purged
            assert httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json() == []
            gone = httpx.get(f"{base}/ops/dlq/{malformed[0]['id']}", headers=op, timeout=60).json()
            assert gone["state"] == "purged" and gone["purged_by"].startswith("cli:")
            wait_for(lambda: _worker_gauge(s, "terrawatch_dlq_depth") == 0, 60, "terrawatch_dlq_depth 0 after purge")

            # Replay: the stored item goes through again; idempotent, so nothing is duplicated.
            n_det = count(s, t.detections, t.detections.c.scene_id == a["id"])
            replayed = httpx.post(f"{base}/ops/scenes/{a['id']}/replay", headers=op)
            assert replayed.status_code == 202 and replayed.json()["outcome"] == "duplicate", replayed.text
            assert "duplicate" in _cli(s, "replay", a["id"]).stdout
            wait_for(lambda: httpx.get(f"{base}/ops/status", headers=op, timeout=30).json()["total_lag"] == 0,
                     120, "replayed event consumed")
            assert count(s, t.detections, t.detections.c.scene_id == a["id"]) == n_det
            assert httpx.post(f"{base}/ops/scenes/no-such-scene/replay", headers=op).status_code == 404

            # Backfill: one event per GeoTIFF in an allowed folder; others are refused.
            folder = tmp_path / "backfill"
            folder.mkdir()
            stem = f"ops-c-{uuid.uuid4().hex[:6]}"
            synthetic_s1(folder / f"{stem}.tif", size=256, origin=(440_000.0, 4_500_000.0))
            (folder / "notes.txt").write_text("not a raster")
            when = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
            dry = httpx.post(f"{base}/ops/backfill", headers=op, timeout=60,
                             json={"folder": str(folder), "sensing_time": when, "dry_run": True})
            assert dry.status_code == 202 and dry.json()["published"] == [stem] and dry.json()["dry_run"] is True
            assert [k["path"] for k in dry.json()["skipped"]] == [] and runs_for(s, stem) == []
            bf = httpx.post(f"{base}/ops/backfill", headers=op, json={"folder": str(folder), "sensing_time": when},
                            timeout=60)
            assert bf.status_code == 202 and bf.json()["published"] == [stem], bf.text
            wait_for(lambda: runs_for(s, stem), 240, "backfilled scene")
            outside = httpx.post(f"{base}/ops/backfill", headers=op, json={"folder": "/etc"})
            assert outside.status_code == 422 and str(tmp_path) in outside.json()["description"], outside.text
            assert "TERRAWATCH_API_BACKFILL_ROOTS" in outside.json()["description"]

            status = httpx.get(f"{base}/ops/status", headers=op, timeout=30).json()
            assert status["dlq_size"] == 0 and status["dlq"]["retained"] == 2 and status["consumption_paused"] is False
            assert "sentinel-1a" in {p["platform"] for p in status["last_processed"]}

            audit = httpx.get(f"{base}/ops/audit", headers=op, params={"limit": 200}).json()
            actor = next(e["actor"] for e in audit if e["action"] == "consumption.pause")
            assert actor.startswith("test-ops-operator")
            done = {(e["action"], e["target"]) for e in audit if e["actor"] == actor}
            assert {("consumption.pause", s.consumer_group), ("consumption.resume", s.consumer_group),
                    ("dlq.redrive", entries[0]["id"]), ("scene.replay", a["id"]),
                    ("scene.backfill", str(folder))} <= done

            # A permanent entry re-driven with force that fails again links to its predecessor: one history.
            publish(s, b'{"again": ')
            first = wait_for(lambda: [e for e in httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json()
                                      if e["payload"] == '{"again": '], 180, "second malformed event's DLQ entry")
            cli_refused = _cli(s, "dlq", "redrive", first[0]["id"])
            assert cli_refused.returncode == 1 and "permanent" in cli_refused.stderr, cli_refused
            assert "--force" in cli_refused.stderr and "Traceback" not in cli_refused.stderr
            forced = _cli(s, "dlq", "redrive", "--force", "--json", first[0]["id"])
            assert forced.returncode == 0 and json.loads(forced.stdout)["redriven"] == [first[0]["id"]], forced
            second = wait_for(lambda: [e for e in httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json()
                                       if e["payload"] == '{"again": '], 180, "the re-driven event back in the DLQ")
            assert second[0]["id"] != first[0]["id"]
            linked = httpx.get(f"{base}/ops/dlq/{second[0]['id']}", headers=op, timeout=60).json()
            assert linked["predecessor"] == first[0]["id"], linked
            assert [h["id"] for h in linked["history"]] == [first[0]["id"]], linked
            assert first[0]["id"] in _cli(s, "dlq", "show", second[0]["id"]).stdout

            _metric_contract(s, base, rx, tmp_path)  # last: it needs promtool on PATH
    finally:
        worker.terminate()
        worker.wait(60)
        if rx is not None:
            rx.close()
            with engine_for(s.db_url).begin() as c:  # leave no subscription pointing at a closed port
                c.execute(t.subscribers.update().where(t.subscribers.c.id == rx.sub_id).values(active=False))
