"""SQL for API keys (table ``api_keys``): only the salt and ``sha256(salt || secret)`` are stored."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t

_PUBLIC = ("id", "name", "role", "created_at", "created_by", "last_used_at", "revoked_at")


def insert_key(conn: Connection, key_id: str, name: str, role: str, salt: bytes, key_hash: bytes,
               created_by: str) -> None:
    """Store a new key inside the caller's transaction."""
    conn.execute(insert(t.api_keys).values(id=key_id, name=name, role=role, salt=salt, key_hash=key_hash,
                                           created_by=created_by))


def revoke(conn: Connection, key_id: str) -> bool:
    """Revoke an active key inside the caller's transaction; False if there is no active key ``key_id``."""
    res = conn.execute(update(t.api_keys).where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
                       .values(revoked_at=text("now()")))
    return res.rowcount == 1


def list_keys(engine: Engine) -> list[dict]:
    """Every key, oldest first, without salt or hash."""
    cols = [t.api_keys.c[n] for n in _PUBLIC]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(*cols).order_by(t.api_keys.c.created_at)).mappings()]


def lookup_and_touch(engine: Engine, key_id: str, check) -> dict | None:
    """The key row (id, name, role, salt, key_hash, revoked_at) if ``check(row)`` accepts it, else None.

    An accepted key's ``last_used_at`` is set, at minute resolution so reads do not become one write each.
    """
    with engine.connect() as conn:
        row = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).mappings().first()
        if row is None or not check(row):
            return None
        conn.execute(text("update api_keys set last_used_at = now() where id = :id and "
                          "(last_used_at is null or last_used_at < now() - interval '1 minute')"), {"id": key_id})
        conn.commit()
    return dict(row)
