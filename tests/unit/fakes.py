"""In-memory fakes of the scene pipeline's ports (terrawatch.service.ports): a unit of work and its
repositories over plain dicts, a tiler, a scene reader and an asset policy. No PostGIS, Ray, Triton or files.

:class:`FakeDb` is the database: a :class:`FakeUnitOfWork` on it commits on a clean exit and restores the
state it found on an exception (one transaction). Geometries are shapely, lon/lat; the merge search ranks
alerts by planar distance in degrees x 111.32 km (close enough at the test's places)."""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from affine import Affine
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from terrawatch.domain.jobs import SceneTiles
from terrawatch.vectorize.polygonize import PixelPart

M_PER_DEG = 111_320.0


@dataclass
class FakeDb:
    """The rows (mutable; restored on rollback) and the answers of the read-only queries (set by a test)."""

    scenes: dict[str, dict] = field(default_factory=dict)  # id -> {item, status, reason, hazard_status, dlq_ref}
    runs: dict[tuple[str, str, str], dict] = field(default_factory=dict)  # (scene, hazard, version) -> counts
    skips: dict[tuple[str, str], str] = field(default_factory=dict)
    detections: dict[int, dict] = field(default_factory=dict)
    alerts: dict[uuid.UUID, object] = field(default_factory=dict)  # id -> domain Alert (copies)
    events: list[dict] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    observed_water: list[tuple[str, str, BaseGeometry | None]] = field(default_factory=list)
    audit_rows: list[tuple] = field(default_factory=list)  # what audit(conn, target, details) wrote (conn = this list)
    # read-only answers
    subscribers: list[dict] = field(default_factory=list)
    reference_water: list[BaseGeometry] = field(default_factory=list)
    reference_coverage: BaseGeometry | None = None
    history: tuple[BaseGeometry | None, BaseGeometry | None] = (None, None)
    previous_item: dict | None = None
    pre_event: tuple[dict | None, str] = (None, "no processed earlier S1 scene of this orbit")
    partners: list[tuple[str, datetime]] = field(default_factory=list)
    legality: dict = field(default_factory=lambda: {"status": "unknown"})
    # what happened
    opened: list[str] = field(default_factory=list)  # operation of every unit of work opened
    committed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)

    MUTABLE = ("scenes", "runs", "skips", "detections", "alerts", "events", "outbox", "observed_water", "audit_rows")

    def unit_of_work(self, operation: str = "scene") -> FakeUnitOfWork:
        """The ``UnitOfWorkFactory`` port."""
        return FakeUnitOfWork(self, operation)


class _Repo:
    def __init__(self, db: FakeDb) -> None:
        self.db = db


class FakeScenes(_Repo):
    def lock(self, key: str) -> None:
        self.db.locks.append(key)

    def upsert(self, scene) -> None:
        self.db.scenes.setdefault(scene.id, {"item": scene.item, "status": None, "reason": None,
                                             "hazard_status": {}, "dlq_ref": None})

    def run_exists(self, scene_id: str, hazard: str, model_version: str) -> bool:
        return (scene_id, hazard, model_version) in self.db.runs

    def add_run(self, scene_id: str, hazard: str, model_version: str, tiles: int, detections: int) -> None:
        key = (scene_id, hazard, model_version)
        assert key not in self.db.runs, f"duplicate run marker {key}"  # the primary key
        self.db.runs[key] = {"tiles": tiles, "detections": detections}

    def record_skip(self, scene_id: str, hazard: str, reason: str) -> None:
        self.db.skips[(scene_id, hazard)] = reason

    def skips(self, scene_id: str) -> dict[str, str]:
        return {h: r for (s, h), r in self.db.skips.items() if s == scene_id}

    def set_status(self, scene_id, status, reason=None, hazards=None, dlq_ref=None) -> None:
        row = self.db.scenes[scene_id]
        row.update(status=status, reason=reason, dlq_ref=dlq_ref)
        if hazards:
            row["hazard_status"] = {**row["hazard_status"], **copy.deepcopy(hazards)}

    def finish(self, scene_id: str, status: str, hazards: dict) -> str:
        row = self.db.scenes[scene_id]
        merged = {**row["hazard_status"], **copy.deepcopy(hazards)}
        if any(isinstance(v, dict) and v.get("status") == "processed" for v in merged.values()):
            status = "processed"
        row.update(status=status, reason=None, dlq_ref=None, hazard_status=merged)
        return status

    def previous(self, scene, min_overlap: float = 0.5) -> dict | None:
        return self.db.previous_item

    def pre_event_s1(self, scene, max_age: timedelta, min_overlap: float = 0.5) -> tuple[dict | None, str]:
        return self.db.pre_event

    def flood_partners(self, scene, window, min_overlap=0.25, limit=20) -> list[tuple[str, datetime]]:
        return list(self.db.partners)


class FakeDetections(_Repo):
    _ids = itertools.count(1)

    def add(self, scene, model_version: str, dets) -> list[int]:
        ids = []
        for d in dets:
            i = next(self._ids)
            self.db.detections[i] = {"scene_id": scene.id, "hazard": d.hazard, "model_version": model_version,
                                     "geom": d.geometry, "area_ha": d.area_ha, "likelihood": d.likelihood,
                                     "alert_id": None}
            ids.append(i)
        return ids

    def link(self, alert_id, detection_ids) -> None:
        for i in detection_ids:
            self.db.detections[i]["alert_id"] = alert_id

    def supersede(self, scene_id: str, hazard: str, model_version: str) -> set:
        out = set()
        for d in self.db.detections.values():
            if (d["scene_id"], d["hazard"]) == (scene_id, hazard) and d["model_version"] != model_version \
                    and d["alert_id"] is not None:
                out.add(d["alert_id"])
                d["alert_id"] = None
        return out

    def supporting(self, alert_id) -> list[dict]:
        return [{k: d[k] for k in ("scene_id", "geom", "area_ha", "likelihood")}
                for _, d in sorted(self.db.detections.items()) if d["alert_id"] == alert_id]


class FakeAlerts(_Repo):
    def mergeable(self, hazard, geom, distance_m, since, open_statuses):
        near = [a for a in self.db.alerts.values()
                if a.hazard == hazard and a.status in set(open_statuses) and a.last_sensed >= since
                and a.geom.distance(geom) * M_PER_DEG <= distance_m]
        near.sort(key=lambda a: (a.geom.distance(geom), str(a.id)))
        return copy.deepcopy(near[0]) if near else None

    def get(self, alert_id, for_update: bool = False):
        a = self.db.alerts.get(alert_id)
        return copy.deepcopy(a) if a is not None else None

    def insert(self, a) -> None:
        assert a.id not in self.db.alerts
        self.db.alerts[a.id] = copy.deepcopy(a)

    def update(self, a) -> None:
        assert a.id in self.db.alerts
        self.db.alerts[a.id] = copy.deepcopy(a)

    def set_context(self, alert_id, context: dict) -> None:
        self.db.alerts[alert_id].context = copy.deepcopy(context)

    def add_event(self, alert_id, actor, src, dst, reason, alert_version=None) -> None:
        self.db.events.append({"alert_id": alert_id, "actor": actor, "from_status": src, "to_status": dst,
                               "reason": reason, "alert_version": alert_version})

    def events(self, alert_id) -> list[dict]:
        return [e for e in self.db.events if e["alert_id"] == alert_id]

    def confirmed_by_pipeline(self, alert_id) -> bool:
        moves = [e for e in self.db.events if e["alert_id"] == alert_id and e["to_status"] == "confirmed"]
        return bool(moves) and moves[-1]["actor"] == "pipeline"


class FakeReference(_Repo):
    def water(self, footprint) -> list[BaseGeometry]:
        return [g.intersection(footprint) for g in self.db.reference_water if g.intersects(footprint)]

    def water_covers(self, geom) -> bool:
        return self.db.reference_coverage is not None and self.db.reference_coverage.covers(geom)

    def history(self, scene, min_gap):
        return self.db.history

    def save_observed_water(self, scene, model_version: str, water) -> None:
        self.db.observed_water.append((scene.id, model_version, water))

    def legality(self, geom) -> dict:
        return dict(self.db.legality)


class FakeOutbox(_Repo):
    def matching_subscribers(self, alert, confidence_ranks) -> list[dict]:
        rank = confidence_ranks[alert.confidence]
        return [dict(s) for s in self.db.subscribers
                if s.get("active", True) and alert.hazard in s["hazards"]
                and confidence_ranks[s.get("min_confidence", "low")] <= rank
                and (s.get("aoi") is None or s["aoi"].intersects(alert.geom))]

    def has_delivery(self, alert_id, subscriber_id) -> bool:
        return any(r["alert_id"] == alert_id and r["subscriber_id"] == subscriber_id for r in self.db.outbox)

    def sent_payloads(self, alert_id, subscriber_id, content_type) -> list[str]:
        return [r["payload"] for r in self.db.outbox if (r["alert_id"], r["subscriber_id"], r["content_type"])
                == (alert_id, subscriber_id, content_type)]

    def enqueue(self, alert, subscriber_id, event_type, payload, content_type, msg_id=None) -> str:
        msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
        self.db.outbox.append({"id": msg_id, "alert_id": alert.id, "alert_version": alert.version,
                               "subscriber_id": subscriber_id, "event_type": event_type, "payload": payload,
                               "content_type": content_type})
        return msg_id


class FakeUnitOfWork:
    """One transaction on a :class:`FakeDb` (the ``UnitOfWork`` port)."""

    def __init__(self, db: FakeDb, operation: str = "scene") -> None:
        self.db, self.operation = db, operation
        self.scenes, self.detections, self.alerts = FakeScenes(db), FakeDetections(db), FakeAlerts(db)
        self.reference, self.outbox = FakeReference(db), FakeOutbox(db)
        self.conn = db.audit_rows

    def __enter__(self) -> FakeUnitOfWork:
        self.db.opened.append(self.operation)
        self._before = {k: copy.deepcopy(getattr(self.db, k)) for k in FakeDb.MUTABLE}
        self.conn = self.db.audit_rows  # an audit callback appends its row here
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.committed.append(self.operation)
        else:
            for k, v in self._before.items():
                setattr(self.db, k, v)
            self.db.rolled_back.append(self.operation)


@dataclass
class FakeGrid:
    """A lon/lat grid: ``width`` x ``height`` px of ``px_deg`` degrees, top-left at (``lon``, ``lat``)."""

    width: int = 200
    height: int = 200
    lon: float = 10.0
    lat: float = 45.0
    px_deg: float = 0.0001

    @property
    def transform(self) -> Affine:
        return Affine(self.px_deg, 0.0, self.lon, 0.0, -self.px_deg, self.lat)

    crs = "EPSG:4326"

    @property
    def footprint(self) -> BaseGeometry:
        return box(self.lon, self.lat - self.height * self.px_deg, self.lon + self.width * self.px_deg, self.lat)


class FakeReader:
    """The ``ReaderFactory`` port: ``reader(scene)`` opens nothing and gives ``grid``."""

    def __init__(self, grid: FakeGrid) -> None:
        self.grid = grid
        self.opened: list[str] = []

    def __call__(self, scene) -> FakeReader:
        self.opened.append(scene.id)
        return self

    def __enter__(self) -> FakeReader:
        return self

    def __exit__(self, *exc) -> None:
        return None


def part(col: int, row: int, size: int, likelihood: float = 90.0) -> PixelPart:
    """A square region of ``size`` px at pixel (col, row) with mean likelihood ``likelihood`` (0-100)."""
    return PixelPart(box(col, row, col + size, row + size), likelihood * size * size, size * size, False)


class FakeTiler:
    """The ``Tiler`` port: returns ``parts`` per hazard (PixelParts), or raises ``error``; records the jobs.
    ``on_run`` is called first (e.g. to let another delivery store the run meanwhile)."""

    def __init__(self, parts: dict[str, list] | None = None, valid_pixels: int | None = None, tiles: int = 4,
                 error: BaseException | None = None, on_run=None) -> None:
        self.parts, self.valid_pixels, self.tiles, self.error, self.on_run = parts or {}, valid_pixels, tiles, error, on_run
        self.calls: list[list] = []

    def run(self, scene, grid, jobs, tile_size, overlap, now_iso, products=None, cloud_mask=None) -> SceneTiles:
        self.calls.append(list(jobs))
        if self.on_run is not None:
            self.on_run()
        if self.error is not None:
            raise self.error
        return SceneTiles(tiles=self.tiles,
                          valid_pixels=grid.width * grid.height if self.valid_pixels is None else self.valid_pixels,
                          parts={j.hazard: list(self.parts.get(j.hazard, [])) for j in jobs},
                          outside_aoa={}, read_s=0.0, infer_s=0.0)

    def check_cluster(self) -> None:
        pass


class AllowAssets:
    """The ``AssetChecks`` port allowing every href, or refusing all with ``refuse`` (an exception)."""

    def __init__(self, refuse: BaseException | None = None) -> None:
        self.refuse = refuse

    def check_url(self, url: str) -> None:
        if self.refuse is not None:
            raise self.refuse

    def check_scene(self, scene) -> None:
        if self.refuse is not None:
            raise self.refuse


# The DLQ's ports (service.ports.DlqLog, DlqStates) --------------------------------------------------------------

class FakeDlqLog:
    """The ``DlqLog`` port: a DLQ topic of ``records`` {partition: {offset: DlqRecord}} whose retained range is
    ``low`` (default: the lowest offset held) to the highest offset + 1; ``republished`` collects re-driven
    records, ``refuse`` (an exception) makes republishing fail like a broker that does not acknowledge."""

    def __init__(self, records: dict[int, dict[int, object]] | None = None, low: dict[int, int] | None = None,
                 refuse: BaseException | None = None) -> None:
        self.records, self.low, self.refuse = records or {}, low or {}, refuse
        self.republished: list = []

    def _retained(self):
        for p in sorted(self.records):
            for o in sorted(self.records[p]):
                if o >= self.low.get(p, 0):
                    yield p, o, self.records[p][o]

    def read(self, wanted=None, limit: int = 100):
        if wanted is not None:
            return [(p, o, r) for p, o, r in self._retained() if o in wanted.get(p, ())]
        return list(itertools.islice(self._retained(), limit))

    def watermarks(self) -> dict[int, tuple[int, int]]:
        return {p: (self.low.get(p, min(offs, default=0)), max(offs, default=-1) + 1)
                for p, offs in self.records.items()}

    def republish(self, records: list) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.republished.extend(records)


class FakeDlqStates:
    """The ``DlqStates`` port: marks in ``rows`` {(partition, offset): row}; a transaction yields a list that the
    caller's audit callback may append to (``audited`` keeps what committed) and restores the rows on an exception."""

    def __init__(self, rows: dict[tuple[int, int], dict] | None = None) -> None:
        self.rows = rows or {}
        self.audited: list = []
        self.transactions = {"committed": 0, "rolled_back": 0}

    def states(self, positions):
        return {pos: dict(self.rows[pos]) for pos in positions if pos in self.rows}

    def _in(self, ranges):
        return [(p, o) for (p, o) in sorted(self.rows) if p in ranges and ranges[p][0] <= o < ranges[p][1]]

    def not_pending(self, ranges) -> dict[str, int]:
        out: dict[str, int] = {}
        for pos in self._in(ranges):
            out[self.rows[pos]["state"]] = out.get(self.rows[pos]["state"], 0) + 1
        return out

    def positions_in_state(self, state, ranges, limit):
        return [pos for pos in self._in(ranges) if self.rows[pos]["state"] == state][:limit]

    def earlier_redriven(self, source_key, position, before):
        rows = [{"partition": p, "offset": o, **r} for (p, o), r in self.rows.items()
                if r.get("source_key") == source_key and r["state"] == "redriven" and (p, o) != position
                and (before is None or r["redriven_at"] <= before)]
        return sorted(rows, key=lambda r: r["redriven_at"])

    def transaction(self):
        states = self

        class _Tx:
            def __enter__(self):
                self.saved, self.conn = copy.deepcopy(states.rows), []
                return self.conn

            def __exit__(self, exc_type, exc, tb):
                if exc_type is None:
                    states.audited.extend(self.conn)
                    states.transactions["committed"] += 1
                else:
                    states.rows = self.saved
                    states.transactions["rolled_back"] += 1
                return False

        return _Tx()

    def mark(self, conn, partition, offset, state, actor, at, error_code=None, kind=None, source_key=None) -> None:
        row = self.rows.setdefault((partition, offset), {"redrives": 0, "error_code": error_code, "kind": kind,
                                                        "source_key": source_key, "redriven_at": None,
                                                        "redriven_by": None, "purged_at": None, "purged_by": None})
        row["state"] = state
        if state == "redriven":
            row.update(redriven_at=at, redriven_by=actor, redrives=row["redrives"] + 1)
        else:
            row.update(purged_at=at, purged_by=actor)


# For the runbook use cases that still take an engine and call store/ functions (tests replace those) ----------

class FakeEngine:
    """Stands in for the PostGIS engine of a runbook use case: ``begin()`` yields a list the store stand-ins and
    the audit callback append to; ``committed`` keeps the lists of committed transactions, ``rolled_back`` counts
    the others."""

    def __init__(self) -> None:
        self.committed: list[list] = []
        self.rolled_back = 0

    def begin(self):
        engine = self

        class _Tx:
            def __enter__(self):
                self.conn: list = []
                return self.conn

            def __exit__(self, exc_type, exc, tb):
                if exc_type is None:
                    engine.committed.append(self.conn)
                else:
                    engine.rolled_back += 1
                return False

        return _Tx()

    def connect(self):
        return self.begin()


class FakeProducer:
    """A Kafka producer: ``sent`` (topic, key, value) of what was produced; ``unacked`` messages are left
    unacknowledged by ``flush`` (the broker did not answer)."""

    def __init__(self, unacked: int = 0) -> None:
        self.sent: list[tuple] = []
        self.unacked = unacked

    def produce(self, topic, key=None, value=None, headers=None, **kw) -> None:
        self.sent.append((topic, key, value))

    def poll(self, timeout) -> int:
        return 0

    def flush(self, timeout) -> int:
        return self.unacked


def audit_into(conn, target, details) -> None:
    """An ``Audit`` callback writing (target, details) into the transaction ``conn`` of a fake."""
    conn.append(("audit", target, details))
