"""What routers depend on, as one object handed to every router factory ``xxx_router(deps)``.

Nothing here connects at construction: the database engine and the Kafka
producer are created on first use, so the app object can be pickled for Ray
Serve and started while a dependency is still down (``/ops/readyz`` says which).

Contract for router factories (``api/routes/*.py``)::

    def alerts_router(deps: ApiDeps) -> APIRouter:
        router = APIRouter(prefix="/alerts", tags=["alerts"])

        @router.post("/{alert_id}/acknowledge")
        def acknowledge(alert_id: uuid.UUID, request: Request,
                        who: Principal = Depends(deps.operator)) -> dict:
            with deps.engine.begin() as conn:
                ...
                deps.audit(conn, who, "alert.acknowledge", str(alert_id), {...}, request)

A use case that opens its own transaction takes ``audit=deps.auditor(who, request, "action")`` and calls
it with that transaction's connection, so the change and its audit row commit together.

``deps.viewer`` / ``deps.operator`` / ``deps.admin`` are dependencies that
return the calling :class:`~terrawatch.api.security.Principal` (401 without a
valid key, 403 with a too-weak role). Raise the errors of
:mod:`terrawatch.api.errors` (or domain errors) for 4xx responses.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from fastapi import Request
from terrawatch.api.security import AuthFailureLimiter, Principal, Role, require
from terrawatch.api.tile_cache import TileCache
from terrawatch.settings import Settings
from terrawatch.store import audit as audit_log
from terrawatch.store.audit import Audit
from terrawatch.store.db import Connection, Engine

if TYPE_CHECKING:
    from terrawatch.service.runbook import Runbook


class ApiDeps:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._producer = None
        self._runbook = None
        # Rendered vector and raster tiles share this one byte budget (TERRAWATCH_API_TILE_CACHE_MB).
        self.tile_cache = TileCache(settings.api_tile_cache_mb << 20)
        limiter = AuthFailureLimiter(settings.api_auth_failures_per_minute)
        engine = lambda: self.engine  # noqa: E731 - resolved per request, lazily
        self.limiter = limiter
        self.viewer = require(Role.VIEWER, engine, limiter)
        # The map layers (OGC API, tiles): anonymous when TERRAWATCH_API_PUBLIC_READ is on.
        self.layers = require(Role.VIEWER, engine, limiter, public=settings.api_public_read)
        # Anyone; a presented key is still verified (401 if wrong) and unlocks details (/ops/readyz).
        self.optional_viewer = require(Role.VIEWER, engine, limiter, public=True)
        self.operator = require(Role.OPERATOR, engine, limiter)
        self.admin = require(Role.ADMIN, engine, limiter)

    @property
    def engine(self) -> Engine:
        """The API's write role (auth, audit, ops/admin actions): ``TERRAWATCH_API_WRITE_DATABASE_URL``."""
        from terrawatch.store.uow import engine_for

        return engine_for(self.settings.api_write_db_url, self.settings.api_statement_timeout_ms)

    @property
    def read_engine(self) -> Engine:
        """The API's read role (SELECT on published views and read-route columns only)."""
        from terrawatch.store.uow import engine_for

        return engine_for(self.settings.api_read_db_url, self.settings.api_statement_timeout_ms)

    @property
    def runbook(self) -> Runbook:
        """The runbook's services of this API process (``service/bootstrap.build_runbook``), built on first use from
        the write and read pools and the shared producer, then reused by every ``/ops`` route (what the CLI
        calls too)."""
        with self._lock:
            if self._runbook is None:
                from terrawatch.service.bootstrap import build_runbook

                # self.producer (the bound method, called only when an action publishes): not under this lock
                self._runbook = build_runbook(self.settings, self.engine, read_engine=self.read_engine,
                                              producer=self.producer)
            return self._runbook

    def producer(self):
        """A shared idempotent Kafka producer (confluent-kafka is thread-safe)."""
        with self._lock:
            if self._producer is None:
                from terrawatch.ingest import kafka_io

                self._producer = kafka_io.producer(self.settings)
            return self._producer

    def audit(self, conn: Connection, who: Principal, action: str, target: str | None,
              details: dict[str, Any] | None = None, request: Request | None = None) -> None:
        """Record one action in ``audit_log`` inside the caller's transaction (who, when, what)."""
        client = request.client.host if request is not None and request.client else None
        audit_log.record(conn, who.actor, who.role.value, action, target, details, client)

    def auditor(self, who: Principal, request: Request | None, action: str) -> Audit:
        """The ``audit(conn, target, details)`` callback a use case calls inside its own transaction."""
        return lambda conn, target, details: self.audit(conn, who, action, target, details, request)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(10)
                self._producer = None

    # Ray Serve pickles the app: drop the live producer and lock, keep the settings.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_producer"] = None
        state["_runbook"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
