"""SQL for the audit log (table ``audit_log``): who did what, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t


def record(conn: Connection, actor: str, role: str, action: str, target: str | None,
           details: dict[str, Any] | None = None, client: str | None = None) -> None:
    """Insert one audit row inside the caller's transaction."""
    conn.execute(insert(t.audit_log).values(actor=actor[:160], role=role[:16], action=action[:64], target=target,
                                            details=details or {}, client=client))
