"""Consumer-group scaling: two worker processes share a 4-partition topic; each scene is processed once,
also after one worker is killed with SIGKILL mid-stream (the survivor takes over its partitions).

Also: a STAC Item *reference* event resolved by the real worker (assets read over HTTP
with Range from a local stand-in), and ``replay`` of a processed scene being a no-op.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from terrawatch.ingest import kafka_io
from terrawatch.ingest.kafka_config import client_config
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.service.stream_ops import replay
from terrawatch.store import tables as t
from tests.integration.helpers import count, isolated, read_dlq, runs_for, start_worker, wait_for
from tests.integration.standins import StacApi, StandIn
from tests.stac_shapes import s1_item

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _scene(tmp: Path, name: str, k: int, size: int) -> dict:
    path = tmp / f"{name}.tif"
    synthetic_s1(path, size=size, seed=k, origin=(200_000.0 + 20_000 * k, 4_600_000.0))
    return item_from_geotiff(path, scene_id=f"{name}-{uuid.uuid4().hex[:6]}",
                             sensing_time=datetime.now(timezone.utc) - timedelta(minutes=5))


def _publish(s, items_by_partition: list[tuple[int, dict | bytes, str]]) -> None:
    """Publish to explicit partitions (scene id as key), so both consumers get work."""
    p = kafka_io.producer(s)
    for part, value, key in items_by_partition:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        p.produce(s.scenes_topic, key=key.encode(), value=raw, partition=part)
    assert p.flush(30) == 0


_ADMINS: dict[str, AdminClient] = {}


def _assignment(s) -> list[set[int]]:
    """Partitions of the scenes topic per group member ([] while the group coordinator is not ready)."""
    admin = _ADMINS.setdefault(s.bootstrap, AdminClient(client_config(s)))
    try:
        desc = admin.describe_consumer_groups([s.consumer_group])[s.consumer_group].result(timeout=10)
    except KafkaException:
        return []
    return [{tp.partition for tp in m.assignment.topic_partitions if tp.topic == s.scenes_topic}
            for m in desc.members]


def _outcomes(log: Path) -> dict[str, list[str]]:
    """scene id -> outcomes ('processed' / 'duplicate') logged by one worker."""
    out: dict[str, list[str]] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.search(r"scene (\S+) (processed|duplicate): ", line)
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


def _remote_s1_reference(tmp: Path, server: StandIn, stac: StacApi) -> tuple[dict, str]:
    """An S1 RTC-style Item (linear sigma0 COGs served over HTTP) and the reference event naming it."""
    db = tmp / "ref_db.tif"
    synthetic_s1(db, size=256, seed=99, origin=(150_000.0, 4_600_000.0))
    with rasterio.open(db) as src:
        profile = src.profile | {"count": 1, "driver": "GTiff"}
        for i, pol in enumerate(("vv", "vh"), start=1):
            plain = tmp / f"ref_{pol}_plain.tif"
            with rasterio.open(plain, "w", **profile) as dst:
                dst.write((10 ** (src.read(i) / 10)).astype(np.float32), 1)
            rasterio.shutil.copy(plain, tmp / "files" / f"ref_{pol}.tif", driver="COG", BLOCKSIZE="256")
    item_id = f"S1A_IW_RTC_REF_{uuid.uuid4().hex[:6]}"
    files = f"{server.url}/files"
    item = s1_item(item_id, f"{files}/ref_vv.tif", f"{files}/ref_vh.tif")
    item["geometry"] = item_from_geotiff(db, scene_id="x")["geometry"]
    item["properties"]["datetime"] = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    stac.add(item)
    return {"terrawatch:resolve": {"item": stac.item_url(item_id)}}, item_id


def test_two_consumers_share_partitions_and_survive_a_kill(stack, tmp_path):
    s = isolated(stack.settings, "consumers", tile_size=128, tile_overlap=16, max_in_flight_tiles=4, triton_batch=2)
    assert s.topic_partitions == PARTITIONS
    s2 = s.model_copy(update={"metrics_port": s.metrics_port + 1})
    (tmp_path / "files").mkdir()
    log1, log2 = tmp_path / "worker1.log", tmp_path / "worker2.log"
    with StandIn(tmp_path / "files") as server:
        server.serve_files()
        stac = StacApi(server)
        ref_event, ref_id = _remote_s1_reference(tmp_path, server, stac)
        w1, w2 = start_worker(s, log1), start_worker(s2, log2)
        try:
            wait_for(lambda: sorted(len(a) for a in _assignment(s)) == [2, 2], 120, "two members, 2 partitions each")

            # Phase 1: 8 small scenes, 2 per partition (one of them a STAC reference resolved by the worker).
            first = [_scene(tmp_path, f"p1s{k}", k, 256) for k in range(7)]
            batch1 = [(k % PARTITIONS, it, it["id"]) for k, it in enumerate(first)]
            batch1.append((7 % PARTITIONS, ref_event, ref_id))
            _publish(s, batch1)
            ids1 = [it["id"] for it in first] + [ref_id]
            wait_for(lambda: all(runs_for(s, i) for i in ids1), 240, "phase 1 scenes")
            time.sleep(2)  # let the last log lines land
            o1, o2 = _outcomes(log1), _outcomes(log2)
            part_of = {key: part for part, _, key in batch1}
            parts1 = {part_of[i] for i in ids1 if "processed" in o1.get(i, [])}
            parts2 = {part_of[i] for i in ids1 if "processed" in o2.get(i, [])}
            assert len(parts1) == len(parts2) == 2 and not parts1 & parts2, (parts1, parts2)
            assert server.requests("GET", "/files/ref_vv.tif"), "the worker read the referenced COG over HTTP"

            # Phase 2: 8 larger scenes; SIGKILL worker 2 while it tiles one of them; then 4 more scenes.
            second = [_scene(tmp_path, f"p2s{k}", 10 + k, 768) for k in range(8)]
            _publish(s, [(k % PARTITIONS, it, it["id"]) for k, it in enumerate(second)])
            victim_ids = {it["id"] for k, it in enumerate(second) if k % PARTITIONS in parts2}
            wait_for(lambda: any(f"scene {i}: tiling" in log2.read_text(errors="replace") for i in victim_ids),
                     240, "worker 2 tiling a phase-2 scene", interval=0.2)
            time.sleep(0.5)
            os.killpg(w2.pid, signal.SIGKILL)
            w2.wait(30)
            killed_at = time.monotonic()
            third = [_scene(tmp_path, f"p3s{k}", 30 + k, 256) for k in range(4)]
            _publish(s, [(k % PARTITIONS, it, it["id"]) for k, it in enumerate(third)])
            ids23 = [it["id"] for it in second + third]
            wait_for(lambda: all(runs_for(s, i) for i in ids23), 420, "phase 2+3 scenes after the kill")
            takeover_s = time.monotonic() - killed_at
            wait_for(lambda: _assignment(s) == [{0, 1, 2, 3}], 30, "the survivor owning every partition")

            # Replay a processed scene: it goes through Kafka again and changes nothing.
            replayed = first[0]["id"]
            before = count(s, t.detections, t.detections.c.scene_id == replayed)
            out = replay(s, replayed)
            assert out["existing_runs"] and out["published"] == replayed
            wait_for(lambda: "duplicate" in _outcomes(log1).get(replayed, []), 60, "replayed scene seen again")
            assert count(s, t.detections, t.detections.c.scene_id == replayed) == before
        finally:
            for w in (w1, w2):
                if w.poll() is None:
                    w.terminate()
                    w.wait(60)

    o1, o2 = _outcomes(log1), _outcomes(log2)
    print(f"takeover + remaining scenes done {takeover_s:.0f} s after the kill; "
          f"worker1 processed {sum('processed' in v for v in o1.values())}, "
          f"worker2 {sum('processed' in v for v in o2.values())}")
    all_ids = ids1 + ids23
    for i in all_ids:
        runs = runs_for(s, i)
        assert len(runs) == 1, f"{i}: {len(runs)} runs"
        assert count(s, t.detections, t.detections.c.scene_id == i) == runs[0]["detections"], f"{i}: duplicates"
        assert (o1.get(i, []) + o2.get(i, [])).count("processed") <= 1, f"{i} processed twice"
    # the survivor took over worker 2's partitions: scenes published there after the kill are its work
    after_kill = [it["id"] for k, it in enumerate(third) if k % PARTITIONS in parts2]
    assert after_kill and all("processed" in o1.get(i, []) for i in after_kill)
    # the scene worker 2 was tiling when killed was finished by worker 1
    cut = [i for i in victim_ids if "processed" not in o2.get(i, [])]
    assert cut and all("processed" in o1.get(i, []) for i in cut)
    assert read_dlq(s, expect=1, timeout=3) == []
