"""Operations: health of each dependency, pipeline status, and the runbook's actions.

Functions take explicit settings/engine/producer so they run the same under
uvicorn, Ray Serve or a test. Kafka reads use throw-away consumers that never
join the pipeline's consumer group (``committed()`` and watermarks only).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from terrawatch.api.errors import InvalidInput, NotFound, Unavailable
from terrawatch.settings import REPO_ROOT, Settings
from terrawatch.store import outbox, scenes
from terrawatch.store.db import Engine, postgis_version

log = logging.getLogger(__name__)

GEOTIFF_SUFFIXES = {".tif", ".tiff"}
MAX_BACKFILL_FILES = 500


# health ----------------------------------------------------------------------

@dataclass
class Check:
    ok: bool
    ms: float
    detail: str

    def as_dict(self) -> dict:
        return {"ok": self.ok, "ms": round(self.ms, 1), "detail": self.detail}


def _timed(fn) -> Check:
    t0 = time.perf_counter()
    try:
        detail = fn()
        return Check(True, (time.perf_counter() - t0) * 1000, detail)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported with its reason
        return Check(False, (time.perf_counter() - t0) * 1000, f"{type(exc).__name__}: {exc}"[:500])


def _postgis(engine: Engine) -> str:
    return postgis_version(engine)


def _kafka(settings: Settings) -> str:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": settings.bootstrap}).list_topics(timeout=3)
    if not md.brokers:
        raise RuntimeError("no brokers")
    missing = [tp for tp in (settings.scenes_topic, settings.dlq_topic) if tp not in md.topics]
    if missing:
        raise RuntimeError(f"topics missing: {', '.join(missing)}")
    return f"{len(md.brokers)} broker(s)"


def _triton(settings: Settings) -> str:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(settings.triton)
    try:
        if not client.is_server_ready(client_timeout=3):
            raise RuntimeError("server not ready")
        return f"ready at {settings.triton}"
    finally:
        client.close()


def _ray(settings: Settings) -> str:
    import ray

    if ray.is_initialized():  # inside a Ray Serve replica
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if not alive:
            raise RuntimeError("no live nodes")
        return f"{len(alive)} live node(s)"
    host, _, port = settings.ray.rpartition(":")
    if host and port.isdigit() and "://" not in host:
        import socket

        with socket.create_connection((host, int(port)), timeout=2):
            pass  # fail fast when the GCS port is closed (GcsClient would retry for ~30 s)
        from ray._raylet import GcsClient  # what `ray health-check` uses, without a new process

        session = GcsClient(address=settings.ray).internal_kv_get(b"session_name", namespace=b"session", timeout=3)
        if not session:
            raise RuntimeError("GCS answered without a session")
        return f"gcs at {settings.ray} healthy ({session.decode()})"
    ray_cli = str(Path(sys.executable).with_name("ray"))
    res = subprocess.run([ray_cli, "health-check", f"--address={settings.ray}"], capture_output=True, text=True,
                         timeout=20, env={**__import__("os").environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if res.returncode:
        lines = (res.stderr or res.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else "ray health-check failed")
    return f"gcs at {settings.ray} healthy"


def readiness(settings: Settings, engine: Engine) -> dict[str, Check]:
    """Check Kafka, PostGIS, Triton and Ray concurrently; each reported individually."""
    checks = {"kafka": lambda: _kafka(settings), "postgis": lambda: _postgis(engine),
              "triton": lambda: _triton(settings), "ray": lambda: _ray(settings)}
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(_timed, fn) for name, fn in checks.items()}
        return {name: f.result() for name, f in futures.items()}


# status ----------------------------------------------------------------------

def consumer_lag(settings: Settings) -> list[dict]:
    """Per partition of the scenes topic: the pipeline group's committed offset, high watermark, lag
    (read in ``ingest/kafka_io.py``; Kafka unreachable is a 503)."""
    from terrawatch.ingest.kafka_io import group_lag

    return group_lag(settings)


def worker_gauge(settings: Settings, name: str) -> float | None:
    """A gauge from the worker's Prometheus endpoint (None when the worker is not reachable)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    url = settings.worker_metrics_url or f"http://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        body = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None
    for fam in text_string_to_metric_families(body):
        if fam.name == name:
            return sum(s.value for s in fam.samples)
    return None


def dependency_pauses(settings: Settings) -> list[dict] | None:
    """Dependencies the worker has paused consumption for (from its /metrics): dependency, seconds down and
    a sentence for the operator. [] when consuming normally, None when the worker is not reachable."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from terrawatch.domain.recovery import pause_reason

    url = settings.worker_metrics_url or f"http://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        body = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None
    paused, down, window = set(), {}, settings.outage_window_s
    for fam in text_string_to_metric_families(body):
        for smp in fam.samples:
            if smp.name == "terrawatch_consumption_paused" and smp.value >= 1:
                paused.add(smp.labels.get("dependency", "?"))
            elif smp.name == "terrawatch_dependency_outage_seconds":
                down[smp.labels.get("dependency", "?")] = smp.value
            elif smp.name == "terrawatch_outage_window_seconds":
                window = smp.value
    return [{"dependency": d, "down_s": round(down.get(d, 0.0), 1),
             "reason": pause_reason(d, down.get(d, 0.0), window)} for d in sorted(paused)]


def last_sensed_by_platform(engine: Engine) -> list[dict]:
    return scenes.last_sensed_by_platform(engine)


def outbox_counts(engine: Engine) -> dict[str, int]:
    return outbox.counts(engine)


# actions: Kafka ----------------------------------------------------------------

def publish_items(producer, settings: Settings, items: list[dict]) -> None:
    from terrawatch.ingest import kafka_io

    try:
        for item in items:
            kafka_io.publish_scene(producer, settings, item)
        remaining = producer.flush(15)
    except Exception as exc:  # noqa: BLE001 - BufferError/KafkaException: the broker is the problem
        raise Unavailable(f"Kafka rejected the publish: {exc}") from exc
    if remaining:
        raise Unavailable(f"Kafka did not acknowledge {remaining} message(s) within 15 s")


def scene_item(engine: Engine, scene_id: str) -> dict:
    item, _ = scenes.stored_item(engine, scene_id)
    if item is None:
        raise NotFound(f"scene {scene_id!r} not found")
    return item


def backfill_roots(settings: Settings) -> list[Path]:
    if settings.api_backfill_roots.strip():
        return [Path(p.strip()).resolve() for p in settings.api_backfill_roots.split(",") if p.strip()]
    return [settings.state_dir.resolve(), (REPO_ROOT.parent / "shared" / "data").resolve()]


def backfill_items(settings: Settings, folder: str, recursive: bool, sensing_time: datetime | None,
                   platform: str | None) -> tuple[list[dict], list[dict]]:
    """STAC Items for the GeoTIFFs in ``folder`` (which must lie under an allowed root), and the skipped files."""
    from terrawatch.ingest.stac_items import item_from_geotiff

    root = Path(folder).expanduser()
    if not root.is_absolute():
        raise InvalidInput("folder must be an absolute path")
    root = root.resolve()
    roots = backfill_roots(settings)
    if not any(root == r or root.is_relative_to(r) for r in roots):
        raise InvalidInput(f"folder {folder!r} is outside the allowed backfill roots "
                           "(TERRAWATCH_API_BACKFILL_ROOTS)")
    if not root.is_dir():
        raise NotFound(f"folder {folder!r} does not exist")
    files = sorted(p for p in (root.rglob("*") if recursive else root.iterdir())
                   if p.is_file() and p.suffix.lower() in GEOTIFF_SUFFIXES)
    if len(files) > MAX_BACKFILL_FILES:
        raise InvalidInput(f"{len(files)} GeoTIFFs found; at most {MAX_BACKFILL_FILES} per backfill")
    items, skipped = [], []
    for path in files:
        try:
            items.append(item_from_geotiff(path, sensing_time=sensing_time, platform=platform))
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the others
            skipped.append({"path": str(path), "reason": f"{type(exc).__name__}: {exc}"[:300]})
    return items, skipped


# Triton ------------------------------------------------------------------------

def triton_models(settings: Settings) -> list[dict]:
    """Every model version in Triton's repository index with its state (READY, UNAVAILABLE, ...)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(settings.triton)
    try:
        index = client.get_model_repository_index(as_json=True, client_timeout=5)
    except InferenceServerException as exc:
        raise Unavailable(f"Triton at {settings.triton}: {exc.message()}") from exc
    finally:
        client.close()
    return [{"name": m.get("name"), "version": m.get("version"), "state": m.get("state"),
             "reason": m.get("reason") or None} for m in index.get("models", [])]
