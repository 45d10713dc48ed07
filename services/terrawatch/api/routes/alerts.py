"""``/alerts/{id}``: one alert, its lifecycle history and operator transitions.

Transitions (operator role): ``new -> confirmed -> acknowledged -> resolved | false_positive``
(see :data:`terrawatch.domain.alerts.TRANSITIONS`); each writes an ``alert_events`` row with
the caller, time and reason, bumps the alert version and notifies the subscribers who already
know the alert (webhook event ``alert.<status>``), all in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from terrawatch.alerting.payloads import alert_feature
from terrawatch.api.errors import NotFound
from terrawatch.domain.alerts import AlertStatus
from terrawatch.service import alerts as svc
from terrawatch.service import deliveries as dsvc
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


def alerts_router(deps) -> APIRouter:
    """``deps``: :class:`terrawatch.api.deps.ApiDeps` (engine, settings, viewer/operator dependencies, audit)."""
    router = APIRouter(prefix="/alerts", tags=["alerts"])

    def _transition(alert_id: uuid.UUID, to: str, reason: str, expected_version: int | None, who,
                    request: Request) -> dict:
        alert, ids = svc.transition(deps.engine, deps.settings, alert_id, to, who.actor, reason, expected_version,
                                    audit=deps.auditor(who, request, f"alert.{to}"))
        return {"alert": alert_feature(alert), "webhooks": ids}

    @router.get("/{alert_id}", summary="One alert as a GeoJSON Feature (status, confidence, version, context).")
    def get_alert(alert_id: uuid.UUID, _=Depends(deps.viewer)) -> dict:
        with UnitOfWork(deps.read_engine, "read") as uow:
            a = uow.get_alert(alert_id)
        if a is None:
            raise NotFound(f"alert {alert_id} not found")
        return alert_feature(a)

    @router.get("/{alert_id}/events", response_model=list[AlertEvent],
                summary="The alert's lifecycle history, oldest first (who, when, why).")
    def events(alert_id: uuid.UUID, _=Depends(deps.viewer)) -> list[dict]:
        return svc.events(deps.read_engine, alert_id)

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
        return dsvc.list_deliveries(deps.engine, status=None, alert_id=alert_id, limit=1000)

    return router
