"""Alerting on the real stack: rules, lifecycle, subscriptions, outbox delivery (retries, failure,
redelivery, kill -9), Standard Webhooks signatures, CAP 1.2 and GeoJSON payloads, the API routes.

Delivery tests write alerts with the same service code the pipeline uses (one UnitOfWork: alert,
event, outbox rows) and deliver them with the real dispatcher to a real local HTTP receiver; the
last test goes through Kafka -> Ray -> Triton -> PostGIS with the worker process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from geojson_pydantic import Feature
from lxml import etree
from shapely.geometry import box, mapping, shape
from sqlalchemy import select

from terrawatch.alerting.cap import CAP_NS
from terrawatch.alerting.dispatcher import Dispatcher
from terrawatch.alerting.outbox import fan_out
from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.api.routes.alerts import alerts_router
from terrawatch.api.routes.subscriptions import subscriptions_router
from terrawatch.domain.alerts import Alert
from terrawatch.domain.polygons import as_multipolygon, geodesic_area_ha
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.service import deliveries as dsvc
from terrawatch.service import subscriptions as subs
from terrawatch.service.alerts import policies
from terrawatch.settings import REPO_ROOT
from terrawatch.store import tables as t
from terrawatch.store.uow import UnitOfWork, engine_for
from tests.integration.helpers import isolated, publish, runs_for, settings_env, start_worker, wait_for

pytestmark = pytest.mark.integration

XSD = etree.XMLSchema(etree.parse(str(REPO_ROOT / "alerts" / "schemas" / "CAP-v1.2.xsd")))
NS = {"cap": CAP_NS}


@pytest.fixture(scope="module")
def s(stack):
    return stack.settings.model_copy(update={"webhook_allow_private": "127.0.0.1"})


@pytest.fixture
def place():
    """A fresh 0.2 x 0.2 degree area for one test (far from other tests' scenes), and a subscription AOI around it."""
    lon, lat = random.uniform(140, 175), random.uniform(-45, -10)
    return box(lon, lat, lon + 0.2, lat + 0.2)


def _subscribe(s, place, fmt="geojson", min_confidence="low", hazards=("flood",), **rx_kw):
    rx = WebhookReceiver(None, path=f"/hook/{uuid.uuid4().hex[:8]}", **rx_kw)
    sub, secret = subs.create(engine_for(s.db_url), s, subs.NewSubscription(
        url=rx.url, hazards=list(hazards), aoi=mapping(place), min_confidence=min_confidence, format=fmt), "test")
    assert secret.startswith("whsec_")
    rx.use_secret(secret)
    rx.sub_id = uuid.UUID(sub["id"])
    return rx


def _alert(s, place, confidence="low", hazard="flood", context=None) -> tuple[Alert, list[str]]:
    """An alert inside ``place`` written like the pipeline writes one: alert + event + outbox, one transaction."""
    c = place.centroid
    geom = as_multipolygon(box(c.x - 0.005, c.y - 0.005, c.x + 0.005, c.y + 0.005))
    now = datetime.now(timezone.utc)
    a = Alert(id=uuid.uuid4(), hazard=hazard, status="new", confidence=confidence, severity="moderate",
                 geom=geom, area_ha=geodesic_area_ha(geom), likelihood=85.0, sensors=["S1"], observations=1,
                 first_sensed=now - timedelta(hours=3), last_sensed=now - timedelta(hours=3),
                 context={"scene_ids": [f"test-{uuid.uuid4().hex[:6]}"], **(context or {})}, version=1,
                 created_at=now, updated_at=now)
    with UnitOfWork(engine_for(s.db_url)) as uow:
        uow.alerts.insert(a)
        uow.alerts.add_event(a.id, "test", None, "new", "written by the test", 1)
        ids = fan_out(uow, a, "alert.created", policies(s)[hazard], s.cap_sender)
    return a, ids


def _outbox(s, *where) -> list[dict]:
    with engine_for(s.db_url).connect() as c:
        return [dict(r) for r in c.execute(select(t.webhook_outbox).where(*where)).mappings()]


def _attempts(s, delivery_id) -> list[dict]:
    with engine_for(s.db_url).connect() as c:
        return [dict(r) for r in c.execute(select(t.webhook_attempts).where(
            t.webhook_attempts.c.delivery_id == delivery_id).order_by(t.webhook_attempts.c.id)).mappings()]


def _free_port() -> int:
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def _api(s, role_keys=("viewer", "operator", "admin")):
    from terrawatch.api import errors
    from terrawatch.api.deps import ApiDeps
    from terrawatch.service.keys import create_key

    deps = ApiDeps(s)
    app = FastAPI()
    errors.install(app)
    app.include_router(alerts_router(deps))
    app.include_router(subscriptions_router(deps))
    keys = {r: create_key(deps.engine, f"test-{r}", r)[1] for r in role_keys}
    return TestClient(app), {r: {"X-API-Key": k} for r, k in keys.items()}


def test_receiver_500_then_200_gives_one_accepted_delivery_per_alert_with_a_stable_id(s, place):
    rx = _subscribe(s, place, status_codes=[500, 500, 500, 500, 500])
    try:
        ids = [_alert(s, place)[1][0], _alert(s, place)[1][0]]
        Dispatcher(s, engine_for(s.worker_db_url), retry_base_s=0.05, retry_cap_s=0.2, breaker_failures=100).drain(60, [rx.sub_id])
    finally:
        rx.close()
    rows = {r["id"]: r for r in _outbox(s, t.webhook_outbox.c.subscriber_id == rx.sub_id)}
    assert set(rows) == set(ids) and all(r["status"] == "delivered" for r in rows.values())
    assert rx.accepted == {i: 1 for i in ids}, "exactly one accepted delivery per alert"
    assert set(rx.attempts) == set(ids), "every attempt carried one of the two webhook-ids"
    assert sum(rx.attempts.values()) == 5 + 2 == sum(r["attempts"] for r in rows.values())
    for i in ids:
        log = _attempts(s, i)
        assert [a["outcome"] for a in log] == ["retry"] * (len(log) - 1) + ["succeeded"]
        assert all(a["status_code"] == 500 for a in log[:-1]) and log[-1]["status_code"] == 204
    assert rx.failures == 0 and rx.by_format == {"geojson": 2, "cap": 0}


def test_one_alerts_messages_arrive_in_version_order_while_other_alerts_are_not_held_back(s, place):
    """Versions 1, 2, 3 of one alert to one subscriber, the first send stalled at the receiver until
    another alert's message has been accepted: the later versions wait instead of overtaking it (a CAP
    Cancel must never arrive before the Update it cancels), and the other alert's message goes out
    meanwhile. The stall is tied to the message id, not to whichever request reaches the receiver
    first (two concurrent sends arrive in either order), so the outcome does not depend on timing."""
    rx = _subscribe(s, place)
    try:
        a, (a1,) = _alert(s, place)
        for v in (2, 3):
            a.version = v
            with UnitOfWork(engine_for(s.db_url)) as uow:
                fan_out(uow, a, "alert.updated", policies(s)["flood"], s.cap_sender)
        b, (b1,) = _alert(s, place)
        rx.hold_until(a1, b1, timeout_s=10.0)  # if b were held back behind a, a1 goes out first: fails below
        Dispatcher(s, engine_for(s.worker_db_url), max_per_endpoint=4).drain(60, [rx.sub_id])
    finally:
        rx.close()
    got = [(m["payload"]["data"]["properties"]["alert_id"], m["payload"]["data"]["properties"]["version"])
           for m in rx.received]
    assert [v for i, v in got if i == str(a.id)] == [1, 2, 3]
    assert got.index((str(b.id), 1)) < got.index((str(a.id), 1)), "the other alert waited for the stalled one"


def test_receiver_down_for_the_window_fails_is_listed_and_redelivered_with_the_same_id(s, place):
    port = _free_port()  # nothing listens here until the redelivery
    sub, secret = subs.create(engine_for(s.db_url), s, subs.NewSubscription(
        url=f"http://127.0.0.1:{port}/down", hazards=["flood"], aoi=mapping(place)), "test")
    _, (msg_id,) = _alert(s, place)
    d = Dispatcher(s, engine_for(s.worker_db_url), retry_window=timedelta(seconds=2), retry_base_s=0.1, retry_cap_s=0.3,
                   breaker_failures=3, breaker_cooldown_s=0.3)

    def failed() -> bool:
        d.run_once(wait=True)
        return _outbox(s, t.webhook_outbox.c.id == msg_id)[0]["status"] == "failed"

    wait_for(failed, 30, "the delivery to fail", interval=0.05)
    row = _outbox(s, t.webhook_outbox.c.id == msg_id)[0]
    assert row["attempts"] >= 2 and row["failed_at"] is not None and "ConnectError" in (row["last_error"] or "")
    assert msg_id in [x["id"] for x in dsvc.list_deliveries(engine_for(s.db_url), status="failed", limit=1000)]

    client, keys = _api(s)
    listed = client.get("/deliveries", params={"status": "failed", "subscription_id": sub["id"]},
                        headers=keys["operator"])
    assert listed.status_code == 200 and [x["webhook_id"] for x in listed.json()] == [msg_id]
    assert client.get("/deliveries", headers=keys["viewer"]).status_code == 403

    rx = WebhookReceiver(secret, path="/down", port=port)  # the endpoint is back
    try:
        r = client.post(f"/deliveries/{msg_id}/redeliver", headers=keys["operator"])
        assert r.status_code == 202 and r.json()["status"] == "pending" and r.json()["redeliveries"] == 1
        assert client.post(f"/deliveries/{msg_id}/redeliver", headers=keys["operator"]).status_code == 409
        Dispatcher(s, engine_for(s.worker_db_url), retry_base_s=0.05).drain(30, [uuid.UUID(sub["id"])])
    finally:
        rx.close()
    assert rx.accepted == {msg_id: 1}, "redelivery reuses the webhook-id"
    detail = client.get(f"/deliveries/{msg_id}", headers=keys["operator"]).json()
    assert detail["status"] == "delivered"
    outcomes = [a["outcome"] for a in detail["attempts_log"]]
    assert outcomes[-2:] == ["failed", "succeeded"] and outcomes.count("retry") >= 1


def test_dispatcher_killed_mid_send_and_restarted_loses_nothing(s, place, tmp_path):
    metrics_port = _free_port()
    d_settings = s.model_copy(update={"webhook_timeout_s": 5.0, "webhook_lease_s": 6.0,
                                      "webhook_max_per_endpoint": 1, "webhook_retry_base_s": 0.2,
                                      "dispatcher_metrics_port": metrics_port})
    rx = _subscribe(s, place, delays=[60])  # the first request hangs until the sender is gone
    ids = [_alert(s, place)[1][0] for _ in range(3)]
    env = settings_env(d_settings)

    def dispatcher(log_name):
        return subprocess.Popen([sys.executable, "-m", "terrawatch.cli", "dispatch"], env=env,
                                stdout=open(tmp_path / log_name, "ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    d1 = dispatcher("d1.log")
    try:
        wait_for(lambda: sum(rx.attempts.values()) >= 1, 60, "the first send", interval=0.02)
        os.killpg(d1.pid, signal.SIGKILL)
        d1.wait(10)
        in_flight = next(iter(rx.attempts))
        assert rx.accepted == {} and _outbox(s, t.webhook_outbox.c.id == in_flight)[0]["status"] == "pending"
        d2 = dispatcher("d2.log")
        try:
            wait_for(lambda: all(r["status"] == "delivered" for r in _outbox(
                s, t.webhook_outbox.c.subscriber_id == rx.sub_id)), 60, "all deliveries after the restart")
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        finally:
            d2.send_signal(signal.SIGTERM)
            d2.wait(30)
    finally:
        if d1.poll() is None:
            os.killpg(d1.pid, signal.SIGKILL)
        rx.close()
    assert rx.verified_ids == set(ids), "no alert lost"
    assert rx.attempts[in_flight] == 2, "the interrupted delivery was sent again under the same webhook-id"
    assert all(rx.accepted[i] == 1 for i in ids)
    ep = f'endpoint="{rx.sub_id}"'
    assert f'terrawatch_webhook_deliveries_total{{{ep},outcome="succeeded"}} 3.0' in metrics
    assert f"terrawatch_webhook_enqueue_to_delivery_seconds_count{{{ep}}} 3.0" in metrics
    assert f"terrawatch_webhook_delivery_duration_seconds_count{{{ep}}} 3.0" in metrics
    assert "terrawatch_outbox_depth" in metrics and "terrawatch_outbox_failed" in metrics


def test_cap_and_geojson_payloads_are_valid_signed_and_carry_the_context(s, place):
    legality = {"verdict": "likely_illegal", "rule": "mining inside a protected area",
                "layer": "wdpa", "feature": {"name": "Reserva Tambopata", "id": 1234}}
    rx_cap = _subscribe(s, place, fmt="cap", hazards=("mining",))
    rx_geo = _subscribe(s, place, fmt="geojson", hazards=("mining",))
    try:
        a, ids = _alert(s, place, hazard="mining", context={"legality": legality})
        assert len(ids) == 2
        Dispatcher(s, engine_for(s.worker_db_url)).drain(30, [rx_cap.sub_id, rx_geo.sub_id])
    finally:
        rx_cap.close()
        rx_geo.close()
    assert rx_cap.failures == rx_geo.failures == 0  # Standard Webhooks signatures verified (standardwebhooks)
    (cap_msg,), (geo_msg,) = rx_cap.received, rx_geo.received
    assert cap_msg["format"] == "cap" and geo_msg["format"] == "geojson"
    doc = etree.fromstring(cap_msg["body"].encode())
    XSD.assertValid(doc)
    assert doc.findtext("cap:msgType", namespaces=NS) == "Alert"
    params = {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
              for p in doc.findall("cap:info/cap:parameter", NS)}
    assert json.loads(params["context:legality"]) == legality
    poly = doc.findtext("cap:info/cap:area/cap:polygon", namespaces=NS).split()
    lat, lon = map(float, poly[0].split(","))
    assert place.contains(shape({"type": "Point", "coordinates": [lon, lat]}))
    feature = Feature.model_validate(geo_msg["payload"]["data"])
    assert feature.properties["context"]["legality"] == legality
    assert shape(geo_msg["payload"]["data"]["geometry"]).equals_exact(a.geom, 1e-9)


def test_cap_references_only_messages_this_subscriber_was_sent(s, place):
    """Subscriber A hears of the alert from version 1, subscriber B only from version 2: B's version 2 is a
    fresh Alert (no references), B's version 3 Update references B's version 2 only, A's references A's
    versions 1 and 2 (identifier and sent exactly as delivered). All valid against the CAP 1.2 XSD."""
    rx_a = _subscribe(s, place, fmt="cap")
    rx_b = None
    try:
        a, _ = _alert(s, place)
        rx_b = _subscribe(s, place, fmt="cap")  # subscribes after version 1 was sent
        for v in (2, 3):
            a.version, a.updated_at = v, a.updated_at + timedelta(minutes=v)
            with UnitOfWork(engine_for(s.db_url)) as uow:
                fan_out(uow, a, "alert.updated", policies(s)["flood"], s.cap_sender)
        Dispatcher(s, engine_for(s.worker_db_url)).drain(60, [rx_a.sub_id, rx_b.sub_id])
    finally:
        rx_a.close()
        if rx_b is not None:
            rx_b.close()

    def messages(rx):
        out = []
        for m in rx.received:
            doc = etree.fromstring(m["body"].encode())
            XSD.assertValid(doc)
            f = lambda tag: doc.findtext(f"cap:{tag}", namespaces=NS)  # noqa: E731
            out.append({"id": (f("sender"), f("identifier"), f("sent")), "type": f("msgType"),
                        "refs": (f("references") or "").split()})
        return out

    got_a, got_b = messages(rx_a), messages(rx_b)
    assert [m["type"] for m in got_a] == ["Alert", "Update", "Update"]
    assert got_a[2]["refs"] == [",".join(got_a[0]["id"]), ",".join(got_a[1]["id"])]
    assert [m["type"] for m in got_b] == ["Alert", "Update"] and got_b[0]["refs"] == []
    assert got_b[0]["id"][1].endswith("-v2") and got_b[1]["refs"] == [",".join(got_b[0]["id"])]


def test_subscriptions_and_transitions_through_the_api(s, place):
    client, keys = _api(s)
    body = {"url": "http://169.254.169.254/latest/meta-data", "aoi": mapping(place), "hazards": ["flood"]}
    r = client.post("/subscriptions", json=body, headers=keys["admin"])
    assert r.status_code == 422 and "non-public" in r.json()["description"]
    assert client.post("/subscriptions", json={**body, "url": "http://10.0.0.7/x"},
                       headers=keys["admin"]).status_code == 422
    rx = WebhookReceiver(None, path="/api-sub")
    try:
        body = {"url": rx.url, "aoi": json.loads(json.dumps(mapping(place))), "hazards": ["flood"],
                "format": "cap", "min_confidence": "low"}
        assert client.post("/subscriptions", json=body, headers=keys["operator"]).status_code == 403
        r = client.post("/subscriptions", json=body, headers=keys["admin"])
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["secret"].startswith("whsec_") and created["format"] == "cap"
        rx.use_secret(created["secret"])
        assert client.post("/subscriptions", json=body, headers=keys["admin"]).status_code == 409
        shown = client.get(f"/subscriptions/{created['id']}", headers=keys["admin"]).json()
        assert "secret" not in shown and shape(shown["aoi"]).equals(place)
        assert all("secret" not in x for x in client.get("/subscriptions", headers=keys["admin"]).json())

        a, _ = _alert(s, place)
        Dispatcher(s, engine_for(s.worker_db_url)).drain(30, [uuid.UUID(created["id"])])
        r = client.post(f"/alerts/{a.id}/acknowledge", json={"reason": "crew on site"}, headers=keys["viewer"])
        assert r.status_code == 403
        r = client.post(f"/alerts/{a.id}/acknowledge", json={"reason": "crew on site", "expected_version": 1},
                        headers=keys["operator"])
        assert r.status_code == 200, r.text
        assert r.json()["alert"]["properties"]["status"] == "acknowledged" and len(r.json()["webhooks"]) == 1
        stale = client.post(f"/alerts/{a.id}/transitions",
                            json={"to": "resolved", "reason": "x", "expected_version": 1}, headers=keys["operator"])
        assert stale.status_code == 409
        r = client.post(f"/alerts/{a.id}/transitions", json={"to": "false_positive", "reason": "cloud shadow"},
                        headers=keys["operator"])
        assert r.status_code == 200
        assert client.post(f"/alerts/{a.id}/resolve", json={"reason": "late"},
                           headers=keys["operator"]).status_code == 409
        assert client.post(f"/alerts/{uuid.uuid4()}/resolve", json={"reason": "x"},
                           headers=keys["operator"]).status_code == 404
        events = client.get(f"/alerts/{a.id}/events", headers=keys["viewer"]).json()
        assert [(e["from_status"], e["to_status"]) for e in events] == [
            (None, "new"), ("new", "acknowledged"), ("acknowledged", "false_positive")]
        assert events[1]["actor"].startswith("test-operator") and events[2]["reason"] == "cloud shadow"
        assert [e["alert_version"] for e in events] == [1, 2, 3]
        Dispatcher(s, engine_for(s.worker_db_url)).drain(30, [uuid.UUID(created["id"])])
        types = [etree.fromstring(m["body"].encode()).findtext("cap:msgType", namespaces=NS) for m in rx.received]
        assert types == ["Alert", "Update", "Cancel"]
        for m in rx.received:
            XSD.assertValid(etree.fromstring(m["body"].encode()))
        assert client.delete(f"/subscriptions/{created['id']}", headers=keys["admin"]).status_code == 204
        assert client.get("/subscriptions", params={"include_inactive": True},
                          headers=keys["admin"]).status_code == 200
    finally:
        rx.close()


def test_audit_rows_commit_with_the_change_they_record_or_not_at_all(s, place):
    """The audit row is written in the change's own transaction: when its insert fails in PostGIS (a client
    address longer than the column), the transition, its event and its webhooks are rolled back too; when it
    succeeds, the change and its audit row are both there."""
    from terrawatch.service import alerts as alert_svc
    from terrawatch.store import audit as audit_log
    from terrawatch.store.db import DATA_ERRORS

    engine = engine_for(s.db_url)
    rx = _subscribe(s, place)
    try:
        a, _ = _alert(s, place)
        Dispatcher(s, engine_for(s.worker_db_url)).drain(30, [rx.sub_id])  # the subscriber knows the alert: a transition notifies it

        def failing(conn, target, details):
            audit_log.record(conn, "test", "operator", "alert.acknowledged", target, details, client="x" * 65)

        with pytest.raises(DATA_ERRORS):
            alert_svc.transition(engine, s, a.id, "acknowledged", "test", "crew on site", audit=failing)
        with UnitOfWork(engine, "read") as uow:
            assert uow.alerts.get(a.id).status == "new" and uow.alerts.get(a.id).version == 1
            assert [e["to_status"] for e in uow.alerts.events(a.id)] == ["new"]
        assert len(_outbox(s, t.webhook_outbox.c.alert_id == a.id)) == 1  # only alert.created
        assert not [r for r in audit_log.recent(engine, "alert.acknowledged", 1000) if r["target"] == str(a.id)]

        def ok(conn, target, details):
            audit_log.record(conn, "test", "operator", "alert.acknowledged", target, details, client="127.0.0.1")

        alert_svc.transition(engine, s, a.id, "acknowledged", "test", "crew on site", audit=ok)
        rows = [r for r in audit_log.recent(engine, "alert.acknowledged", 1000) if r["target"] == str(a.id)]
        assert [r["details"] for r in rows] == [{"reason": "crew on site", "version": 2}]
        assert len(_outbox(s, t.webhook_outbox.c.alert_id == a.id)) == 2

        with pytest.raises(DATA_ERRORS):  # the same holds for deactivating a subscription
            subs.deactivate(engine, rx.sub_id, "test", audit=failing)
        assert subs.get(engine, rx.sub_id)["active"] is True
    finally:
        subs.deactivate(engine, rx.sub_id, "test")
        rx.close()


def test_pipeline_uses_rules_aoi_and_min_confidence(stack, s, tmp_path):
    """Two S1 passes of the same area 3 h apart: the first raises low alerts, the second (an independent
    acquisition) confirms them (high); the first re-published under another id changes nothing.

    Subscribers: GeoJSON/low over the scene (gets both), CAP/high over the scene (only the high
    versions), GeoJSON/low elsewhere (nothing)."""
    ps = isolated(s, "alerting")
    path = tmp_path / "scene.tif"
    synthetic_s1(path, size=512, origin=(650_000.0, 4_150_000.0))
    now = datetime.now(timezone.utc)
    first = item_from_geotiff(path, scene_id=f"alerting-a-{uuid.uuid4().hex[:6]}",
                              sensing_time=now - timedelta(hours=3))
    # the same acquisition under another id (e.g. a second catalogue): never a confirmation
    again = item_from_geotiff(path, scene_id=f"alerting-a2-{uuid.uuid4().hex[:6]}",
                              sensing_time=now - timedelta(hours=3))
    second = item_from_geotiff(path, scene_id=f"alerting-b-{uuid.uuid4().hex[:6]}",
                               sensing_time=now - timedelta(minutes=5))
    footprint = shape(first["geometry"])
    low = _subscribe(s, footprint, fmt="geojson", min_confidence="low")
    high = _subscribe(s, footprint, fmt="cap", min_confidence="high")
    elsewhere = _subscribe(s, box(10.0, 50.0, 10.1, 50.1), fmt="geojson")
    # Reference water is known here (a loaded layer covers the scene: one tiny lake in a corner), so a
    # repeated observation may confirm; without it the water could be permanent and would stay `new`
    # (tests/unit/test_alert_merge.py).
    from terrawatch.store.reference import drop_reference_layer, replace_reference_layer

    minx, miny, _, _ = footprint.bounds
    with engine_for(s.db_url).begin() as c:
        replace_reference_layer(c, "reference_water", [{"layer": "reference_water", "name": "corner pond",
                                                        "properties": {}, "geom": box(minx, miny, minx + 1e-4, miny + 1e-4)}],
                                coverage=footprint.buffer(0.01))
    worker = start_worker(ps, tmp_path / "worker.log")
    try:
        publish(ps, first)
        wait_for(lambda: runs_for(ps, first["id"]), 240, "first scene")
        publish(ps, again)
        wait_for(lambda: runs_for(ps, again["id"]), 240, "first scene re-published")
        with engine_for(s.db_url).connect() as c:
            still = [dict(r) for r in c.execute(select(t.alerts).where(
                t.alerts.c.context["scene_ids"].astext.contains(first["id"]))).mappings()]
        assert still and all(a["status"] == "new" and a["observations"] == 1 and a["version"] == 1
                             and again["id"] in a["context"]["scene_ids"] for a in still)
        publish(ps, second)
        wait_for(lambda: runs_for(ps, second["id"]), 240, "second scene")
        with engine_for(s.db_url).connect() as c:
            alerts = [dict(r) for r in c.execute(select(t.alerts).where(
                t.alerts.c.context["scene_ids"].astext.contains(first["id"])
                | t.alerts.c.context["scene_ids"].astext.contains(second["id"]))).mappings()]
        assert alerts, "the synthetic water should raise at least one flood alert"
        wait_for(lambda: len(low.verified_ids) >= 2 * len(alerts) and len(high.verified_ids) >= len(alerts)
                 and all(r["status"] == "delivered" for r in _outbox(
                     s, t.webhook_outbox.c.subscriber_id.in_([low.sub_id, high.sub_id]))), 90, "webhooks")
    finally:
        worker.terminate()
        worker.wait(60)
        for rx in (low, high, elsewhere):
            rx.close()
        with engine_for(s.db_url).begin() as c:
            drop_reference_layer(c, "reference_water")
    rule = policies(s)["flood"]
    for a in alerts:
        assert a["context"]["reference_water"] == "reference_layer"
        assert a["observations"] == 2 and a["status"] == "confirmed" and a["confidence"] == "high"
        assert a["area_ha"] >= rule.min_area_ha
    assert _outbox(s, t.webhook_outbox.c.subscriber_id == elsewhere.sub_id) == [] and not elsewhere.attempts
    low_conf = [m["payload"]["data"]["properties"]["confidence"] for m in low.received]
    assert sorted(low_conf) == sorted(["low", "high"] * len(alerts))
    assert len(high.received) == len(alerts)
    for m in high.received:
        doc = etree.fromstring(m["body"].encode())
        XSD.assertValid(doc)
        assert doc.findtext("cap:msgType", namespaces=NS) == "Alert"  # first message this subscriber gets
        params = {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
                  for p in doc.findall("cap:info/cap:parameter", NS)}
        assert params["terrawatch:confidence"] in ("high", "highest")
        assert doc.findtext("cap:info/cap:certainty", namespaces=NS) == rule.cap.certainty["high"]
    with engine_for(s.db_url).connect() as c:
        ev = c.execute(select(t.alert_events.c.to_status).where(
            t.alert_events.c.alert_id == alerts[0]["id"]).order_by(t.alert_events.c.id)).scalars().all()
    assert ev == ["new", "confirmed"]


def test_webhook_test_ping_is_signed_in_the_subscribers_format_and_reports_failures(s, place):
    rx_geo = _subscribe(s, place, fmt="geojson")
    rx_cap = _subscribe(s, place, fmt="cap")
    rx_bad = _subscribe(s, place, status_codes=[503])
    try:
        eng = engine_for(s.db_url)
        geo = subs.send_test(eng, s, rx_geo.sub_id)
        cap = subs.send_test(eng, s, rx_cap.sub_id)
        bad = subs.send_test(eng, s, rx_bad.sub_id)
        with pytest.raises(subs.SubscriptionNotFound):
            subs.send_test(eng, s, uuid.uuid4())
    finally:
        for rx in (rx_geo, rx_cap, rx_bad):
            rx.close()
    assert geo["delivered"] and geo["status_code"] in (200, 204) and geo["webhook_id"].startswith("msg_test_")
    assert rx_geo.failures == 0 and rx_geo.received[0]["payload"]["type"] == "webhook.test"
    assert cap["delivered"] and rx_cap.failures == 0
    doc = etree.fromstring(rx_cap.received[0]["body"].encode())
    XSD.assertValid(doc)
    assert doc.findtext("cap:status", namespaces=NS) == "Test"
    assert not bad["delivered"] and bad["status_code"] == 503 and bad["error"] == "HTTP 503"
    with engine_for(s.db_url).connect() as c:  # a test event is not an alert delivery
        assert not c.execute(select(t.webhook_outbox.c.id).where(
            t.webhook_outbox.c.id.in_([geo["webhook_id"], cap["webhook_id"]]))).first()


def test_backfilled_alert_reaches_only_subscribers_that_opted_in(s, place):
    rx_news = _subscribe(s, place)
    rx_all = WebhookReceiver(None, path=f"/hook/{uuid.uuid4().hex[:8]}")
    sub, secret = subs.create(engine_for(s.db_url), s, subs.NewSubscription(
        url=rx_all.url, hazards=["flood"], aoi=mapping(place), include_backfills=True), "test")
    rx_all.use_secret(secret)
    try:
        c = place.centroid
        geom = as_multipolygon(box(c.x - 0.005, c.y - 0.005, c.x + 0.005, c.y + 0.005))
        old = datetime(2019, 9, 18, 10, 0, tzinfo=timezone.utc)
        now = datetime.now(timezone.utc)
        a = Alert(id=uuid.uuid4(), hazard="flood", status="new", confidence="low", severity="moderate", geom=geom,
                  area_ha=geodesic_area_ha(geom), likelihood=80.0, sensors=["S1"], observations=1, first_sensed=old,
                  last_sensed=old, context={}, version=1, created_at=now, updated_at=now)
        with UnitOfWork(engine_for(s.db_url)) as uow:
            uow.alerts.insert(a)
            ids = fan_out(uow, a, "alert.created", policies(s)["flood"], s.cap_sender)
        assert len(ids) == 1
        Dispatcher(s, engine_for(s.worker_db_url)).drain(30, [rx_news.sub_id, uuid.UUID(sub["id"])])
    finally:
        rx_news.close()
        rx_all.close()
    assert rx_news.received == []
    (msg,) = rx_all.received
    assert msg["payload"]["data"]["properties"]["backfill"] is True
