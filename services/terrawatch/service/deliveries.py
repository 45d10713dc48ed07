"""Webhook deliveries for operators (called by the API): list (e.g. the failed ones), inspect, redeliver.

A redelivery re-queues the same outbox row: the same ``webhook-id`` and payload
(receivers deduplicate by id), a fresh retry window, and a new attempt row.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, func, select, update

from terrawatch.store import tables as t

STATUSES = ("pending", "delivered", "failed")


class DeliveryNotFound(LookupError):
    pass


class NotRedeliverable(ValueError):
    pass


_COLUMNS = (t.webhook_outbox.c.id, t.webhook_outbox.c.alert_id, t.webhook_outbox.c.alert_version,
            t.webhook_outbox.c.subscriber_id, t.webhook_outbox.c.event_type, t.webhook_outbox.c.content_type,
            t.webhook_outbox.c.status, t.webhook_outbox.c.attempts, t.webhook_outbox.c.next_attempt_at,
            t.webhook_outbox.c.last_error, t.webhook_outbox.c.last_status_code, t.webhook_outbox.c.created_at,
            t.webhook_outbox.c.delivered_at, t.webhook_outbox.c.failed_at, t.webhook_outbox.c.window_start,
            t.webhook_outbox.c.redeliveries, t.subscribers.c.url)


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
        raise ValueError(f"status must be one of {STATUSES}")
    q = (select(*_COLUMNS).join(t.subscribers, t.subscribers.c.id == t.webhook_outbox.c.subscriber_id)
         .order_by(t.webhook_outbox.c.created_at.desc(), t.webhook_outbox.c.id.desc()).limit(max(1, min(limit, 1000))))
    if status:
        q = q.where(t.webhook_outbox.c.status == status)
    if subscriber_id:
        q = q.where(t.webhook_outbox.c.subscriber_id == subscriber_id)
    if alert_id:
        q = q.where(t.webhook_outbox.c.alert_id == alert_id)
    with engine.connect() as conn:
        if before:
            ref = conn.execute(select(t.webhook_outbox.c.created_at, t.webhook_outbox.c.id)
                               .where(t.webhook_outbox.c.id == before)).first()
            if ref is not None:
                q = q.where((t.webhook_outbox.c.created_at < ref.created_at)
                            | ((t.webhook_outbox.c.created_at == ref.created_at) & (t.webhook_outbox.c.id < ref.id)))
        return [_view(r) for r in conn.execute(q).mappings()]


def get_delivery(engine: Engine, delivery_id: str) -> dict:
    """One delivery with its attempts (oldest first) and its payload."""
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS, t.webhook_outbox.c.payload)
                           .join(t.subscribers, t.subscribers.c.id == t.webhook_outbox.c.subscriber_id)
                           .where(t.webhook_outbox.c.id == delivery_id)).mappings().first()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        attempts = [dict(r) for r in conn.execute(
            select(t.webhook_attempts).where(t.webhook_attempts.c.delivery_id == delivery_id)
            .order_by(t.webhook_attempts.c.id)).mappings()]
    out = _view(row)
    for a in attempts:
        a["at"] = a["at"].isoformat()
    out["attempts_log"] = attempts
    return out


def redeliver(engine: Engine, delivery_id: str, actor: str) -> dict:
    """Queue a failed or delivered delivery again (same webhook-id, new retry window)."""
    with engine.begin() as conn:
        row = conn.execute(select(t.webhook_outbox.c.status, t.subscribers.c.active)
                           .join(t.subscribers, t.subscribers.c.id == t.webhook_outbox.c.subscriber_id)
                           .where(t.webhook_outbox.c.id == delivery_id)
                           .with_for_update(of=t.webhook_outbox)).first()
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if row.status == "pending":
            raise NotRedeliverable(f"delivery {delivery_id} is still pending")
        if not row.active:
            raise NotRedeliverable(f"the subscription of delivery {delivery_id} is deactivated")
        conn.execute(update(t.webhook_outbox).where(t.webhook_outbox.c.id == delivery_id).values(
            status="pending", next_attempt_at=func.now(), window_start=func.now(), failed_at=None,
            redeliveries=t.webhook_outbox.c.redeliveries + 1, last_error=f"redelivery requested by {actor}"))
    return get_delivery(engine, delivery_id)


def counts(engine: Engine) -> dict[str, int]:
    """Deliveries per status (for dashboards and the demo)."""
    with engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(
            select(t.webhook_outbox.c.status, func.count()).group_by(t.webhook_outbox.c.status))}
