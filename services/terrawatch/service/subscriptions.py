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
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from terrawatch.alerting.outbox import FORMATS
from terrawatch.alerting.ssrf import UnsafeWebhookTarget, check_target, parse_allow_list
from terrawatch.domain.alerts import CONFIDENCE_RANKS
from terrawatch.domain.polygons import as_multipolygon
from terrawatch.service.alerts import policies
from terrawatch.settings import Settings
from terrawatch.store import tables as t


class InvalidSubscription(ValueError):
    pass


class SubscriptionConflict(ValueError):
    pass


class SubscriptionNotFound(LookupError):
    pass


@dataclass
class NewSubscription:
    """``aoi``: a GeoJSON Polygon/MultiPolygon in lon/lat (EPSG:4326), or None for everywhere."""

    url: str
    hazards: list[str]
    aoi: dict[str, Any] | None = None
    min_confidence: str = "low"
    format: str = "geojson"
    description: str | None = None


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
        check_target(req.url, parse_allow_list(settings.webhook_allow_private))
    except UnsafeWebhookTarget as exc:
        raise InvalidSubscription(f"webhook url refused: {exc}") from exc
    return _aoi(req.aoi)


def public(row) -> dict:
    """A subscriber row without its secret; ``aoi`` as GeoJSON."""
    return {
        "id": str(row["id"]), "url": row["url"], "hazards": list(row["hazards"]),
        "min_confidence": row["min_confidence"], "format": row["format"], "active": row["active"],
        "aoi": mapping(to_shape(row["aoi"])) if row["aoi"] is not None else None,
        "description": row.get("description"), "created_by": row.get("created_by"),
        "created_at": row["created_at"].isoformat() if row["created_at"] else None,
    }


def create(engine: Engine, settings: Settings, req: NewSubscription, actor: str) -> tuple[dict, str]:
    """Register a subscriber; returns (its public view, the secret - shown this once).

    A deactivated subscription to the same URL is reactivated with the new settings and secret
    (keeping its id and delivery history); an active one is a conflict.
    """
    aoi = validate(req, settings)
    secret = new_secret()
    values = dict(url=req.url, secret=secret, hazards=list(dict.fromkeys(req.hazards)),
                  min_confidence=req.min_confidence, format=req.format, description=req.description,
                  created_by=actor, aoi=from_shape(aoi, srid=4326) if aoi is not None else None, active=True)
    try:
        with engine.begin() as conn:
            old = conn.execute(select(t.subscribers.c.id, t.subscribers.c.active)
                               .where(t.subscribers.c.url == req.url).with_for_update()).first()
            if old is not None and old.active:
                raise SubscriptionConflict(f"a subscription for {req.url} exists already ({old.id})")
            if old is not None:
                sid = old.id
                conn.execute(update(t.subscribers).where(t.subscribers.c.id == sid).values(**values))
            else:
                sid = uuid.uuid4()
                conn.execute(t.subscribers.insert().values(id=sid, **values))
    except IntegrityError as exc:  # a concurrent registration of the same URL
        raise SubscriptionConflict(f"a subscription for {req.url} exists already") from exc
    return get(engine, sid), secret


def get(engine: Engine, sid: uuid.UUID) -> dict:
    with engine.connect() as conn:
        row = conn.execute(select(t.subscribers).where(t.subscribers.c.id == sid)).mappings().first()
    if row is None:
        raise SubscriptionNotFound(str(sid))
    return public(row)


def list_all(engine: Engine, include_inactive: bool = False) -> list[dict]:
    q = select(t.subscribers).order_by(t.subscribers.c.created_at)
    if not include_inactive:
        q = q.where(t.subscribers.c.active.is_(True))
    with engine.connect() as conn:
        return [public(r) for r in conn.execute(q).mappings()]


def rotate_secret(engine: Engine, sid: uuid.UUID) -> str:
    """A new secret (shown once). Pending deliveries are signed with it from their next attempt on."""
    secret = new_secret()
    with engine.begin() as conn:
        n = conn.execute(update(t.subscribers).where(t.subscribers.c.id == sid, t.subscribers.c.active.is_(True))
                         .values(secret=secret)).rowcount
    if not n:
        raise SubscriptionNotFound(str(sid))
    return secret


def deactivate(engine: Engine, sid: uuid.UUID, actor: str) -> int:
    """Stop a subscription; its pending deliveries fail (visible, redeliverable). Returns how many failed."""
    with engine.begin() as conn:
        n = conn.execute(update(t.subscribers).where(t.subscribers.c.id == sid, t.subscribers.c.active.is_(True))
                         .values(active=False)).rowcount
        if not n:
            raise SubscriptionNotFound(str(sid))
        return conn.execute(update(t.webhook_outbox).where(
            t.webhook_outbox.c.subscriber_id == sid, t.webhook_outbox.c.status == "pending",
        ).values(status="failed", failed_at=func.now(),
                 last_error=f"subscription deactivated by {actor}")).rowcount
