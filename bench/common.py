"""Shared pieces of the benchmarks: a private throw-away stack, the flood_s1 model repository,
synthetic S1 scenes, the worker process and Prometheus scraping.

Every bench starts its own stack (Kafka, PostGIS, Triton, Ray) in a temporary state dir on
ports from ``--port-base`` (default 41000: base..base+13, Ray workers base+100..base+1099), so
it never touches a demo or test stack, and stops it at the end unless ``--keep-stack``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from terrawatch.settings import REPO_ROOT, Settings
from terrawatch_dev.stack.process import port_open


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ports(base: int) -> dict:
    return dict(kafka_port=base, kafka_controller_port=base + 1, pg_port=base + 2, triton_http_port=base + 3,
                triton_grpc_port=base + 4, triton_metrics_port=base + 5, ray_port=base + 6,
                metrics_port=base + 12, api_port=base + 13, ray_min_worker_port=base + 100)  # Ray: base+6..+11


def flood_s1_repository(root: Path) -> tuple[Path, str]:
    """A Triton model repository holding only ``flood_s1`` (config and model.py from models/).

    Weights: models/flood_s1/<latest>/model.pt when trained weights exist, else a randomly
    initialised net of the same architecture (same FLOPs, so the same throughput; say so).
    Returns (repository, weights description).
    """
    import torch

    from terrawatch.ml import flood_s1
    from terrawatch.ml.registry import latest_version_dir

    src = REPO_ROOT / "models" / "flood_s1"
    dst = root / "flood_s1"
    (dst / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "config.pbtxt", dst / "config.pbtxt")
    shutil.copy(src / "1" / "model.py", dst / "1" / "model.py")
    try:
        trained = latest_version_dir("flood_s1") / "model.pt"
        shutil.copy(trained, dst / "1" / "model.pt")
        if trained.with_suffix(".json").is_file():
            shutil.copy(trained.with_suffix(".json"), dst / "1" / "model.json")
        label = f"trained ({trained.relative_to(REPO_ROOT)})"
    except (FileNotFoundError, ValueError):
        torch.manual_seed(0)
        flood_s1.save_net(flood_s1.build_net(), dst / "1" / "model.pt", {"note": "random init, benchmark only"})
        label = "random init (no trained models/flood_s1/<v>/model.pt yet; same architecture and FLOPs)"
    return root, label


@dataclass
class BenchStack:
    settings: Settings
    weights: str
    stack: object
    triton_config: dict | None = None

    def worker_env(self, **extra: str) -> dict:
        env = dict(os.environ)
        for key, value in self.settings.model_dump().items():
            if isinstance(value, dict):  # pydantic-settings reads complex values as JSON
                env[f"TERRAWATCH_{key.upper()}"] = json.dumps({k: str(v) for k, v in value.items()})
            elif value is not None:
                env[f"TERRAWATCH_{key.upper()}"] = str(value)
        env["TERRAWATCH_LOG_LEVEL"] = "WARNING"
        env.update(extra)
        return env


@contextmanager
def private_stack(port_base: int, keep: bool = False, preferred_batch: str = "", queue_delay_us: int | None = None,
                  instances: int | None = None, torch_threads: int | None = None, runtime: str | None = None,
                  **overrides):
    """Start a throw-away stack serving flood_s1; yield a :class:`BenchStack`; stop it afterwards.
    ``preferred_batch`` / ``queue_delay_us`` (flood_s1's dynamic batcher), ``instances`` (CPU instances)
    and ``torch_threads`` (per instance) and ``runtime`` (torch / onnxruntime) are rendered into its config.pbtxt
    (terrawatch.inference.serving) instead of the shipped values when given."""
    from terrawatch.inference.serving import Serving, render_config
    from terrawatch_dev.stack import Stack

    busy = [p for p in (port_base + i for i in range(14)) if port_open(p)]
    if busy:
        raise SystemExit(f"ports {busy} are in use: pick another --port-base")
    state = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    repo, weights = flood_s1_repository(state / "models")
    cfg = repo / "flood_s1" / "config.pbtxt"
    serving = Serving(count=instances, preferred_batch=tuple(int(v) for v in preferred_batch.split(",") if v.strip()),
                      queue_delay_us=queue_delay_us, torch_threads=torch_threads, runtime=runtime)
    cfg.write_text(render_config(cfg.read_text(), serving, "flood_s1"))
    batcher = {"preferred_batch": list(serving.preferred_batch) or "shipped", "queue_delay_us":
               queue_delay_us if queue_delay_us is not None else "shipped",
               "instances": instance_count(cfg.read_text()), "torch_threads": torch_threads_of(cfg.read_text()),
               "runtime": parameter_of(cfg.read_text(), "runtime") or "torch"}
    # The benches write their synthetic scenes to temp dirs (tempfile.mkdtemp); file:// assets are only
    # opened under TERRAWATCH_ASSET_FILE_ROOTS (default: the state and shared-data dirs), so without this
    # every bench scene was dead-lettered as unreadable_asset and the bench timed out waiting for it.
    overrides.setdefault("asset_file_roots", f"{state},{tempfile.gettempdir()}")
    # The repository holds flood_s1 only; the worker loads every registry model's area of applicability.
    from terrawatch.domain.hazards import REGISTRY

    overrides.setdefault("aoa_overrides", {hm.model: REPO_ROOT / "models" / hm.aoa for hm in REGISTRY})
    s = Settings(state_dir=state, model_repository=repo, **ports(port_base), **overrides)
    stack = Stack(s)
    log(f"starting a private stack in {state} (ports from {port_base}); flood_s1 weights: {weights}")
    t0 = time.monotonic()
    try:
        for attempt in range(3):
            try:
                stack.up()
                time.sleep(45)  # on a loaded VM `ray start` can fail (30 s raylet wait) after its head answered a probe
                bad = [k for k, v in stack.status().items() if v != "healthy"]
                if not bad:
                    break
                exc: Exception = RuntimeError(f"unhealthy after start: {bad}")
            except subprocess.TimeoutExpired as e:  # a health probe (e.g. `ray health-check`) hung on a loaded VM
                exc = e
            if attempt == 2:
                raise exc
            log(f"stack start failed ({exc}); stopping it and starting again")
            stack.down()
        log(f"stack up in {time.monotonic() - t0:.0f} s")
        yield BenchStack(s, weights, stack, batcher)
    finally:
        if keep:
            log(f"stack kept running: TERRAWATCH_STATE_DIR={state} terrawatch stack down")
        else:
            stack.down()
            shutil.rmtree(state, ignore_errors=True)


def synthetic_items(folder: Path, n: int, size: int, tag: str, start: int = 0) -> list[dict]:
    """``n`` synthetic S1 scenes (river + lake, VV/VH dB, 10 m) of ``size`` px at distinct places
    (place ``start + i`` of a 30 km lattice in UTM 30N)."""
    from terrawatch.ingest.stac_items import item_from_geotiff
    from terrawatch_dev.samples import synthetic_s1

    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        k = start + i
        path = folder / f"{tag}{i}.tif"
        synthetic_s1(path, size=size, seed=k, origin=(200_000.0 + (k % 20) * 30_000, 5_000_000.0 + (k // 20) * 30_000))
        items.append(item_from_geotiff(path, scene_id=f"bench-{tag}{i}-{uuid.uuid4().hex[:6]}",
                                       sensing_time=datetime.now(timezone.utc) - timedelta(minutes=2)))
    return items


def start_worker(bs: BenchStack, log_path: Path, **env: str) -> subprocess.Popen:
    fh = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "terrawatch.cli", "run"], env=bs.worker_env(**env),
                            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def publish(settings: Settings, items: list[dict]) -> None:
    from terrawatch.ingest import kafka_io

    p = kafka_io.producer(settings)
    for it in items:
        kafka_io.publish_scene(p, settings, it)
    if p.flush(30):
        raise RuntimeError("publish not acknowledged")


def stored_runs(settings: Settings, ids: list[str]) -> dict[str, int]:
    """scene id -> tiles, for the scenes whose run is stored."""
    from sqlalchemy import select

    from terrawatch.store import tables as t
    from terrawatch.store.uow import engine_for

    with engine_for(settings.db_url).connect() as c:
        return {r.scene_id: r.tiles for r in c.execute(
            select(t.scene_runs.c.scene_id, t.scene_runs.c.tiles).where(t.scene_runs.c.scene_id.in_(ids)))}


def wait_runs(settings: Settings, ids: list[str], timeout: float, poll: float = 0.25) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = stored_runs(settings, ids)
        if len(done) == len(ids):
            return done
        time.sleep(poll)
    raise TimeoutError(f"{len(ids) - len(stored_runs(settings, ids))} of {len(ids)} scenes not stored in {timeout} s")


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text at ``url`` -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def delta(after: dict, before: dict, name: str, **labels) -> float:
    """Sum over samples called ``name`` whose labels include ``labels``, after minus before."""
    def total(d):
        return sum(v for (n, lab), v in d.items()
                   if n in (name, f"{name}_total") and all((k, v2) in lab for k, v2 in labels.items()))
    return total(after) - total(before)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except (OSError, http.client.HTTPException):  # not up yet, or not HTTP/1 (another program's port)
            time.sleep(0.5)
    raise TimeoutError(f"{url} not up within {timeout} s")


def instance_count(config: str) -> int:
    """CPU/GPU instances in a rendered config.pbtxt (sum of the instance groups' counts)."""
    import re

    return sum(int(c) for c in re.findall(r"count:\s*(\d+)", config)) or 1


def parameter_of(config: str, key: str) -> str | None:
    import re

    m = re.search(r'key:\s*"' + re.escape(key) + r'"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', config)
    return m.group(1) if m else None


def set_runtime(bs: BenchStack, runtime: str, timeout: float = 180) -> None:
    """Switch the private stack's flood_s1 to ``runtime`` (torch / onnxruntime): its config.pbtxt is rewritten
    and Triton (model control mode poll) reloads it; returns once Triton serves the new configuration."""
    from terrawatch.inference.serving import set_parameter

    cfg = bs.settings.model_repository / "flood_s1" / "config.pbtxt"
    cfg.write_text(set_parameter(cfg.read_text(), "runtime", runtime))
    url = f"http://127.0.0.1:{bs.settings.triton_http_port}/v2/models/flood_s1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conf = json.loads(urllib.request.urlopen(url + "/config", timeout=5).read())
            now = conf.get("parameters", {}).get("runtime", {}).get("string_value", "torch")
            if now == runtime and urllib.request.urlopen(url + "/ready", timeout=5).status == 200:
                if bs.triton_config is not None:
                    bs.triton_config["runtime"] = runtime
                return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Triton did not reload flood_s1 with runtime {runtime} within {timeout} s")


def torch_threads_of(config: str) -> int | None:
    import re

    m = re.search(r'key:\s*"torch_threads"\s*value:\s*\{\s*string_value:\s*"(\d+)"', config)
    return int(m.group(1)) if m else None


# Process groups for the CPU accounting of a bench phase: first match of the command line wins.
CPU_GROUPS = (("triton", ("tritonserver", "triton_python_backend_stub")), ("ray_actors", ("ray::",)),
              ("ray_core", ("gcs_server", "raylet", "ray/dashboard", "log_monitor", "ray_client_server",
                            "ray/_private", "runtime_env")),
              ("worker", ("terrawatch.cli run", "-m terrawatch.cli run")), ("postgres", ("postgres",)),
              ("kafka", ("kafka",)))


def cpu_snapshot(scope: tuple[str, ...] | list[str] | None = None) -> dict[int, tuple[str, float]]:
    """pid -> (group, user+system CPU seconds) for every process this user can read. With ``scope`` (e.g. the
    private stack's state dir and Ray temp dir), only this bench's processes: this process, processes whose
    command line contains a scope string, and their descendants; the rest (other stacks on a shared machine)
    count as ``outside`` (one summed entry, pid -1), never as one of the stack's groups."""
    import psutil

    info = {}
    for p in psutil.process_iter(["pid", "ppid", "cmdline", "name", "cpu_times"]):
        try:
            ct = p.info["cpu_times"]
            if ct is None:
                continue
            cmd = " ".join(p.info["cmdline"] or []) or (p.info["name"] or "")
            info[p.info["pid"]] = (p.info["ppid"], cmd, ct.user + ct.system)
        except (psutil.Error, TypeError):
            continue
    me = os.getpid()
    memo: dict[int, bool] = {}

    def mine(pid: int, depth: int = 0) -> bool:
        if pid in memo:
            return memo[pid]
        if pid not in info or depth > 64:
            return False
        ppid, cmd, _ = info[pid]
        ok = pid == me or any(sc in cmd for sc in scope) or (ppid not in (0, 1, pid) and mine(ppid, depth + 1))
        memo[pid] = ok
        return ok

    out: dict[int, tuple[str, float]] = {}
    outside = 0.0
    for pid, (_, cmd, t) in info.items():
        if scope is not None and not mine(pid):
            outside += t
            continue
        group = next((g for g, keys in CPU_GROUPS if any(k in cmd for k in keys)), "bench" if pid == me else "other")
        out[pid] = (group, t)
    if scope is not None:
        out[-1] = ("outside", outside)
    return out


def cpu_by_group(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per process group between two :func:`cpu_snapshot` s (processes that exited in
    between are missed; new ones count from 0)."""
    groups: dict[str, float] = {}
    for pid, (group, t) in after.items():
        t0 = before.get(pid, (group, 0.0))[1]
        groups[group] = groups.get(group, 0.0) + max(0.0, t - t0)
    return {g: round(v, 2) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def machine() -> dict:
    import platform

    return {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2), "gpu": None,
            "python": platform.python_version(), "host": platform.node()}


def emit(result: dict) -> None:
    """The JSON result as the last line of stdout."""
    print(json.dumps(result), flush=True)
