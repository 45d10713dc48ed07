"""SQL for webhook subscribers (table ``subscribers``). Areas of interest are shapely geometries in
lon/lat (EPSG:4326) on both sides of this module."""

from __future__ import annotations

import uuid
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from terrawatch.store import tables as t

s = t.subscribers


class UrlTaken(Exception):
    """Another subscriber row holds this URL (a concurrent registration won the race)."""


def _values(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "aoi" in out:
        out["aoi"] = from_shape(out["aoi"], srid=4326) if out["aoi"] is not None else None
    return out


def _row(row) -> dict:
    d = dict(row)
    d["aoi"] = to_shape(d["aoi"]) if d.get("aoi") is not None else None
    return d


def lock_by_url(conn: Connection, url: str) -> tuple[uuid.UUID, bool] | None:
    """(id, active) of the subscriber for ``url``, locked for this transaction; None if there is none."""
    row = conn.execute(select(s.c.id, s.c.active).where(s.c.url == url).with_for_update()).first()
    return None if row is None else (row.id, row.active)


def insert(conn: Connection, sid: uuid.UUID, values: dict[str, Any]) -> None:
    """Insert a subscriber (``values``: url, secret, hazards, min_confidence, format, description, created_by,
    aoi, active). Raises :class:`UrlTaken` if the URL is taken (the transaction is then unusable)."""
    try:
        conn.execute(s.insert().values(id=sid, **_values(values)))
    except IntegrityError as exc:
        raise UrlTaken(values.get("url")) from exc


def update_values(conn: Connection, sid: uuid.UUID, values: dict[str, Any]) -> None:
    conn.execute(update(s).where(s.c.id == sid).values(**_values(values)))


def get(engine: Engine, sid: uuid.UUID) -> dict | None:
    """The subscriber row (secret included: callers strip it), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(s).where(s.c.id == sid)).mappings().first()
    return None if row is None else _row(row)


def list_all(engine: Engine, include_inactive: bool = False) -> list[dict]:
    """Subscriber rows, oldest first (secret included: callers strip it)."""
    q = select(s).order_by(s.c.created_at)
    if not include_inactive:
        q = q.where(s.c.active.is_(True))
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q).mappings()]


def set_secret(conn: Connection, sid: uuid.UUID, secret: str) -> bool:
    """Replace an active subscriber's secret; False if there is no active subscriber ``sid``."""
    return bool(conn.execute(update(s).where(s.c.id == sid, s.c.active.is_(True)).values(secret=secret)).rowcount)


def deactivate(conn: Connection, sid: uuid.UUID) -> bool:
    """Mark an active subscriber inactive; False if there is no active subscriber ``sid``."""
    return bool(conn.execute(update(s).where(s.c.id == sid, s.c.active.is_(True)).values(active=False)).rowcount)


def upsert_by_url(engine: Engine, values: dict[str, Any], on_conflict: dict[str, Any]) -> None:
    """Insert a subscriber (``values`` as in :func:`insert`, a new id); where one has the URL already, set
    ``on_conflict`` on it instead."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    with engine.begin() as conn:
        conn.execute(pg_insert(s).values(id=uuid.uuid4(), **_values(values))
                     .on_conflict_do_update(index_elements=["url"], set_=_values(on_conflict)))


def active_ids_with_url_like(engine: Engine, pattern: str) -> list[uuid.UUID]:
    """Ids of active subscribers whose URL matches the SQL LIKE ``pattern``."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(s.c.id).where(s.c.url.like(pattern), s.c.active.is_(True)))]
