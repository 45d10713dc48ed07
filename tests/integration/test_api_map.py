"""The /map page in headless Debian Chromium (Playwright core): features render, popup, time slider."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest

from terrawatch.api.routes.map import WEB_DIST
from terrawatch.api.samples import delete_seeded, seed_layers
from terrawatch.settings import REPO_ROOT
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import live_api, role_keys

pytestmark = pytest.mark.integration

WEB = WEB_DIST.parent


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
        uow.set_scene_status(seeded.scene_ids[1], "failed", reason="unreadable_asset: test", dlq_ref="dlq[0]@1")
    viewer = role_keys(s, "map")["viewer"]
    bbox = ",".join(str(v) for v in seeded.bounds)
    try:
        with live_api(s) as base:
            between = int(seeded.times[0].timestamp()) + 12 * 3600  # the scenes are a day apart
            res = subprocess.run(["node", "check-map.mjs", f"{base}/map#key={viewer}&bbox={bbox}",
                                  str(tmp_path / "map.png"), str(between)],
                                 cwd=WEB, capture_output=True, text=True, timeout=360)
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
