"""``make demo``: the main job end to end on the bundled sample scenes and the local stack."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.settings import Settings
from terrawatch_dev.stack.process import ManagedProcess
from terrawatch.store.outbox import OutboxStatus


def start_worker(settings: Settings, extra_env: dict[str, str]) -> ManagedProcess:
    import os

    proc = ManagedProcess("worker", settings.state_dir)
    if proc.pid() is None:
        env = {**os.environ, **extra_env}
        proc.start([sys.executable, "-m", "terrawatch.cli", "run"], env=env)
    return proc


def local_env(settings: Settings) -> dict[str, str]:
    """Environment shared by the local stack's worker and API: both may reach webhook receivers on this
    host (the SSRF guard refuses private targets otherwise; subscribing goes through the API's check,
    delivering through the worker's)."""
    return {"TERRAWATCH_WEBHOOK_ALLOW_PRIVATE": settings.webhook_allow_private or "127.0.0.1"}


def _dlq_high(settings: Settings) -> int:
    from terrawatch.ingest.dlq import high_watermarks

    return high_watermarks(settings)


NO_MINING_IMAGERY = ("no real Sentinel-2 imagery inside the mining model's area of applicability (Amazon basin, "
                     "models/mining_s2/aoa.geojson) is available offline: mining was not inferred on any demo "
                     "scene, so the demo shows no mining alert rather than an invented one")


SYNTHETIC_ORIGIN = (500_000.0, 4_650_000.0)  # upper-left corner of the synthetic scenes (EPSG:32630, m)


def demo_items(samples: Path, run_id: str, origin: tuple[float, float] = SYNTHETIC_ORIGIN,
               ) -> tuple[list[dict], list[dict]]:
    """The demo's scenes: (published first, published once the real S2 chip is stored).

    First: a synthetic S1 scene (sensed 10 min ago) and the real Sen1Floods11 Spain chips, S1 and S2 -
    two sensors, two acquisitions days apart, so a flood alert they share is confirmed by an independent
    observation. Then two **derived** copies of the S2 chip for the deforestation model only (their
    mining/flood results would merely repeat the S2 chip's pixels, and a re-dated copy is no independent
    observation): the chip unchanged 5 days later (a no-change check: no forest-loss alert) and the chip
    with one forest block cleared 10 days later (real spectra, a known answer).
    """
    from terrawatch.ingest.stac_items import item_from_geotiff
    from terrawatch_dev.samples import SPAIN_S1, SPAIN_S2, spain_sensing_time, synthetic_clearing, synthetic_s1

    synthetic_s1(samples / "synthetic_s1.tif", origin=origin)
    first = [item_from_geotiff(samples / "synthetic_s1.tif", scene_id=f"synthetic-s1-{run_id}",
                               sensing_time=datetime.now(timezone.utc) - timedelta(minutes=10))]
    if not SPAIN_S1.exists():
        return first, []
    first.append(item_from_geotiff(SPAIN_S1, scene_id=f"sen1floods11-spain-7370579-{run_id}",
                                   sensing_time=spain_sensing_time("s1")))
    first.append(item_from_geotiff(SPAIN_S2, scene_id=f"sen1floods11-spain-7370579-s2-{run_id}",
                                   sensing_time=spain_sensing_time("s2")))
    synthetic_clearing(SPAIN_S2, samples / "spain_s2_clearing.tif")
    later = []
    for name, path, days, what in (
            ("spain-s2-unchanged", SPAIN_S2, 5, "the Spain S2 chip unchanged, re-dated: no forest loss"),
            ("spain-s2-clearing", samples / "spain_s2_clearing.tif", 10,
             "the Spain S2 chip with one forest block cleared (real spectra), re-dated")):
        item = item_from_geotiff(path, scene_id=f"{name}-{run_id}", sensing_time=spain_sensing_time("s2") + timedelta(days=days))
        item["properties"]["terrawatch:hazards"] = ["deforestation"]
        item["properties"]["description"] = f"derived demo scene: {what}"
        later.append(item)
    return first, later


HISTORY_DAYS = 60  # the earlier observation of the synthetic place: more than the flood rule's merge window before
SPAIN_REFERENCE_UNKNOWN = (
    "no earlier observation of the Spain chip's place and no reference-water layer are available offline: its "
    "flood alerts say reference_water unknown (at most high, never confirmed by repetition) and may include the "
    "Segura river's permanent water; load a reference-water layer and run terrawatch reprocess to remove it")


def history_items(samples: Path, run_id: str, origin: tuple[float, float] = SYNTHETIC_ORIGIN) -> list[dict]:
    """An earlier observation of the synthetic scene's place (same river and lake, other speckle), sensed
    :data:`HISTORY_DAYS` days before it: processed first, its observed water becomes the place's reference
    water (the history, docs/alerting.md), so the live scene's river and lake are not a flood. Its own alert
    (nothing was known of the place then) is withdrawn by re-processing it once the live scene is stored."""
    from terrawatch.ingest.stac_items import item_from_geotiff
    from terrawatch_dev.samples import synthetic_s1

    synthetic_s1(samples / "synthetic_s1_earlier.tif", seed=1, origin=origin)
    item = item_from_geotiff(samples / "synthetic_s1_earlier.tif", scene_id=f"synthetic-s1-earlier-{run_id}",
                             sensing_time=datetime.now(timezone.utc) - timedelta(days=HISTORY_DAYS, minutes=10))
    item["properties"]["description"] = ("an earlier observation of the synthetic scene's place (same river and "
                                         "lake): its water becomes the place's reference water")
    return [item]


def permanent_water(samples: Path):
    """The permanent water (river and lake) of the synthetic scene :func:`demo_items` wrote, lon/lat, from the
    generator (the known answer)."""
    from terrawatch_dev.samples import synthetic_water_lonlat, synthetic_water_mask

    return synthetic_water_lonlat(samples / "synthetic_s1.tif", synthetic_water_mask(512))


def reprocess_history(settings: Settings, engine, producer, scene_ids: list[str]) -> str:
    """Re-process the earlier observation(s) (service/reprocess.py, audited as ``scene.reprocess`` by
    ``demo``); returns the run tag."""
    from terrawatch.service.reprocess import reprocess
    from terrawatch.store.audit import record

    out = reprocess(settings, engine, producer, scene_ids=scene_ids,
                    audit=lambda conn, target, details: record(conn, "demo", "operator", "scene.reprocess",
                                                               target, details))
    return out["run"]


def truth_report(engine, settings: Settings, ids: list[str], permanent=None) -> dict:
    """What a user would check in the demo's database: per hazard, scenes/pixels outside the model's AoA;
    mining alerts outside the mining AoA; ``illegal`` without a named feature or coverage; ``confirmed``
    without two independent acquisitions; scenes by status; open flood alerts over ``permanent`` water
    (lon/lat, the synthetic scene's river and lake), alerts withdrawn by re-processing, and where each open
    flood alert's reference water came from."""
    from terrawatch.domain.aoa import load_aoa
    from terrawatch.domain.hazards import REGISTRY
    from terrawatch.domain.legality import has_evidence
    from terrawatch.store import scenes as scene_store

    scenes, alerts = scene_store.scenes_and_alerts(engine, ids)
    outside: dict[str, dict] = {}
    inferred: dict[str, int] = {}
    for sc in scenes:
        for hazard, st in (sc["hazard_status"] or {}).items():
            o = outside.setdefault(hazard, {"scenes": 0, "pixels": 0})
            o["scenes"] += st.get("status") == "outside_aoa"
            o["pixels"] += int(st.get("pixels_outside_aoa", 0))
            inferred[hazard] = inferred.get(hazard, 0) + (st.get("status") == "processed")
    mining_aoa = load_aoa(settings.aoa_overrides.get("mining_s2", settings.model_repository / next(
        h.aoa for h in REGISTRY if h.hazard == "mining")))
    confirmed = [a for a in alerts if a.status == "confirmed"]
    report = {
        "scenes_by_status": {s: sum(1 for x in scenes if x["status"] == s) for s in sorted({x["status"] for x in scenes})},
        "outside_aoa": outside,
        "scenes_inferred": inferred,
        "alerts_by_hazard": {h: sum(1 for a in alerts if a.hazard == h) for h in sorted({a.hazard for a in alerts})},
        "mining_alerts_outside_aoa": sum(1 for a in alerts if a.hazard == "mining" and not mining_aoa.covers(a.geom)),
        "illegal_without_evidence": sum(1 for a in alerts if not has_evidence(a.context.get("legality") or {})),
        "confirmed": [{"id": str(a.id), "hazard": a.hazard, "acquisitions": [
            f"{x['platform']} {x['sensing_time']}" for x in a.context.get("acquisitions", [])]} for a in confirmed],
        "confirmed_without_independent_acquisition": sum(
            1 for a in confirmed if len(a.context.get("acquisitions", [])) < 2),
        "notes": [],
    }
    if not inferred.get("mining"):
        report["notes"].append(NO_MINING_IMAGERY)
    from terrawatch.store.reprocess_scenes import alerts_naming

    floods = alerts_naming(engine, ids, "flood")
    live = [a for a in floods if a["status"] not in ("false_positive", "resolved")]
    report["flood_alerts_over_permanent_water"] = sorted(
        str(a["id"]) for a in live if permanent is not None and a["geom"].intersects(permanent))
    report["withdrawn_by_reprocessing"] = sorted(
        str(a["id"]) for a in floods if (a["context"] or {}).get("withdrawn"))
    sources = [(a["context"] or {}).get("reference_water", "unknown") for a in live]
    report["flood_reference_water"] = {k: sources.count(k) for k in sorted(set(sources))}
    report["unknown_reference_highest_or_confirmed"] = sum(
        1 for a in live if (a["context"] or {}).get("reference_water", "unknown") == "unknown"
        and (a["confidence"] == "highest" or a["status"] == "confirmed"))
    if any(x == "unknown" for x in sources):
        report["notes"].append(SPAIN_REFERENCE_UNKNOWN)
    return report


def run_demo(settings: Settings, timeout_s: float = 900) -> dict:
    from terrawatch.ingest import kafka_io
    from terrawatch_dev.samples import SPAIN_S1
    from terrawatch.service import subscriptions
    from terrawatch_dev.stack import Stack
    from terrawatch.store import scenes as scene_store
    from terrawatch.store import subscribers as subscriber_store
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
    for sid in subscriber_store.active_ids_with_url_like(engine, "%/terrawatch-demo/%"):
        subscriptions.deactivate(engine, sid, "demo")
    receivers: dict[str, WebhookReceiver] = {}
    sub_ids = []
    for fmt in ("geojson", "cap"):
        rx = WebhookReceiver(None, path=f"/terrawatch-demo/{fmt}")
        sub, secret = subscriptions.create(engine, local, subscriptions.NewSubscription(
            url=rx.url, hazards=["flood", "deforestation", "mining"], min_confidence="low", format=fmt,
            # the Spain chips (2019) are a backfill: CAP urgency Past, no expires, backfill true in GeoJSON
            include_backfills=True, description=f"make demo ({fmt})"), actor="demo")
        rx.use_secret(secret)
        receivers[fmt] = rx
        sub_ids.append(uuid.UUID(sub["id"]))
        log(f"webhook receiver ({fmt}) verifying signatures at {rx.url}")

    items, later = demo_items(settings.state_dir / "samples", run_id)
    if not later:
        log(f"shared data not found at {SPAIN_S1}: running on the synthetic scene only")
    dlq_before = _dlq_high(settings)
    worker = start_worker(settings, local_env(settings))
    log(f"pipeline worker running (pid {worker.pid()}, log {worker.log_file})")

    p = kafka_io.producer(settings)
    finished = ("processed", "outside_aoa", "failed")
    deadline = time.monotonic() + timeout_s
    # First an earlier observation of the synthetic place: its water is the place's reference water (history)
    history = history_items(settings.state_dir / "samples", run_id)
    kafka_io.publish_items(p, settings, history)
    log(f"published {history[0]['id']} ({history[0]['properties']['description']})")
    while time.monotonic() < deadline and any(
            scene_store.progress(engine, [h["id"]], sub_ids)["status"].get(h["id"]) not in finished for h in history):
        time.sleep(2)
    for item in items:
        kafka_io.publish_scene(p, settings, item)
    p.produce(settings.scenes_topic, key=b"broken", value=b'{"type": "Feature", "id": "not-a-scene"')
    p.flush(30)
    log(f"published {len(items)} scenes and 1 malformed event to {settings.scenes_topic}")

    ids = [i["id"] for i in history + items]
    summary: dict = {}
    rerun: str | None = None  # the re-processing run of the earlier observation
    while time.monotonic() < deadline:
        prog = scene_store.progress(engine, ids, sub_ids)
        status, done, alert_ids = prog["status"], prog["runs"], prog["alert_ids"]
        deliveries, n_det, lat = prog["deliveries"], prog["detections"], prog["latency_s"]
        if later and status.get(items[-1]["id"]) in finished:
            for item in later:  # the deforestation model compares them with the stored S2 chip
                kafka_io.publish_scene(p, settings, item)
                ids.append(item["id"])
                log(f"published {item['id']} ({item['properties']['description']})")
            p.flush(30)
            later = []
            continue
        dlq = _dlq_high(settings) - dlq_before
        scenes_done = sum(1 for i in ids if status.get(i) in finished)
        if not later and scenes_done == len(ids) and rerun is None:
            # the live scene is stored: re-process the earlier one, whose river and lake are history now
            rerun = reprocess_history(settings, engine, p, [h["id"] for h in history])
            log(f"re-processing {history[0]['id']} as run {rerun}: the live scene's water is its history now")
            continue
        rerun_done = rerun is not None and all(any(r["scene_id"] == h["id"] and r["model_version"].endswith(
            f"#{rerun}") for r in done) for h in history)
        if (not later and rerun_done and scenes_done == len(ids) and dlq >= 1
                and deliveries.get(OutboxStatus.PENDING, 0) == 0):
            summary = {
                "scenes_processed": scenes_done,
                # hazards of one scene share its tiles: count each scene's tiles once
                "tiles": int(sum({r["scene_id"]: r["tiles"] for r in done}.values())),
                "detections": int(n_det),
                "alerts": len(alert_ids),
                "webhooks_delivered": int(deliveries.get(OutboxStatus.DELIVERED, 0)),
                "webhooks_verified": sum(len(rx.verified_ids) for rx in receivers.values()),
                "webhooks_by_format": {fmt: rx.by_format[fmt] for fmt, rx in receivers.items()},
                "dlq": int(dlq),
                "p95_sensing_to_alert_s": round(float(np.percentile(lat, 95)), 1) if lat else None,
                "runs": sorted(f"{r['scene_id']}:{r['hazard']}:{r['detections']}" for r in done),
                "products": sorted(str(p) for i in ids for p in (settings.products_dir / i).glob("*.tif")),
                **truth_report(engine, settings, ids, permanent_water(settings.state_dir / "samples")),
            }
            break
        time.sleep(2)
    for rx in receivers.values():
        rx.close()
    # The receivers are gone: the demo's subscriptions must not queue deliveries to closed ports.
    for sid in sub_ids:
        subscriptions.deactivate(engine, sid, "demo")
    log(f"demo receivers stopped; their {len(sub_ids)} subscriptions deactivated")
    if not summary:
        raise TimeoutError(f"demo did not finish within {timeout_s}s; see {worker.log_file}")
    from terrawatch_dev.api_launch import start_api  # the API stays up with the stack (issue 6)

    from terrawatch.service import dlq as dlq_svc

    summary["dlq_pending"] = dlq_svc.depth(settings, engine)  # = terrawatch_dlq_depth = /ops/status dlq_size
    summary.update(start_api(settings, extra_env=local_env(settings)))
    d = stack.describe()
    log("done. The stack keeps running:")
    log(f"  metrics:  curl http://127.0.0.1:{settings.metrics_port}/metrics")
    log(f"  database: psql {d['postgres'].replace('+psycopg', '')} -c 'select * from alerts'")
    log(f"  triton:   {d['triton_metrics']}")
    log(f"  api:      {summary['map_url']}  ogrinfo OAPIF:{summary['ogc_url']}  "
        "(ops actions need a key: .venv/bin/terrawatch keys create --role operator --name me)")
    log("  status:   .venv/bin/terrawatch stack status    stop: make stop  (terrawatch stack down)")
    log("note: p95_sensing_to_alert_s includes the Spain chip, sensed in 2019 (a backfill, not live)")
    for note in summary.get("notes", []):
        log(f"note: {note}")
    return summary
