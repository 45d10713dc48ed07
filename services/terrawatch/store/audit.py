"""SQL for the audit log (table ``audit_log``): who did what, when, from where.

Audit rows are written in the transaction of the change they record: a use case takes an
:data:`Audit` callback and calls it with its own connection, so the change and its audit row commit
together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t

# (conn, target, details): records one action inside the caller's transaction (see api/deps.ApiDeps.auditor).
Audit = Callable[[Connection, str, dict[str, Any]], None]

# Every action an audit row can name (GET /ops/audit?action= refuses others with 400;
# tests/unit/test_audit_actions.py checks that the code records no other).
ACTIONS = (
    "alert.acknowledged", "alert.confirmed", "alert.false_positive", "alert.resolved",
    "consumption.pause", "consumption.resume", "delivery.redeliver", "dlq.purge", "dlq.redrive",
    "key.create", "key.revoke", "reference_layer.delete", "reference_layer.put", "scene.backfill", "scene.replay",
    "scene.reprocess",
    "subscription.create", "subscription.deactivate", "subscription.rotate_secret", "subscription.test",
)


def record(conn: Connection, actor: str, role: str, action: str, target: str | None,
           details: dict[str, Any] | None = None, client: str | None = None) -> None:
    """Insert one audit row inside the caller's transaction."""
    conn.execute(insert(t.audit_log).values(actor=actor[:160], role=role[:16], action=action[:64], target=target,
                                            details=details or {}, client=client))


def recent(engine: Engine, action: str | None = None, limit: int = 100, since: datetime | None = None,
           until: datetime | None = None) -> list[dict]:
    """Audit rows, newest first, optionally of one ``action`` and at or after ``since`` / before ``until``."""
    q = select(t.audit_log)
    if action:
        q = q.where(t.audit_log.c.action == action)
    if since is not None:
        q = q.where(t.audit_log.c.at >= since)
    if until is not None:
        q = q.where(t.audit_log.c.at < until)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q.order_by(t.audit_log.c.id.desc()).limit(limit)).mappings()]
