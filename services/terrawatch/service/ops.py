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

from typing import TYPE_CHECKING

from terrawatch.settings import Settings

if TYPE_CHECKING:  # SQLAlchemy costs ~1 s to import: `terrawatch stack status` does without it
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
              "triton": lambda: server_ready(settings.triton),
              "ray": lambda: cluster_health(settings.ray, settings.ray_driver_env)}
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(_timed, fn) for name, fn in checks.items()}
        return {name: f.result() for name, f in futures.items()}


# status ----------------------------------------------------------------------

def worker_metrics_url(settings: Settings) -> str:
    return settings.worker_metrics_url or f"http://127.0.0.1:{settings.metrics_port}/metrics"


def dispatcher_metrics_url(settings: Settings) -> str:
    return settings.dispatcher_metrics_url or f"http://127.0.0.1:{settings.dispatcher_metrics_port}/metrics"


def api_metrics_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}/metrics"


def _scrape(url: str, timeout: float = 2.0):
    """The Prometheus metric families served at ``url`` (None when it does not answer 200). urllib, not httpx:
    an httpx client builds a TLS context per call (~0.1-0.3 s), which stack status cannot afford."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - an operator-configured /metrics URL
            if r.status != 200:
                return None
            body = r.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return list(text_string_to_metric_families(body))


def _worker_metrics(settings: Settings):
    """The worker's Prometheus metric families (None when the worker is not reachable)."""
    return _scrape(worker_metrics_url(settings))


def worker_gauge(settings: Settings, name: str, families=False) -> float | None:
    """A gauge from the worker's Prometheus endpoint (None when the worker is not reachable)."""
    families = _worker_metrics(settings) if families is False else families
    for fam in families or []:
        if fam.name == name:
            return sum(s.value for s in fam.samples)
    return None


def dependency_pauses(settings: Settings, families=False) -> list[dict] | None:
    """Dependencies the worker has paused consumption for (from its /metrics): dependency, seconds down and
    a sentence for the operator. [] when consuming normally, None when the worker is not reachable."""
    from terrawatch.domain.recovery import pause_reason

    families = _worker_metrics(settings) if families is False else families
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


def _identity(families) -> dict:
    """What a process's /metrics says about it: roles and version (terrawatch_build_info), start time."""
    from datetime import datetime, timezone

    roles, version, started = [], None, None
    for fam in families:
        for smp in fam.samples:
            if smp.name == "terrawatch_build_info" and smp.value == 1:
                roles.append(smp.labels.get("process"))
                version = smp.labels.get("version")
            elif smp.name == "process_start_time_seconds":
                started = datetime.fromtimestamp(smp.value, timezone.utc).isoformat()
    return {"roles": sorted(r for r in roles if r), "version": version, "since": started}


def _probe(name: str, url: str, families) -> dict:
    from datetime import datetime, timezone

    if families is None:
        return {"process": name, "up": False, "url": url, "since": None, "version": None, "last_seen": None,
                "detail": f"no answer from {url}"}
    return {"process": name, "up": True, "url": url, **{k: v for k, v in _identity(families).items() if k != "roles"},
            "last_seen": datetime.now(timezone.utc).isoformat(), "detail": "answered /metrics"}


def self_health(name: str = "api") -> dict:
    """This process as :func:`process_health` reports the others (the API answering /ops/status is up)."""
    from datetime import datetime, timezone

    from prometheus_client.process_collector import PROCESS_COLLECTOR

    import terrawatch

    since = next((smp.value for fam in PROCESS_COLLECTOR.collect() for smp in fam.samples
                  if smp.name == "process_start_time_seconds"), None)
    return {"process": name, "up": True, "url": None, "version": terrawatch.__version__,
            "since": datetime.fromtimestamp(since, timezone.utc).isoformat() if since else None,
            "last_seen": datetime.now(timezone.utc).isoformat(), "detail": "this process"}


def process_health(settings: Settings, worker_families=False, include_api: bool = True,
                   api_self: bool = False) -> list[dict]:
    """Health of terrawatch's own processes, each from its /metrics (probed concurrently): the worker
    (``terrawatch run``), the dispatcher (standalone ``terrawatch dispatch``, or inside the worker when the
    worker exports ``terrawatch_build_info{process="dispatcher"}``) and the API (``api_self``: this process).
    Each: process, up, url, since (process start), version, last_seen (when it last answered: now, if up),
    detail. One worker is probed (TERRAWATCH_WORKER_METRICS_URL); scale-out deployments have Prometheus."""
    urls = {"worker": worker_metrics_url(settings), "dispatcher": dispatcher_metrics_url(settings)}
    if include_api and not api_self:
        urls["api"] = api_metrics_url(settings)
    todo = {k: u for k, u in urls.items() if not (k == "worker" and worker_families is not False)}
    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
        got = dict(zip(todo, pool.map(_scrape, todo.values())))
    if worker_families is not False:
        got["worker"] = worker_families
    worker = _probe("worker", urls["worker"], got["worker"])
    dispatcher = _probe("dispatcher", urls["dispatcher"], got["dispatcher"])
    if not dispatcher["up"] and got["worker"] is not None and "dispatcher" in _identity(got["worker"])["roles"]:
        dispatcher = {**worker, "process": "dispatcher", "detail": "inside the worker process (terrawatch run)"}
    out = [worker, dispatcher]
    if include_api:
        out.append(self_health("api") if api_self else _probe("api", urls["api"], got["api"]))
    return out


MAX_REASON = 500  # characters of a pause/resume reason (API and CLI)


def consumption(engine: Engine, settings: Settings) -> dict:
    """The operator's pause flag: ``{"paused": bool, "reason", "updated_at", "updated_by"}``."""
    from terrawatch.store import control

    flag = control.get_flag(engine, control.paused_key(settings.consumer_group))
    if not flag:
        return {"paused": False, "reason": None, "updated_at": None, "updated_by": None}
    return {"paused": bool(flag["value"].get("paused")), "reason": flag["value"].get("reason"),
            "updated_at": flag["updated_at"], "updated_by": flag["updated_by"]}


def set_consumption(engine: Engine, settings: Settings, paused: bool, reason: str, actor: str, audit=None) -> dict:
    """Set the pause flag the worker reads every ``control_poll_s`` s, with the caller's audit row
    (``consumption.pause`` / ``consumption.resume``) in the same transaction. ``reason``: at most
    :data:`MAX_REASON` characters (InvalidInput otherwise)."""
    from terrawatch.domain.errors import InvalidInput
    from terrawatch.store import control

    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason: at most {MAX_REASON} characters, not {len(reason)}")

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

    with ThreadPoolExecutor(max_workers=3) as pool:  # Kafka, the worker's /metrics and PostGIS at once
        lag_f = pool.submit(group_lag, settings)
        families_f = pool.submit(_worker_metrics, settings)
        dlq_f = pool.submit(dlq_svc.counts, settings, engine)
        lag, families, dlq = lag_f.result(), families_f.result(), dlq_f.result()
    paused = consumption(engine, settings)
    return {
        "consumer_group": settings.consumer_group, "topic": settings.scenes_topic,
        "consumer_lag": lag, "total_lag": sum(p["lag"] for p in lag),
        "scenes_in_flight": worker_gauge(settings, "terrawatch_scenes_in_flight", families),
        "last_processed": last_sensed_by_platform(engine),
        "dlq_size": dlq["pending"], "dlq": dlq,
        "consumption_paused": paused["paused"],
        "consumption": paused,
        "paused_by_dependency": dependency_pauses(settings, families),
        "processes": process_health(settings, worker_families=families, api_self=True),
        "outbox": deliveries.counts(engine),
    }


def triton_models(settings: Settings) -> list[dict]:
    """Every model version in Triton's repository index with its state (``inference.triton.model_index``)."""
    from terrawatch.inference.triton import model_index

    return model_index(settings.triton)
