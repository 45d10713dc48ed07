"""Webhook payloads: CAP 1.2 valid against the OASIS XSD (lxml), GeoJSON valid per geojson-pydantic."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from geojson_pydantic import Feature
from lxml import etree
from shapely.geometry import MultiPolygon, Polygon, box

from terrawatch.alerting.cap import CAP_NS, cap_alert, cap_polygons
from terrawatch.alerting.outbox import render
from terrawatch.alerting.payloads import geojson_event
from terrawatch.domain.alerts import Alert, load_rules
from terrawatch.settings import REPO_ROOT

XSD = etree.XMLSchema(etree.parse(str(REPO_ROOT / "alerts" / "schemas" / "CAP-v1.2.xsd")))
NS = {"cap": CAP_NS}
POLICIES = load_rules(REPO_ROOT / "alerts" / "rules")
LEGALITY = {"status": "illegal", "rule": "inside_protected_area", "coverage": None,
            "feature": {"layer": "protected_area", "feature_id": 555, "feature_name": "Parque Nacional Doñana"},
            "rules": [{"rule": "inside_protected_area", "layer": "protected_area", "feature_id": 555,
                       "feature_name": "Parque Nacional Doñana"}]}


def _alert(status="new", confidence="low", severity="minor", version=1, hazard="mining") -> Alert:
    hole = box(-6.405, 37.005, -6.401, 37.009)
    geom = MultiPolygon([Polygon(box(-6.41, 37.0, -6.40, 37.01).exterior.coords, [hole.exterior.coords]),
                         box(-6.30, 37.10, -6.29, 37.11)])
    t0 = datetime(2026, 11, 20, 10, 30, 15, 123456, tzinfo=timezone.utc)
    return Alert(id=uuid.UUID("12345678-1234-5678-1234-567812345678"), hazard=hazard, status=status,
                    confidence=confidence, severity=severity, geom=geom, area_ha=123.4, likelihood=87.5,
                    sensors=["S1", "S2"], observations=2, first_sensed=t0, last_sensed=t0 + timedelta(days=1),
                    context={"scene_ids": ["a", "b"], "legality": LEGALITY}, version=version,
                    created_at=t0 + timedelta(hours=2), updated_at=t0 + timedelta(days=1, hours=2))


def _parse(xml: str):
    doc = etree.fromstring(xml.encode())
    XSD.assertValid(doc)
    return doc


@pytest.mark.parametrize("status", ["new", "confirmed", "acknowledged", "resolved", "false_positive"])
@pytest.mark.parametrize("first", [True, False])
def test_cap_validates_against_the_oasis_xsd(status, first):
    a = _alert(status=status, version=1 if first else 3)
    _parse(cap_alert(a, f"alert.{status}", POLICIES["mining"], "terrawatch@example.org", first, reason="checked"))


def test_cap_fields_mapping_and_context():
    a = _alert(confidence="highest", severity="severe", version=2)
    doc = _parse(cap_alert(a, "alert.updated", POLICIES["mining"], "tw@example.org", first_message=False))
    v = lambda path: doc.findtext(path, namespaces=NS)  # noqa: E731
    assert v("cap:msgType") == "Update" and v("cap:sent") == "2026-11-21T12:30:15+00:00"
    assert v("cap:references") == f"tw@example.org,terrawatch-{a.id}-v1,2026-11-20T12:30:15+00:00"
    assert v("cap:info/cap:severity") == "Severe"
    assert v("cap:info/cap:certainty") == POLICIES["mining"].cap.certainty["highest"] == "Observed"
    assert v("cap:info/cap:urgency") == POLICIES["mining"].cap.urgency["highest"]
    assert v("cap:info/cap:category") == "Env"
    params = {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
              for p in doc.findall("cap:info/cap:parameter", NS)}
    assert json.loads(params["context:legality"]) == LEGALITY
    assert (params["terrawatch:legality"], params["terrawatch:legality_rule"],
            params["terrawatch:legality_evidence"]) == ("illegal", "inside_protected_area", "Parque Nacional Doñana")
    assert params["terrawatch:confidence"] == "highest" and params["terrawatch:alert_id"] == str(a.id)


def test_cap_polygons_are_closed_lat_lon_exterior_rings():
    a = _alert()
    polys = cap_polygons(a.geom)
    assert len(polys) == 2  # one per part; the hole is not representable in CAP
    pts = [tuple(map(float, p.split(","))) for p in polys[0].split()]
    assert pts[0] == pts[-1] and len(pts) == 5
    lats, lons = zip(*pts)
    assert all(36.9 < y < 37.2 for y in lats) and all(-6.5 < x < -6.2 for x in lons)


def test_cap_cancel_and_all_clear():
    fp = _parse(cap_alert(_alert(status="false_positive", version=3), "alert.false_positive", POLICIES["flood"],
                          "tw", first_message=False, reason="cloud shadow"))
    assert fp.findtext("cap:msgType", namespaces=NS) == "Cancel"
    assert fp.findtext("cap:info/cap:certainty", namespaces=NS) == "Unlikely"
    assert "cloud shadow" in fp.findtext("cap:note", namespaces=NS)
    res = _parse(cap_alert(_alert(status="resolved", version=3), "alert.resolved", POLICIES["flood"], "tw", False))
    assert res.findtext("cap:msgType", namespaces=NS) == "Update"
    assert res.findtext("cap:info/cap:responseType", namespaces=NS) == "AllClear"
    assert res.findtext("cap:info/cap:urgency", namespaces=NS) == "Past"


def test_xsd_rejects_a_broken_cap_document():
    doc = etree.fromstring(cap_alert(_alert(), "alert.created", POLICIES["flood"], "tw", True).encode())
    doc.find("cap:info/cap:urgency", NS).text = "Soon"
    assert not XSD.validate(doc)


def test_geojson_payload_is_a_valid_feature_with_context():
    a = _alert()
    body, ctype = render("geojson", a, "alert.created", POLICIES["mining"], "tw", True)
    assert ctype == "application/json" and body == geojson_event("alert.created", a)
    env = json.loads(body)
    assert env["type"] == "alert.created" and env["timestamp"] == a.updated_at.isoformat()
    feature = Feature.model_validate(env["data"])
    assert feature.geometry.type == "MultiPolygon"
    assert env["data"]["properties"]["context"]["legality"] == LEGALITY
    props = env["data"]["properties"]
    assert (props["legality"], props["legality_rule"], props["legality_feature"]) == (
        "illegal", "inside_protected_area", "Parque Nacional Doñana")
    assert env["data"]["properties"]["confidence"] == "low"


def test_cap_references_are_the_recipients_own_messages():
    a = _alert(version=3)
    sent = [("tw", f"terrawatch-{a.id}-v2", "2026-11-21T00:00:00+00:00")]
    doc = _parse(cap_alert(a, "alert.updated", POLICIES["flood"], "tw", first_message=False, references=sent))
    assert doc.findtext("cap:msgType", namespaces=NS) == "Update"
    assert doc.findtext("cap:references", namespaces=NS) == f"tw,terrawatch-{a.id}-v2,2026-11-21T00:00:00+00:00"
    fresh = _parse(cap_alert(a, "alert.updated", POLICIES["flood"], "tw", first_message=False, references=[]))
    assert fresh.findtext("cap:msgType", namespaces=NS) == "Alert" and fresh.find("cap:references", NS) is None


def _many_parts(n: int, vertices: int = 120) -> MultiPolygon:
    import math

    parts = []
    for i in range(n):
        cx, cy = -1.0 + (i % 12) * 0.02, 38.0 + (i // 12) * 0.02
        ring = [(cx + 0.004 * math.cos(2 * math.pi * k / vertices) * (1 + 0.2 * (k % 3)),
                 cy + 0.004 * math.sin(2 * math.pi * k / vertices)) for k in range(vertices)]
        parts.append(Polygon(ring))
    return MultiPolygon(parts)


def test_cap_area_is_bounded_for_aggregators_and_still_covers_the_alert():
    geom = _many_parts(137)
    a = _alert(hazard="flood")
    a = Alert(**{**a.__dict__, "geom": geom})
    now = a.updated_at + timedelta(hours=1)
    xml = cap_alert(a, "alert.updated", POLICIES["flood"], "tw@example.org", False, now=now,
                    public_url="https://tw.example.org/api/")
    assert len(xml) < 40_000  # an aggregator takes it (rendered once: the bounding is most of this test's time)
    doc = _parse(xml)
    polys = doc.findall("cap:info/cap:area/cap:polygon", NS)
    assert 1 <= len(polys) <= 10
    rings = []
    for p in polys:
        pts = [tuple(map(float, xy.split(","))) for xy in p.text.split()]
        assert len(pts) <= 100 and pts[0] == pts[-1]
        rings.append(Polygon([(x, y) for y, x in pts]))
    from shapely import union_all
    covered = union_all(rings)
    assert covered.buffer(1e-4).covers(geom.buffer(-1e-4))  # simplification keeps (nearly) all of the alert
    uri = doc.findtext("cap:info/cap:resource/cap:uri", namespaces=NS)
    assert uri == f"https://tw.example.org/api/ogc/collections/alerts/items/{a.id}?f=json"
    desc = doc.findtext("cap:info/cap:area/cap:areaDesc", namespaces=NS)
    assert desc.startswith("Flood area near ") and desc.endswith(", Spain), 123.40 ha"), desc  # south-east Spain


def test_backfilled_alert_is_not_sent_as_news():
    a = _alert(hazard="flood")
    policy = POLICIES["flood"]
    late = a.last_sensed + timedelta(days=policy.merge_window_days + 1)
    doc = _parse(cap_alert(a, "alert.created", policy, "tw@example.org", True, now=late))
    assert doc.find("cap:info/cap:expires", NS) is None  # never an expiry in the past
    assert doc.findtext("cap:info/cap:urgency", namespaces=NS) == "Past"
    assert "Backfill" in doc.findtext("cap:note", namespaces=NS)
    fresh = _parse(cap_alert(a, "alert.created", policy, "tw@example.org", True, now=a.updated_at))
    assert fresh.find("cap:info/cap:expires", NS) is not None and fresh.find("cap:note", NS) is None
    body, _ = render("geojson", a, "alert.created", policy, "tw@example.org", True, now=late)
    assert json.loads(body)["data"]["properties"]["backfill"] is True
