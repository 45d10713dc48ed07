"""SQL for webhook deliveries (tables ``webhook_outbox`` and ``webhook_attempts``).

A delivery is one outbox row (id = the Standard Webhooks ``webhook-id``) in one :class:`OutboxStatus`;
each HTTP request it takes is one attempt row with an :class:`AttemptOutcome`. Rows are enqueued in the
scene's or transition's unit of work (:meth:`terrawatch.store.uow.UnitOfWork.enqueue`); the dispatcher
(:mod:`terrawatch.alerting.dispatcher`) claims and completes them with the functions below, operators list
and re-queue them through :mod:`terrawatch.service.deliveries`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, and_, exists, func, insert, select, update
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t


class OutboxStatus(StrEnum):
    """``webhook_outbox.status``: waiting for its (next) attempt, delivered (2xx), or failed for good."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    """``webhook_attempts.outcome``. ``sending``: recorded before the request left; ``unknown``: the sender
    stopped mid-request (found when the delivery is claimed again)."""

    SENDING = "sending"
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"


STATUSES = tuple(s.value for s in OutboxStatus)

ob = t.webhook_outbox
wa = t.webhook_attempts
_earlier = ob.alias("earlier")
# an earlier version of the same alert is still pending for the same subscriber: keep the order
_waits_for_earlier = exists().where(
    _earlier.c.subscriber_id == ob.c.subscriber_id, _earlier.c.alert_id == ob.c.alert_id,
    _earlier.c.status == OutboxStatus.PENDING, _earlier.c.alert_version < ob.c.alert_version)
_pending = ob.c.status == OutboxStatus.PENDING


# dispatcher ---------------------------------------------------------------------------------------
def pending_count(engine: Engine, subscribers=None) -> int:
    """Pending deliveries (of ``subscribers``, ids, if given)."""
    q = select(func.count()).select_from(ob).where(_pending)
    if subscribers is not None:
        q = q.where(ob.c.subscriber_id.in_(list(subscribers)))
    with engine.connect() as conn:
        return conn.execute(q).scalar_one()


def due_endpoints(conn: Connection, now: datetime, limit: int) -> list[uuid.UUID]:
    """Subscribers with deliveries due at ``now``, the longest-waiting first."""
    due = _pending & (ob.c.next_attempt_at <= now)
    return [r[0] for r in conn.execute(select(ob.c.subscriber_id).where(due).group_by(ob.c.subscriber_id)
                                       .order_by(func.min(ob.c.next_attempt_at)).limit(limit))]


def lock_due(conn: Connection, subscriber_id: uuid.UUID, now: datetime, limit: int) -> list[dict]:
    """Lock up to ``limit`` due deliveries of one subscriber (``FOR UPDATE SKIP LOCKED``), in version order
    (none whose alert has an earlier version still pending), with the subscriber's url, secret and active."""
    rows = conn.execute(
        select(ob, t.subscribers.c.url, t.subscribers.c.secret, t.subscribers.c.active)
        .join(t.subscribers, t.subscribers.c.id == ob.c.subscriber_id)
        .where(_pending, ob.c.next_attempt_at <= now, ob.c.subscriber_id == subscriber_id, ~_waits_for_earlier)
        .order_by(ob.c.next_attempt_at, ob.c.alert_version).limit(limit)
        .with_for_update(skip_locked=True, of=ob)).mappings().all()
    return [dict(r) for r in rows]


def start_attempt(conn: Connection, delivery_id: str, attempt: int, lease_until: datetime,
                  cut_error: str) -> tuple[int, list[int]]:
    """Lease a locked delivery until ``lease_until`` and record attempt number ``attempt`` (``sending``).

    Earlier attempts still ``sending`` become ``unknown`` with ``cut_error``. Returns (the new attempt row's
    id, the numbers of the attempts found cut short)."""
    cut = [n for (n,) in conn.execute(
        update(wa).where(wa.c.delivery_id == delivery_id, wa.c.outcome == AttemptOutcome.SENDING)
        .values(outcome=AttemptOutcome.UNKNOWN, error=cut_error).returning(wa.c.attempt))]
    conn.execute(update(ob).where(ob.c.id == delivery_id).values(next_attempt_at=lease_until, attempts=attempt))
    attempt_id = conn.execute(insert(wa).values(delivery_id=delivery_id, attempt=attempt,
                                                outcome=AttemptOutcome.SENDING).returning(wa.c.id)).scalar_one()
    return attempt_id, cut


def expire_due(conn: Connection, subscriber_id: uuid.UUID, now: datetime, retry_window: timedelta,
               note: str, error: str) -> int:
    """Fail one subscriber's due deliveries whose retry window has passed (``note`` appended to their last
    error, one ``failed`` attempt row with ``error`` each); returns how many."""
    res = conn.execute(update(ob).where(
        ob.c.subscriber_id == subscriber_id, _pending, ob.c.next_attempt_at <= now,
        ob.c.window_start <= now - retry_window,
    ).values(status=OutboxStatus.FAILED, failed_at=now,
             last_error=func.concat(func.coalesce(ob.c.last_error, ""), note))
      .returning(ob.c.id, ob.c.attempts)).all()
    for r in res:
        conn.execute(insert(wa).values(delivery_id=r.id, attempt=r.attempts, outcome=AttemptOutcome.FAILED,
                                       error=error))
    return len(res)


def pending_and_failed(conn: Connection) -> tuple[int, int]:
    """(pending, failed) deliveries: the outbox gauges."""
    n = {s: int(c) for s, c in conn.execute(select(ob.c.status, func.count()).where(
        ob.c.status.in_((OutboxStatus.PENDING, OutboxStatus.FAILED))).group_by(ob.c.status))}
    return n.get(OutboxStatus.PENDING, 0), n.get(OutboxStatus.FAILED, 0)


def finish_attempt(engine: Engine, delivery_id: str, attempt: int, attempt_id: int, outcome: AttemptOutcome,
                   code: int | None, error: str | None, duration_s: float, values: dict[str, Any]) -> None:
    """Record an attempt's result: the attempt row always; the delivery (``values``: status, timestamps,
    next_attempt_at) only if it is still pending at this attempt (nobody took it over meanwhile)."""
    with engine.begin() as conn:
        conn.execute(update(ob).where(and_(ob.c.id == delivery_id, _pending, ob.c.attempts == attempt))
                     .values(last_error=error, last_status_code=code, **values))
        conn.execute(update(wa).where(wa.c.id == attempt_id).values(
            outcome=outcome, status_code=code, error=error, duration_s=duration_s))


# operators ----------------------------------------------------------------------------------------
_COLUMNS = (ob.c.id, ob.c.alert_id, ob.c.alert_version, ob.c.subscriber_id, ob.c.event_type, ob.c.content_type,
            ob.c.status, ob.c.attempts, ob.c.next_attempt_at, ob.c.last_error, ob.c.last_status_code,
            ob.c.created_at, ob.c.delivered_at, ob.c.failed_at, ob.c.window_start, ob.c.redeliveries,
            t.subscribers.c.url)


def _with_url(q):
    return q.join(t.subscribers, t.subscribers.c.id == ob.c.subscriber_id)


def list_deliveries(engine: Engine, status: str | None, subscriber_id: uuid.UUID | None,
                    alert_id: uuid.UUID | None, limit: int, before: str | None) -> list[dict]:
    """Deliveries (with the subscriber's url), newest first; ``before``: a delivery id to page after."""
    q = _with_url(select(*_COLUMNS)).order_by(ob.c.created_at.desc(), ob.c.id.desc()).limit(limit)
    if status:
        q = q.where(ob.c.status == status)
    if subscriber_id:
        q = q.where(ob.c.subscriber_id == subscriber_id)
    if alert_id:
        q = q.where(ob.c.alert_id == alert_id)
    with engine.connect() as conn:
        if before:
            ref = conn.execute(select(ob.c.created_at, ob.c.id).where(ob.c.id == before)).first()
            if ref is not None:
                q = q.where((ob.c.created_at < ref.created_at)
                            | ((ob.c.created_at == ref.created_at) & (ob.c.id < ref.id)))
        return [dict(r) for r in conn.execute(q).mappings()]


def get_delivery(engine: Engine, delivery_id: str) -> tuple[dict, list[dict]] | None:
    """(the delivery with its payload and url, its attempts oldest first), or None."""
    with engine.connect() as conn:
        row = conn.execute(_with_url(select(*_COLUMNS, ob.c.payload)).where(ob.c.id == delivery_id)).mappings().first()
        if row is None:
            return None
        attempts = [dict(r) for r in conn.execute(
            select(wa).where(wa.c.delivery_id == delivery_id).order_by(wa.c.id)).mappings()]
    return dict(row), attempts


def lock_for_redelivery(conn: Connection, delivery_id: str) -> dict | None:
    """Lock a delivery; its status, alert_id and whether its subscription is ``active``; None if there is none."""
    row = conn.execute(_with_url(select(ob.c.status, ob.c.alert_id, t.subscribers.c.active))
                       .where(ob.c.id == delivery_id).with_for_update(of=ob)).mappings().first()
    return None if row is None else dict(row)


def requeue(conn: Connection, delivery_id: str, note: str) -> None:
    """Make a delivery pending again now, with a fresh retry window (same id and payload)."""
    conn.execute(update(ob).where(ob.c.id == delivery_id).values(
        status=OutboxStatus.PENDING, next_attempt_at=func.now(), window_start=func.now(), failed_at=None,
        redeliveries=ob.c.redeliveries + 1, last_error=note))


def fail_pending_of(conn: Connection, subscriber_id: uuid.UUID, reason: str) -> int:
    """Fail every pending delivery of a subscriber (visible and redeliverable); returns how many."""
    return conn.execute(update(ob).where(ob.c.subscriber_id == subscriber_id, _pending).values(
        status=OutboxStatus.FAILED, failed_at=func.now(), last_error=reason)).rowcount


def counts(engine: Engine) -> dict[str, int]:
    """Deliveries per status."""
    with engine.connect() as conn:
        return {s: int(n) for s, n in conn.execute(select(ob.c.status, func.count()).group_by(ob.c.status))}
