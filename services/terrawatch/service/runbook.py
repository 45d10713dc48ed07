"""The runbook: one service per area (DLQ, stream operations, consumption, status, reprocessing, API keys,
reference layers, webhook subscriptions and deliveries, alert transitions), built once per process by the
composition root (:func:`terrawatch.service.bootstrap.build_runbook`) and called by the API (its routes through
``ApiDeps.runbook``) and the CLI (``cli/root.cli_runbook``) alike.

Every area service takes its dependencies once, in the same order: ``(settings, engine, *, read_engine,
producer)`` - ``engine``: the write pool; ``read_engine``: the pool for reads (the API's read role; default
``engine``); ``producer``: a zero-argument callable returning the process' Kafka producer, called only by the
actions that publish. The actions themselves are the module functions of ``service/`` (one implementation;
their unit tests run on fakes), so the API and the CLI share one behaviour for missing ids, limits and errors.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from terrawatch.service import alerts, deliveries, keys, layers, ops, reprocess, stream_ops, subscriptions
from terrawatch.service.dlq import DlqService, KafkaDlqLog, PostgisDlqStates
from terrawatch.settings import Settings
from terrawatch.store.audit import Audit
from terrawatch.store.db import Engine

ProducerFactory = Callable[[], Any]


class LazyProducer:
    """The process' one Kafka producer for ``settings``, built on first call (thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.s, self._producer, self._lock = settings, None, threading.Lock()

    def __call__(self):
        with self._lock:
            if self._producer is None:
                from terrawatch.ingest import kafka_io

                self._producer = kafka_io.producer(self.s)
            return self._producer


class _Area:
    """Dependencies of one area, taken once: settings, write pool, read pool (default: the write pool),
    producer factory (default: a :class:`LazyProducer` of ``settings``)."""

    def __init__(self, settings: Settings, engine: Engine, *, read_engine: Engine | None = None,
                 producer: ProducerFactory | None = None) -> None:
        self.s, self.engine = settings, engine
        self.read_engine = read_engine if read_engine is not None else engine
        self.producer = producer if producer is not None else LazyProducer(settings)


class StatusService(_Area):
    """Readiness, pipeline status and Triton's model list (``service/ops.py``; reads on ``read_engine``)."""

    def readiness(self):
        return ops.readiness(self.s, self.read_engine)

    def status(self) -> dict:
        return ops.pipeline_status(self.s, self.read_engine)

    def models(self) -> list[dict]:
        return ops.triton_models(self.s)


class ConsumptionService(_Area):
    """The operator's pause flag of the worker's consumption (``service/ops.consumption``/``set_consumption``)."""

    def show(self) -> dict:
        return ops.consumption(self.read_engine, self.s)

    def set(self, paused: bool, reason: str, actor: str, audit: Audit | None = None) -> dict:
        return ops.set_consumption(self.engine, self.s, paused, reason, actor, audit)

    def pause(self, reason: str, actor: str, audit: Audit | None = None) -> dict:
        return self.set(True, reason, actor, audit)

    def resume(self, reason: str, actor: str, audit: Audit | None = None) -> dict:
        return self.set(False, reason, actor, audit)


class StreamService(_Area):
    """Replay, folder backfill, backfill from a source and publish (``service/stream_ops.py``)."""

    def replay(self, scene_id: str, audit: Audit | None = None) -> dict:
        return stream_ops.replay(self.s, scene_id, self.producer(), self.engine, audit)

    def backfill_roots(self) -> list[Path]:
        return stream_ops.backfill_roots(self.s)

    def backfill_folder(self, folder: str, roots: list[Path] | None, *, dry_run: bool = False,
                        audit: Audit | None = None, **options):
        """``stream_ops.backfill_folder`` (``options``: recursive, sensing_time, platform, bbox, start, end,
        progress); publishes nothing and opens no producer with ``dry_run``."""
        return stream_ops.backfill_folder(self.s, folder, roots, dry_run=dry_run,
                                          producer=None if dry_run else self.producer(), engine=self.engine,
                                          audit=audit, **options)

    def backfill(self, source, bbox, start: datetime, end: datetime, *, dry_run: bool = False,
                 progress: bool = True):
        return stream_ops.backfill(self.s, source, bbox, start, end, dry_run=dry_run, progress=progress,
                                   producer=None if dry_run else self.producer())

    def publish(self, item: dict, timeout_s: float = 30.0) -> dict:
        return stream_ops.publish(self.s, item, self.producer(), timeout_s)


class ReprocessService(_Area):
    """Process stored scenes again under a new run (``service/reprocess.reprocess``)."""

    def reprocess(self, *, scene_ids: list[str] | None = None, bbox: tuple[float, float, float, float] | None = None,
                  since: datetime | None = None, until: datetime | None = None, dry_run: bool = False,
                  audit: Audit | None = None) -> dict:
        return reprocess.reprocess(self.s, self.engine, None if dry_run else self.producer(), scene_ids=scene_ids,
                                   bbox=bbox, since=since, until=until, dry_run=dry_run, audit=audit)


class KeyService(_Area):
    """API keys: create, list, revoke (``service/keys.py``)."""

    def create(self, name: str, role, created_by: str, audit: Audit | None = None) -> tuple[str, str]:
        return keys.create_key(self.engine, name, role, created_by=created_by, audit=audit)

    def list(self) -> list[dict]:
        return keys.list_keys(self.engine)

    def revoke(self, key_id: str, audit: Audit | None = None) -> None:
        keys.revoke_key(self.engine, key_id, audit=audit)


class LayerService(_Area):
    """Reference layers: list, load from a file, replace with features, drop (``service/layers.py``)."""

    def list(self) -> list[dict]:
        return layers.list_layers(self.read_engine)

    def load(self, path: Path, kind: str, name_field: str = "name", coverage: Path | None = None,
             audit: Audit | None = None) -> int:
        return layers.load_layer(self.engine, path, kind, name_field, coverage, audit=audit)

    def replace(self, layer: str, feats: list, audit: Audit | None = None) -> tuple[int, int]:
        """Replace ``layer`` with ``feats`` ((lon/lat geometry, properties) pairs)."""
        return layers.replace_features(self.engine, layer, feats, audit=audit)

    def drop(self, layer: str, audit: Audit | None = None) -> int:
        return layers.drop_layer(self.engine, layer, audit=audit)

    @staticmethod
    def used_by(layer: str) -> list[str]:
        return layers.used_by(layer)


class SubscriptionService(_Area):
    """Webhook subscribers: create, list, get, test ping, rotate the secret, deactivate
    (``service/subscriptions.py``)."""

    def create(self, req, actor: str, audit: Audit | None = None) -> tuple[dict, str]:
        return subscriptions.create(self.engine, self.s, req, actor, audit=audit)

    def list(self, include_inactive: bool = False) -> list[dict]:
        return subscriptions.list_all(self.engine, include_inactive)

    def get(self, sid: uuid.UUID) -> dict:
        return subscriptions.get(self.engine, sid)

    def send_test(self, sid: uuid.UUID, audit: Audit | None = None) -> dict:
        return subscriptions.send_test(self.engine, self.s, sid, audit=audit)

    def rotate_secret(self, sid: uuid.UUID, audit: Audit | None = None) -> str:
        return subscriptions.rotate_secret(self.engine, sid, audit=audit)

    def deactivate(self, sid: uuid.UUID, actor: str, audit: Audit | None = None) -> int:
        return subscriptions.deactivate(self.engine, sid, actor, audit=audit)


class DeliveryService(_Area):
    """Webhook deliveries: list, show, redeliver (``service/deliveries.py``)."""

    def list(self, status: str | None = "failed", subscriber_id: uuid.UUID | None = None,
             alert_id: uuid.UUID | None = None, limit: int = 100, before: str | None = None) -> list[dict]:
        return deliveries.list_deliveries(self.engine, status, subscriber_id, alert_id, limit, before)

    def get(self, delivery_id: str) -> dict:
        return deliveries.get_delivery(self.engine, delivery_id)

    def redeliver(self, delivery_id: str, actor: str, audit: Audit | None = None) -> dict:
        return deliveries.redeliver(self.engine, delivery_id, actor, audit=audit)


class AlertService(_Area):
    """Alert transitions (write pool) and their lifecycle history (``read_engine``) (``service/alerts.py``)."""

    def transition(self, alert_id: uuid.UUID, to_status, actor: str, reason: str,
                   expected_version: int | None = None, audit: Audit | None = None):
        return alerts.transition(self.engine, self.s, alert_id, to_status, actor, reason, expected_version,
                                 audit=audit)

    def events(self, alert_id: uuid.UUID) -> list[dict]:
        return alerts.events(self.read_engine, alert_id)


@dataclass
class Runbook:
    """One service per runbook area, built once per process (:func:`terrawatch.service.bootstrap.build_runbook`)."""

    dlq: DlqService
    streams: StreamService
    consumption: ConsumptionService
    status: StatusService
    reprocess: ReprocessService
    keys: KeyService
    layers: LayerService
    subscriptions: SubscriptionService
    deliveries: DeliveryService
    alerts: AlertService


def build(settings: Settings, engine: Engine, *, read_engine: Engine | None = None,
          producer: ProducerFactory | None = None, dlq: DlqService | None = None) -> Runbook:
    """Every area on the same pools and one producer factory; ``dlq`` defaults to the DLQ service on Kafka and
    PostGIS (its re-drives publish with ``producer``)."""
    producer = producer if producer is not None else LazyProducer(settings)
    kw: dict[str, Any] = {"read_engine": read_engine, "producer": producer}
    if dlq is None:
        dlq = DlqService(settings, KafkaDlqLog(settings, make_producer=producer),
                         PostgisDlqStates(engine, settings.dlq_topic))
    return Runbook(dlq=dlq, streams=StreamService(settings, engine, **kw),
                   consumption=ConsumptionService(settings, engine, **kw), status=StatusService(settings, engine, **kw),
                   reprocess=ReprocessService(settings, engine, **kw), keys=KeyService(settings, engine, **kw),
                   layers=LayerService(settings, engine, **kw),
                   subscriptions=SubscriptionService(settings, engine, **kw),
                   deliveries=DeliveryService(settings, engine, **kw), alerts=AlertService(settings, engine, **kw))

