"""``/subscriptions`` (admin) and ``/deliveries`` (operator): webhook subscribers and their deliveries.

A subscription names a webhook URL (SSRF-checked), an area of interest (GeoJSON
Polygon/MultiPolygon, lon/lat), hazards, a minimum confidence and a payload
format (``geojson`` or ``cap``). The signing secret is generated server-side and
appears only in the create and rotate-secret responses.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from geojson_pydantic import MultiPolygon, Polygon
from pydantic import BaseModel, ConfigDict, Field

from terrawatch.service import subscriptions as svc


# Outbox ids are Standard Webhooks message ids ``msg_<32 hex>``; anything else cannot exist.
MSG_ID = r"^msg_[A-Za-z0-9_-]{1,60}$"
DeliveryId = Annotated[str, Path(pattern=MSG_ID, description="The delivery's webhook-id.")]
# store.outbox.OutboxStatus's values, or all (a unit test keeps them equal).
StatusFilter = Literal["pending", "delivered", "failed", "all"]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is a 422 that names it, never ignored

    url: str = Field(min_length=8, max_length=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f]+$",
                     description="http(s) URL receiving signed POSTs.")
    aoi: Polygon | MultiPolygon | None = Field(
        default=None, description="Area of interest (GeoJSON, lon/lat EPSG:4326); omitted = everywhere.")
    hazards: list[str] = Field(min_length=1, description="Hazards to receive, e.g. flood, deforestation, mining.")
    min_confidence: Literal["low", "high", "highest"] = "low"
    format: Literal["geojson", "cap"] = "geojson"
    description: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00]*$")
    include_backfills: bool = Field(
        default=False, description="Also send alerts whose last observation is older than the rule's merge window "
        "(backfills of archive scenes; CAP urgency Past, no expires). Off: only news.")


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    url: str
    aoi: dict[str, Any] | None
    hazards: list[str]
    min_confidence: str
    format: str
    active: bool
    description: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    include_backfills: bool = False


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="Standard Webhooks signing secret (whsec_...). Shown once; store it now.")


class TestDelivery(BaseModel):
    subscription_id: uuid.UUID
    format: str
    webhook_id: str = Field(description="The test event's webhook-id (msg_test_...); not stored in the outbox.")
    event_type: str
    delivered: bool = Field(description="The receiver answered 2xx.")
    status_code: int | None
    error: str | None
    duration_s: float


class SecretOut(BaseModel):
    id: uuid.UUID
    secret: str = Field(description="The new signing secret. Shown once.")


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    alert_id: uuid.UUID
    alert_version: int
    subscriber_id: uuid.UUID
    url: str
    event_type: str
    content_type: str
    status: str
    attempts: int
    redeliveries: int
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    window_start: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    outcome: str
    status_code: int | None
    error: str | None
    duration_s: float | None


class DeliveryDetail(DeliveryOut):
    payload: str
    attempts_log: list[AttemptOut]


def subscriptions_router(deps) -> APIRouter:
    """``deps``: :class:`terrawatch.api.deps.ApiDeps` (engine, settings, operator/admin dependencies, audit)."""
    router = APIRouter(tags=["webhooks"])

    @router.post("/subscriptions", response_model=SubscriptionCreated, status_code=201,
                 summary="Register a webhook subscriber; the response shows its signing secret once.")
    def create(body: SubscriptionIn, request: Request, who=Depends(deps.admin)) -> dict:
        req = svc.NewSubscription(url=body.url, hazards=body.hazards,
                                  aoi=body.aoi.model_dump(exclude_none=True) if body.aoi else None,
                                  min_confidence=body.min_confidence, format=body.format,
                                  description=body.description, include_backfills=body.include_backfills)
        sub, secret = deps.runbook.subscriptions.create(req, who.actor,
                                                        audit=deps.auditor(who, request, "subscription.create"))
        return {**sub, "secret": secret}

    @router.get("/subscriptions", response_model=list[SubscriptionOut], summary="Subscribers (never their secrets).")
    def list_subscriptions(include_inactive: bool = False, _=Depends(deps.admin)) -> list[dict]:
        return deps.runbook.subscriptions.list(include_inactive)

    @router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut, summary="One subscriber.")
    def get_subscription(subscription_id: uuid.UUID, _=Depends(deps.admin)) -> dict:
        return deps.runbook.subscriptions.get(subscription_id)

    @router.post("/subscriptions/{subscription_id}/rotate-secret", response_model=SecretOut,
                 summary="Replace the signing secret; the response shows the new one once.")
    def rotate(subscription_id: uuid.UUID, request: Request, who=Depends(deps.admin)) -> dict:
        audit = deps.auditor(who, request, "subscription.rotate_secret")
        secret = deps.runbook.subscriptions.rotate_secret(subscription_id, audit=audit)
        return {"id": subscription_id, "secret": secret}

    @router.post("/subscriptions/{subscription_id}/test", response_model=TestDelivery,
                 summary="Send the subscriber a signed test event now and report what it answered.",
                 description="GeoJSON subscribers get `{\"type\": \"webhook.test\"}`, CAP subscribers a CAP "
                 "document with `<status>Test</status>`; signed like every delivery (Standard Webhooks), through "
                 "the same SSRF guard, not retried. 200 with `delivered: false` and the error when the receiver "
                 "failed; 404 for an unknown or inactive subscription.")
    def test_ping(subscription_id: uuid.UUID, request: Request, who=Depends(deps.admin)) -> dict:
        return deps.runbook.subscriptions.send_test(subscription_id,
                                                    audit=deps.auditor(who, request, "subscription.test"))

    @router.delete("/subscriptions/{subscription_id}", status_code=204,
                   summary="Deactivate a subscriber; its pending deliveries become failed (redeliverable).")
    def delete(subscription_id: uuid.UUID, request: Request, who=Depends(deps.admin)) -> None:
        deps.runbook.subscriptions.deactivate(subscription_id, who.actor,
                                              audit=deps.auditor(who, request, "subscription.deactivate"))

    @router.get("/deliveries", response_model=list[DeliveryOut],
                summary="Webhook deliveries, newest first (default: the failed ones, for operators).")
    def list_deliveries(
        status: StatusFilter = "failed",
        subscription_id: uuid.UUID | None = None, alert_id: uuid.UUID | None = None,
        limit: int = Query(100, ge=1, le=1000),
        before: str | None = Query(None, pattern=MSG_ID, description="A delivery id: page after it."),
        _=Depends(deps.operator),
    ) -> list[dict]:
        return deps.runbook.deliveries.list(None if status == "all" else status, subscription_id, alert_id,
                                            limit, before)

    @router.get("/deliveries/{delivery_id}", response_model=DeliveryDetail,
                summary="One delivery with its payload and every attempt.")
    def get_delivery(delivery_id: DeliveryId, _=Depends(deps.operator)) -> dict:
        return deps.runbook.deliveries.get(delivery_id)

    @router.post("/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut, status_code=202,
                 summary="Send a failed (or delivered) webhook again: same webhook-id, new attempt and retry window.")
    def redeliver(delivery_id: DeliveryId, request: Request, who=Depends(deps.operator)) -> dict:
        return deps.runbook.deliveries.redeliver(delivery_id, who.actor,
                                                 audit=deps.auditor(who, request, "delivery.redeliver"))

    return router
