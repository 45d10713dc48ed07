"""Unit of work over PostGIS (SQLAlchemy Core, bound parameters only), the engine and PostGIS' probes.

One :class:`UnitOfWork` is one database transaction: everything a scene
produces (scene row, run marker, detections, alerts, alert events, outbox
rows) commits together or not at all. Its repositories are in :mod:`terrawatch.store.repositories`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import lru_cache

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from terrawatch.domain.scene import Scene
from terrawatch.observability.metrics import DB_WRITE_SECONDS
from terrawatch.store.reference import drop_reference_layer, replace_reference_layer  # noqa: F401 - re-exported
from terrawatch.store.repositories import Alerts, Detections, Outbox, Reference, Scenes


def create_pool(url: str, statement_timeout_ms: int | None = None) -> Engine:
    """A new pooled engine (5 connections + 5 overflow, pre-ping; ``statement_timeout_ms`` set on every
    connection when given). A composition root creates one per process and passes it down
    (:mod:`terrawatch.service.bootstrap` for ``terrawatch run`` and ``dispatch``)."""
    connect_args = {"options": f"-c statement_timeout={int(statement_timeout_ms)}"} if statement_timeout_ms else {}
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)


@lru_cache(maxsize=16)
def engine_for(url: str, statement_timeout_ms: int | None = None) -> Engine:
    """One :func:`create_pool` engine per URL and timeout, cached for the process: for the entry points no
    composition root wires yet (the API's deps, one-shot CLI commands, tests)."""
    return create_pool(url, statement_timeout_ms)


def is_db_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means PostGIS was unreachable or dropped the connection (restart, failover,
    network), i.e. the transaction was rolled back and can be run again once the database answers."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError))


def probe_db(engine: Engine) -> str:
    """Readiness probe of PostGIS: ``select 1`` (the pool pre-pings, so a connection left over from before a
    restart is replaced). Raises DependencyUnavailable."""
    from terrawatch.domain.errors import DependencyUnavailable

    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except DBAPIError as exc:
        raise DependencyUnavailable("postgis", f"postgis unavailable: {type(exc.orig or exc).__name__}: "
                                               f"{str(exc.orig or exc).strip()[:300]}") from exc
    return "ready"


def wait_for_db(engine: Engine, timeout_s: float, stop: threading.Event | None = None) -> bool:
    """Probe PostGIS (``select 1``) with backoff (0.5 s doubling to 5 s) until it answers: True, or
    ``timeout_s`` s pass / ``stop`` is set: False."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            return True
        except DBAPIError:
            if time.monotonic() + delay > deadline or (stop is not None and stop.is_set()):
                return False
        if stop is not None:
            if stop.wait(delay):
                return False
        else:
            time.sleep(delay)
        delay = min(delay * 2, 5.0)


class UnitOfWork:
    """One database transaction and the repositories on it: ``scenes``, ``detections``, ``alerts``,
    ``reference``, ``outbox`` (:mod:`terrawatch.store.repositories`). Commits on a clean exit, rolls back on
    an exception. ``operation`` labels terrawatch_db_write_duration_seconds (``read``: not measured).
    The abstract version is :class:`terrawatch.service.ports.UnitOfWork`."""

    scenes: Scenes
    detections: Detections
    alerts: Alerts
    reference: Reference
    outbox: Outbox
    conn: Connection | None  # the transaction's connection (None outside ``with``), for audit callbacks

    def __init__(self, engine: Engine, operation: str = "scene") -> None:
        self.engine = engine
        self.operation = operation
        self.conn: Connection | None = None

    def __enter__(self) -> UnitOfWork:
        self._t0 = time.perf_counter()
        self.conn = self.engine.connect()
        self._tx = self.conn.begin()
        self.scenes, self.detections, self.alerts = Scenes(self.conn), Detections(self.conn), Alerts(self.conn)
        self.reference, self.outbox = Reference(self.conn), Outbox(self.conn)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._tx.commit()
                if self.operation != "read":  # a read-only unit of work is not a write (docs/metrics.md)
                    DB_WRITE_SECONDS.labels(self.operation).observe(time.perf_counter() - self._t0)
            else:
                self._tx.rollback()
        finally:
            self.conn.close()


def uow_factory(engine: Engine) -> Callable[[str], UnitOfWork]:
    """``operation -> UnitOfWork`` on ``engine`` (the pipeline's ``UnitOfWorkFactory`` port)."""
    return lambda operation="scene": UnitOfWork(engine, operation)


def mark_scene_failed(engine: Engine, scene: Scene, reason: str, dlq_ref: str | None) -> None:
    """Record that ``scene`` went to the DLQ: status ``failed`` with the reason and the DLQ record
    (``topic[partition]@offset``), so maps and the OGC ``scenes`` collection show it as failed, never as
    a footprint where nothing was found."""
    with UnitOfWork(engine, "status") as uow:
        uow.scenes.upsert(scene)
        uow.scenes.set_status(scene.id, "failed", reason=reason[:2000], dlq_ref=dlq_ref)
