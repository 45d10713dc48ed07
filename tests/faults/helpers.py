"""Fault-suite helpers: scenes at unique places, a subscribed receiver, and the exactly-once audit.

The audit reads PostGIS and the webhook receiver after a fault and counts, per scene:
lost = a scene without its run, an admitted detection cluster without an alert, or an alert
message the receiver never verified; duplicated = detections or alert events written twice for
one scene, or more distinct webhook-ids than alert messages (receivers deduplicate by webhook-id,
so a redelivered id is not a duplicate).
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psutil
import rasterio
import shapely
from geoalchemy2.shape import from_shape, to_shape
from rasterio.transform import from_origin
from shapely.geometry import shape
from sqlalchemy import select, text

from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.domain.alerts import admits
from terrawatch.domain.polygons import as_multipolygon, cluster
from terrawatch.ingest import kafka_io
from terrawatch.ingest.stac_items import item_from_geotiff
from terrawatch_dev.samples import synthetic_s1
from terrawatch.service.alerts import policies
from terrawatch.settings import Settings
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.integration.helpers import runs_for, wait_for

# Scenes of this suite sit in UTM 30N far from the integration tests' fixed places (northing
# 4.3-4.5 Mm); a random per-session offset keeps reruns on a kept state dir from merging alerts.
_RNG = random.Random()
_NEXT = [0]
_BASE = (_RNG.randrange(180_000, 420_000, 1000), _RNG.randrange(5_200_000, 6_600_000, 1000))


def next_origin() -> tuple[float, float]:
    """A fresh UTM 30N (EPSG:32630) top-left corner (m), >= 25 km from every other one this session."""
    i = _NEXT[0]
    _NEXT[0] += 1
    return float(_BASE[0] + (i % 12) * 25_000), float(_BASE[1] + (i // 12) * 25_000)


def sensing_now() -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=5)


def river_scene(tmp_path: Path, name: str, size: int = 512) -> dict:
    """The project's synthetic S1 scene (a river and a lake, VV/VH dB) as a STAC Item at a fresh place."""
    path = tmp_path / f"{name}.tif"
    synthetic_s1(path, size=size, origin=next_origin())
    return item_from_geotiff(path, scene_id=f"{name}-{uuid.uuid4().hex[:6]}", sensing_time=sensing_now())


def blobs_scene(tmp_path: Path, name: str, size: int = 768, spacing: int = 16, blob: int = 6) -> dict:
    """An S1 scene with a lattice of small water squares: (size/spacing)^2 detections, so storing one
    scene is thousands of INSERTs (a long write transaction to interrupt).

    The land between squares is 10 px wide: with 6 px (spacing 12) the served flood_s1 region growing
    (pixels >= 0.2 joined to seeds >= 0.5) links the lattice into one detection per tile.
    """
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    water = ((yy % spacing) < blob) & ((xx % spacing) < blob)
    look = 4.4
    speckle = rng.gamma(look, 1 / look, size=(2, size, size))
    vv = np.where(water, 10 ** (-22 / 10), 10 ** (-8 / 10)) * speckle[0]
    vh = np.where(water, 10 ** (-28 / 10), 10 ** (-15 / 10)) * speckle[1]
    data = (10 * np.log10(np.stack([vv, vh]))).astype(np.float32)
    path = tmp_path / f"{name}.tif"
    x0, y0 = next_origin()
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=2, dtype="float32",
                       crs="EPSG:32630", transform=from_origin(x0, y0, 10, 10), nodata=np.nan, tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate") as ds:
        ds.write(data)
    return item_from_geotiff(path, scene_id=f"{name}-{uuid.uuid4().hex[:6]}", sensing_time=sensing_now())


@dataclass
class Subscriber:
    id: uuid.UUID
    rx: WebhookReceiver

    def close(self) -> None:
        self.rx.close()


def subscribe(s: Settings, items: list[dict], **receiver_kw) -> Subscriber:
    """A verifying receiver subscribed to floods over the union of ``items``' footprints."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    rx = WebhookReceiver(secret, path=f"/faults/{uuid.uuid4().hex[:8]}", **receiver_kw)
    aoi = as_multipolygon(shapely.union_all([shape(i["geometry"]).buffer(0.01) for i in items]))
    sid = uuid.uuid4()
    with engine_for(s.db_url).begin() as c:
        c.execute(t.subscribers.insert().values(
            id=sid, url=rx.url, secret=secret, hazards=["flood"], min_confidence="low", format="geojson",
            aoi=from_shape(aoi, srid=4326), include_backfills=True))  # the real chips were sensed in 2019
    return Subscriber(sid, rx)


@dataclass
class Audit:
    scenes: int
    lost: int = 0
    duplicated: int = 0
    alerts: int = 0
    webhooks: int = 0
    redelivered: int = 0  # attempts the receiver saw again under an id it already had (deduplicated)
    problems: list[str] = field(default_factory=list)

    def lose(self, what: str, n: int = 1) -> None:
        self.lost += n
        self.problems.append(f"lost: {what}")

    def duplicate(self, what: str, n: int = 1) -> None:
        self.duplicated += n
        self.problems.append(f"duplicated: {what}")


def _scene_expectation(s: Settings, scene_id: str) -> dict:
    """Stored facts of one scene: run, detections, admitted clusters, alert events and webhook rows."""
    policy = policies(s)["flood"]
    with engine_for(s.db_url).connect() as c:
        runs = c.execute(select(t.scene_runs).where(t.scene_runs.c.scene_id == scene_id,
                                                    t.scene_runs.c.hazard == "flood")).mappings().all()
        dets = c.execute(select(t.detections.c.geom, t.detections.c.area_ha, t.detections.c.likelihood,
                                t.detections.c.alert_id)
                         .where(t.detections.c.scene_id == scene_id, t.detections.c.hazard == "flood")).all()
        events = c.execute(select(t.alert_events.c.alert_id, t.alert_events.c.alert_version)
                           .where(t.alert_events.c.actor == "pipeline",
                                  t.alert_events.c.reason.in_([f"first detection in scene {scene_id}",
                                                               f"scene {scene_id} observed the alert area again"]))
                           ).all()
    geoms = [to_shape(d.geom) for d in dets]
    admitted = 0
    for group in cluster(geoms, policy.merge_distance_m):
        area = sum(dets[i].area_ha for i in group)
        lk = sum(dets[i].likelihood * dets[i].area_ha for i in group) / max(area, 1e-9)
        admitted += admits(area, lk, policy)
    return {"runs": runs, "detections": len(dets), "admitted": admitted, "events": events,
            "alerts": {d.alert_id for d in dets if d.alert_id is not None}}


def audit(s: Settings, items: list[dict], sub: Subscriber | None) -> Audit:
    """Count lost and duplicated effects of ``items`` in PostGIS and at ``sub``'s receiver."""
    out = Audit(scenes=len(items))
    expected_messages: dict[tuple, str] = {}
    for item in items:
        sid = item["id"]
        e = _scene_expectation(s, sid)
        if not e["runs"]:
            out.lose(f"scene {sid} has no run")
            continue
        if len(e["runs"]) > 1:
            out.duplicate(f"scene {sid} has {len(e['runs'])} runs", len(e["runs"]) - 1)
        if e["detections"] != e["runs"][0]["detections"]:
            out.duplicate(f"scene {sid}: {e['detections']} detections stored, run says {e['runs'][0]['detections']}")
        per_alert: dict = {}
        for ev in e["events"]:
            per_alert[ev.alert_id] = per_alert.get(ev.alert_id, 0) + 1
        for aid, n in per_alert.items():
            if n > 1:
                out.duplicate(f"scene {sid} touched alert {aid} {n} times", n - 1)
        if len(per_alert) < e["admitted"]:
            out.lose(f"scene {sid}: {e['admitted']} admitted clusters, {len(per_alert)} alerts", e["admitted"] - len(per_alert))
        elif len(per_alert) > e["admitted"]:
            out.duplicate(f"scene {sid}: {e['admitted']} admitted clusters, {len(per_alert)} alerts",
                          len(per_alert) - e["admitted"])
        if e["alerts"] != set(per_alert):
            out.problems.append(f"scene {sid}: detections link {len(e['alerts'])} alerts, events name {len(per_alert)}")
            out.lost += len(set(per_alert) - e["alerts"]) + len(e["alerts"] - set(per_alert))
        out.alerts += len(per_alert)
        for ev in e["events"]:
            expected_messages[(ev.alert_id, ev.alert_version)] = sid
    if sub is not None and expected_messages:
        with engine_for(s.db_url).connect() as c:
            rows = c.execute(select(t.webhook_outbox.c.id, t.webhook_outbox.c.alert_id,
                                    t.webhook_outbox.c.alert_version, t.webhook_outbox.c.status)
                             .where(t.webhook_outbox.c.subscriber_id == sub.id,
                                    t.webhook_outbox.c.alert_id.in_([a for a, _ in expected_messages]))).all()
        by_key: dict[tuple, list] = {}
        for r in rows:
            by_key.setdefault((r.alert_id, r.alert_version), []).append(r)
        received = set(sub.rx.verified_ids)
        for key, sid in expected_messages.items():
            msgs = by_key.get(key, [])
            if not msgs:
                out.lose(f"no webhook queued for alert {key[0]} v{key[1]} (scene {sid})")
                continue
            got = [m for m in msgs if m.id in received]
            if not got:
                out.lose(f"webhook {msgs[0].id} for alert {key[0]} v{key[1]} never verified ({msgs[0].status})")
            if len(got) > 1:
                out.duplicate(f"{len(got)} distinct webhooks for alert {key[0]} v{key[1]}", len(got) - 1)
        ours = {r.id for r in rows}
        out.webhooks = len(received & ours)
        out.redelivered = sum(max(0, sub.rx.accepted.get(i, 0) - 1) for i in received & ours)
    return out


def wait_processed(s: Settings, items: list[dict], timeout: float, what: str = "scenes") -> None:
    wait_for(lambda: all(runs_for(s, i["id"]) for i in items), timeout, what)


def wait_webhooks(s: Settings, items: list[dict], sub: Subscriber, timeout: float) -> None:
    """Wait until every alert message of ``items`` for ``sub`` is delivered and verified, plus a settle time
    in which a duplicate would show up."""
    def done() -> bool:
        a = audit(s, items, sub)
        return a.lost == 0
    wait_for(done, timeout, "webhooks of every alert", interval=1.0)
    time.sleep(2.0)


def node_processes(node, keep) -> list[psutil.Process]:
    """The processes under one Ray node of the stack (``stack.ray``, the head, or a ``RayNode``) for which
    ``keep(process)`` is true; processes gone or closed to us while looked at are skipped."""
    pid = node.proc.pid()
    if pid is None:
        return []
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if keep(p):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def ray_workers_with_open(node, path: str) -> list[psutil.Process]:
    """Ray worker processes of one Ray node that have ``path`` open (the TileWorker actors reading that scene)."""
    return node_processes(node, lambda p: any(f.path == path for f in p.open_files()))


def tile_workers(node) -> list[psutil.Process]:
    """The TileWorker actor processes of one Ray node."""
    return node_processes(node, lambda p: p.name().startswith("ray::TileWorker"))


def crash_node(node) -> None:
    """SIGKILL a Ray node of the stack (the ``ray start`` process and every process it started: GCS or
    raylet, agents, the TileWorker actors) at once: a machine lost. ``ray stop``'s graceful drain would
    let running tiles finish first."""
    pid = node.proc.pid()
    assert pid is not None, f"the stack's {node.name} is not running"
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)
    node.stop()  # the recorded PID is gone: this only clears the pid file


def ensure_up(svc) -> None:
    """Start a service of the stack again if a fault left it down."""
    if not svc.healthy():
        svc.start()
        svc.wait()


def crash_restart_postgres(stack, down_s: float = 3.0) -> None:
    """Immediate shutdown of PostGIS (like kill -9 of the cluster: no clean rollback), ``down_s`` s down,
    started again and waited for."""
    stack.postgres.proc.stop(sig=signal.SIGQUIT, timeout=30)
    time.sleep(down_s)
    stack.postgres.start()
    stack.postgres.wait()


def writing_detections(s: Settings) -> int:
    """Sessions of the worker role inserting detections now (store transactions mid-write)."""
    # As the worker's own role: a non-superuser sees the query text of its own role's sessions only.
    with engine_for(s.worker_db_url).connect() as c:
        return int(c.execute(text(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and pid <> pg_backend_pid() and query ilike 'insert into detections%'")).scalar_one())


def publish_to_partition(s: Settings, item: dict, partition: int) -> None:
    p = kafka_io.producer(s)
    p.produce(s.scenes_topic, key=item["id"].encode(), value=json.dumps(item).encode(), partition=partition)
    assert p.flush(30) == 0


def group_assignment(s: Settings) -> dict[str, list[int]]:
    """{group.instance.id: partitions of the scenes topic} of the worker group's members now; {} while the
    group's coordinator cannot say (loading, moving: poll again)."""
    from confluent_kafka import KafkaException

    from terrawatch.ingest.topics import admin

    a = admin(s)  # referenced until the answer: a collected client never completes its futures
    try:
        desc = a.describe_consumer_groups([s.consumer_group])[s.consumer_group].result(timeout=15)
    except KafkaException:
        return {}
    return {m.group_instance_id or m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions
                                                       if tp.topic == s.scenes_topic) for m in desc.members}


def scene_path(item: dict) -> str:
    return item["assets"]["data"]["href"].removeprefix("file://")


def stop_worker(proc) -> None:
    """SIGTERM a worker subprocess (it finishes or releases its scene), SIGKILL its group after 60 s."""
    import os
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


# Small tiles, one per request, two in flight: a scene takes many Ray tasks (time to inject a fault).
SLOW_TILING = dict(tile_size=128, tile_overlap=16, max_in_flight_tiles=2, triton_batch=1)


def log_events(path: Path) -> list[dict]:
    """The JSON log lines of a worker log file (other lines, e.g. from native libraries, skipped)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
