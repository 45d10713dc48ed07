"""Webhook deliveries for operators (called by the API): list (e.g. the failed ones), inspect, redeliver.

A redelivery re-queues the same outbox row: the same ``webhook-id`` and payload
(receivers deduplicate by id), a fresh retry window, and a new attempt row.
"""

from __future__ import annotations

import uuid

from terrawatch.domain.errors import Conflict, InvalidInput, NotFound
from terrawatch.store import outbox
from terrawatch.store.audit import Audit
from terrawatch.store.db import Engine
from terrawatch.store.outbox import OutboxStatus

STATUSES = outbox.STATUSES


class DeliveryNotFound(NotFound, LookupError):
    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"delivery {delivery_id} not found")


class NotRedeliverable(Conflict, ValueError):
    pass


def _view(row) -> dict:
    d = dict(row)
    for k in ("alert_id", "subscriber_id"):
        d[k] = str(d[k])
    for k in ("next_attempt_at", "created_at", "delivered_at", "failed_at", "window_start"):
        d[k] = d[k].isoformat() if d[k] else None
    d["webhook_id"] = d["id"]
    return d


def list_deliveries(engine: Engine, status: str | None = "failed", subscriber_id: uuid.UUID | None = None,
                    alert_id: uuid.UUID | None = None, limit: int = 100, before: str | None = None) -> list[dict]:
    """Deliveries, newest first, filtered by status/subscriber/alert; ``before`` = a delivery id to page after."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {STATUSES}")
    rows = outbox.list_deliveries(engine, status, subscriber_id, alert_id, max(1, min(limit, 1000)), before)
    return [_view(r) for r in rows]


def get_delivery(engine: Engine, delivery_id: str) -> dict:
    """One delivery with its attempts (oldest first) and its payload."""
    found = outbox.get_delivery(engine, delivery_id)
    if found is None:
        raise DeliveryNotFound(delivery_id)
    row, attempts = found
    out = _view(row)
    for a in attempts:
        a["at"] = a["at"].isoformat()
    out["attempts_log"] = attempts
    return out


def redeliver(engine: Engine, delivery_id: str, actor: str, audit: Audit | None = None) -> dict:
    """Queue a failed or delivered delivery again (same webhook-id, new retry window); ``audit(conn, id,
    {"alert_id"})`` records it in the same transaction."""
    with engine.begin() as conn:
        found = outbox.lock_for_redelivery(conn, delivery_id)
        if found is None:
            raise DeliveryNotFound(delivery_id)
        if found["status"] == OutboxStatus.PENDING:
            raise NotRedeliverable(f"delivery {delivery_id} is still pending")
        if not found["active"]:
            raise NotRedeliverable(f"the subscription of delivery {delivery_id} is deactivated")
        outbox.requeue(conn, delivery_id, f"redelivery requested by {actor}")
        if audit is not None:
            audit(conn, delivery_id, {"alert_id": str(found["alert_id"])})
    return get_delivery(engine, delivery_id)


def counts(engine: Engine) -> dict[str, int]:
    """Deliveries per status (for dashboards and the demo)."""
    return outbox.counts(engine)
