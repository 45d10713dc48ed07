"""``/alerts``: the triage list; ``/alerts/{id}``: one alert, its lifecycle history and operator transitions.

Transitions (operator role): ``new -> confirmed -> acknowledged -> resolved | false_positive``
(see :data:`terrawatch.domain.alerts.TRANSITIONS`); each writes an ``alert_events`` row with
the caller, time and reason, bumps the alert version and notifies the subscribers who already
know the alert (webhook event ``alert.<status>``), all in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from terrawatch.alerting.payloads import alert_feature
from terrawatch.api.errors import BadRequest, NotFound, excerpt
from terrawatch.domain.alerts import AlertStatus
from terrawatch.domain.hazards import HAZARDS
from terrawatch.store.alert_list import list_alerts
from terrawatch.store.uow import UnitOfWork

Target = Literal["confirmed", "acknowledged", "resolved", "false_positive"]


class TransitionIn(BaseModel):
    to: Target = Field(description="The new status.")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$",
                        description="Why (stored with the event).")
    expected_version: int | None = Field(
        default=None, ge=1, description="Refuse (409) if the alert's version differs (optimistic concurrency).")


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")
    expected_version: int | None = Field(default=None, ge=1)


class OptionalReasonIn(BaseModel):
    """Acknowledging needs no reason: a missing body or reason is recorded as ``acknowledged``."""
    reason: str = Field(default="acknowledged", min_length=1, max_length=2000, pattern=r"^[^\x00]*$")
    expected_version: int | None = Field(default=None, ge=1)


class AlertEvent(BaseModel):
    id: int
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    reason: str
    alert_version: int | None


class TransitionOut(BaseModel):
    alert: dict[str, Any] = Field(description="The alert as a GeoJSON Feature after the transition.")
    webhooks: list[str] = Field(description="webhook-ids enqueued for subscribers.")


# GET /alerts: every query parameter it reads (any other is a 400 naming it), the sort orders, the page sizes.
LIST_PARAMS = ("status", "hazard", "since", "until", "sortby", "limit", "cursor")
SORTS = ("-updated_at", "updated_at")
MAX_LIMIT = 1000


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"{name} given {len(values)} times; give it once")
    return values[0] if values else None


def _choices(request: Request, name: str, allowed: tuple[str, ...]) -> list[str]:
    """Comma-separated values of ``name``, each one of ``allowed`` (a repeated parameter is refused before:
    ``api/app.py`` ``refuse_undeclared_query``)."""
    out = [v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",")]
    for v in out:
        if v not in allowed:
            raise BadRequest(f"{name} {excerpt(v)!r} is not one of: {', '.join(allowed)}")
    return list(dict.fromkeys(out))


def _instant(name: str, raw: str | None) -> datetime | None:
    """An RFC 3339 date-time with an offset (``Z`` or ``+01:00``; a ``+`` in a URL must be sent as ``%2B``)."""
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        hint = " (a '+' in a query string reads as a space: send it as %2B, or use Z)" if " " in raw else ""
        raise BadRequest(
            f"{name} {excerpt(raw)!r} is not an RFC 3339 date-time such as 2026-12-07T08:00:00Z{hint}") from None
    if value.tzinfo is None:
        raise BadRequest(f"{name} {excerpt(raw)!r} needs a UTC offset (Z or +hh:mm)")
    return value


def _cursor_out(updated_at: datetime, alert_id: uuid.UUID, sortby: str) -> str:
    doc = json.dumps({"u": updated_at.isoformat(), "i": str(alert_id), "s": sortby}, separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode().rstrip("=")


def _cursor_in(raw: str | None, sortby: str) -> tuple[datetime, uuid.UUID] | None:
    if raw is None:
        return None
    if len(raw) > 512:  # ours are ~120 characters
        raise BadRequest("cursor is not one this API issued (too long; take it from the 'next' link)")
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        mark = (datetime.fromisoformat(doc["u"]), uuid.UUID(doc["i"]))
        made_for = doc["s"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadRequest(f"cursor {excerpt(raw)!r} is not one this API issued (take it from the 'next' link)") from None
    if made_for != sortby or mark[0].tzinfo is None:
        raise BadRequest(f"cursor was issued for sortby={excerpt(made_for)}, not sortby={sortby}")
    return mark


def alert_list(request: Request, engine) -> dict:
    """``GET /alerts``: parse and check every parameter (400 naming it), query, page."""
    unknown = sorted(set(request.query_params.keys()) - set(LIST_PARAMS))
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {', '.join(repr(excerpt(k, 64)) for k in unknown[:10])}; "
                         f"/alerts takes {', '.join(LIST_PARAMS)}")
    statuses = _choices(request, "status", tuple(s.value for s in AlertStatus))
    hazards = _choices(request, "hazard", HAZARDS)
    since, until = _instant("since", _one(request, "since")), _instant("until", _one(request, "until"))
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be before until")
    sortby = _one(request, "sortby") or SORTS[0]
    if sortby not in SORTS:
        raise BadRequest(f"sortby {excerpt(sortby)!r} is not one of: {', '.join(SORTS)}")
    raw_limit = _one(request, "limit")
    if raw_limit is None:
        limit = 100
    elif raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4 and 1 <= int(raw_limit) <= MAX_LIMIT:
        limit = int(raw_limit)
    else:
        raise BadRequest(f"limit {excerpt(raw_limit)!r} must be an integer from 1 to {MAX_LIMIT}")
    after = _cursor_in(_one(request, "cursor"), sortby)
    rows = list_alerts(engine, statuses=statuses, hazards=hazards, since=since, until=until,
                       ascending=sortby == "updated_at", after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    links = [{"rel": "self", "type": "application/geo+json", "href": str(request.url)}]
    if more:
        last = page[-1]
        links.append({"rel": "next", "type": "application/geo+json",
                      "href": str(request.url.include_query_params(cursor=_cursor_out(last.updated_at, last.id, sortby)))})
    return {"type": "FeatureCollection", "features": [alert_feature(a) for a in page],
            "numberReturned": len(page), "links": links}


def alerts_router(deps) -> APIRouter:
    """``deps``: :class:`terrawatch.api.deps.ApiDeps` (engine, settings, viewer/operator dependencies, audit)."""
    router = APIRouter(prefix="/alerts", tags=["alerts"])

    def _transition(alert_id: uuid.UUID, to: str, reason: str, expected_version: int | None, who,
                    request: Request) -> dict:
        alert, ids = deps.runbook.alerts.transition(alert_id, to, who.actor, reason, expected_version,
                                                    audit=deps.auditor(who, request, f"alert.{to}"))
        return {"alert": alert_feature(alert), "webhooks": ids}

    @router.get("", summary="Triage list: alerts by status, hazard and last change (since/until on updated_at), "
                            "newest change first, keyset-paged through the 'next' link. Other parameters: 400.")
    def list_route(
        request: Request,
        status: Annotated[str | None, Query(description="Comma-separated, any of: "
                                            + ", ".join(s.value for s in AlertStatus))] = None,
        hazard: Annotated[str | None, Query(description="Comma-separated, any of: " + ", ".join(HAZARDS))] = None,
        since: Annotated[str | None, Query(description="RFC 3339 with offset: updated_at at or after this.")] = None,
        until: Annotated[str | None, Query(description="RFC 3339 with offset: updated_at before this.")] = None,
        sortby: Annotated[str | None, Query(description="-updated_at (default, newest first) or updated_at "
                                                        "(oldest first, for incremental pulls).")] = None,
        limit: Annotated[str | None, Query(description=f"Page size, 1..{MAX_LIMIT} (default 100).")] = None,
        cursor: Annotated[str | None, Query(description="Opaque; from the previous page's 'next' link.")] = None,
        _=Depends(deps.viewer),
    ) -> dict:
        return alert_list(request, deps.read_engine)

    @router.get("/{alert_id}", summary="One alert as a GeoJSON Feature (status, confidence, version, context).")
    def get_alert(alert_id: uuid.UUID, _=Depends(deps.viewer)) -> dict:
        with UnitOfWork(deps.read_engine, "read") as uow:
            a = uow.alerts.get(alert_id)
        if a is None:
            raise NotFound(f"alert {alert_id} not found")
        return alert_feature(a)

    @router.get("/{alert_id}/events", response_model=list[AlertEvent],
                summary="The alert's lifecycle history, oldest first (who, when, why).")
    def events(alert_id: uuid.UUID, _=Depends(deps.viewer)) -> list[dict]:
        return deps.runbook.alerts.events(alert_id)

    @router.post("/{alert_id}/transitions", response_model=TransitionOut,
                 summary="Change the alert's status (operator); 409 if not allowed from the current status.")
    def transition(alert_id: uuid.UUID, body: TransitionIn, request: Request, who=Depends(deps.operator)) -> dict:
        return _transition(alert_id, body.to, body.reason, body.expected_version, who, request)

    def _shortcut(to: str):
        def shortcut(alert_id: uuid.UUID, body: ReasonIn, request: Request, who=Depends(deps.operator)) -> dict:
            return _transition(alert_id, to, body.reason, body.expected_version, who, request)

        def optional(alert_id: uuid.UUID, request: Request, body: OptionalReasonIn | None = None,
                     who=Depends(deps.operator)) -> dict:
            body = body or OptionalReasonIn()
            return _transition(alert_id, to, body.reason, body.expected_version, who, request)
        return optional if to == AlertStatus.ACKNOWLEDGED.value else shortcut

    for path, status in (("acknowledge", AlertStatus.ACKNOWLEDGED), ("resolve", AlertStatus.RESOLVED),
                         ("false-positive", AlertStatus.FALSE_POSITIVE), ("confirm", AlertStatus.CONFIRMED)):
        router.add_api_route(f"/{{alert_id}}/{path}", _shortcut(status.value), methods=["POST"],
                             response_model=TransitionOut, name=f"alert_{status.value}",
                             summary=f"Shortcut for a transition to {status.value}.")

    @router.get("/{alert_id}/deliveries", summary="Webhook deliveries about this alert (operator).")
    def deliveries(alert_id: uuid.UUID, _=Depends(deps.operator)) -> list[dict]:
        return deps.runbook.deliveries.list(status=None, alert_id=alert_id, limit=1000)

    return router
