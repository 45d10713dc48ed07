"""Control flags shared by the ops API and the worker (table ``control``, migration 0003)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from terrawatch.store import tables as t

def paused_key(consumer_group: str) -> str:
    """Flag key pausing one consumer group (several pipelines may share a database)."""
    return f"consumption_paused:{consumer_group}"[:64]


def get_flag(engine: Engine, key: str) -> dict | None:
    """The flag's row (value, updated_at, updated_by) or None when never set."""
    with engine.connect() as conn:
        row = conn.execute(select(t.control).where(t.control.c.key == key)).mappings().first()
    return dict(row) if row else None


def set_flag(conn, key: str, value: dict, actor: str) -> None:
    """Upsert one flag inside the caller's transaction."""
    from sqlalchemy import func

    conn.execute(insert(t.control).values(key=key, value=value, updated_by=actor).on_conflict_do_update(
        index_elements=["key"], set_={"value": value, "updated_by": actor, "updated_at": func.now()}))


def consumption_paused(engine: Engine, consumer_group: str) -> bool:
    row = get_flag(engine, paused_key(consumer_group))
    return bool(row and row["value"].get("paused"))
