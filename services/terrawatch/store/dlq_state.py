"""SQL for the state of scene DLQ entries (table ``dlq_entries``, migration 15a).

An entry is the Kafka record at (DLQ topic, partition, offset); a row here records what an
operator did with it. No row means ``pending``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, and_, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from terrawatch.store import tables as t

d = t.dlq_entries
STATES = ("pending", "redriven", "purged")


def states(engine: Engine, topic: str, positions: list[tuple[int, int]]) -> dict[tuple[int, int], dict]:
    """The stored rows for these (partition, offset) positions of ``topic``."""
    if not positions:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(d).where(d.c.topic == topic,
                                            tuple_(d.c.partition, d.c.offset).in_(positions))).mappings()
        return {(r["partition"], r["offset"]): dict(r) for r in rows}


def not_pending(engine: Engine, topic: str, ranges: dict[int, tuple[int, int]]) -> dict[str, int]:
    """Count of re-driven and purged entries among the retained offsets ``low <= offset < high`` per partition."""
    conds = [and_(d.c.partition == p, d.c.offset >= low, d.c.offset < high) for p, (low, high) in ranges.items()
             if high > low]
    if not conds:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(d.c.state, func.count()).where(d.c.topic == topic, or_(*conds))
                            .group_by(d.c.state))
        return {state: n for state, n in rows}


def positions_in_state(engine: Engine, topic: str, state: str, ranges: dict[int, tuple[int, int]],
                       limit: int) -> list[tuple[int, int]]:
    """Retained positions of ``topic`` whose stored state is ``state`` (not ``pending``), oldest first."""
    conds = [and_(d.c.partition == p, d.c.offset >= low, d.c.offset < high) for p, (low, high) in ranges.items()
             if high > low]
    if not conds:
        return []
    with engine.connect() as conn:
        rows = conn.execute(select(d.c.partition, d.c.offset).where(d.c.topic == topic, d.c.state == state,
                                                                     or_(*conds))
                            .order_by(d.c.partition, d.c.offset).limit(limit))
        return [(r.partition, r.offset) for r in rows]


def mark(conn: Connection, topic: str, partition: int, offset: int, state: str, actor: str, at: datetime,
         error_code: str | None = None, kind: str | None = None, source_key: str | None = None) -> None:
    """Record ``redriven`` (time, by whom, count +1) or ``purged`` (time, by whom) inside the caller's transaction."""
    if state not in ("redriven", "purged"):
        raise ValueError(f"cannot mark a DLQ entry {state!r}")
    values = {"state": state, "updated_at": at}
    if state == "redriven":
        values |= {"redriven_at": at, "redriven_by": actor}
    else:
        values |= {"purged_at": at, "purged_by": actor}
    stmt = insert(d).values(topic=topic, partition=partition, offset=offset, error_code=error_code, kind=kind,
                            source_key=source_key, redrives=1 if state == "redriven" else 0, **values)
    update = dict(values)
    if state == "redriven":
        update["redrives"] = d.c.redrives + 1
    conn.execute(stmt.on_conflict_do_update(index_elements=["topic", "partition", "offset"], set_=update))


def earlier_redriven(engine: Engine, topic: str, source_key: str, position: tuple[int, int],
                     before: datetime | None, limit: int = 50) -> list[dict]:
    """Re-driven entries of ``topic`` with the same original key (the same event) other than ``position``,
    re-driven no later than ``before`` (the entry's failure time), oldest first: the event's history
    before it came back to the DLQ."""
    q = select(d.c.partition, d.c.offset, d.c.error_code, d.c.kind, d.c.redriven_at, d.c.redriven_by,
               d.c.redrives).where(d.c.topic == topic, d.c.source_key == source_key, d.c.state == "redriven",
                                   tuple_(d.c.partition, d.c.offset) != position)
    if before is not None:
        q = q.where(d.c.redriven_at <= before)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(d.c.redriven_at.desc()).limit(limit)).mappings()
        return [dict(r) for r in reversed(list(rows))]
