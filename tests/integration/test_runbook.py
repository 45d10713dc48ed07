"""docs/runbook.md is executed: every shell block, in order, on the real stack (issue 31's acceptance).

The page's first block sets the variables every other block uses (``API``, ``KEY``, ``H``); the test runs
each later block as ``bash -euo pipefail`` after it, with the ids an operator would have at hand during an
incident (a DLQ entry whose cause was repaired, a malformed event's entry, a processed scene with an alert
and a delivered webhook, a subscription, a backfill folder, a GeoJSON layer) and the stack's settings in
the environment, so ``terrawatch ...`` talks to the same stack. Every block must exit 0; a few answers
are checked for what the page says they show."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.settings import REPO_ROOT
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, publish, runs_for, settings_env, start_worker, wait_for

pytestmark = pytest.mark.integration

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)


def shell_blocks() -> list[str]:
    """Every fenced block of the runbook (all must be ``sh``), indentation removed."""
    blocks = []
    for m in FENCE.finditer(RUNBOOK.read_text()):
        assert m.group(2) == "sh", f"a runbook block that is not a shell block:\n{m.group(3)[:200]}"
        indent = len(m.group(1))
        blocks.append("\n".join(line[indent:] for line in m.group(3).splitlines()))
    return blocks


def test_runbook_blocks_are_shell_and_use_defined_variables():
    blocks = shell_blocks()
    assert len(blocks) >= 15
    defined = set(re.findall(r"^([A-Z_]+)=", blocks[0], re.M)) | set(re.findall(r"\b([A-Z_]{3,})\b", blocks[0]))
    for b in blocks[1:]:
        for var in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", b):
            assert var in defined, f"${var} is not introduced by the runbook's first block:\n{b}"


def _scene(tmp_path: Path, name: str, origin, size: int = 256) -> dict:
    path = tmp_path / f"{name}.tif"
    synthetic_s1(path, size=size, origin=origin)
    return item_from_geotiff(path, scene_id=f"{name}-{uuid.uuid4().hex[:6]}",
                             sensing_time=datetime.now(timezone.utc) - timedelta(minutes=30))


def _layer(path: Path) -> Path:
    ring = [[-3.80, 40.30], [-3.70, 40.30], [-3.70, 40.40], [-3.80, 40.40], [-3.80, 40.30]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "runbook test area"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    return path


def test_every_runbook_block_runs_on_the_real_stack(stack, tmp_path):
    from tests.integration.test_api_ops import _subscribe

    s = isolated(stack.settings, "runbook", api_backfill_roots=str(tmp_path), control_poll_s=1.0,
                 dlq_depth_interval_s=1.0)
    keys = role_keys(s, "runbook")
    op = hdr(keys["operator"])
    blocks = shell_blocks()
    worker = start_worker(s, tmp_path / "worker.log")
    rx = None
    try:
        with live_api(s) as base:
            # A processed scene with an alert and a delivered webhook.
            # Its own place (test_api_ops processes a scene at (420 km, 4480 km) within the hour: the same
            # acquisition would add nothing) and 512 px, so its water makes a cluster over the rule's 5 ha.
            a = _scene(tmp_path, "rb-a", (470_000.0, 4_530_000.0), size=512)
            rx = _subscribe(s, a["geometry"])
            # A DLQ entry whose asset appears later (the cause gets repaired) and a malformed event.
            late = tmp_path / "late" / "rb-b.tif"
            b = _scene(tmp_path, "rb-b-src", (430_000.0, 4_490_000.0))
            b["id"] = f"rb-b-{uuid.uuid4().hex[:6]}"
            b["assets"]["data"]["href"] = late.as_uri()
            publish(s, a, b, b'{"runbook": ')
            wait_for(lambda: runs_for(s, a["id"]), 300, "the scene processed")
            dlq = wait_for(lambda: (d := httpx.get(f"{base}/ops/dlq", headers=op, timeout=60).json())
                           and len(d) >= 2 and d, 240, "two DLQ entries")
            dlq_id = next(e["id"] for e in dlq if b["id"] in (e["payload"] or ""))
            bad_id = next(e["id"] for e in dlq if e["error_code"] == "invalid_event")
            late.parent.mkdir()
            synthetic_s1(late, size=256, origin=(430_000.0, 4_490_000.0))
            delivery = wait_for(lambda: [d for d in httpx.get(f"{base}/deliveries", headers=op, timeout=60,
                                                              params={"status": "delivered"}).json()
                                         if d["subscriber_id"] == str(rx.sub_id)], 240, "a delivered webhook")[0]
            backfill = tmp_path / "backfill"
            backfill.mkdir()
            synthetic_s1(backfill / f"rb-c-{uuid.uuid4().hex[:6]}.tif", size=256, origin=(440_000.0, 4_500_000.0))

            env = settings_env(s) | {
                "API": base, "KEY": keys["operator"], "ADMIN_KEY": keys["admin"], "DLQ_ID": dlq_id,
                "BAD_DLQ_ID": bad_id, "SCENE_ID": a["id"], "ALERT_ID": delivery["alert_id"],
                "DELIVERY_ID": delivery["id"], "SUBSCRIPTION_ID": str(rx.sub_id), "BACKFILL_DIR": str(backfill),
                "LAYER_FILE": str(_layer(tmp_path / "layer.geojson")),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
            out = {}
            for i, block in enumerate(blocks[1:], 1):
                res = subprocess.run(["bash", "-euo", "pipefail", "-c", blocks[0] + "\n" + block], env=env,
                                     capture_output=True, text=True, timeout=180)
                assert res.returncode == 0, (f"runbook block {i} failed (exit {res.returncode}):\n{block}\n"
                                             f"--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}")
                out[i] = res.stdout

            def answer_of(fragment: str) -> str:
                return next(out[i] for i, blk in enumerate(blocks[1:], 1) if fragment in blk)

            assert '"processes"' in answer_of("# lag per partition")
            first_look = answer_of("# lag per partition")
            assert re.search(r"^worker\s+up\s+since", first_look, re.M), first_look  # stack status: the processes
            assert re.search(r"^dispatcher\s+up\s+.*inside the worker", first_look, re.M), first_look
            assert '"status":"acknowledged"' in answer_of("/acknowledge").replace(" ", "")
            assert '"outcome":"duplicate"' in answer_of("/replay").replace(" ", "")
            assert "refused, as expected" in answer_of("$BAD_DLQ_ID ||")
            paused, shown, resumed = answer_of("terrawatch consumption pause").splitlines()
            for line in (paused, shown):  # the CLI's pause, then the flag as it reads it back
                assert line.startswith("paused by ") and line.endswith(": postgis upgrade"), (paused, shown)
            assert json.loads(resumed)["paused"] is False
            assert f'"redriven":["{dlq_id}"]' not in answer_of("/ops/dlq/redrive").replace(" ", "")  # done by the CLI
            wait_for(lambda: runs_for(s, b["id"]), 240, "the re-driven scene processed")
    finally:
        worker.terminate()
        worker.wait(60)
        if rx is not None:
            rx.close()
