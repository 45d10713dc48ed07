"""SQL for the alert triage list (``GET /alerts``): alerts filtered by status, hazard and a time window on
``updated_at``, keyset-paged on ``(updated_at, id)`` so an incremental pull never skips or repeats a row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, literal, select, tuple_

from terrawatch.domain.alerts import Alert
from terrawatch.store import tables as t
from terrawatch.store.repositories import alert_from_row as _alert


def list_alerts(engine: Engine, *, statuses: Sequence[str] = (), hazards: Sequence[str] = (),
                since: datetime | None = None, until: datetime | None = None, ascending: bool = False,
                after: tuple[datetime, uuid.UUID] | None = None, limit: int = 100) -> list[Alert]:
    """Up to ``limit`` alerts ordered by ``(updated_at, id)`` (newest first unless ``ascending``).

    ``since`` inclusive, ``until`` exclusive (both on ``updated_at``, timezone-aware); ``after`` is the
    ``(updated_at, id)`` of the last row of the previous page: only rows past it in the sort order."""
    a = t.alerts
    q = select(a)
    if statuses:
        q = q.where(a.c.status.in_(list(statuses)))
    if hazards:
        q = q.where(a.c.hazard.in_(list(hazards)))
    if since is not None:
        q = q.where(a.c.updated_at >= since)
    if until is not None:
        q = q.where(a.c.updated_at < until)
    key = tuple_(a.c.updated_at, a.c.id)
    if after is not None:
        mark = tuple_(literal(after[0], a.c.updated_at.type), literal(after[1], a.c.id.type))
        q = q.where(key > mark if ascending else key < mark)
    order = (a.c.updated_at.asc(), a.c.id.asc()) if ascending else (a.c.updated_at.desc(), a.c.id.desc())
    with engine.connect() as conn:
        return [_alert(r) for r in conn.execute(q.order_by(*order).limit(limit)).mappings()]
