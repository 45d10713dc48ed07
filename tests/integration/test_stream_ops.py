"""`terrawatch backfill` publishes scene events through Kafka for a folder or a STAC API search.

Uses the test stack's Kafka only; the STAC API is the local stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from terrawatch.domain.scene import parse_event
from terrawatch.ingest.kafka_config import client_config
from terrawatch.ingest.sources import FolderSource, StacApiSource
from terrawatch_dev.samples import synthetic_s1
from terrawatch.service.stream_ops import backfill
from tests.integration.helpers import isolated, settings_env
from tests.integration.standins import StacApi, StandIn
from tests.stac_shapes import S2_KEYS, earth_search_s2

pytestmark = pytest.mark.integration

BBOX = (-6.0, 38.0, 0.0, 42.0)  # lon/lat; the synthetic scenes (UTM 30N) lie at ~ -4.2, 40.2
START, END = "2024-05-01", "2024-05-31"


def _topic_events(s, timeout: float = 20.0) -> list[tuple[bytes, dict]]:
    c = Consumer(client_config(s, **{"group.id": f"reader-{uuid.uuid4().hex}",
                                     "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    parts = c.list_topics(s.scenes_topic, timeout=10).topics[s.scenes_topic].partitions
    c.assign([TopicPartition(s.scenes_topic, p, 0) for p in parts])
    out = []
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append((m.key(), json.loads(m.value())))
            deadline = min(deadline, time.monotonic() + 3)
    c.close()
    return out


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "scenes"
    synthetic_s1(d / "S1A_IW_GRDH_20240505T060000_a.tif", size=128, origin=(400_000.0, 4_450_000.0))
    synthetic_s1(d / "sub" / "S1A_IW_GRDH_20240520T060000_b.tif", size=128, origin=(410_000.0, 4_450_000.0))
    synthetic_s1(d / "S1A_IW_GRDH_20240610T060000_late.tif", size=128, origin=(420_000.0, 4_450_000.0))
    synthetic_s1(d / "S1A_IW_GRDH_20240510T060000_far.tif", size=128, origin=(400_000.0, 1_000_000.0))
    synthetic_s1(d / "undated.tif", size=128, origin=(400_000.0, 4_450_000.0))
    (d / "notes.json").write_text('{"hello": "world"}')
    return d


def test_backfill_folder_publishes_in_scope_scenes(stack, folder):
    s = isolated(stack.settings, "backfill-folder")
    from datetime import datetime, timezone

    report = backfill(s, FolderSource(folder), BBOX, datetime(2024, 5, 1, tzinfo=timezone.utc),
                      datetime(2024, 5, 31, 23, 59, 59, tzinfo=timezone.utc), progress=False)
    assert sorted(report.published) == ["S1A_IW_GRDH_20240505T060000_a", "S1A_IW_GRDH_20240520T060000_b"]
    reasons = {e["source"].rsplit("/", 1)[1]: e["reason"] for e in report.skipped}
    assert "outside the period" in reasons["S1A_IW_GRDH_20240610T060000_late.tif"]
    assert "outside the bbox" in reasons["S1A_IW_GRDH_20240510T060000_far.tif"]
    assert "no sensing time" in reasons["undated.tif"]
    assert reasons["notes.json"] == "not a STAC Item"
    events = _topic_events(s)
    assert sorted(k.decode() for k, _ in events) == sorted(report.published)
    assert all(parse_event(json.dumps(v)).sensing_time.month == 5 for _, v in events)


def test_backfill_stac_api_converts_catalogue_items(stack, tmp_path):
    s = isolated(stack.settings, "backfill-stac")
    with StandIn(tmp_path) as server:
        stac = StacApi(server)
        hrefs = {b: f"https://cogs.example.org/{b}.tif" for b in S2_KEYS}
        for day in ("03", "13", "23"):
            stac.add(earth_search_s2(f"S2B_30TVK_202405{day}_0_L1C", hrefs, datetime=f"2024-05-{day}T11:00:00Z",
                                     geometry={"type": "Polygon", "coordinates": [[[-3, 40], [-2, 40], [-2, 41],
                                                                                   [-3, 41], [-3, 40]]]}))
        # L2A has no B10 and is accepted (issue 18); an L1C item without its B10 asset cannot be read.
        stac.add(earth_search_s2("S2B_30TVK_20240525_0_L2A", {b: h for b, h in hrefs.items() if b != "B10"},
                                 level="L2A", datetime="2024-05-25T11:00:00Z",
                                 geometry={"type": "Polygon", "coordinates": [[[-3, 40], [-2, 40], [-2, 41],
                                                                               [-3, 41], [-3, 40]]]}))
        stac.add(earth_search_s2("S2B_30TVK_20240527_0_L1C", {b: h for b, h in hrefs.items() if b != "B10"},
                                 datetime="2024-05-27T11:00:00Z",
                                 geometry={"type": "Polygon", "coordinates": [[[-3, 40], [-2, 40], [-2, 41],
                                                                               [-3, 41], [-3, 40]]]}))
        from datetime import datetime, timezone

        source = StacApiSource(stac.url, ["sentinel-2-l1c", "sentinel-2-l2a"])
        report = backfill(s, source, BBOX, datetime(2024, 5, 1, tzinfo=timezone.utc),
                          datetime(2024, 5, 31, tzinfo=timezone.utc), progress=False)
    assert report.published == ["S2B_30TVK_20240503_0_L1C", "S2B_30TVK_20240513_0_L1C", "S2B_30TVK_20240523_0_L1C",
                                "S2B_30TVK_20240525_0_L2A"]
    assert len(report.skipped) == 1 and "B10" in report.skipped[0]["reason"]
    assert "S2B_30TVK_20240527_0_L1C" in report.skipped[0]["reason"]
    assert stac.search_bodies[0]["bbox"] == list(BBOX)
    assert stac.search_bodies[0]["datetime"] == "2024-05-01T00:00:00Z/2024-05-31T00:00:00Z"
    events = dict((k.decode(), v) for k, v in _topic_events(s))
    assert set(events) == set(report.published)
    scene = parse_event(json.dumps(events["S2B_30TVK_20240513_0_L1C"]))
    assert scene.bands[8].name == "B8A" and scene.bands[8].href.endswith("/B8A.tif")


def test_backfill_cli_prints_json_and_progress(stack, folder):
    s = isolated(stack.settings, "backfill-cli")
    res = subprocess.run(
        [sys.executable, "-m", "terrawatch.cli", "backfill", "--bbox", ",".join(map(str, BBOX)), "--from", START,
         "--to", START[:8] + "20", "--folder", str(folder), "--sensing-time", "2024-05-15T00:00:00"],
        env=settings_env(s), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # --to 2024-05-20 includes that whole day; the undated file gets --sensing-time
    assert sorted(out["scene_ids"]) == ["S1A_IW_GRDH_20240505T060000_a", "S1A_IW_GRDH_20240520T060000_b", "undated"]
    assert "backfill" in res.stderr and "3 published" in res.stderr
    assert sorted(k.decode() for k, _ in _topic_events(s)) == sorted(out["scene_ids"])
