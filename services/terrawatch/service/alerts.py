"""Operator actions on alerts (called by the API): lifecycle transitions and the event history.

Every transition is one transaction: the alert row (new status, version + 1),
an ``alert_events`` row (who, when, why) and the webhooks telling subscribers
who already know the alert - all commit together or not at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from terrawatch.alerting.outbox import fan_out
from terrawatch.domain.alerts import Alert, AlertStatus, HazardPolicy, can_transition, load_rules
from terrawatch.domain.errors import Conflict, NotFound
from terrawatch.settings import Settings
from terrawatch.store.audit import Audit
from terrawatch.store.db import Engine
from terrawatch.service.ports import UnitOfWorkFactory
from terrawatch.store.uow import uow_factory


class AlertNotFound(NotFound, LookupError):
    def __init__(self, alert_id: uuid.UUID) -> None:
        super().__init__(f"alert {alert_id} not found")


class IllegalTransition(Conflict, ValueError):
    pass


class VersionConflict(Conflict, ValueError):
    """The alert changed since the caller read it (optimistic concurrency via ``expected_version``)."""


@lru_cache(maxsize=4)
def _rules(path: str) -> dict[str, HazardPolicy]:
    return load_rules(Path(path))


def policies(settings: Settings) -> dict[str, HazardPolicy]:
    """The validated alert rules (loaded once per rules directory)."""
    return _rules(str(settings.alert_rules_dir))


def transition(engine: Engine, settings: Settings, alert_id: uuid.UUID, to_status: AlertStatus | str, actor: str,
               reason: str, expected_version: int | None = None,
               audit: Audit | None = None, *, uow: UnitOfWorkFactory | None = None) -> tuple[Alert, list[str]]:
    """Move an alert to ``to_status`` as ``actor`` because of ``reason``.

    Returns the updated alert and the webhook ids enqueued (event type ``alert.<status>``).
    ``audit(conn, alert id, {"reason", "version"})`` records it in the same transaction.
    Raises AlertNotFound, IllegalTransition (not allowed from the current status, or no reason),
    VersionConflict. ``uow``: the unit-of-work factory (default: ``store.uow.uow_factory(engine)``).
    """
    dst = AlertStatus(to_status)
    reason = (reason or "").strip()
    actor = (actor or "").strip()
    if not reason:
        raise IllegalTransition("a reason is required")
    if not actor:
        raise IllegalTransition("an actor is required")
    with (uow or uow_factory(engine))("alert_transition") as u:
        a = u.alerts.get(alert_id, for_update=True)
        if a is None:
            raise AlertNotFound(alert_id)
        if expected_version is not None and a.version != expected_version:
            raise VersionConflict(f"alert {alert_id} is at version {a.version}, not {expected_version}")
        if not can_transition(a.status, dst):
            raise IllegalTransition(f"alert {alert_id} cannot go from {a.status} to {dst.value}")
        src = a.status
        a.status = dst.value
        a.version += 1
        a.updated_at = datetime.now(timezone.utc)
        u.alerts.update(a)
        u.alerts.add_event(a.id, actor, src, a.status, reason, a.version)
        policy = policies(settings).get(a.hazard) or HazardPolicy(a.hazard)
        ids = fan_out(u, a, f"alert.{dst.value}", policy, settings.cap_sender, only_informed=True, reason=reason)
        if audit is not None:
            audit(u.conn, str(a.id), {"reason": reason, "version": a.version})
    return a, ids


def events(engine: Engine, alert_id: uuid.UUID, *, uow: UnitOfWorkFactory | None = None) -> list[dict]:
    """The alert's history, oldest first: dicts of id, alert_id, at, actor, from/to_status, reason, alert_version."""
    with (uow or uow_factory(engine))("read") as u:
        if u.alerts.get(alert_id) is None:
            raise AlertNotFound(alert_id)
        return u.alerts.events(alert_id)
