"""Webhook subscriptions (called by the API): register, list, show, rotate the secret, deactivate.

The signing secret (``whsec_`` + base64 of 32 random bytes, the Standard
Webhooks format) is generated here and returned only by :func:`create` and
:func:`rotate_secret`; no read returns it again. Targets pass the SSRF guard at
registration (and again at every delivery).
"""

from __future__ import annotations

import base64
import math
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from terrawatch.alerting.outbox import FORMATS
from terrawatch.alerting.ssrf import UnsafeWebhookTarget, check_target, parse_allow_list
from terrawatch.domain.alerts import CONFIDENCE_RANKS
from terrawatch.domain.errors import Conflict, InvalidInput, NotFound
from terrawatch.domain.polygons import as_multipolygon
from terrawatch.service.alerts import policies
from terrawatch.settings import Settings
from terrawatch.store import outbox
from terrawatch.store import subscribers as store
from terrawatch.store.audit import Audit
from terrawatch.store.db import Engine


class InvalidSubscription(InvalidInput, ValueError):
    pass


class SubscriptionConflict(Conflict, ValueError):
    pass


class SubscriptionNotFound(NotFound, LookupError):
    def __init__(self, sid: uuid.UUID, active: bool = False) -> None:
        super().__init__(f"{'active ' if active else ''}subscription {sid} not found")


@dataclass
class NewSubscription:
    """``aoi``: a GeoJSON Polygon/MultiPolygon in lon/lat (EPSG:4326), or None for everywhere."""

    url: str
    hazards: list[str]
    aoi: dict[str, Any] | None = None
    min_confidence: str = "low"
    format: str = "geojson"
    description: str | None = None
    include_backfills: bool = False  # also alerts last observed before the rule's merge window (history)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _aoi(geojson: dict | None) -> MultiPolygon | None:
    if geojson is None:
        return None
    try:
        g = shape(geojson)
    except Exception as exc:  # noqa: BLE001 - shapely raises several types for bad GeoJSON
        raise InvalidSubscription(f"aoi is not a GeoJSON geometry: {exc}") from exc
    if not isinstance(g, (Polygon, MultiPolygon)) or g.is_empty:
        raise InvalidSubscription("aoi must be a non-empty GeoJSON Polygon or MultiPolygon")
    minx, miny, maxx, maxy = g.bounds
    if not all(map(math.isfinite, g.bounds)) or minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidSubscription("aoi coordinates must be finite lon/lat (EPSG:4326)")
    if not g.is_valid:
        g = shapely.make_valid(g)
    mp = as_multipolygon(g)
    if mp.is_empty or mp.area == 0:
        raise InvalidSubscription("aoi must enclose an area")
    return mp


def validate(req: NewSubscription, settings: Settings) -> MultiPolygon | None:
    if "\x00" in req.url or "\x00" in (req.description or ""):
        raise InvalidSubscription("url and description must not contain NUL characters")
    known = set(policies(settings))
    if not req.hazards or not set(req.hazards) <= known:
        raise InvalidSubscription(f"hazards must be a non-empty subset of {sorted(known)}")
    if req.min_confidence not in CONFIDENCE_RANKS:
        raise InvalidSubscription(f"min_confidence must be one of {list(CONFIDENCE_RANKS)}")
    if req.format not in FORMATS:
        raise InvalidSubscription(f"format must be one of {list(FORMATS)}")
    try:
        check_target(req.url, parse_allow_list(settings.webhook_allow_private, settings))
    except UnsafeWebhookTarget as exc:
        raise InvalidSubscription(f"webhook url refused: {exc}") from exc
    return _aoi(req.aoi)


def public(row) -> dict:
    """A subscriber row without its secret; ``aoi`` as GeoJSON."""
    return {
        "id": str(row["id"]), "url": row["url"], "hazards": list(row["hazards"]),
        "min_confidence": row["min_confidence"], "format": row["format"], "active": row["active"],
        "aoi": mapping(row["aoi"]) if row["aoi"] is not None else None,
        "description": row.get("description"), "created_by": row.get("created_by"),
        "include_backfills": bool(row.get("include_backfills", False)),
        "created_at": row["created_at"].isoformat() if row["created_at"] else None,
    }


def create(engine: Engine, settings: Settings, req: NewSubscription, actor: str,
           audit: Audit | None = None) -> tuple[dict, str]:
    """Register a subscriber; returns (its public view, the secret - shown this once).

    A deactivated subscription to the same URL is reactivated with the new settings and secret
    (keeping its id and delivery history); an active one is a conflict. ``audit(conn, id, details)``
    records the registration in the same transaction.
    """
    aoi = validate(req, settings)
    secret = new_secret()
    values = dict(url=req.url, secret=secret, hazards=list(dict.fromkeys(req.hazards)),
                  min_confidence=req.min_confidence, format=req.format, description=req.description,
                  created_by=actor, aoi=aoi, active=True, include_backfills=req.include_backfills)
    try:
        with engine.begin() as conn:
            old = store.lock_by_url(conn, req.url)
            if old is not None and old[1]:
                raise SubscriptionConflict(f"a subscription for {req.url} exists already ({old[0]})")
            if old is not None:
                sid = old[0]
                store.update_values(conn, sid, values)
            else:
                sid = uuid.uuid4()
                store.insert(conn, sid, values)
            if audit is not None:
                audit(conn, str(sid), {"url": req.url, "hazards": values["hazards"], "format": req.format,
                                       "min_confidence": req.min_confidence,
                                       "include_backfills": req.include_backfills})
    except store.UrlTaken as exc:  # a concurrent registration of the same URL
        raise SubscriptionConflict(f"a subscription for {req.url} exists already") from exc
    return get(engine, sid), secret


def get(engine: Engine, sid: uuid.UUID) -> dict:
    row = store.get(engine, sid)
    if row is None:
        raise SubscriptionNotFound(sid)
    return public(row)


def list_all(engine: Engine, include_inactive: bool = False) -> list[dict]:
    return [public(r) for r in store.list_all(engine, include_inactive)]


def send_test(engine: Engine, settings: Settings, sid: uuid.UUID, audit: Audit | None = None) -> dict:
    """Send one signed test event to an active subscriber now (no retry) and say what it answered."""
    from terrawatch.alerting.ping import send_test as ping

    row = store.get(engine, sid)
    if row is None or not row["active"]:
        raise SubscriptionNotFound(sid, active=True)
    result = ping(row, parse_allow_list(settings.webhook_allow_private, settings), settings.cap_sender,
                  settings.webhook_timeout_s)
    if audit is not None:
        with engine.begin() as conn:
            audit(conn, str(sid), {k: result[k] for k in ("webhook_id", "delivered", "status_code", "error")})
    return {"subscription_id": str(sid), "format": row["format"], **result}


def rotate_secret(engine: Engine, sid: uuid.UUID, audit: Audit | None = None) -> str:
    """A new secret (shown once). Pending deliveries are signed with it from their next attempt on."""
    secret = new_secret()
    with engine.begin() as conn:
        if not store.set_secret(conn, sid, secret):
            raise SubscriptionNotFound(sid, active=True)
        if audit is not None:
            audit(conn, str(sid), {})
    return secret


def deactivate(engine: Engine, sid: uuid.UUID, actor: str, audit: Audit | None = None) -> int:
    """Stop a subscription; its pending deliveries fail (visible, redeliverable). Returns how many failed."""
    with engine.begin() as conn:
        if not store.deactivate(conn, sid):
            raise SubscriptionNotFound(sid, active=True)
        n = outbox.fail_pending_of(conn, sid, f"subscription deactivated by {actor}")
        if audit is not None:
            audit(conn, str(sid), {"failed_pending": n})
        return n


def upsert_static(engine: Engine, settings: Settings, url: str, secret: str) -> None:
    """Register (or reactivate, with ``secret``) a subscriber configured by the operator: every hazard,
    minimum confidence low, GeoJSON. Validated like :func:`create` (SSRF guard included); raises
    InvalidSubscription."""
    from terrawatch.domain.hazards import HAZARDS

    req = NewSubscription(url=url, hazards=list(HAZARDS))
    validate(req, settings)
    if not secret or "\x00" in secret:
        raise InvalidSubscription(f"subscriber {url}: give a non-empty signing secret (url|secret)")
    store.upsert_by_url(engine, dict(url=url, secret=secret, hazards=req.hazards, min_confidence=req.min_confidence,
                                     format=req.format, created_by="config"),
                        on_conflict={"secret": secret, "active": True})


def sync_static(engine: Engine, settings: Settings) -> int:
    """Upsert the subscribers given as ``url|secret`` pairs in TERRAWATCH_WEBHOOK_SUBSCRIBERS; an invalid
    pair is logged and skipped (the others are still registered). Returns how many were upserted."""
    import logging

    n = 0
    for pair in (p for p in settings.webhook_subscribers.split(",") if p.strip()):
        url, _, secret = pair.partition("|")
        try:
            upsert_static(engine, settings, url.strip(), secret.strip())
            n += 1
        except InvalidSubscription as exc:
            logging.getLogger(__name__).error("TERRAWATCH_WEBHOOK_SUBSCRIBERS entry %s skipped: %s",
                                              url.strip()[:200], exc)
    return n
