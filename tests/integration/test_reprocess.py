"""Reference water from the archive and re-processing, through the real worker (issue 26).

One synthetic S1 place (a river and a lake, tests' known answer) seen twice, 60 days apart:

1. the first (older) scene raises flood alerts over the river and the lake (no reference water known);
2. a reference-water layer covering the scene's upper half is loaded and the scene re-processed
   (``service/reprocess``, as ``terrawatch reprocess`` / ``POST /ops/reprocess``): the river's alert shrinks to
   the lower half (version + 1, a lifecycle event by the run, a signed ``alert.updated`` webhook), an alert
   entirely under the layer is withdrawn; audited as ``scene.reprocess``;
3. the second scene sees the same river: it is reference water from the history now (observed 60 days
   before, outside any established flood alert), so it raises no alert;
4. re-processing the first scene again, the history (the second scene) makes its river reference water
   too: the alert is withdrawn (``false_positive``, context ``withdrawn``, event, signed ``alert.withdrawn``).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from geoalchemy2.shape import to_shape
from pyproj import Transformer
from shapely.geometry import box, mapping, shape
from shapely.ops import transform
from sqlalchemy import select

from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.domain.errors import BadRequest, NotFound
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.service import reprocess as reprocess_svc
from terrawatch.service import subscriptions as subs
from terrawatch.store import audit as audit_log
from terrawatch.store import tables as t
from terrawatch.store.reference import drop_reference_layer, replace_reference_layer
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, publish, runs_for, start_worker, wait_for

pytestmark = pytest.mark.integration
SIZE = 512


def _alerts_of(s, scene_id):
    with engine_for(s.db_url).connect() as c:
        return [dict(r) for r in c.execute(select(t.alerts).where(
            t.alerts.c.hazard == "flood", t.alerts.c.context["scene_ids"].astext.contains(scene_id))).mappings()]


def _alert(s, alert_id):
    with engine_for(s.db_url).connect() as c:
        return dict(c.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).mappings().one())


def _events(s, alert_id):
    with engine_for(s.db_url).connect() as c:
        return [dict(r) for r in c.execute(select(t.alert_events).where(
            t.alert_events.c.alert_id == alert_id).order_by(t.alert_events.c.id)).mappings()]


def _tagged_run(s, scene_id, tag):
    return [r for r in runs_for(s, scene_id) if r["model_version"].endswith(f"#{tag}")]


def _types(rx, alert_id):
    return [m["payload"]["type"] for m in list(rx.received) if m["payload"]["data"]["id"] == str(alert_id)]


def test_reference_layer_and_history_shrink_then_withdraw_the_river_alert(stack, tmp_path):
    s = isolated(stack.settings, "reprocess", webhook_allow_private="127.0.0.1")
    engine = engine_for(s.db_url)
    # a place no other test uses: observed water there would be history for this one
    origin = (random.randrange(200, 800) * 1000.0, random.randrange(5200, 5900) * 1000.0 + 500.0)  # no other test there
    path = tmp_path / "place.tif"
    synthetic_s1(path, size=SIZE, origin=origin)
    now = datetime.now(timezone.utc)
    old = item_from_geotiff(path, scene_id=f"rp-old-{uuid.uuid4().hex[:6]}", sensing_time=now - timedelta(days=60))
    synthetic_s1(tmp_path / "place-later.tif", size=SIZE, origin=origin, seed=1)  # same river, other speckle
    new = item_from_geotiff(tmp_path / "place-later.tif", scene_id=f"rp-new-{uuid.uuid4().hex[:6]}",
                            sensing_time=now - timedelta(minutes=5))
    footprint = shape(old["geometry"])
    rx = WebhookReceiver(None, path=f"/hook/{uuid.uuid4().hex[:8]}")
    sub, secret = subs.create(engine, s, subs.NewSubscription(
        url=rx.url, hazards=["flood"], aoi=mapping(footprint.buffer(0.01)), include_backfills=True), "test")
    rx.use_secret(secret)
    # the lake (centre 0.22/0.25 of the scene, radius 0.09) and not the river (|x - centre| < 0.03, centre 0.5 +- 0.12)
    to_ll = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True).transform
    px = lambda fx0, fy0, fx1, fy1: transform(to_ll, box(origin[0] + fx0 * SIZE * 10, origin[1] - fy1 * SIZE * 10,  # noqa: E731
                                                         origin[0] + fx1 * SIZE * 10, origin[1] - fy0 * SIZE * 10))
    upper = px(-0.01, -0.01, 1.01, 0.5)  # the lake and the river's upper half
    lower = px(0.0, 0.52, 1.0, 1.0)
    actor = f"test-{uuid.uuid4().hex[:6]}"
    audit = lambda conn, target, details: audit_log.record(conn, actor, "operator", "scene.reprocess", target, details)  # noqa: E731
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        publish(s, old)
        wait_for(lambda: runs_for(s, old["id"]), 240, "the older scene")
        before = {a["id"]: a for a in _alerts_of(s, old["id"])}
        assert before, "the river and the lake raise flood alerts"
        for a in before.values():
            assert a["context"]["reference_water"] == "unknown" and a["status"] == "new"
            wait_for(lambda: _types(rx, a["id"]) == ["alert.created"], 90, "the created webhooks")
        geoms = {i: to_shape(a["geom"]) for i, a in before.items()}
        river = [i for i, g in geoms.items() if g.intersects(lower) and g.intersects(upper)]
        assert len(river) == 1, geoms  # the river crosses the scene: one alert in both halves

        # an area and period select the same scene; a dry run publishes and audits nothing
        dry = reprocess_svc.reprocess(s, engine, bbox=footprint.bounds, since=now - timedelta(days=61),
                                      until=now - timedelta(days=59), dry_run=True, audit=audit)
        assert dry["outcome"] == "dry_run" and [x["id"] for x in dry["scenes"]] == [old["id"]], dry
        assert [r for r in audit_log.recent(engine, "scene.reprocess", 50) if r["actor"] == actor] == []
        with pytest.raises(BadRequest, match="either scene_ids or bbox"):
            reprocess_svc.reprocess(s, engine, scene_ids=[old["id"]], bbox=footprint.bounds)
        with pytest.raises(NotFound):
            reprocess_svc.reprocess(s, engine, scene_ids=[f"never-stored-{uuid.uuid4().hex}"])

        # 2. a reference-water layer over the upper half, then re-process: the river alert shrinks to the
        # lower half, an alert entirely in the upper half (the lake) is withdrawn
        with engine.begin() as c:
            replace_reference_layer(c, "reference_water", [{"layer": "reference_water", "name": "upper half",
                                                            "properties": {}, "geom": upper}],
                                    coverage=upper)  # it vouches for the upper half only
        out = reprocess_svc.reprocess(s, engine, scene_ids=[old["id"]], audit=audit)
        assert out["outcome"] == "new" and [x["id"] for x in out["scenes"]] == [old["id"]], out
        tag = out["run"]
        wait_for(lambda: _tagged_run(s, old["id"], tag), 240, "the re-processing run")
        r0, r1 = before[river[0]], _alert(s, river[0])
        assert r1["status"] == "new" and r1["version"] == r0["version"] + 1
        assert 0.2 * r0["area_ha"] < r1["area_ha"] < 0.8 * r0["area_ha"], (r0["area_ha"], r1["area_ha"])
        assert to_shape(r1["geom"]).intersection(upper).area < 0.01 * to_shape(r1["geom"]).area
        # the layer does not cover the rest and nothing else of the place is known yet
        assert r1["context"]["reference_water"] == "unknown"
        ev = _events(s, r0["id"])
        assert ev[-1]["actor"] == f"reprocess {tag}" and ev[-1]["alert_version"] == r1["version"]
        wait_for(lambda: _types(rx, r0["id"]) == ["alert.created", "alert.updated"], 90, "the updated webhook")
        for i in (i for i, g in geoms.items() if not g.intersects(lower)):
            assert _alert(s, i)["status"] == "false_positive", "an alert entirely under the layer is withdrawn"
            wait_for(lambda: _types(rx, i) == ["alert.created", "alert.withdrawn"], 90, "its withdrawn webhook")
        rows = [r for r in audit_log.recent(engine, "scene.reprocess", 50) if r["target"] == tag]
        assert len(rows) == 1 and rows[0]["actor"] == actor and rows[0]["details"]["scenes"] == [old["id"]]

        # 3. the second scene of the place: the river's lower half is reference water from the history
        # (observed 60 days before outside any established flood alert), the rest is the layer's: no alert
        publish(s, new)
        wait_for(lambda: runs_for(s, new["id"]), 240, "the newer scene")
        assert _alerts_of(s, new["id"]) == []
        with engine.connect() as c:
            linked = c.execute(select(t.detections.c.id).where(t.detections.c.scene_id == new["id"],
                                                               t.detections.c.alert_id.is_not(None))).all()
            ow = c.execute(select(t.observed_water.c.scene_id).where(
                t.observed_water.c.scene_id.in_([old["id"], new["id"]]), t.observed_water.c.geom.is_not(None))).all()
        assert linked == [] and len(ow) == 2  # both scenes' observed water is recorded
        assert _alert(s, river[0])["version"] == r1["version"]  # the river alert is not touched

        # 4. re-process the first scene again, through the runbook route: the second scene's river is its
        # history -> withdrawn. Observed water is its own OGC collection (flood = observed minus reference).
        keys = role_keys(s, f"rp-{uuid.uuid4().hex[:6]}")
        with live_api(s) as base:
            r = httpx.post(f"{base}/ops/reprocess", headers=hdr(keys["operator"]), json={"scene_ids": [old["id"]]})
            assert r.status_code == 202, r.text
            tag2 = r.json()["run"]
            assert r.json()["outcome"] == "new" and r.json()["scenes"][0]["runs"], r.json()
            for bad in ({"scene_ids": [old["id"]], "bbox": list(footprint.bounds)}, {"bbox": [1, 2, 3]}, {"x": 1}):
                assert httpx.post(f"{base}/ops/reprocess", headers=hdr(keys["operator"]), json=bad).status_code in (
                    400, 422), bad
            assert httpx.post(f"{base}/ops/reprocess", headers=hdr(keys["viewer"]),
                              json={"scene_ids": [old["id"]]}).status_code == 403
            ow = httpx.get(f"{base}/ogc/collections/observed_water/items", headers=hdr(keys["viewer"]),
                           params={"scene_id": new["id"]}).json()
            assert [f["properties"]["scene_id"] for f in ow["features"]] == [new["id"]], ow
            assert ow["features"][0]["properties"]["area_ha"] > 10  # the river and the lake, all observed
        wait_for(lambda: _tagged_run(s, old["id"], tag2), 240, "the second re-processing run")
        r2 = _alert(s, river[0])
        assert r2["status"] == "false_positive" and r2["context"]["withdrawn"]["run"] == tag2
        assert r2["version"] == r1["version"] + 1
        ev = _events(s, river[0])
        assert (ev[-1]["actor"], ev[-1]["from_status"], ev[-1]["to_status"]) == (f"reprocess {tag2}", "new",
                                                                               "false_positive")
        wait_for(lambda: _types(rx, river[0]) == ["alert.created", "alert.updated", "alert.withdrawn"], 90,
                 "the withdrawn webhook")
        assert rx.failures == 0  # every message signed and verified
        withdrawn = next(m for m in rx.received if m["payload"]["type"] == "alert.withdrawn")
        assert withdrawn["payload"]["data"]["properties"]["status"] == "false_positive"
        # no open flood alert over the place's permanent water any more
        assert [a for a in _alerts_of(s, old["id"]) + _alerts_of(s, new["id"]) if a["status"] != "false_positive"] == []
    finally:
        worker.terminate()
        worker.wait(60)
        rx.close()
        subs.deactivate(engine, uuid.UUID(sub["id"]), "test")
        with engine.begin() as c:
            drop_reference_layer(c, "reference_water")
