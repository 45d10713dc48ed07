"""``make demo``: the main job end to end on the bundled sample scenes and the local stack."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import func, select

from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.settings import Settings
from terrawatch.stack.process import ManagedProcess


def start_worker(settings: Settings, extra_env: dict[str, str]) -> ManagedProcess:
    import os

    proc = ManagedProcess("worker", settings.state_dir)
    if proc.pid() is None:
        env = {**os.environ, **extra_env}
        proc.start([sys.executable, "-m", "terrawatch.cli", "run"], env=env)
    return proc


def _dlq_high(settings: Settings) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": f"tw-probe-{uuid.uuid4().hex}"})
    try:
        return c.get_watermark_offsets(TopicPartition(settings.dlq_topic, 0), timeout=10, cached=False)[1]
    finally:
        c.close()


def run_demo(settings: Settings, timeout_s: float = 900) -> dict:
    from terrawatch.ingest import kafka_io
    from terrawatch.ingest.stac_items import item_from_geotiff
    from terrawatch.samples import SPAIN_S1, SPAIN_S2, spain_sensing_time, synthetic_clearing, synthetic_s1
    from terrawatch.service import subscriptions
    from terrawatch.stack import Stack
    from terrawatch.store import tables as t
    from terrawatch.store.uow import engine_for

    log = lambda m: print(f"[demo] {m}", flush=True)  # noqa: E731
    log("starting the local stack (Kafka, PostGIS, Triton, Ray) ...")
    stack = Stack(settings)
    stack.up()
    engine = engine_for(settings.db_url)
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")

    # Two subscribers registered through the service layer the API uses (secret generated server-side,
    # SSRF-checked URL): one wants GeoJSON, one CAP 1.2. Earlier demo subscribers are deactivated.
    local = settings.model_copy(update={"webhook_allow_private": "127.0.0.1"})
    with engine.connect() as conn:
        old = [r[0] for r in conn.execute(select(t.subscribers.c.id).where(
            t.subscribers.c.url.like("%/terrawatch-demo/%"), t.subscribers.c.active.is_(True)))]
    for sid in old:
        subscriptions.deactivate(engine, sid, "demo")
    receivers: dict[str, WebhookReceiver] = {}
    sub_ids = []
    for fmt in ("geojson", "cap"):
        rx = WebhookReceiver(None, path=f"/terrawatch-demo/{fmt}")
        sub, secret = subscriptions.create(engine, local, subscriptions.NewSubscription(
            url=rx.url, hazards=["flood", "deforestation", "mining"], min_confidence="low", format=fmt,
            description=f"make demo ({fmt})"), actor="demo")
        rx.use_secret(secret)
        receivers[fmt] = rx
        sub_ids.append(uuid.UUID(sub["id"]))
        log(f"webhook receiver ({fmt}) verifying signatures at {rx.url}")

    samples = settings.state_dir / "samples"
    synthetic_s1(samples / "synthetic_s1.tif")
    items = [item_from_geotiff(samples / "synthetic_s1.tif", scene_id=f"synthetic-s1-{run_id}",
                               sensing_time=datetime.now(timezone.utc) - timedelta(minutes=10))]
    later = None
    if SPAIN_S1.exists():
        items.append(item_from_geotiff(SPAIN_S1, scene_id=f"sen1floods11-spain-7370579-{run_id}",
                                       sensing_time=spain_sensing_time("s1")))
        items.append(item_from_geotiff(SPAIN_S2, scene_id=f"sen1floods11-spain-7370579-s2-{run_id}",
                                       sensing_time=spain_sensing_time("s2")))
        # A later S2 scene of the same footprint with one forest block cleared (real spectra): the
        # deforestation model compares it with the earlier scene, which must be stored first.
        synthetic_clearing(SPAIN_S2, samples / "spain_s2_clearing.tif")
        later = item_from_geotiff(samples / "spain_s2_clearing.tif", scene_id=f"spain-s2-clearing-{run_id}",
                                  sensing_time=spain_sensing_time("s2") + timedelta(days=10))
    else:
        log(f"shared data not found at {SPAIN_S1}: running on the synthetic scene only")
    dlq_before = _dlq_high(settings)
    worker = start_worker(settings, {"TERRAWATCH_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1"})
    log(f"pipeline worker running (pid {worker.pid()}, log {worker.log_file})")

    p = kafka_io.producer(settings)
    for item in items:
        kafka_io.publish_scene(p, settings, item)
    p.produce(settings.scenes_topic, key=b"broken", value=b'{"type": "Feature", "id": "not-a-scene"')
    p.flush(30)
    log(f"published {len(items)} scenes and 1 malformed event to {settings.scenes_topic}")

    ids = [i["id"] for i in items]
    deadline = time.monotonic() + timeout_s
    summary: dict = {}
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(select(t.scene_runs).where(t.scene_runs.c.scene_id.in_(ids))).mappings().all()
            alert_ids = [r[0] for r in conn.execute(
                select(t.detections.c.alert_id).distinct()
                .where(t.detections.c.scene_id.in_(ids), t.detections.c.alert_id.is_not(None)))]
            outbox = conn.execute(select(t.webhook_outbox.c.status, func.count())
                                  .where(t.webhook_outbox.c.alert_id.in_(alert_ids),
                                         t.webhook_outbox.c.subscriber_id.in_(sub_ids))
                                  .group_by(t.webhook_outbox.c.status)).all()
            n_det = conn.execute(select(func.count()).select_from(t.detections)
                                 .where(t.detections.c.scene_id.in_(ids))).scalar_one()
            lat = [float(r[0]) for r in conn.execute(
                select(func.extract("epoch", t.alerts.c.created_at - t.alerts.c.last_sensed))
                .where(t.alerts.c.id.in_(alert_ids)))]
        status = dict(outbox)
        if later is not None and any(r["scene_id"] == items[-1]["id"] for r in done):
            kafka_io.publish_scene(p, settings, later)
            p.flush(30)
            ids.append(later["id"])
            log(f"published {later['id']} (forest cleared since {items[-1]['id']})")
            later = None
            continue
        dlq = _dlq_high(settings) - dlq_before
        scenes_done = len({r["scene_id"] for r in done})
        if later is None and scenes_done == len(ids) and dlq >= 1 and status.get("pending", 0) == 0:
            summary = {
                "scenes_processed": scenes_done,
                # hazards of one scene share its tiles: count each scene's tiles once
                "tiles": int(sum({r["scene_id"]: r["tiles"] for r in done}.values())),
                "detections": int(n_det),
                "alerts": len(alert_ids),
                "webhooks_delivered": int(status.get("delivered", 0)),
                "webhooks_verified": sum(len(rx.verified_ids) for rx in receivers.values()),
                "webhooks_by_format": {fmt: rx.by_format[fmt] for fmt, rx in receivers.items()},
                "dlq": int(dlq),
                "p95_sensing_to_alert_s": round(float(np.percentile(lat, 95)), 1) if lat else None,
                "runs": sorted(f"{r['scene_id']}:{r['hazard']}:{r['detections']}" for r in done),
                "products": sorted(str(p) for i in ids for p in (settings.products_dir / i).glob("*.tif")),
            }
            break
        time.sleep(2)
    for rx in receivers.values():
        rx.close()
    if not summary:
        raise TimeoutError(f"demo did not finish within {timeout_s}s; see {worker.log_file}")
    from terrawatch.api.launch import start_api  # the API stays up with the stack (issue 6)

    summary.update(start_api(settings))
    d = stack.describe()
    log("done. The stack keeps running:")
    log(f"  metrics:  curl http://127.0.0.1:{settings.metrics_port}/metrics")
    log(f"  database: psql {d['postgres'].replace('+psycopg', '')} -c 'select * from alerts'")
    log(f"  triton:   {d['triton_metrics']}")
    log(f"  api:      {summary['map_url']}  ogrinfo OAPIF:{summary['ogc_url']}  "
        "(ops actions need a key: .venv/bin/terrawatch keys create --role operator --name me)")
    log("  status:   .venv/bin/terrawatch stack status    stop: make stop  (terrawatch stack down)")
    log("note: p95_sensing_to_alert_s includes the Spain chip, sensed in 2019 (a backfill, not live)")
    return summary
