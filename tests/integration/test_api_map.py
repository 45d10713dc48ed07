"""The /map page in headless Debian Chromium (Playwright core): features render, popup, time slider."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import httpx
import pytest

from terrawatch.alerting.places import nearest_place
from terrawatch.api.routes.map import WEB_DIST
from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.settings import REPO_ROOT
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import live_api, role_keys

pytestmark = pytest.mark.integration

WEB = WEB_DIST.parent
# The demo's Spain chip (Sen1Floods11 7370579, on the Segura near Orihuela): its centre, lon/lat.
SPAIN_CHIP = (-0.759, 38.106)
# The acceptance: the map is ready (vector layers drawn) in under 3 s. Measured by the page from
# navigation start and printed; asserted against 4x that, because this browser renders WebGL on the CPU
# (SwiftShader) on a loaded 2-core test machine: a regression to the old 20-40 s still fails.
READY_BUDGET_MS = 3000
READY_ASSERT_MS = 4 * READY_BUDGET_MS


def test_map_page_renders_seeded_layers_in_chromium(stack, tmp_path):
    assert (WEB_DIST / "index.html").exists(), "map bundle missing: run `make web`"
    assert (WEB / "node_modules" / "playwright-core").exists(), "npm packages missing: run `make web`"
    if shutil.which("chromium") is None:
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-chromium.sh")], check=True)
    s = stack.settings
    engine = engine_for(s.db_url)
    seeded = seed_layers(engine, center=(-60.0, -10.0), spread_deg=0.3, scenes=2, detections_per_scene=10,
                         tag=f"map-{uuid.uuid4().hex[:6]}")
    from terrawatch.store.uow import UnitOfWork

    with UnitOfWork(engine, "test") as uow:  # the second scene went to the DLQ: drawn apart, in red
        uow.scenes.set_status(seeded.scene_ids[1], "failed", reason="unreadable_asset: test", dlq_ref="dlq[0]@1")
    viewer = role_keys(s, "map")["viewer"]
    bbox = ",".join(str(v) for v in seeded.bounds)
    try:
        with live_api(s) as base:
            between = int(seeded.times[0].timestamp()) + 12 * 3600  # the scenes are a day apart
            places = _check_places_endpoint(base)
            env = {**os.environ, "CHECK_PLACES_AT": f"{SPAIN_CHIP[0]},{SPAIN_CHIP[1]},13"}
            res = subprocess.run(["node", "check-map.mjs", f"{base}/map#key={viewer}&bbox={bbox}",
                                  str(tmp_path / "map.png"), str(between)],
                                 cwd=WEB, capture_output=True, text=True, timeout=360, env=env)
    finally:
        delete_seeded(engine, seeded)
    assert res.stdout.strip(), res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(json.dumps(out, indent=1))
    assert out["state"] == "ready", out
    assert out["console_errors"] == []
    assert out["counts"].get("detections-fill", 0) > 0 and out["counts"].get("alerts-line", 0) > 0, out["counts"]
    assert out["counts"].get("scenes-line", 0) > 0  # the processed scene
    assert out["counts"].get("scenes-failed", 0) > 0 and out["counts"].get("scenes-failed-fill", 0) > 0
    assert out["click"] and "hazard" in out["popup"] and "likelihood" in out["popup"]
    # Up to half a day after the first scene, only the first scene's detections show.
    slider = out["slider"]
    assert 0 < slider["detections_until"] < slider["detections_before"], slider
    assert slider["detections_at_min"] <= slider["detections_until"], slider
    assert (tmp_path / "map.png").stat().st_size > 10_000
    # Place labels from the offline GeoNames table: around the demo's Spain alert the map shows the place
    # nearest to it and Almoradi (20,000 inhabitants, 3 km west), each with its region and country.
    nearest = nearest_place(*SPAIN_CHIP)["place"]
    assert nearest in out["place_labels_dom"] and "Almoradí" in out["place_labels_dom"], out["place_labels_dom"]
    assert all(p.endswith(", Spain") for p in out["places_at"]), out["places_at"]
    assert [p.split(", ")[0] for p in out["places_at"]] == out["place_labels_dom"]
    assert set(out["place_labels_dom"]) <= {f["properties"]["name"] for f in places["features"]}
    assert "place label" in out["legend"], out["legend"]
    print(f"map ready after {out['ready_ms']} ms (page-measured, navigation start to vector layers drawn; "
          f"issue 26 budget {READY_BUDGET_MS} ms)")
    assert 0 < out["ready_ms"] < READY_ASSERT_MS, out["ready_ms"]


def _check_places_endpoint(base: str) -> dict:
    """/map/places.geojson (anonymous: public GeoNames data): bounded, every parameter checked; returns the
    places of a 0.3 degree box around the Spain chip."""
    lon, lat = SPAIN_CHIP
    bbox = f"{lon - 0.15},{lat - 0.15},{lon + 0.15},{lat + 0.15}"
    r = httpx.get(f"{base}/map/places.geojson", params={"bbox": bbox, "limit": 200}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    pops = [f["properties"]["population"] for f in body["features"]]
    assert 0 < len(pops) <= 200 and pops == sorted(pops, reverse=True)
    for f in body["features"]:
        x, y = f["geometry"]["coordinates"]
        assert abs(x - lon) <= 0.15 and abs(y - lat) <= 0.15 and f["properties"]["country"] == "Spain", f
    two = httpx.get(f"{base}/map/places.geojson", params={"bbox": bbox, "limit": 2}, timeout=30).json()
    assert [f["properties"]["name"] for f in two["features"]] == [f["properties"]["name"] for f in body["features"][:2]]
    for params, word in [({}, "bbox"), ({"bbox": "0,0,31,1"}, "bbox"), ({"bbox": "0,0,1"}, "bbox"),
                         ({"bbox": "0,50,1,40"}, "bbox"), ({"bbox": bbox, "limit": "201"}, "limit"),
                         ({"bbox": bbox, "q": "Murcia"}, "q")]:
        bad = httpx.get(f"{base}/map/places.geojson", params=params, timeout=30)
        assert bad.status_code == 400 and word in bad.json()["description"], (params, bad.text)
    return body
