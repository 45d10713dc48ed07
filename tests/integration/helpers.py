"""Helpers for integration tests: per-test topics, worker subprocesses, DB queries, receivers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import func, select

from terrawatch.ingest import kafka_io
from terrawatch.ingest.kafka_config import client_config
from terrawatch.ingest.topics import ensure_topics
from terrawatch.settings import Settings
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for


def isolated(settings: Settings, name: str, **extra) -> Settings:
    """Copy of ``settings`` with its own topics and consumer group (created now)."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    s = settings.model_copy(update={
        "scenes_topic": f"tw.scenes.{tag}", "dlq_topic": f"tw.scenes.{tag}.dlq",
        "consumer_group": f"tw-{tag}", **extra,
    })
    ensure_topics(s)
    return s


def settings_env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in s.model_dump().items():
        if isinstance(value, dict):
            env[f"TERRAWATCH_{key.upper()}"] = json.dumps({k: str(v) for k, v in value.items()})
        elif value is not None:
            env[f"TERRAWATCH_{key.upper()}"] = str(value)
    env["TERRAWATCH_WEBHOOK_ALLOW_PRIVATE"] = "127.0.0.1"
    return env


def start_worker(s: Settings, log: Path, *args: str) -> subprocess.Popen:
    fh = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "terrawatch.cli", "run", *args], env=settings_env(s),
                            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def publish(s: Settings, *items: dict | bytes) -> None:
    p = kafka_io.producer(s)
    for it in items:
        if isinstance(it, bytes):
            p.produce(s.scenes_topic, key=b"raw", value=it)
        else:
            kafka_io.publish_scene(p, s, it)
    assert p.flush(30) == 0


def read_dlq(s: Settings, expect: int, timeout: float = 120) -> list[dict]:
    c = Consumer(client_config(s, **{"group.id": f"dlq-reader-{uuid.uuid4().hex}",
                                     "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.assign([TopicPartition(s.dlq_topic, 0, 0)])
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            out.append(json.loads(m.value()))
    c.close()
    return out


def wait_for(check, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def runs_for(s: Settings, scene_id: str) -> list[dict]:
    with engine_for(s.db_url).connect() as c:
        return [dict(r) for r in c.execute(select(t.scene_runs).where(t.scene_runs.c.scene_id == scene_id)).mappings()]


def count(s: Settings, table, *where) -> int:
    with engine_for(s.db_url).connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def process_scene(s: Settings, item: dict, log: Path, timeout: float = 240) -> list:
    """Start a worker, publish ``item``, wait until it has a run in PostGIS, stop the worker; the runs."""
    worker = start_worker(s, log, "--max-idle-s", "20")
    try:
        publish(s, item)
        return wait_for(lambda: runs_for(s, item["id"]), timeout, f"a run of scene {item['id']}")
    finally:
        worker.terminate()
        worker.wait(60)
