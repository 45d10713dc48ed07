"""Merging a detection cluster into an alert: confirmation only by an independent acquisition (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box

from terrawatch.domain.alerts import Acquisition, Cluster, HazardPolicy, merge_cluster
from terrawatch.domain.polygons import geodesic_area_ha

T0 = datetime(2024, 5, 1, 10, 30, tzinfo=timezone.utc)
POLICY = HazardPolicy(hazard="mining", merge_window_days=90, min_separation_minutes=60)
G1 = box(-70.0, -12.0, -69.999, -11.999)  # ~1.2 ha
G2 = box(-69.9995, -12.0, -69.9985, -11.999)  # overlaps G1 by half


def acq(platform="sentinel-2a", sensor="sentinel-2", dt=timedelta(0), sid="s"):
    return Acquisition(platform, sensor, T0 + dt, (sid,))


def first_alert():
    d = merge_cluster(None, Cluster(G1, geodesic_area_ha(G1), 80.0, acq(sid="S2A_L1C")), POLICY)
    assert d.action == "create" and d.alert.status == "new" and d.alert.observations == 1
    return d.alert


# (case, second acquisition, expected action, status, confidence, observations)
CASES = [
    ("same pass as L2A item, same sensing time", acq(sid="S2A_L2A"), "same_acquisition", "new", "low", 1),
    ("same pass from a second catalogue, 2 s apart", acq(dt=timedelta(seconds=2), sid="cdse-copy"),
     "same_acquisition", "new", "low", 1),
    ("same platform 59 min later (below the minimum separation)", acq(dt=timedelta(minutes=59), sid="b"),
     "same_acquisition", "new", "low", 1),
    ("later pass of the same platform, 5 days", acq(dt=timedelta(days=5), sid="pass2"), "update", "confirmed", "high", 2),
    ("other platform of the constellation, same minute", acq(platform="sentinel-2b", sid="s2b"),
     "update", "confirmed", "high", 2),
    ("other sensor (S1) same day", acq(platform="sentinel-1a", sensor="sentinel-1", dt=timedelta(hours=3), sid="s1"),
     "update", "confirmed", "high", 2),
    ("later pass outside the 90-day window: a new alert", acq(dt=timedelta(days=91), sid="late"),
     "create", "new", "low", 1),
]


@pytest.mark.parametrize("case,second,action,status,conf,obs", CASES, ids=[c[0] for c in CASES])
def test_merge_table(case, second, action, status, conf, obs):
    alert = first_alert()
    d = merge_cluster(alert, Cluster(G2, geodesic_area_ha(G2), 95.0, second), POLICY)
    assert (d.action, d.alert.status, d.alert.confidence, d.alert.observations) == (action, status, conf, obs), case
    if action == "same_acquisition":
        # nothing a subscriber sees changes: geometry, area, likelihood, severity, times
        assert d.alert.geom.equals(alert.geom) and d.alert.area_ha == alert.area_ha
        assert d.alert.likelihood == alert.likelihood and d.alert.severity == alert.severity
        assert d.alert.last_sensed == alert.last_sensed
        assert d.alert.acquisitions[0].scene_ids == ("S2A_L1C", second.scene_ids[0])
    if action == "update":
        assert d.alert.area_ha > alert.area_ha and d.alert.likelihood == 95.0
        assert d.alert.last_sensed == max(alert.last_sensed, second.sensing_time)


def test_republished_acquisition_never_confirms_however_often():
    alert = first_alert()
    for i in range(5):
        d = merge_cluster(alert, Cluster(G1, geodesic_area_ha(G1), 99.0, acq(sid=f"copy-{i}")), POLICY)
        assert d.action == "same_acquisition"
        alert = d.alert
    assert alert.status == "new" and alert.confidence == "low" and alert.observations == 1
    assert len(alert.acquisitions[0].scene_ids) == 6
    # ... then a real second pass confirms, and its own re-publication changes nothing more
    d = merge_cluster(alert, Cluster(G1, geodesic_area_ha(G1), 90.0, acq(dt=timedelta(days=10), sid="p2")), POLICY)
    assert (d.action, d.alert.status, d.alert.observations) == ("update", "confirmed", 2)
    d2 = merge_cluster(d.alert, Cluster(G1, 1.0, 90.0, acq(dt=timedelta(days=10, seconds=1), sid="p2-l2a")), POLICY)
    assert d2.action == "same_acquisition" and d2.alert.observations == 2


def test_closed_alert_is_not_merged_and_minimum_separation_is_configurable():
    closed = first_alert().__class__(**{**first_alert().__dict__, "status": "resolved"})
    assert merge_cluster(closed, Cluster(G1, 1.0, 90.0, acq(dt=timedelta(days=5))), POLICY).action == "create"
    strict = HazardPolicy(hazard="mining", merge_window_days=90, min_separation_minutes=60 * 24 * 7)
    d = merge_cluster(first_alert(), Cluster(G1, 1.0, 90.0, acq(dt=timedelta(days=5), sid="x")), strict)
    assert d.action == "same_acquisition"


def test_shipped_rules_declare_a_separation():
    from terrawatch.domain.alerts import load_rules
    from terrawatch.settings import REPO_ROOT

    for p in load_rules(REPO_ROOT / "alerts" / "rules").values():
        assert p.min_separation_minutes > 0


def test_water_of_unknown_permanence_is_never_confirmed_or_highest_by_repetition():
    """A river is seen by every pass: without reference water (no layer, no pre-event scene) a repeated
    observation neither confirms a flood alert nor lifts it to highest."""
    from terrawatch.domain.alerts import Criterion

    flood = HazardPolicy(hazard="flood", merge_window_days=30, min_separation_minutes=60,
                         highest=(Criterion(min_sensors=1, min_observations=1, min_area_ha=0.0),),
                         high=(Criterion(min_sensors=1, min_observations=1, min_area_ha=0.0),))
    c1 = Cluster(G1, geodesic_area_ha(G1), 90.0, acq(sid="a"))
    assert merge_cluster(None, c1, flood).alert.confidence == "highest"
    new = merge_cluster(None, c1, flood, reference_known=False).alert
    assert (new.status, new.confidence) == ("new", "high")
    c2 = Cluster(G2, geodesic_area_ha(G2), 90.0, acq(dt=timedelta(days=6), sid="b"))
    again = merge_cluster(new, c2, flood, reference_known=False)
    assert again.action == "update" and (again.alert.status, again.alert.confidence) == ("new", "high")
    known = merge_cluster(new, c2, flood, reference_known=True)
    assert (known.alert.status, known.alert.confidence) == ("confirmed", "highest")
