"""Transactional outbox: enqueue one webhook per matching subscriber, inside the caller's UnitOfWork.

The alert change and its deliveries commit together or not at all; the
dispatcher sends them later. Each delivery's payload is rendered now in the
subscriber's format (``geojson`` or ``cap``) and never changes, so every retry
sends the same bytes under the same ``webhook-id``.
"""

from __future__ import annotations

from terrawatch.alerting.cap import CAP_CONTENT_TYPE, cap_alert, sent_message
from terrawatch.alerting.payloads import GEOJSON_CONTENT_TYPE, geojson_event
from datetime import datetime, timezone

from terrawatch.domain.alerts import CONFIDENCE_RANKS, Alert, HazardPolicy, is_backfill
from terrawatch.store.uow import UnitOfWork

FORMATS = ("geojson", "cap")


def render(fmt: str, alert: Alert, event_type: str, policy: HazardPolicy, sender: str, first_message: bool,
           reason: str | None = None, references: list[tuple[str, str, str]] | None = None,
           public_url: str = "", now: datetime | None = None) -> tuple[str, str]:
    """(payload text, content type) of one delivery. ``references``: CAP messages this subscriber was sent."""
    now = now or datetime.now(timezone.utc)
    if fmt == "cap":
        return (cap_alert(alert, event_type, policy, sender, first_message, reason, references, public_url, now),
                CAP_CONTENT_TYPE)
    if fmt == "geojson":
        return geojson_event(event_type, alert, backfill=is_backfill(alert, policy, now)), GEOJSON_CONTENT_TYPE
    raise ValueError(f"unknown webhook format {fmt!r}")


def fan_out(uow: UnitOfWork, alert: Alert, event_type: str, policy: HazardPolicy, sender: str,
            only_informed: bool = False, reason: str | None = None, public_url: str = "") -> list[str]:
    """Enqueue ``event_type`` for every active subscriber whose hazards, AOI and minimum confidence match.

    ``only_informed``: only subscribers already sent a message about this alert (used for operator
    transitions, so nobody first hears of an alert through its cancellation). A backfill (the last observation
    older than the rule's merge window) goes only to subscribers that opted in (``include_backfills``) or
    were already told about the alert. Returns the webhook ids.
    """
    ids = []
    now = datetime.now(timezone.utc)
    backfill = is_backfill(alert, policy, now)
    for sub in uow.outbox.matching_subscribers(alert, CONFIDENCE_RANKS):
        informed = uow.outbox.has_delivery(alert.id, sub["id"])
        if only_informed and not informed:
            continue
        if backfill and not informed and not sub.get("include_backfills"):
            continue
        refs = None
        if sub["format"] == "cap":  # only what this subscriber was (or is being) sent, in CAP
            refs = [m for m in map(sent_message, uow.outbox.sent_payloads(alert.id, sub["id"], CAP_CONTENT_TYPE)) if m]
        body, ctype = render(sub["format"], alert, event_type, policy, sender, not informed, reason, refs,
                             public_url, now)
        ids.append(uow.outbox.enqueue(alert, sub["id"], event_type, body, ctype))
    return ids
