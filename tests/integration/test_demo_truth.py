"""The demo's scenes on the test stack: it shows only what is true (issue 13).

Runs `terrawatch_dev.demo.demo_items` (the scenes `make demo` publishes) plus two scenes that must fail
(an unreadable asset, an all-NaN raster) through a real worker, then checks what a user would: no
mining alert outside the mining AoA (and none at all here: no imagery inside it), scenes/pixels outside
each AoA reported, no forest-loss alert on the unchanged scene, confirmed alerts confirmed by two
acquisitions, no `illegal` without evidence; failed scenes are `failed` (reason + DLQ record) in
PostGIS, the OGC `scenes` collection and the tiles; legality is in the OGC `alerts` collection and tiles.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import rasterio
from shapely.geometry import box, shape
from sqlalchemy import select

from terrawatch_dev.demo import (
    NO_MINING_IMAGERY, SPAIN_REFERENCE_UNKNOWN, demo_items, history_items, permanent_water, reprocess_history,
    truth_report,
)
from terrawatch.domain.alerts import Alert
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.store import tables as t
from terrawatch.store.uow import UnitOfWork, engine_for
from tests.conftest import shared_path
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, publish, read_dlq, runs_for, start_worker, wait_for

pytestmark = pytest.mark.integration
FINISHED = ("processed", "outside_aoa", "failed")


def _status(s, ids):
    with engine_for(s.db_url).connect() as c:
        return dict(c.execute(select(t.scenes.c.id, t.scenes.c.status).where(t.scenes.c.id.in_(ids))).all())


def _failing_items(tmp_path, run):
    path = tmp_path / "nan.tif"
    synthetic_s1(path, size=256, origin=(300_000.0, 4_400_000.0))
    with rasterio.open(path, "r+") as ds:
        ds.write(np.full((2, 256, 256), np.nan, dtype=np.float32))
    nan = item_from_geotiff(path, scene_id=f"all-nan-{run}", sensing_time=datetime.now(timezone.utc) - timedelta(hours=1))
    missing = dict(nan, id=f"missing-asset-{run}")
    missing["assets"] = {"data": dict(nan["assets"]["data"], href="file:///nonexistent/scene.tif")}
    return [nan, missing]


def test_demo_scenes_show_only_what_is_true(stack, tmp_path):
    shared_path("sen1floods11", "Spain_7370579_S2Hand.tif")
    s = isolated(stack.settings, "demo-truth")
    run = uuid.uuid4().hex[:6]
    # the synthetic place of its own: its water becomes history, which must not reach other tests' scenes
    origin = (random.randrange(200, 800) * 1000.0 + 250.0, random.randrange(5200, 5900) * 1000.0 + 750.0)
    first, later = demo_items(tmp_path / "samples", run, origin)
    history = history_items(tmp_path / "samples", run, origin)
    failing = _failing_items(tmp_path, run)
    ids = [i["id"] for i in first + failing]
    engine = engine_for(s.db_url)
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        # the earlier observation of the synthetic place first: its water is the place's history
        publish(s, *history)
        wait_for(lambda: _status(s, [history[0]["id"]]).get(history[0]["id"]) in FINISHED, 300, "the earlier scene")
        publish(s, *first, *failing)
        wait_for(lambda: _status(s, [first[-1]["id"]]).get(first[-1]["id"]) in FINISHED, 420, "the S2 chip")
        publish(s, *later)
        ids += [i["id"] for i in later]
        wait_for(lambda: all(v in FINISHED for v in _status(s, ids).values()) and len(_status(s, ids)) == len(ids),
                 420, "every demo scene")
        dlq = read_dlq(s, expect=2, timeout=60)
        # the live synthetic scene is stored: re-processing the earlier one makes its river history too
        tag = reprocess_history(s, engine, None, [history[0]["id"]])
        wait_for(lambda: any(r["model_version"].endswith(f"#{tag}") for r in runs_for(s, history[0]["id"])), 300,
                 "the earlier scene re-processed")
    finally:
        worker.terminate()
        worker.wait(60)
    report = truth_report(engine, s, [i["id"] for i in history + first + later], permanent_water(tmp_path / "samples"))
    print("demo truth report:", report)

    # issue 26: no open flood alert over the synthetic scene's permanent water (river and lake): the live
    # scene's water is reference water from the earlier observation, and the earlier observation's own alert
    # (nothing was known of the place then) is withdrawn by re-processing it
    assert report["flood_alerts_over_permanent_water"] == []
    withdrawn = report["withdrawn_by_reprocessing"]
    assert withdrawn, "the earlier observation's alerts (river, lake) are withdrawn"
    with engine.connect() as c:
        ws = c.execute(select(t.alerts).where(t.alerts.c.id.in_([uuid.UUID(i) for i in withdrawn]))).mappings().all()
        live_det = c.execute(select(t.detections.c.id).where(t.detections.c.scene_id == first[0]["id"],
                                                             t.detections.c.alert_id.is_not(None))).all()
    for w in ws:
        assert w["status"] == "false_positive" and w["context"]["withdrawn"]["run"] == tag
        assert w["context"]["scene_ids"] == [history[0]["id"]]
    assert live_det == []  # the live synthetic scene raised nothing: its water is all permanent
    # Spain: no honest reference water offline -> unknown, never highest or confirmed, and said so
    assert report["unknown_reference_highest_or_confirmed"] == 0
    if report["flood_reference_water"].get("unknown"):
        assert SPAIN_REFERENCE_UNKNOWN in report["notes"]

    # mining: outside its AoA on the Spain chip -> not inferred, no alert, said so
    assert report["mining_alerts_outside_aoa"] == 0 and report["alerts_by_hazard"].get("mining", 0) == 0
    assert report["outside_aoa"]["mining"] == {"scenes": 1, "pixels": 512 * 512}
    assert NO_MINING_IMAGERY in report["notes"]
    assert report["illegal_without_evidence"] == 0
    # confirmation only by an independent acquisition (the S1 and S2 chips are two)
    assert report["confirmed_without_independent_acquisition"] == 0
    for a in report["confirmed"]:
        assert len(set(a["acquisitions"])) >= 2, a
    # deforestation: no alert on the unchanged scene, the cleared block found on the cleared one
    with engine.connect() as c:
        runs = {(r["scene_id"], r["hazard"]): r["detections"] for r in c.execute(
            select(t.scene_runs).where(t.scene_runs.c.scene_id.in_(ids))).mappings()}
        rows = {r["id"]: r for r in c.execute(select(t.scenes).where(t.scenes.c.id.in_(ids))).mappings()}
    unchanged, cleared = later
    assert runs[(unchanged["id"], "deforestation")] == 0
    assert runs[(cleared["id"], "deforestation")] >= 1
    assert (first[-1]["id"], "mining") not in runs
    assert rows[first[-1]["id"]]["hazard_status"]["mining"]["status"] == "outside_aoa"
    assert rows[first[-1]["id"]]["status"] == "processed"  # flood ran on it
    # failed scenes: status, reason, DLQ reference
    refs = {(d["source"]["partition"], d["source"]["offset"]) for d in dlq}  # two events, wherever they landed
    for item, code in zip(failing, ("no_valid_pixels", "unreadable_asset")):
        r = rows[item["id"]]
        assert r["status"] == "failed" and r["status_reason"].startswith(code), r["status_reason"]
        assert r["dlq_ref"].startswith(f"{s.dlq_topic}[0]@")
    assert len(refs) == 2

    # the OGC scenes collection and the tiles show them as failed; legality in the alerts collection/tiles
    amazon = box(-63.02, -3.12, -63.0, -3.1)  # a mining alert seeded in the Amazon, legality from PostGIS
    with UnitOfWork(engine, "test") as uow:
        legality = uow.reference.legality(amazon)
        now = datetime.now(timezone.utc)
        seeded = Alert(id=uuid.uuid4(), hazard="mining", status="new", confidence="low", severity="minor",
                          geom=amazon, area_ha=4.9, likelihood=90.0, sensors=["sentinel-2"], observations=1,
                          first_sensed=now, last_sensed=now, context={"legality": legality, "seeded": run},
                          version=1, created_at=now, updated_at=now)
        uow.alerts.insert(seeded)
    try:
        keys = role_keys(s, f"truth-{run}")
        with live_api(s) as base:
            h = hdr(keys["viewer"])
            q = httpx.get(f"{base}/ogc/collections/scenes/queryables", headers=h).json()
            assert {"status", "status_reason", "dlq_ref"} <= set(q["properties"])
            r = httpx.get(f"{base}/ogc/collections/scenes/items", headers=h,
                          params={"status": "failed", "limit": 100}).json()
            got = {f["id"]: f["properties"] for f in r["features"]}
            assert {i["id"] for i in failing} <= set(got)
            assert all(p["status"] == "failed" and p["dlq_ref"] for p in got.values())
            q = httpx.get(f"{base}/ogc/collections/alerts/queryables", headers=h).json()
            assert {"legality", "legality_rule", "legality_feature", "legality_coverage"} <= set(q["properties"])
            r = httpx.get(f"{base}/ogc/collections/alerts/items", headers=h,
                          params={"legality": legality["status"], "bbox": "-63.1,-3.2,-62.9,-3.0"}).json()
            props = {f["id"]: f["properties"] for f in r["features"]}[str(seeded.id)]
            assert (props["legality"], props["legality_rule"]) == (legality["status"], legality["rule"])
            # vector tiles carry the same
            c = amazon.centroid
            tile = morecantile.tms.get("WebMercatorQuad").tile(c.x, c.y, 12)
            mvt = mapbox_vector_tile.decode(httpx.get(f"{base}/tiles/alerts/12/{tile.x}/{tile.y}.pbf", headers=h).content)
            feat = next(f for f in mvt["alerts"]["features"] if f["properties"]["id"] == str(seeded.id))
            assert feat["properties"]["legality"] == legality["status"]
            assert feat["properties"]["legality_rule"] == legality["rule"]
            fp = shape(failing[1]["geometry"]).centroid
            tile = morecantile.tms.get("WebMercatorQuad").tile(fp.x, fp.y, 10)
            mvt = mapbox_vector_tile.decode(httpx.get(f"{base}/tiles/scenes/10/{tile.x}/{tile.y}.pbf", headers=h).content)
            st = {f["properties"]["id"]: f["properties"]["status"] for f in mvt["scenes"]["features"]}
            assert st[failing[1]["id"]] == "failed"
    finally:
        with engine.begin() as conn:
            conn.execute(t.alerts.delete().where(t.alerts.c.id == seeded.id))
