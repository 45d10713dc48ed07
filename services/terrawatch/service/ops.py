"""Operations: readiness of each dependency and the pipeline's status (``/ops/readyz``, ``/ops/status``).

Each probe lives beside its adapter (Kafka in ``ingest/topics.py``, Triton in ``inference/triton.py``,
Ray in ``tiling/ray_cluster.py``, PostGIS in ``store/db.py``); this module runs them and reads the
worker's own view (its Prometheus ``/metrics``). Functions take explicit settings/engine so they run
the same under uvicorn, Ray Serve, the CLI or a test. Kafka reads never join the pipeline's consumer group.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from terrawatch.settings import Settings
from terrawatch.store.db import Engine

log = logging.getLogger(__name__)


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


def readiness(settings: Settings, engine: Engine) -> dict[str, Check]:
    """Check Kafka, PostGIS, Triton and Ray concurrently; each reported individually."""
    from terrawatch.inference.triton import server_ready
    from terrawatch.ingest.topics import readiness as kafka_ready
    from terrawatch.store.db import postgis_version
    from terrawatch.tiling.ray_cluster import cluster_health

    checks = {"kafka": lambda: kafka_ready(settings), "postgis": lambda: postgis_version(engine),
              "triton": lambda: server_ready(settings.triton), "ray": lambda: cluster_health(settings.ray)}
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(_timed, fn) for name, fn in checks.items()}
        return {name: f.result() for name, f in futures.items()}


# status ----------------------------------------------------------------------

def _worker_metrics(settings: Settings):
    """The worker's Prometheus metric families (None when the worker is not reachable)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    url = settings.worker_metrics_url or f"http://127.0.0.1:{settings.metrics_port}/metrics"
    try:
        body = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return None
    return list(text_string_to_metric_families(body))


def worker_gauge(settings: Settings, name: str) -> float | None:
    """A gauge from the worker's Prometheus endpoint (None when the worker is not reachable)."""
    families = _worker_metrics(settings)
    for fam in families or []:
        if fam.name == name:
            return sum(s.value for s in fam.samples)
    return None


def dependency_pauses(settings: Settings) -> list[dict] | None:
    """Dependencies the worker has paused consumption for (from its /metrics): dependency, seconds down and
    a sentence for the operator. [] when consuming normally, None when the worker is not reachable."""
    from terrawatch.domain.recovery import pause_reason

    families = _worker_metrics(settings)
    if families is None:
        return None
    paused, down, window = set(), {}, settings.outage_window_s
    for fam in families:
        for smp in fam.samples:
            if smp.name == "terrawatch_consumption_paused" and smp.value >= 1:
                paused.add(smp.labels.get("dependency", "?"))
            elif smp.name == "terrawatch_dependency_outage_seconds":
                down[smp.labels.get("dependency", "?")] = smp.value
            elif smp.name == "terrawatch_outage_window_seconds":
                window = smp.value
    return [{"dependency": d, "down_s": round(down.get(d, 0.0), 1),
             "reason": pause_reason(d, down.get(d, 0.0), window)} for d in sorted(paused)]


def consumption(engine: Engine, settings: Settings) -> dict:
    """The operator's pause flag: ``{"paused": bool, "reason", "updated_at", "updated_by"}``."""
    from terrawatch.store import control

    flag = control.get_flag(engine, control.paused_key(settings.consumer_group))
    if not flag:
        return {"paused": False}
    return {"paused": bool(flag["value"].get("paused")), "reason": flag["value"].get("reason"),
            "updated_at": flag["updated_at"], "updated_by": flag["updated_by"]}


def set_consumption(engine: Engine, settings: Settings, paused: bool, reason: str, actor: str, audit=None) -> dict:
    """Set the pause flag the worker reads every ``control_poll_s`` s, with the caller's audit row
    (``consumption.pause`` / ``consumption.resume``) in the same transaction."""
    from terrawatch.store import control

    with engine.begin() as conn:
        control.set_flag(conn, control.paused_key(settings.consumer_group), {"paused": paused, "reason": reason},
                         actor)
        if audit is not None:
            audit(conn, settings.consumer_group, {"reason": reason})
    return consumption(engine, settings)


def pipeline_status(settings: Settings, engine: Engine) -> dict:
    """Consumer lag, scenes in flight, progress per platform, DLQ and outbox counts, pauses."""
    from terrawatch.ingest.kafka_io import group_lag
    from terrawatch.service import deliveries
    from terrawatch.service import dlq as dlq_svc
    from terrawatch.store.scenes import last_sensed_by_platform

    lag = group_lag(settings)
    dlq = dlq_svc.counts(settings, engine)
    return {
        "consumer_group": settings.consumer_group, "topic": settings.scenes_topic,
        "consumer_lag": lag, "total_lag": sum(p["lag"] for p in lag),
        "scenes_in_flight": worker_gauge(settings, "terrawatch_scenes_in_flight"),
        "last_processed": last_sensed_by_platform(engine),
        "dlq_size": dlq["pending"], "dlq": dlq,
        "consumption_paused": consumption(engine, settings)["paused"],
        "paused_by_dependency": dependency_pauses(settings),
        "outbox": deliveries.counts(engine),
    }


def triton_models(settings: Settings) -> list[dict]:
    """Every model version in Triton's repository index with its state (``inference.triton.model_index``)."""
    from terrawatch.inference.triton import model_index

    return model_index(settings.triton)
