"""Reference water grown from the archive (domain/reference_water.history_reference) and the re-derivation
of an alert after re-processing (domain/alerts.rebuild_alert): pure rules, table-tested."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box

from terrawatch.domain.alerts import Acquisition, Alert, HazardPolicy, rebuild_alert
from terrawatch.domain.polygons import as_multipolygon, geodesic_area_ha
from terrawatch.domain.reference_water import (
    EstablishedFlood, Observation, established, history_reference,
)

T = datetime(2026, 6, 1, tzinfo=timezone.utc)
GAP = timedelta(days=30)
FOOT = box(0, 0, 1, 1)
RIVER = box(0.4, 0, 0.5, 1)
FLOOD = box(0.5, 0.2, 0.8, 0.5)


def obs(days: float, water, sid=None, platform="sentinel-1a") -> Observation:
    return Observation(sid or f"s{days}", platform, T + timedelta(days=days), FOOT, water)


def test_water_seen_a_merge_window_apart_is_reference_water_and_its_footprint_the_coverage():
    water, cov = history_reference(T, [obs(-60, RIVER)], [], GAP)
    assert water.equals(as_multipolygon(RIVER)) and cov.equals(as_multipolygon(FOOT))


@pytest.mark.parametrize("days", [-29, -1, 0, 10, 29.9])
def test_observations_closer_than_the_gap_do_not_count(days):
    # an ongoing flood's earlier passes (they merge into the same alert) never become reference water
    assert history_reference(T, [obs(days, RIVER)], [], GAP) == (None, None)


def test_a_later_acquisition_counts_too():
    # a re-processed or late scene sees the whole archive
    water, _ = history_reference(T, [obs(45, RIVER)], [], GAP)
    assert water.equals(as_multipolygon(RIVER))


def test_a_scene_with_no_water_gives_coverage_without_reference_water():
    water, cov = history_reference(T, [obs(-60, None)], [], GAP)
    assert water is None and cov.equals(as_multipolygon(FOOT))


def test_water_inside_an_established_flood_alert_of_that_time_is_not_reference_water():
    old = obs(-60, RIVER.union(FLOOD))
    during = EstablishedFlood(FLOOD, T - timedelta(days=61), T - timedelta(days=55))
    water, _ = history_reference(T, [old], [during], GAP)
    assert water.equals(as_multipolygon(RIVER))
    # the same alert at another time does not remove that observation's water
    later = EstablishedFlood(FLOOD, T - timedelta(days=20), T - timedelta(days=10))
    water, _ = history_reference(T, [old], [later], GAP)
    assert abs(water.area - RIVER.union(FLOOD).area) < 1e-12


@pytest.mark.parametrize("status,source,expected", [
    ("new", "unknown", False), ("new", None, False), ("false_positive", "unknown", False),
    ("new", "reference_layer", True), ("new", "history", True), ("new", "pre_event_scene", True),
    ("confirmed", "unknown", True), ("acknowledged", None, True), ("resolved", "unknown", True)])
def test_which_flood_alerts_are_established(status, source, expected):
    # a new alert with unknown reference may be a river: its water can still become reference water
    assert established(status, source) is expected


def test_at_least_k_acquisitions_and_one_acquisition_under_two_ids_counts_once():
    a = obs(-90, RIVER, "a")
    a2 = obs(-90, RIVER.union(FLOOD), "a-l2a")  # same platform and sensing time: the same acquisition
    b = obs(-60, box(0.45, 0, 0.55, 1), "b")
    water, cov = history_reference(T, [a, a2, b], [], GAP, min_acquisitions=2)
    both = box(0.45, 0, 0.5, 1).union(box(0.5, 0.2, 0.55, 0.5))  # a (under either id) and b saw water there
    assert abs(water.symmetric_difference(both).area) < 1e-12
    assert cov.equals(as_multipolygon(FOOT))
    assert history_reference(T, [a, a2], [], GAP, min_acquisitions=2) == (None, None)


# rebuild_alert ---------------------------------------------------------------

POLICY = HazardPolicy("flood", min_area_ha=0.1)


def _alert(status="new", scenes=("s1", "s2")) -> Alert:
    acqs = [Acquisition("sentinel-1a", "sentinel-1", T + timedelta(days=12 * i), (sid,)) for i, sid in enumerate(scenes)]
    geom = as_multipolygon(box(0, 0, 0.01, 0.02))
    return Alert(uuid.uuid4(), "flood", status, "high", "severe", geom, geodesic_area_ha(geom), 80.0,
                 ["sentinel-1"], len(acqs), acqs[0].sensing_time, acqs[-1].sensing_time,
                 {"acquisitions": [a.to_json() for a in acqs], "scene_ids": list(scenes)}, 3)


def _support(*parts):
    return [(sid, g, geodesic_area_ha(g), 80.0) for sid, g in parts]


def test_nothing_supports_it_any_more_withdraws_it():
    d = rebuild_alert(_alert(), [], POLICY)
    assert d.action == "withdraw" and d.alert.status == "false_positive" and d.alert.version == 4


def test_the_same_support_leaves_it_unchanged():
    a = _alert()
    d = rebuild_alert(a, _support(("s1", box(0, 0, 0.01, 0.01)), ("s2", box(0, 0.01, 0.01, 0.02))), POLICY)
    assert d.action == "unchanged" and d.alert is a


def test_a_shrunk_support_shrinks_it_and_drops_the_acquisition_that_no_longer_supports_it():
    a = _alert("confirmed")
    d = rebuild_alert(a, _support(("s1", box(0, 0, 0.01, 0.01))), POLICY)
    assert d.action == "update" and d.alert.version == 4
    assert d.alert.area_ha == pytest.approx(a.area_ha / 2, rel=1e-3)
    assert d.alert.observations == 1 and d.alert.context["scene_ids"] == ["s1"]
    assert d.alert.status == "new" and d.alert.confidence == "low"  # one acquisition: not confirmed any more
    assert d.alert.last_sensed == T


def test_an_operators_confirmation_stays():
    d = rebuild_alert(_alert("confirmed"), _support(("s1", box(0, 0, 0.01, 0.01))), POLICY, pipeline_confirmed=False)
    assert d.action == "update" and d.alert.status == "confirmed"


def test_unknown_reference_water_caps_confidence_and_undoes_a_pipeline_confirmation():
    a = _alert("confirmed")
    parts = _support(("s1", box(0, 0, 0.01, 0.01)), ("s2", box(0, 0.01, 0.01, 0.02)))
    d = rebuild_alert(a, parts, POLICY, reference_known=False)
    assert d.action == "update" and d.alert.status == "new" and d.alert.confidence == "high"


def test_slivers_a_rivers_edge_leaves_do_not_add_up_to_a_detection():
    from terrawatch.domain.polygons import Detection
    from terrawatch.domain.reference_water import subtract_reference

    # this pass's river is one 10 m pixel wider on both sides than the history's (5 km long): two slivers of
    # ~5 ha each in one detection, but every part is 1 px wide - kept only if a part reaches the MMU
    ref = box(-3.0, 42.0, -2.998, 42.045)
    wide = box(-3.00012, 42.0, -2.99788, 42.045)
    det = Detection("flood", as_multipolygon(wide), geodesic_area_ha(wide), 90.0, 1000)
    assert subtract_reference([det], [ref], 0.2)  # each sliver is ~5 ha: above the MMU, kept
    sliced = [box(-3.00012, 42.0 + i * 0.0005, -2.99788, 42.0 + (i + 1) * 0.0005 - 0.00002) for i in range(90)]
    dets = [Detection("flood", as_multipolygon(g), geodesic_area_ha(g), 90.0, 10) for g in sliced]
    # broken into 55 m pieces (as speckle breaks them), each sliver part is ~0.05 ha: all dropped
    assert subtract_reference(dets, [ref], 0.2) == []
