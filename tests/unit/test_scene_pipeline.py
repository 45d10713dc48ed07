"""ScenePipeline.process, every branch, on in-memory fakes of its ports (tests/unit/fakes.py): no PostGIS,
Ray, Triton or scene files. The real services run the same code in tests/integration/test_pipeline.py,
test_s2_hazards.py, test_reprocess.py and tests/faults/.

Branches: no model can run (UnsupportedScene); a re-delivery (duplicate, nothing tiled); every hazard
skipped (status says why); some skipped, the rest run; outside the area of applicability; partly inside
(the job carries the AoA); a refused asset; a tiler error; no valid pixels (NoValidPixels); store (run
marker, detections, alert, webhook in one unit of work); a concurrent delivery stored it first; reference
water subtracted; a cluster below the alert rule; a later scene updating the alert; the same pass seen
twice; mining's legality; change detection (none found); a re-processing run withdrawing an alert; the
L1C cloud mask failing and the pre-event scene's mask passed on."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box

from terrawatch.domain.alerts import HazardPolicy, InvalidAlertRules
from terrawatch.domain.errors import NoValidPixels, UnreadableAsset, UnsupportedScene
from terrawatch.domain.hazards import HAZARDS, REGISTRY
from terrawatch.domain.scene import BandRef, Scene, Sensor
from terrawatch.service.pipeline import ScenePipeline
from terrawatch.settings import Settings
from tests.unit.fakes import AllowAssets, FakeDb, FakeGrid, FakeReader, FakeTiler, part

T0 = datetime(2026, 11, 2, 10, 30, tzinfo=timezone.utc)
GRID = FakeGrid()  # 200 x 200 px of 0.0001 deg at (10 E, 45 N): about 7.9 x 11.1 m per px (100 px squares: 87.6 ha)
WORLD = box(-180, -90, 180, 90)
POLICIES = {h: HazardPolicy(h, min_area_ha=1.0, min_likelihood=50.0) for h in HAZARDS}
SUBSCRIBER = {"id": uuid.UUID(int=7), "hazards": ["flood", "mining", "deforestation"], "min_confidence": "low",
              "format": "geojson", "aoi": None, "include_backfills": True}


def scene(sid: str = "S1A_IW_GRDH_TEST", sensor: Sensor = Sensor.S1, hazards: tuple[str, ...] = ("flood",),
          level: str | None = None, when: datetime = T0, platform: str | None = None, props: dict | None = None) -> Scene:
    names = ("VV", "VH") if sensor is Sensor.S1 else ("B2", "B3", "B4", "B8")
    return Scene(id=sid, sensor=sensor, platform=platform or ("sentinel-1a" if sensor is Sensor.S1 else "sentinel-2a"),
                 sensing_time=when, footprint=GRID.footprint,
                 bands=tuple(BandRef(n, f"file:///scenes/{sid}/{n}.tif", 1, "dB") for n in names),
                 hazards=hazards, processing_level=level, item={"id": sid, "properties": props or {}})


def settings(**kw) -> Settings:
    base = {"write_products": False, "s1_change_detection": False, "l1c_cloud_mask": False, "fusion_window_h": 0}
    return Settings(**{**base, **kw})


def pipeline(db: FakeDb, tiler: FakeTiler, *, aoa: dict | None = None, assets=None, s: Settings | None = None,
             reader: FakeReader | None = None) -> ScenePipeline:
    return ScenePipeline(s or settings(), tiler=tiler, unit_of_work=db.unit_of_work, reader=reader or FakeReader(GRID),
                         model_version=lambda model: "7", policies=POLICIES,
                         aoa={hm.model: WORLD for hm in REGISTRY} | (aoa or {}), assets=assets or AllowAssets())


def flooded(size: int = 100, likelihood: float = 90.0) -> FakeTiler:
    return FakeTiler({"flood": [part(50, 50, size, likelihood)]})


def test_the_constructor_loads_nothing_and_refuses_a_missing_rule_or_area():
    db = FakeDb()
    with pytest.raises(InvalidAlertRules, match="mining"):
        ScenePipeline(settings(), tiler=FakeTiler(), unit_of_work=db.unit_of_work, reader=FakeReader(GRID),
                      model_version=str, policies={h: p for h, p in POLICIES.items() if h != "mining"},
                      aoa={hm.model: WORLD for hm in REGISTRY}, assets=AllowAssets())
    with pytest.raises(ValueError, match="flood_s1"):
        ScenePipeline(settings(), tiler=FakeTiler(), unit_of_work=db.unit_of_work, reader=FakeReader(GRID),
                      model_version=str, policies=POLICIES,
                      aoa={hm.model: WORLD for hm in REGISTRY if hm.model != "flood_s1"}, assets=AllowAssets())
    assert db.opened == []


def test_a_scene_no_model_can_run_is_unsupported_before_any_transaction():
    db, tiler = FakeDb(), FakeTiler()
    with pytest.raises(UnsupportedScene, match="no mining model for sentinel-1"):
        pipeline(db, tiler).process(scene(hazards=("mining",)))
    with pytest.raises(UnsupportedScene, match="L1C only"):  # mining_s2 takes L1C; this scene is L2A
        pipeline(db, tiler).process(scene("S2A_L2A", Sensor.S2, ("mining",), "L2A"))
    assert db.opened == [] and tiler.calls == []


def test_a_new_scene_is_stored_with_run_marker_detections_alert_and_webhook_in_one_unit_of_work():
    db = FakeDb(subscribers=[SUBSCRIBER])
    tiler = flooded()
    out = pipeline(db, tiler).process(scene())
    assert out.outcome == "processed" and out.tiles == 4
    assert (out.detections, out.alerts_created, out.alerts_updated, out.webhooks_enqueued) == (1, 1, 0, 1)
    assert db.opened == ["check", "reference", "scene"] and db.committed == db.opened
    assert db.runs == {("S1A_IW_GRDH_TEST", "flood", "flood_s1:7"): {"tiles": 4, "detections": 1}}
    row = db.scenes["S1A_IW_GRDH_TEST"]
    assert row["status"] == "processed"
    assert row["hazard_status"]["flood"] == {"status": "processed", "model": "flood_s1:7", "detections": 1,
                                             "pixels_outside_aoa": 0, "change_detection": {"status": "off"}}
    [alert] = db.alerts.values()
    assert alert.hazard == "flood" and alert.status == "new" and 80 < alert.area_ha < 95, alert.area_ha
    assert alert.context["reference_water"] == "unknown"  # no layer, no history, no change detection
    assert [d["alert_id"] for d in db.detections.values()] == [alert.id]
    assert [(e["actor"], e["to_status"]) for e in db.events] == [("pipeline", "new")]
    assert [(r["event_type"], r["subscriber_id"]) for r in db.outbox] == [("alert.created", SUBSCRIBER["id"])]
    assert [(s, v) for s, v, _ in db.observed_water] == [("S1A_IW_GRDH_TEST", "flood_s1:7")]  # for the history
    assert db.locks == ["S1A_IW_GRDH_TEST/flood/flood_s1:7"]
    [[job]] = tiler.calls
    assert (job.hazard, job.model, job.kind, job.aoa, job.pre_item) == ("flood", "flood_s1", "segment", None, None)


def test_a_redelivered_scene_is_a_duplicate_and_is_neither_read_nor_tiled():
    db, tiler, reader = FakeDb(), flooded(), FakeReader(GRID)
    pipeline(db, tiler, reader=reader).process(scene())
    before = (dict(db.runs), dict(db.detections), dict(db.alerts), list(db.outbox))
    out = pipeline(db, tiler, reader=reader).process(scene())
    assert out.outcome == "duplicate" and out.detections == 0
    assert len(tiler.calls) == 1 and reader.opened == ["S1A_IW_GRDH_TEST"]
    assert (dict(db.runs), dict(db.detections), dict(db.alerts), list(db.outbox)) == before
    assert db.opened[-1] == "check"  # only the check: no status change, no store


def test_a_delivery_that_another_stored_meanwhile_stores_nothing():
    """Two deliveries of one event in flight on two workers: the second finds the run marker under the lock."""
    db = FakeDb()
    other = lambda: db.runs.setdefault(("S1A_IW_GRDH_TEST", "flood", "flood_s1:7"), {"tiles": 4, "detections": 1})
    out = pipeline(db, FakeTiler({"flood": [part(50, 50, 100)]}, on_run=other)).process(scene())
    assert out.outcome == "duplicate" and out.detections == 0
    assert db.detections == {} and db.alerts == {} and db.locks == ["S1A_IW_GRDH_TEST/flood/flood_s1:7"]


def test_every_hazard_skipped_marks_the_scene_processed_with_the_reasons():
    """L2A: mining_s2 takes L1C only; deforestation finds no earlier scene. Nothing is read or tiled."""
    db, tiler, reader = FakeDb(), FakeTiler(), FakeReader(GRID)
    s2 = scene("S2B_MSIL2A_SKIP", Sensor.S2, ("mining", "deforestation"), "L2A")
    out = pipeline(db, tiler, reader=reader).process(s2)
    assert out.outcome == "processed" and tiler.calls == [] and reader.opened == []
    assert db.opened == ["check", "status"]
    row = db.scenes[s2.id]
    assert row["status"] == "processed" and row["reason"] == "mining: skipped; deforestation: no_earlier_scene"
    assert set(db.skips) == {(s2.id, "mining"), (s2.id, "deforestation")}
    assert out.hazard_status["deforestation"]["status"] == "no_earlier_scene"


def test_a_skipped_hazard_is_recorded_and_the_others_run():
    db, tiler = FakeDb(), FakeTiler({"flood": [part(10, 10, 100)]})
    s2 = scene("S2B_MSIL2A_MIX", Sensor.S2, ("mining", "flood"), "L2A")
    out = pipeline(db, tiler).process(s2)
    assert out.outcome == "processed" and [j.hazard for j in tiler.calls[0]] == ["flood"]
    hs = db.scenes[s2.id]["hazard_status"]
    assert hs["mining"]["status"] == "skipped" and hs["flood"]["status"] == "processed"
    assert db.skips[(s2.id, "mining")].startswith("mining_s2 takes sentinel-2 L1C only")


def test_a_scene_outside_the_area_of_applicability_is_not_tiled():
    db, tiler = FakeDb(), flooded()
    out = pipeline(db, tiler, aoa={"flood_s1": box(100, 0, 101, 1)}).process(scene())
    assert out.outcome == "outside_aoa" and tiler.calls == []
    assert db.opened == ["check", "status"] and db.runs == {}
    row = db.scenes["S1A_IW_GRDH_TEST"]
    assert row["status"] == "outside_aoa"
    assert row["hazard_status"]["flood"] == {"status": "outside_aoa", "model": "flood_s1",
                                             "pixels_outside_aoa": GRID.width * GRID.height}


def test_a_scene_partly_inside_its_area_of_applicability_is_tiled_with_the_area():
    db, tiler = FakeDb(), flooded()
    west_half = box(9.0, 44.0, GRID.lon + 0.01, 46.0)
    out = pipeline(db, tiler, aoa={"flood_s1": west_half}).process(scene())
    assert out.outcome == "processed"
    [[job]] = tiler.calls
    assert job.aoa["type"] == "Polygon"  # in the grid's CRS (here lon/lat), the scene's part inside
    xs = [x for x, _ in job.aoa["coordinates"][0]]
    assert min(xs) == pytest.approx(GRID.lon) and max(xs) == pytest.approx(GRID.lon + 0.01)


def test_a_refused_asset_fails_before_the_scene_is_opened():
    db, tiler, reader = FakeDb(), flooded(), FakeReader(GRID)
    refuse = UnreadableAsset("asset path is outside the allowed file roots (TERRAWATCH_ASSET_FILE_ROOTS)")
    with pytest.raises(UnreadableAsset):
        pipeline(db, tiler, assets=AllowAssets(refuse), reader=reader).process(scene())
    assert reader.opened == [] and tiler.calls == [] and db.runs == {}


def test_a_tiler_error_stores_nothing():
    db = FakeDb()
    with pytest.raises(ConnectionError):
        pipeline(db, FakeTiler(error=ConnectionError("triton gone"))).process(scene())
    assert db.runs == {} and db.detections == {} and db.scenes["S1A_IW_GRDH_TEST"]["status"] == "processing"


def test_no_valid_pixels_is_a_bad_scene_and_stores_nothing():
    db = FakeDb()
    with pytest.raises(NoValidPixels, match="200x200 px"):
        pipeline(db, FakeTiler({"flood": [part(0, 0, 50)]}, valid_pixels=0)).process(scene())
    assert db.runs == {} and db.detections == {} and "scene" not in db.opened


def test_reference_water_is_subtracted_before_storing():
    """The detection lies in a loaded reference-water layer: the run is stored with no detection, no alert."""
    db = FakeDb(subscribers=[SUBSCRIBER], reference_water=[box(9.9, 44.9, 10.1, 45.1)])
    out = pipeline(db, flooded()).process(scene())
    assert out.outcome == "processed" and out.detections == 0 and out.alerts_created == 0
    assert db.runs[("S1A_IW_GRDH_TEST", "flood", "flood_s1:7")]["detections"] == 0
    assert db.alerts == {} and db.outbox == []
    [(_, _, observed)] = db.observed_water  # what was seen is still recorded for the history
    assert observed is not None and observed.area > 0


def test_a_cluster_below_the_alert_rule_is_stored_without_an_alert():
    db = FakeDb(subscribers=[SUBSCRIBER])
    out = pipeline(db, flooded(size=100, likelihood=40.0)).process(scene())  # min_likelihood 50
    assert out.detections == 1 and out.alerts_created == 0 and db.alerts == {} and db.outbox == []
    assert [d["alert_id"] for d in db.detections.values()] == [None]


def test_a_later_scene_of_the_place_updates_the_alert_and_tells_the_subscriber():
    db = FakeDb(subscribers=[SUBSCRIBER])
    pipeline(db, flooded()).process(scene("S1A_FIRST"))
    out = pipeline(db, flooded()).process(scene("S1A_SECOND", when=T0 + timedelta(days=6)))
    assert (out.alerts_created, out.alerts_updated, out.webhooks_enqueued) == (0, 1, 1)
    [alert] = db.alerts.values()
    assert alert.version == 2 and alert.observations == 2
    assert [r["event_type"] for r in db.outbox] == ["alert.created", "alert.updated"]


def test_the_same_pass_seen_twice_adds_no_version_and_no_webhook():
    """Two scenes of one pass (same platform, minutes apart) are one acquisition."""
    db = FakeDb(subscribers=[SUBSCRIBER])
    pipeline(db, flooded()).process(scene("S1A_PASS_1"))
    out = pipeline(db, flooded()).process(scene("S1A_PASS_2", when=T0 + timedelta(minutes=1)))
    assert (out.alerts_created, out.alerts_updated, out.webhooks_enqueued) == (0, 0, 0)
    [alert] = db.alerts.values()
    assert alert.version == 1 and len(db.outbox) == 1
    assert len(db.detections) == 2 and {d["alert_id"] for d in db.detections.values()} == {alert.id}


def test_a_mining_alert_carries_its_legality():
    db = FakeDb(legality={"status": "outside_concessions", "layers": []})
    s2 = scene("S2A_MSIL1C_MINE", Sensor.S2, ("mining",), "L1C")
    out = pipeline(db, FakeTiler({"mining": [part(20, 20, 100)]})).process(s2)
    assert out.alerts_created == 1
    [alert] = db.alerts.values()
    assert alert.context["legality"] == {"status": "outside_concessions", "layers": []}
    assert "reference_water" not in alert.context and db.observed_water == []


def test_change_detection_without_a_pre_event_scene_says_so_and_runs_the_network_alone():
    db = FakeDb(pre_event=(None, "no processed S1 scene of relative orbit 88 in 30 days"))
    out = pipeline(db, flooded(), s=settings(s1_change_detection=True)).process(scene())
    assert db.scenes["S1A_IW_GRDH_TEST"]["hazard_status"]["flood"]["change_detection"] == {
        "status": "no_pre_event_scene", "reason": "no processed S1 scene of relative orbit 88 in 30 days"}
    assert out.alerts_created == 1 and "change_detection" not in next(iter(db.alerts.values())).context


def test_a_reprocessing_run_that_no_longer_sees_the_water_withdraws_the_alert():
    db = FakeDb(subscribers=[SUBSCRIBER])
    pipeline(db, flooded()).process(scene())
    [alert_id] = db.alerts
    tag = "rp-20261103T120000-abc123"
    out = pipeline(db, FakeTiler({})).process(scene(props={"terrawatch:reprocess": tag}))
    assert out.outcome == "processed" and out.detections == 0 and out.alerts_updated == 1
    assert ("S1A_IW_GRDH_TEST", "flood", f"flood_s1:7#{tag}") in db.runs
    alert = db.alerts[alert_id]
    assert alert.status == "false_positive" and alert.context["withdrawn"]["run"] == tag
    assert [r["event_type"] for r in db.outbox] == ["alert.created", "alert.withdrawn"]
    assert db.events[-1]["actor"] == f"reprocess {tag}"


def test_a_failed_l1c_cloud_mask_processes_the_scene_without_one_and_says_so(monkeypatch, tmp_path):
    from terrawatch.products import cloud_mask as cm

    def boom(*a, **k):
        raise MemoryError("no room")

    monkeypatch.setattr(cm, "write_cloud_mask", boom)
    db = FakeDb()
    s2 = scene("S2A_MSIL1C_CLOUD", Sensor.S2, ("flood",), "L1C")
    out = pipeline(db, FakeTiler({"flood": [part(10, 10, 100)]}),
                   s=settings(l1c_cloud_mask=True, products_root=tmp_path)).process(s2)
    assert out.outcome == "processed" and "cloud_mask" in out.stages
    mask = db.scenes[s2.id]["hazard_status"]["flood"]["cloud_mask"]
    assert mask["status"] == "failed" and "MemoryError: no room" in mask["reason"]
    db2 = FakeDb()
    out = pipeline(db2, FakeTiler({"flood": [part(10, 10, 100)]}),
                   s=settings(l1c_cloud_mask=False, products_root=tmp_path)).process(replace(s2, id="S2A_NOMASK"))
    assert "cloud_mask" not in db2.scenes["S2A_NOMASK"]["hazard_status"]["flood"] and "cloud_mask" not in out.stages


@pytest.mark.parametrize("pre_id, mask_on, found", [("pre", True, True), ("other", True, False),
                                                    ("..", True, False), ("pre", False, False)])
def test_deforestation_gets_the_pre_event_scene_and_its_l1c_cloud_mask(monkeypatch, tmp_path, pre_id, mask_on, found):
    """The earlier L1C scene's cloud mask (written when it was processed) is passed on; never a path that leaves
    the products folder, nor one never written."""
    from terrawatch.products import cloud_mask as cm

    monkeypatch.setattr(cm, "write_cloud_mask", lambda *a, **k: (_ for _ in ()).throw(OSError("not in this test")))
    (tmp_path / "pre").mkdir()
    (tmp_path / "pre" / cm.FILENAME).write_bytes(b"x")
    db, tiler = FakeDb(previous_item={"id": pre_id, "properties": {}}), FakeTiler({})
    s2 = scene("S2A_MSIL1C_POST", Sensor.S2, ("deforestation",), "L1C")
    pipeline(db, tiler, s=settings(l1c_cloud_mask=mask_on, products_root=tmp_path)).process(s2)
    [[job]] = tiler.calls
    assert job.kind == "bitemporal" and job.pre_item == {"id": pre_id, "properties": {}}
    assert job.pre_cloud_mask == (str(tmp_path / "pre" / cm.FILENAME) if found else None)
