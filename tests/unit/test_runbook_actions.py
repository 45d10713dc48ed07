"""The runbook actions other than the DLQ's (test_dlq_rules.py) and the keys' (test_keys_service.py), one use
case each as the API and the CLI call it: consumption pause/resume, replay, reprocess, reference layers,
webhook redelivery. On fakes (tests/unit/fakes.py: an engine whose transactions are lists, a producer) with the
store/ functions each use case calls replaced by in-memory stand-ins: no Kafka, no PostGIS.
The real services are exercised by tests/integration/test_runbook.py, test_api_ops.py, test_cli_api_parity.py."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from terrawatch.domain.errors import BadRequest, InvalidInput, NotFound
from terrawatch.ingest.dlq import KafkaUnavailable
from terrawatch.service import deliveries, layers, ops, stream_ops
from terrawatch.service import reprocess as reprocess_svc
from terrawatch.settings import Settings
from tests.unit.fakes import FakeEngine, FakeProducer, audit_into

S = Settings()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


# consumption pause / resume (POST /ops/consumption/pause|resume) ---------------------------------------------

@pytest.fixture
def flags(monkeypatch):
    from terrawatch.store import control

    held: dict[str, dict] = {}

    def set_flag(conn, key, value, actor):
        conn.append(("flag", key))
        held[key] = {"value": value, "updated_at": T0, "updated_by": actor}

    monkeypatch.setattr(control, "get_flag", lambda engine, key: held.get(key))
    monkeypatch.setattr(control, "set_flag", set_flag)
    return held


def test_consumption_is_running_until_an_operator_pauses_it(flags):
    assert ops.consumption(FakeEngine(), S) == {"paused": False, "reason": None, "updated_at": None,
                                                "updated_by": None}  # the API's and the CLI's JSON alike


def test_pause_and_resume_set_the_flag_with_their_audit_row_in_one_transaction(flags):
    engine = FakeEngine()
    out = ops.set_consumption(engine, S, True, "maintenance", "op", audit_into)
    assert out == {"paused": True, "reason": "maintenance", "updated_at": T0, "updated_by": "op"}
    out = ops.set_consumption(engine, S, False, "done", "op2", audit_into)
    assert out["paused"] is False and out["updated_by"] == "op2"
    key = f"consumption_paused:{S.consumer_group}"
    assert engine.committed == [[("flag", key), ("audit", S.consumer_group, {"reason": "maintenance"})],
                                [("flag", key), ("audit", S.consumer_group, {"reason": "done"})]]


# replay (POST /ops/scenes/{id}/replay, terrawatch replay) -----------------------------------------------------

ITEM = {"type": "Feature", "id": "S1A_STORED", "properties": {}}


@pytest.fixture
def stored_scene(monkeypatch):
    held = {"S1A_STORED": (ITEM, [])}
    monkeypatch.setattr(stream_ops.scenes, "stored_item", lambda engine, sid: held.get(sid, (None, [])))
    return held


def test_replaying_an_unknown_scene_is_not_found_and_publishes_nothing(stored_scene):
    p = FakeProducer()
    with pytest.raises(stream_ops.SceneNotFound, match="S1A_NONE"):
        stream_ops.replay(S, "S1A_NONE", producer=p, engine=FakeEngine())
    assert p.sent == []


def test_replay_publishes_the_stored_item_under_its_id_and_audits_once_acknowledged(stored_scene):
    p, engine = FakeProducer(), FakeEngine()
    out = stream_ops.replay(S, "S1A_STORED", producer=p, engine=engine, audit=audit_into)
    assert out["published"] == "S1A_STORED" and out["outcome"] == "new" and out["existing_runs"] == []
    assert [(t, k) for t, k, _ in p.sent] == [(S.scenes_topic, b"S1A_STORED")]
    assert engine.committed == [[("audit", "S1A_STORED", {"topic": S.scenes_topic, "outcome": "new"})]]


def test_a_replay_the_broker_does_not_acknowledge_leaves_no_audit_row(stored_scene):
    engine = FakeEngine()
    with pytest.raises(KafkaUnavailable):
        stream_ops.replay(S, "S1A_STORED", producer=FakeProducer(unacked=1), engine=engine, audit=audit_into)
    assert engine.committed == [] and engine.rolled_back == 1


# reprocess (POST /ops/reprocess, terrawatch reprocess) --------------------------------------------------------

@pytest.fixture
def selectable(monkeypatch):
    from terrawatch.store import reprocess_scenes

    rows = [{"id": "S1A_STORED", "sensing_time": T0, "runs": ["flood@m:1"], "item": ITEM}]
    monkeypatch.setattr(reprocess_scenes, "select_scenes",
                        lambda engine, ids, bbox, since, until, limit: [r for r in rows
                                                                        if ids is None or r["id"] in ids])
    return rows


@pytest.mark.parametrize("kw, match", [
    ({}, "either scene_ids or bbox"),
    ({"scene_ids": ["a"], "bbox": (0, 0, 1, 1)}, "either scene_ids or bbox"),
    ({"scene_ids": ["a"], "since": T0}, "with scene_ids they are not used"),
    ({"scene_ids": []}, "1 to"),
    ({"bbox": (1, 0, 0, 1)}, "west < east"),
    ({"bbox": (0, 0, 1, 1), "since": datetime(2026, 1, 1)}, "UTC offset"),
    ({"bbox": (0, 0, 1, 1), "since": T0, "until": T0}, "since must be before until"),
])
def test_reprocess_refuses_a_selection_it_cannot_honour(selectable, kw, match):
    with pytest.raises(BadRequest, match=match):
        reprocess_svc.reprocess(S, FakeEngine(), FakeProducer(), **kw)


def test_reprocess_of_ids_none_stored_is_not_found_and_some_missing_are_listed(selectable):
    with pytest.raises(NotFound, match="S1A_NONE"):
        reprocess_svc.reprocess(S, FakeEngine(), FakeProducer(), scene_ids=["S1A_NONE"])
    out = reprocess_svc.reprocess(S, FakeEngine(), FakeProducer(), scene_ids=["S1A_STORED", "S1A_NONE"],
                                  dry_run=True)
    assert out["outcome"] == "dry_run" and out["missing"] == ["S1A_NONE"]


def test_reprocess_publishes_tagged_items_with_the_audit_row_and_a_dry_run_publishes_nothing(selectable):
    p, engine = FakeProducer(), FakeEngine()
    reprocess_svc.reprocess(S, engine, p, bbox=(-10, 30, 10, 50), dry_run=True, audit=audit_into)
    assert p.sent == [] and engine.committed == []
    out = reprocess_svc.reprocess(S, engine, p, bbox=(-10, 30, 10, 50), audit=audit_into)
    assert out["outcome"] == "new" and [k for _, k, _ in p.sent] == [b"S1A_STORED"]
    assert f'"terrawatch:reprocess": "{out["run"]}"'.encode() in p.sent[0][2]
    ((kind, target, details),) = engine.committed[0]
    assert (kind, target, details["scenes"], details["count"]) == ("audit", out["run"], ["S1A_STORED"], 1)


def test_reprocess_of_an_empty_area_is_a_no_op(selectable):
    selectable.clear()
    p = FakeProducer()
    out = reprocess_svc.reprocess(S, FakeEngine(), p, bbox=(0, 0, 1, 1))
    assert out["outcome"] == "none" and p.sent == []


# reference layers (/ops/layers, terrawatch layers list|load|drop) ----------------------------------------------

def test_dropping_a_layer_that_is_not_stored_is_not_found_and_audits_nothing(monkeypatch):
    from terrawatch.store import reference

    monkeypatch.setattr(reference, "drop_reference_layer",
                        lambda conn, layer: {"mining_concessions": 3}.get(layer, 0))
    engine = FakeEngine()
    with pytest.raises(NotFound, match="no_such"):
        layers.drop_layer(engine, "no_such", audit_into)
    assert engine.committed == [] and engine.rolled_back == 1
    assert layers.drop_layer(engine, "mining_concessions", audit_into) == 3
    assert engine.committed == [[("audit", "mining_concessions", {"features": 3})]]


def test_list_layers_says_which_rules_read_each(monkeypatch):
    from terrawatch.store import reference_list

    monkeypatch.setattr(reference_list, "layer_summaries",
                        lambda engine: [{"layer": "reference_water"}, {"layer": "my_display_layer"}])
    out = {r["layer"]: r["used_by"] for r in layers.list_layers(FakeEngine())}
    assert out == {"reference_water": ["flood (reference water)"], "my_display_layer": []}


def test_replacing_a_layer_refuses_a_bad_name_and_stores_features_with_the_audit_row(monkeypatch):
    from shapely.geometry import box

    calls = []
    monkeypatch.setattr(layers, "replace_reference_layer",
                        lambda conn, layer, rows, cov, src: calls.append((layer, [r["name"] for r in rows])) or 5)
    engine = FakeEngine()
    with pytest.raises(InvalidInput, match="the rules read 'reference_water'"):  # a near miss of a rule layer
        layers.replace_features(engine, "reference-waters", [], audit=audit_into)
    n, replaced = layers.replace_features(engine, "my_layer", [(box(0, 0, 1, 1), {"name": "a"})], audit=audit_into)
    assert (n, replaced) == (1, 5) and calls == [("my_layer", ["a"])]
    assert engine.committed == [[("audit", "my_layer", {"features": 1, "replaced": 5})]]


# webhook redelivery (POST /ops/deliveries/{id}/redeliver) -----------------------------------------------------

@pytest.fixture
def outbox_rows(monkeypatch):
    alert = uuid.uuid4()
    rows = {"d-failed": {"status": "failed", "active": True, "alert_id": alert},
            "d-pending": {"status": "pending", "active": True, "alert_id": alert},
            "d-inactive": {"status": "failed", "active": False, "alert_id": alert}}
    monkeypatch.setattr(deliveries.outbox, "lock_for_redelivery", lambda conn, did: rows.get(did))
    monkeypatch.setattr(deliveries.outbox, "requeue", lambda conn, did, note: conn.append(("requeue", did, note)))
    monkeypatch.setattr(deliveries, "get_delivery", lambda engine, did: {"id": did})
    return alert


@pytest.mark.parametrize("did, error, match", [("d-none", deliveries.DeliveryNotFound, "d-none"),
                                               ("d-pending", deliveries.NotRedeliverable, "still pending"),
                                               ("d-inactive", deliveries.NotRedeliverable, "deactivated")])
def test_a_delivery_that_cannot_be_redelivered_is_refused_and_nothing_is_queued(outbox_rows, did, error, match):
    engine = FakeEngine()
    with pytest.raises(error, match=match):
        deliveries.redeliver(engine, did, "op", audit_into)
    assert engine.committed == []


def test_a_failed_delivery_is_queued_again_with_its_audit_row(outbox_rows):
    alert = outbox_rows
    engine = FakeEngine()
    assert deliveries.redeliver(engine, "d-failed", "op", audit_into) == {"id": "d-failed"}
    assert engine.committed == [[("requeue", "d-failed", "redelivery requested by op"),
                                 ("audit", "d-failed", {"alert_id": str(alert)})]]


# readiness (GET /ops/readyz) ------------------------------------------------------------------------------------

def test_readiness_reports_each_dependency_with_the_reason_of_the_one_down(monkeypatch):
    from terrawatch.inference import triton
    from terrawatch.ingest import topics
    from terrawatch.store import db
    from terrawatch.tiling import ray_cluster

    def triton_down(url):
        raise ConnectionError("triton: connection refused")

    monkeypatch.setattr(topics, "readiness", lambda settings: "3 topics")
    monkeypatch.setattr(db, "postgis_version", lambda engine: "PostGIS 3.5")
    monkeypatch.setattr(triton, "server_ready", triton_down)
    monkeypatch.setattr(ray_cluster, "cluster_health", lambda address, env: "1 node")
    out = {k: (c.ok, c.detail) for k, c in ops.readiness(S, FakeEngine()).items()}
    assert out == {"kafka": (True, "3 topics"), "postgis": (True, "PostGIS 3.5"),
                   "triton": (False, "ConnectionError: triton: connection refused"), "ray": (True, "1 node")}


# alert transitions (POST /alerts/{id}/transition) on the unit-of-work fake -----------------------------------

def _alert(db, status: str = "new"):
    from shapely.geometry import box

    from terrawatch.domain.alerts import Alert

    a = Alert(uuid.uuid4(), "flood", status, "high", "severe", box(10, 45, 10.01, 45.01), 12.0, 80.0, ["sentinel-1"],
              1, T0, T0, {}, 3, created_at=T0, updated_at=T0)
    db.alerts[a.id] = a
    return a


def test_an_alert_transition_updates_records_the_event_and_audits_in_one_unit_of_work():
    from terrawatch.service import alerts as alerts_svc
    from tests.unit.fakes import FakeDb

    db = FakeDb()
    a = _alert(db)
    out, ids = alerts_svc.transition(None, S, a.id, "confirmed", "op", "seen on site", audit=audit_into,
                                     uow=db.unit_of_work)
    assert out.status == "confirmed" and out.version == a.version + 1 and ids == []
    assert db.alerts[a.id].status == "confirmed" and db.committed == ["alert_transition"]
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in db.events] == [("new", "confirmed",
                                                                                      "seen on site")]
    assert db.audit_rows == [("audit", str(a.id), {"reason": "seen on site", "version": out.version})]
    assert alerts_svc.events(None, a.id, uow=db.unit_of_work)[0]["to_status"] == "confirmed"


@pytest.mark.parametrize("to, kw, error, match", [
    ("confirmed", {"reason": " "}, "IllegalTransition", "a reason is required"),
    ("confirmed", {"expected_version": 7}, "VersionConflict", "not 7"),
    ("new", {}, "IllegalTransition", "cannot go from confirmed to new"),
])
def test_a_refused_alert_transition_changes_nothing(to, kw, error, match):
    from terrawatch.service import alerts as alerts_svc
    from tests.unit.fakes import FakeDb

    db = FakeDb()
    a = _alert(db, "confirmed")
    args = {"reason": "because", **kw}
    with pytest.raises(getattr(alerts_svc, error), match=match):
        alerts_svc.transition(None, S, a.id, to, "op", audit=audit_into, uow=db.unit_of_work, **args)
    with pytest.raises(alerts_svc.AlertNotFound):
        alerts_svc.transition(None, S, uuid.uuid4(), "confirmed", "op", "x", uow=db.unit_of_work)
    assert db.alerts[a.id].status == "confirmed" and db.events == [] and db.audit_rows == []


def test_a_pause_reason_over_500_characters_is_refused_and_nothing_is_set(flags):
    engine = FakeEngine()
    with pytest.raises(InvalidInput, match="reason: at most 500 characters, not 501"):
        ops.set_consumption(engine, S, True, "x" * 501, "op", audit_into)
    assert flags == {} and engine.committed == []


# webhook subscriptions (/subscriptions: create, rotate the secret, deactivate) ----------------------------------

@pytest.fixture
def subscribers(monkeypatch):
    from terrawatch.service import subscriptions as subs

    rows: dict[uuid.UUID, dict] = {}
    by_url = lambda url: next(((sid, r["active"]) for sid, r in rows.items() if r["url"] == url), None)  # noqa: E731
    monkeypatch.setattr(subs, "check_target", lambda url, allow: None)  # no DNS here; refusals: test below
    monkeypatch.setattr(subs.store, "lock_by_url", lambda conn, url: by_url(url))
    monkeypatch.setattr(subs.store, "insert", lambda conn, sid, values: rows.__setitem__(sid, {**values, "id": sid}))
    monkeypatch.setattr(subs.store, "update_values", lambda conn, sid, values: rows[sid].update(values))
    monkeypatch.setattr(subs.store, "get", lambda engine, sid: {**rows[sid], "created_at": T0} if sid in rows else None)
    monkeypatch.setattr(subs.store, "set_secret", lambda conn, sid, secret: sid in rows and rows[sid]["active"]
                        and not rows[sid].update(secret=secret))
    monkeypatch.setattr(subs.store, "deactivate", lambda conn, sid: sid in rows and rows[sid]["active"]
                        and not rows[sid].update(active=False))
    monkeypatch.setattr(subs.outbox, "fail_pending_of", lambda conn, sid, note: 2)
    return subs, rows


def test_a_subscription_is_created_once_its_secret_shown_once_and_a_second_one_is_a_conflict(subscribers):
    subs, rows = subscribers
    engine = FakeEngine()
    view, secret = subs.create(engine, S, subs.NewSubscription("https://hooks.example.org/a", ["flood"]), "op",
                               audit_into)
    assert view["url"] == "https://hooks.example.org/a" and view["active"] and "secret" not in view
    assert rows[uuid.UUID(view["id"])]["secret"] == secret
    assert engine.committed[0][0][:2] == ("audit", view["id"])
    with pytest.raises(subs.SubscriptionConflict, match="exists already"):
        subs.create(engine, S, subs.NewSubscription("https://hooks.example.org/a", ["flood"]), "op")
    assert len(rows) == 1 and len(engine.committed) == 1


@pytest.mark.parametrize("req, match", [
    ({"hazards": []}, "hazards must be a non-empty subset"),
    ({"hazards": ["volcano"]}, "hazards must be a non-empty subset"),
    ({"min_confidence": "certain"}, "min_confidence must be one of"),
    ({"format": "xml"}, "format must be one of"),
])
def test_a_subscription_the_service_cannot_honour_is_refused(subscribers, req, match):
    subs, rows = subscribers
    with pytest.raises(subs.InvalidSubscription, match=match):
        subs.create(FakeEngine(), S, subs.NewSubscription(**{"url": "https://hooks.example.org/b",
                                                             "hazards": ["flood"], **req}), "op")
    assert rows == {}


def test_a_private_webhook_address_is_refused_unless_allowed():
    from terrawatch.service import subscriptions as subs

    with pytest.raises(subs.InvalidSubscription, match="webhook url refused"):
        subs.validate(subs.NewSubscription("http://127.0.0.1:9/hook", ["flood"]), Settings(webhook_allow_private=""))


def test_rotate_and_deactivate_act_on_an_active_subscription_only(subscribers):
    subs, rows = subscribers
    engine = FakeEngine()
    view, first = subs.create(engine, S, subs.NewSubscription("https://hooks.example.org/c", ["flood"]), "op")
    sid = uuid.UUID(view["id"])
    second = subs.rotate_secret(engine, sid, audit_into)
    assert second != first and rows[sid]["secret"] == second
    assert subs.deactivate(engine, sid, "op", audit_into) == 2 and rows[sid]["active"] is False
    assert engine.committed[-1] == [("audit", str(sid), {"failed_pending": 2})]
    for act in (lambda: subs.rotate_secret(engine, sid), lambda: subs.deactivate(engine, sid, "op"),
                lambda: subs.get(engine, uuid.uuid4())):
        with pytest.raises(subs.SubscriptionNotFound):
            act()



@pytest.fixture
def receiver(monkeypatch):
    """The subscriber's end of ``alerting.ping``: no DNS (``pin`` answers the URL itself), an in-memory HTTP
    transport recording each request and answering ``receiver["status"]``."""
    import httpx

    from terrawatch.alerting import ping, ssrf

    got = {"status": 204, "requests": []}

    def handler(request: httpx.Request) -> httpx.Response:
        got["requests"].append(request)
        return httpx.Response(got["status"])

    real_client = httpx.Client
    monkeypatch.setattr(ping, "pin", lambda url, allow: ssrf.PinnedTarget(url, "hooks.example.org", None))
    monkeypatch.setattr(ping.httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(handler), **kw))
    return got


def test_a_test_ping_is_signed_sent_once_audited_and_reports_what_the_receiver_answered(subscribers, receiver):
    from standardwebhooks.webhooks import Webhook

    subs, rows = subscribers
    engine = FakeEngine()
    view, secret = subs.create(engine, S, subs.NewSubscription("https://hooks.example.org/t", ["flood"]), "op")
    sid = uuid.UUID(view["id"])
    out = subs.send_test(engine, S, sid, audit_into)
    assert (out["subscription_id"], out["format"], out["event_type"]) == (str(sid), "geojson", "webhook.test")
    assert (out["delivered"], out["status_code"], out["error"]) == (True, 204, None)
    (req,) = receiver["requests"]
    body = req.content.decode()
    Webhook(secret).verify(body, dict(req.headers))  # raises unless signed with the subscription's secret
    assert req.headers["webhook-id"] == out["webhook_id"] and '"type":"webhook.test"' in body
    assert engine.committed[-1] == [("audit", str(sid), {"webhook_id": out["webhook_id"], "delivered": True,
                                                         "status_code": 204, "error": None})]
    receiver["status"] = 500  # the receiver's failure is the answer, not an error; no retry
    out = subs.send_test(engine, S, sid, audit_into)
    assert (out["delivered"], out["status_code"], out["error"]) == (False, 500, "HTTP 500")
    assert len(receiver["requests"]) == 2 and engine.committed[-1][0][2]["error"] == "HTTP 500"


def test_a_test_ping_to_an_unknown_or_inactive_subscription_is_not_found_and_sends_nothing(subscribers, receiver):
    subs, rows = subscribers
    engine = FakeEngine()
    view, _ = subs.create(engine, S, subs.NewSubscription("https://hooks.example.org/u", ["flood"]), "op")
    subs.deactivate(engine, uuid.UUID(view["id"]), "op")
    n = len(engine.committed)
    for sid in (uuid.UUID(view["id"]), uuid.uuid4()):
        with pytest.raises(subs.SubscriptionNotFound):
            subs.send_test(engine, S, sid, audit_into)
    assert receiver["requests"] == [] and len(engine.committed) == n


# API keys (GET /ops/keys, terrawatch keys list) -----------------------------------------------------------------

def test_the_key_list_shows_every_key_oldest_first_and_never_a_salt_or_hash():
    from terrawatch.service import keys

    rows = [{"id": "0123456789ab", "name": "ci", "role": "operator"}]
    seen = []

    class Conn:
        def execute(self, stmt):
            seen.append(stmt)
            return type("Result", (), {"mappings": lambda self: iter(rows)})()

    class Engine:
        def connect(self):
            from contextlib import nullcontext
            return nullcontext(Conn())

    assert keys.list_keys(Engine()) == rows
    (stmt,) = seen
    names = [c.name for c in stmt.selected_columns]
    assert names == ["id", "name", "role", "created_at", "created_by", "last_used_at", "revoked_at"]
    assert str(stmt).split("ORDER BY")[1].split() == ["api_keys.created_at"]

# pipeline status (GET /ops/status) ----------------------------------------------------------------------------

WORKER_METRICS = """# TYPE terrawatch_scenes_in_flight gauge
terrawatch_scenes_in_flight 2
# TYPE terrawatch_consumption_paused gauge
terrawatch_consumption_paused{dependency="triton"} 1
terrawatch_consumption_paused{dependency="ray"} 0
# TYPE terrawatch_dependency_outage_seconds gauge
terrawatch_dependency_outage_seconds{dependency="triton"} 42.0
"""


@pytest.fixture
def status_sources(monkeypatch, flags):
    from prometheus_client.parser import text_string_to_metric_families

    from terrawatch.ingest import kafka_io
    from terrawatch.service import dlq as dlq_svc
    from terrawatch.store import scenes as scene_store

    worker = {"families": list(text_string_to_metric_families(WORKER_METRICS))}
    monkeypatch.setattr(kafka_io, "group_lag", lambda settings: [{"partition": 0, "lag": 3},
                                                                 {"partition": 1, "lag": 4}])
    monkeypatch.setattr(ops, "_worker_metrics", lambda settings: worker["families"])
    monkeypatch.setattr(ops, "process_health", lambda settings, **kw: [])
    monkeypatch.setattr(dlq_svc, "counts", lambda settings, engine: {"pending": 5, "redriven": 1, "purged": 0,
                                                                     "retained": 6})
    monkeypatch.setattr(scene_store, "last_sensed_by_platform", lambda engine: {"sentinel-1a": "2026-01-01"})
    monkeypatch.setattr(deliveries.outbox, "counts", lambda engine: {"pending": 1})
    return worker


def test_status_reports_lag_in_flight_dlq_outbox_and_the_dependency_pause(status_sources):
    out = ops.pipeline_status(S, FakeEngine())
    assert out["total_lag"] == 7 and out["scenes_in_flight"] == 2 and out["dlq_size"] == 5
    assert out["outbox"] == {"pending": 1} and out["consumption_paused"] is False
    assert [(p["dependency"], p["down_s"]) for p in out["paused_by_dependency"]] == [("triton", 42.0)]


def test_status_with_the_worker_unreachable_says_unknown_not_zero(status_sources):
    status_sources["families"] = None
    out = ops.pipeline_status(S, FakeEngine())
    assert out["scenes_in_flight"] is None and out["paused_by_dependency"] is None and out["total_lag"] == 7


# deliveries list/show ---------------------------------------------------------------------------------------

def test_delivery_list_refuses_an_unknown_status_and_clamps_the_limit(monkeypatch):
    seen = []
    monkeypatch.setattr(deliveries.outbox, "list_deliveries", lambda engine, *a: seen.append(a) or [])
    with pytest.raises(InvalidInput, match="status must be one of"):
        deliveries.list_deliveries(FakeEngine(), status="lost")
    deliveries.list_deliveries(FakeEngine(), limit=5000)
    deliveries.list_deliveries(FakeEngine(), status=None, limit=0)
    assert [a[-2] for a in seen] == [1000, 1] and seen[1][0] is None


def test_a_delivery_shows_its_attempts_and_an_unknown_one_is_not_found(monkeypatch):
    row = {"id": "d1", "alert_id": uuid.uuid4(), "subscriber_id": uuid.uuid4(), "next_attempt_at": None,
           "created_at": T0, "delivered_at": None, "failed_at": T0, "window_start": T0, "status": "failed"}
    monkeypatch.setattr(deliveries.outbox, "get_delivery",
                        lambda engine, did: (row, [{"at": T0, "status_code": 500}]) if did == "d1" else None)
    out = deliveries.get_delivery(FakeEngine(), "d1")
    assert out["webhook_id"] == "d1" and out["attempts_log"] == [{"at": T0.isoformat(), "status_code": 500}]
    with pytest.raises(deliveries.DeliveryNotFound):
        deliveries.get_delivery(FakeEngine(), "d2")
