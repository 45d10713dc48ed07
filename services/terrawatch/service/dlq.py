"""Operators' DLQ use cases: list, show, re-drive, purge, depth. One implementation, called by the ops API
(``/ops/dlq...``), the CLI (``terrawatch dlq ...``), the worker's ``terrawatch_dlq_depth`` gauge and the tests.

An entry is the Kafka record at ``partition/offset`` of the DLQ topic (:mod:`terrawatch.ingest.dlq`);
its state is ``pending`` until an operator re-drives it (its original payload is republished to the
scenes topic under its original key; ``redriven_at``/``redriven_by`` recorded) or purges it (hidden
from the default list, no longer counted; Kafka retention removes the record). State rows live in
PostGIS (:mod:`terrawatch.store.dlq_state`). Depth = retained DLQ records that are still ``pending``:
the number ``terrawatch_dlq_depth`` exports and ``/ops/status`` reports as ``dlq_size``.

One rule for the API and the CLI alike (docs/api.md, docs/runbook.md):

- a call names at most :data:`LIMIT` entry ids (more: :class:`BadEntryId`, 400 / exit 1) and a list shows at
  most :data:`LIMIT` entries; ``all`` acts on the oldest :data:`LIMIT` pending entries and reports how many
  are ``remaining`` (call again);
- named ids that are not retained are reported in ``missing`` and the others are acted on; when **none** of
  the named ids exists the call fails with :class:`EntryNotFound` (404 / exit 1) and nothing changes.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from terrawatch.domain.errors import Conflict, InvalidInput, NotFound
from terrawatch.ingest import dlq as kdlq
from terrawatch.ingest.dlq import DlqRecord
from terrawatch.observability.metrics import DLQ_DEPTH
from terrawatch.service.ports import DlqLog, DlqStates
from terrawatch.settings import Settings
from terrawatch.store import dlq_state
from terrawatch.store.audit import Audit
from terrawatch.store.db import Engine

log = logging.getLogger(__name__)

STATES = dlq_state.STATES
LIMIT = 1000  # the most entries one list shows, one call names by id, one ``all`` call acts on


class BadEntryId(InvalidInput, ValueError):
    pass


class EntryNotFound(NotFound, LookupError):
    pass


class PermanentEntry(Conflict, ValueError):
    """Re-driving a ``permanent`` entry (the event itself is bad) without ``force``: it would only fail again."""


@dataclass
class DlqEntry:
    partition: int
    offset: int
    record: DlqRecord
    state: str = "pending"
    redriven_at: datetime | None = None
    redriven_by: str | None = None
    redrives: int = 0
    purged_at: datetime | None = None
    purged_by: str | None = None
    history: list[dict] | None = None  # earlier DLQ entries of the same event that were re-driven (get_entry)

    @property
    def id(self) -> str:
        return f"{self.partition}/{self.offset}"

    def as_dict(self) -> dict:
        r = self.record
        return {"id": self.id, "partition": self.partition, "offset": self.offset, "state": self.state,
                "reason": r.reason, "error_code": r.error_code, "kind": r.kind, "attempts": r.attempts,
                "failed_at": r.failed_at.isoformat() if r.failed_at else None,
                "source": r.source.model_dump() if r.source else None,
                "redriven_at": self.redriven_at.isoformat() if self.redriven_at else None,
                "redriven_by": self.redriven_by, "redrives": self.redrives,
                "purged_at": self.purged_at.isoformat() if self.purged_at else None, "purged_by": self.purged_by,
                "payload_encoding": r.payload_encoding, "payload": r.payload,
                "predecessor": self.history[-1]["id"] if self.history else None, "history": self.history or []}


def parse_id(entry_id: str) -> tuple[int, int]:
    """``"partition/offset"`` -> (partition, offset); BadEntryId otherwise."""
    try:
        p, o = entry_id.split("/", 1)
        part, off = int(p), int(o)
    except ValueError:
        raise BadEntryId(f"DLQ entry id {entry_id!r} is not partition/offset (e.g. 0/12)") from None
    if part < 0 or off < 0:
        raise BadEntryId(f"DLQ entry id {entry_id!r} must be non-negative")
    return part, off


class KafkaDlqLog:
    """The :class:`~terrawatch.service.ports.DlqLog` port on Kafka (``ingest.dlq``); ``producer`` (for re-drives) is
    ``make_producer()`` (the runbook's producer factory) or built on first use when not given."""

    def __init__(self, settings: Settings, producer=None, *, make_producer=None) -> None:
        self.s, self._producer, self._make_producer = settings, producer, make_producer

    def read(self, wanted: dict[int, set[int]] | None = None, limit: int = 100) -> list[tuple[int, int, DlqRecord]]:
        return kdlq.read(self.s, wanted=wanted) if wanted is not None else kdlq.read(self.s, limit=limit)

    def watermarks(self) -> dict[int, tuple[int, int]]:
        return kdlq.watermarks(self.s)

    def republish(self, records: list[DlqRecord]) -> None:
        if self._producer is None and self._make_producer is not None:
            self._producer = self._make_producer()
        if self._producer is None:
            from terrawatch.ingest.kafka_io import producer

            self._producer = producer(self.s)
        kdlq.republish(self._producer, self.s, records)


class PostgisDlqStates:
    """The :class:`~terrawatch.service.ports.DlqStates` port on PostGIS (``store.dlq_state``) for one DLQ topic."""

    def __init__(self, engine: Engine, topic: str) -> None:
        self.engine, self.topic = engine, topic

    def states(self, positions: list[tuple[int, int]]) -> dict[tuple[int, int], dict]:
        return dlq_state.states(self.engine, self.topic, positions)

    def not_pending(self, ranges: dict[int, tuple[int, int]]) -> dict[str, int]:
        return dlq_state.not_pending(self.engine, self.topic, ranges)

    def positions_in_state(self, state: str, ranges: dict[int, tuple[int, int]], limit: int) -> list[tuple[int, int]]:
        return dlq_state.positions_in_state(self.engine, self.topic, state, ranges, limit)

    def earlier_redriven(self, source_key: str, position: tuple[int, int], before: datetime | None) -> list[dict]:
        return dlq_state.earlier_redriven(self.engine, self.topic, source_key, position, before)

    def transaction(self):
        return self.engine.begin()

    def mark(self, conn, partition: int, offset: int, state: str, actor: str, at: datetime,
             error_code: str | None = None, kind: str | None = None, source_key: str | None = None) -> None:
        dlq_state.mark(conn, self.topic, partition, offset, state, actor, at, error_code, kind, source_key)


class DlqService:
    """The DLQ runbook actions on two ports: the DLQ topic (:class:`~terrawatch.service.ports.DlqLog`) and the
    operators' marks (:class:`~terrawatch.service.ports.DlqStates`). :func:`service` builds it on Kafka and PostGIS;
    unit tests on in-memory fakes (tests/unit/fakes.py)."""

    def __init__(self, settings: Settings, log: DlqLog, states: DlqStates) -> None:
        self.s, self.log, self.states = settings, log, states

    def _with_state(self, found: list[tuple[int, int, DlqRecord]]) -> list[DlqEntry]:
        rows = self.states.states([(p, o) for p, o, _ in found])
        out = []
        for p, o, rec in found:
            row = rows.get((p, o)) or {}
            out.append(DlqEntry(p, o, rec, state=row.get("state", "pending"), redriven_at=row.get("redriven_at"),
                                redriven_by=row.get("redriven_by"), redrives=row.get("redrives") or 0,
                                purged_at=row.get("purged_at"), purged_by=row.get("purged_by")))
        return out

    def get_entries(self, ids: list[str]) -> tuple[list[DlqEntry], list[str]]:
        """The entries named by ``ids`` (still retained in Kafka) and the ids not found."""
        wanted: dict[int, set[int]] = {}
        for part, off in map(parse_id, ids):
            wanted.setdefault(part, set()).add(off)
        entries = self._with_state(self.log.read(wanted=wanted))
        found = {e.id for e in entries}
        return entries, [i for i in ids if f"{parse_id(i)[0]}/{parse_id(i)[1]}" not in found]

    def get_entry(self, entry_id: str) -> DlqEntry:
        """One entry with its history: the earlier entries of the same event (same original key) that were
        re-driven before this one failed, oldest first (``predecessor`` = the last of them)."""
        entries, missing = self.get_entries([entry_id])
        if missing:
            raise EntryNotFound(f"no DLQ entry {entry_id} in {self.s.dlq_topic}")
        e = entries[0]
        e.history = []
        if e.record.redrives >= 1 and e.record.source is not None:
            rows = self.states.earlier_redriven(e.record.source.key, (e.partition, e.offset), e.record.failed_at)
            e.history = [{"id": f"{r['partition']}/{r['offset']}", "error_code": r["error_code"], "kind": r["kind"],
                          "redriven_at": r["redriven_at"].isoformat() if r["redriven_at"] else None,
                          "redriven_by": r["redriven_by"]} for r in rows]
        return e

    def list_entries(self, state: str = "pending", limit: int = 100) -> list[DlqEntry]:
        """Entries in ``state`` (``pending``, ``redriven``, ``purged`` or ``all``), oldest first per partition;
        ``limit`` 1..:data:`LIMIT`."""
        if state not in (*STATES, "all"):
            raise BadEntryId(f"state must be one of {', '.join((*STATES, 'all'))}")
        if not 1 <= limit <= LIMIT:
            raise BadEntryId(f"limit must be between 1 and {LIMIT}")
        if state in ("redriven", "purged"):
            positions = self.states.positions_in_state(state, self.log.watermarks(), limit)
            wanted: dict[int, set[int]] = {}
            for p, o in positions:
                wanted.setdefault(p, set()).add(o)
            return self._with_state(self.log.read(wanted=wanted)) if wanted else []
        skip = 0
        if state == "pending":
            skip = sum(self.states.not_pending(self.log.watermarks()).values())
        entries = self._with_state(self.log.read(limit=limit + skip))
        if state == "pending":
            entries = [e for e in entries if e.state == "pending"]
        return entries[:limit]

    def counts(self) -> dict[str, int]:
        """Retained DLQ records by state: ``{"pending": n, "redriven": n, "purged": n, "retained": n}``; sets
        ``terrawatch_dlq_depth`` (= pending) in this process."""
        marks = self.log.watermarks()
        retained = sum(max(0, high - low) for low, high in marks.values())
        done = self.states.not_pending(marks)
        redriven, purged = done.get("redriven", 0), done.get("purged", 0)
        DLQ_DEPTH.set(max(0, retained - redriven - purged))
        return {"pending": max(0, retained - redriven - purged), "redriven": redriven, "purged": purged,
                "retained": retained}

    def depth(self) -> int:
        """Pending DLQ entries; also sets ``terrawatch_dlq_depth`` in this process."""
        return self.counts()["pending"]

    def _select(self, ids: list[str] | None) -> tuple[list[DlqEntry], list[str], list[dict]]:
        """(pending entries to act on, missing ids, skipped [{id, state}]) for ``ids`` or for every pending entry."""
        if ids is None:
            return self.list_entries("pending", LIMIT), [], []
        if not ids:
            raise BadEntryId("ids: name at least one entry (partition/offset), or act on all pending entries")
        if len(ids) > LIMIT:
            raise BadEntryId(f"ids: at most {LIMIT} entries per call, not {len(ids)}")
        entries, missing = self.get_entries(ids)
        if len(missing) == len(ids):  # none exists: 404 / exit 1, nothing changes; some missing: listed, rest acted on
            raise EntryNotFound(f"no DLQ entries with ids {', '.join(ids[:10])} in {self.s.dlq_topic}")
        return ([e for e in entries if e.state == "pending"], missing,
                [{"id": e.id, "state": e.state} for e in entries if e.state != "pending"])

    def _mark(self, entries: list, state: str, actor: str, ids: list[str] | None, missing: list, skipped: list,
              audit: Audit | None, then=None) -> datetime:
        """Mark ``entries`` ``state`` (time, ``actor``) with the caller's audit row in one transaction;
        ``then`` runs last inside it (republishing), so if it raises nothing is marked. Returns the time."""
        now = datetime.now(timezone.utc)
        with self.states.transaction() as conn:
            for e in entries:
                self.states.mark(conn, e.partition, e.offset, state, actor, now, e.record.error_code, e.record.kind,
                                 e.record.source.key if e.record.source else None)
            if audit is not None:
                audit(conn, "all" if ids is None else ",".join(e.id for e in entries),
                      {"ids": [e.id for e in entries], "missing": missing, "skipped": skipped})
            if then is not None:
                then()
        return now

    def redrive(self, ids: list[str] | None, actor: str, audit: Audit | None = None, force: bool = False) -> dict:
        """Republish the original payload of the pending entries ``ids`` (None: the oldest :data:`LIMIT` pending) to
        the scenes topic under their original keys and mark them ``redriven`` (time, ``actor``), in one
        transaction with the caller's audit row: if Kafka refuses, nothing is marked. Entries without
        an original payload and entries not pending are skipped (listed with their state).

        A ``permanent`` entry (the event itself was refused) would only come back: named in ``ids`` it is
        refused (:class:`PermanentEntry`, nothing re-driven) unless ``force``; with ``ids=None`` it is skipped
        (state ``permanent``) unless ``force``."""
        todo, missing, skipped = self._select(ids)
        permanent = [e for e in todo if e.record.kind == "permanent"]
        if permanent and not force:
            if ids is not None:
                e = permanent[0]
                more = f" (and {len(permanent) - 1} more)" if len(permanent) > 1 else ""
                raise PermanentEntry(
                    f"DLQ entry {e.id}{more} is permanent ({e.record.error_code}: "
                    f"{' '.join(e.record.reason.split())[:200]}): "
                    "the event itself was refused and re-driving it unchanged fails again; fix it at the producer and "
                    "publish anew (then purge the entry), or repair the cause and re-drive with force "
                    "(API {\"force\": true}, CLI --force)")
            skipped += [{"id": e.id, "state": "permanent"} for e in permanent]
            todo = [e for e in todo if e.record.kind != "permanent"]
        keep = [e for e in todo if e.record.payload is not None]
        skipped += [{"id": e.id, "state": "no_payload"} for e in todo if e.record.payload is None]
        now = self._mark(keep, "redriven", actor, ids, missing, skipped, audit if not force else
                         (lambda conn, target, details: audit(conn, target, {**details, "force": True}))
                         if audit else None,
                         then=(lambda: self.log.republish([e.record for e in keep])) if keep else None)
        return {"redriven": [e.id for e in keep], "missing": missing, "skipped": skipped,
                "topic": self.s.scenes_topic, "at": now.isoformat(), "by": actor,
                "remaining": self._refresh_depth()}

    def purge(self, ids: list[str] | None, actor: str, audit: Audit | None = None) -> dict:
        """Mark the pending entries ``ids`` (None: the oldest :data:`LIMIT` pending) ``purged`` (time, ``actor``): no
        longer listed by default, no longer counted in the depth; nothing is republished."""
        todo, missing, skipped = self._select(ids)
        now = self._mark(todo, "purged", actor, ids, missing, skipped, audit)
        return {"purged": [e.id for e in todo], "missing": missing, "skipped": skipped, "at": now.isoformat(),
                "by": actor, "remaining": self._refresh_depth()}

    def _refresh_depth(self) -> int | None:
        """Pending entries left (sets the gauge); None if it could not be counted (the action itself succeeded)."""
        try:
            return self.depth()
        except Exception:  # noqa: BLE001 - the action succeeded; the gauge catches up on the next report
            log.debug("DLQ depth refresh failed", exc_info=True)
            return None


def service(settings: Settings, engine: Engine, producer=None) -> DlqService:
    """The DLQ use cases on Kafka and PostGIS (``producer``: for re-drives; built on first use if None)."""
    return DlqService(settings, KafkaDlqLog(settings, producer), PostgisDlqStates(engine, settings.dlq_topic))


# The callers' entry points (ops API, terrawatch dlq, the worker's depth gauge, auto re-drive): one DlqService each.

def get_entries(settings: Settings, engine: Engine, ids: list[str]) -> tuple[list[DlqEntry], list[str]]:
    return service(settings, engine).get_entries(ids)


def get_entry(settings: Settings, engine: Engine, entry_id: str) -> DlqEntry:
    return service(settings, engine).get_entry(entry_id)


def list_entries(settings: Settings, engine: Engine, state: str = "pending", limit: int = 100) -> list[DlqEntry]:
    return service(settings, engine).list_entries(state, limit)


def counts(settings: Settings, engine: Engine) -> dict[str, int]:
    return service(settings, engine).counts()


def depth(settings: Settings, engine: Engine) -> int:
    return service(settings, engine).depth()


def redrive(settings: Settings, engine: Engine, producer, ids: list[str] | None, actor: str,
            audit: Audit | None = None, force: bool = False) -> dict:
    return service(settings, engine, producer).redrive(ids, actor, audit, force)


def purge(settings: Settings, engine: Engine, ids: list[str] | None, actor: str, audit: Audit | None = None) -> dict:
    return service(settings, engine).purge(ids, actor, audit)


class DepthReporter:
    """Sets ``terrawatch_dlq_depth`` every ``interval_s`` seconds (a daemon thread of the consumer process)."""

    def __init__(self, settings: Settings, engine: Engine, interval_s: float) -> None:
        self.s, self.engine, self.interval_s = settings, engine, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dlq-depth")

    def start(self) -> DepthReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                depth(self.s, self.engine)
            except Exception as exc:  # noqa: BLE001 - Kafka/PostGIS down: keep the last value, try again
                log.debug("DLQ depth report failed: %s", exc)
            self._stop.wait(self.interval_s)
