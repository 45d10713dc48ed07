"""Stream operations: replay a stored scene and backfill an area/period, both through Kafka like live traffic.

One implementation for the ops API (``/ops/scenes/{id}/replay``, ``/ops/backfill``), the CLI
(``terrawatch replay``, ``terrawatch backfill``) and the tests.

Replay republishes the STAC Item stored in ``scenes.item`` under the scene id as
key. The worker's idempotency key (scene id, hazard, model version) makes a
replay a no-op while the served model versions are unchanged; after a model
update it yields a new run next to the old one. (There is no ``--force``: redoing
a run under the same key would mean deleting its detections and alert links
first, which is not a cheap, safe operation.)

Backfill publishes one event per scene a source finds (``ingest.sources``),
with an optional progress bar on stderr. :func:`backfill_folder` is the folder
backfill of the API and of ``terrawatch backfill --folder``: at most MAX_BACKFILL_FILES files, audited as
``scene.backfill``; the API confines it to allowed roots (a parameter), the CLI (the operator's own host) does not.
:func:`publish` is ``terrawatch publish``: one event, acknowledged by the broker or KafkaUnavailable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from terrawatch.domain.errors import InvalidInput, NotFound
from terrawatch.ingest import kafka_io
from terrawatch.ingest.sources import BBox, Source
from terrawatch.settings import REPO_ROOT, Settings
from terrawatch.store import scenes
from terrawatch.store.audit import Audit

log = logging.getLogger(__name__)

MAX_BACKFILL_FILES = 500  # the most files one folder backfill reads (API and CLI)
WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)
ALL_TIME = (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, tzinfo=timezone.utc))


class SceneNotFound(NotFound, LookupError):
    pass


def _engine(settings: Settings, engine):
    """The caller's engine (the API's, the CLI's ``cli_engine``); a pool of ``settings.db_url`` for callers that
    pass none (tests, scripts)."""
    if engine is not None:
        return engine
    from terrawatch.store.uow import engine_for

    return engine_for(settings.db_url)


def stored_item(settings: Settings, scene_id: str, engine=None) -> tuple[dict, list[dict]]:
    """The scene's stored STAC Item and its runs (hazard, model_version, finished_at)."""
    item, runs = scenes.stored_item(_engine(settings, engine), scene_id)
    if item is None:
        raise SceneNotFound(f"scene {scene_id!r} not found")
    return item, runs


def replay_outcome(settings: Settings, runs: list[dict], served: list[dict] | None = None) -> tuple[str, str]:
    """What the worker will do with a replayed scene: ``("duplicate", why)`` when every stored run's model
    (``model:version``) is still the version Triton serves (the idempotency key is unchanged), ``("new", why)``
    when the scene has no run yet or a model version changed, ``("unknown", why)`` when Triton does not answer."""
    if not runs:
        return "new", "the scene has no stored run yet: it is processed"
    if served is None:
        from terrawatch.service.ops import triton_models

        try:
            served = triton_models(settings)
        except Exception as exc:  # noqa: BLE001 - Triton down: the answer says so instead of guessing
            return "unknown", f"Triton does not answer ({' '.join(str(exc).split())[:200]}); the worker decides"
    ready: dict[str, int] = {}
    for m in served:
        if m.get("state") == "READY" and str(m.get("version") or "").isdigit():
            ready[m["name"]] = max(ready.get(m["name"], -1), int(m["version"]))
    changed = []
    for r in runs:
        model, _, version = str(r["model_version"]).partition("#")[0].rpartition(":")  # "#tag": a reprocess run
        if model and str(ready.get(model)) != version:
            changed.append(f"{r['hazard']} ({r['model_version']} -> {model}:{ready.get(model, 'not served')})")
    if changed:
        return "new", "a model version changed since the stored run: " + ", ".join(changed)
    return "duplicate", ("every stored run has the currently served model version: the worker skips the scene "
                         "(idempotency key scene id, hazard, model version); nothing new is stored. To apply new "
                         "reference water, thresholds or rules to a stored scene, re-process it (terrawatch reprocess, "
                         "POST /ops/reprocess)")


def replay(settings: Settings, scene_id: str, producer=None, engine=None, audit: Audit | None = None) -> dict:
    """Republish a stored scene's Item to the scenes topic; report the runs it already has and whether the
    run will be ``new`` or a ``duplicate`` (:func:`replay_outcome`). With ``audit``, its row
    (``scene.replay``) is written in a transaction that commits only once the broker has the event."""
    engine = _engine(settings, engine)
    item, runs = stored_item(settings, scene_id, engine)
    outcome, why = replay_outcome(settings, runs)
    p = producer or kafka_io.producer(settings)
    if audit is None:
        kafka_io.publish_items(p, settings, [item])
    else:
        with engine.begin() as conn:
            audit(conn, scene_id, {"topic": settings.scenes_topic, "outcome": outcome})
            kafka_io.publish_items(p, settings, [item])
    return {"published": scene_id, "topic": settings.scenes_topic, "outcome": outcome, "note": why,
            "existing_runs": [f"{r['hazard']}@{r['model_version']}" for r in runs]}


@dataclass
class BackfillReport:
    source: str
    published: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"source": file or URL, "reason": why}
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"source": self.source, "published": len(self.published), "scene_ids": self.published,
                "skipped": len(self.skipped), "skipped_entries": self.skipped[:100], "dry_run": self.dry_run}


def backfill(settings: Settings, source: Source, bbox: BBox, start: datetime, end: datetime,
             dry_run: bool = False, progress: bool = True, producer=None) -> BackfillReport:
    """Publish an event for every scene ``source`` has over ``bbox`` in [start, end] (UTC), each scene id
    once; raises KafkaUnavailable if the broker does not acknowledge them all within 60 s."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if start > end:
        raise ValueError("--from is after --to")
    report = BackfillReport(source.name, dry_run=dry_run)
    p = None if dry_run else (producer or kafka_io.producer(settings))
    seen: set[str] = set()
    columns = [TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("backfill", total=source.total(), status="")
        for ev in source.events(bbox, start, end):
            if ev.item is None:
                report.skipped.append({"source": ev.source, "reason": ev.skipped})
            elif ev.item["id"] in seen:
                report.skipped.append({"source": ev.source, "reason": f"duplicate scene id {ev.item['id']}"})
            else:
                seen.add(ev.item["id"])
                if p is not None:
                    kafka_io.publish_scene(p, settings, ev.item)
                    p.poll(0)
                report.published.append(ev.item["id"])
            bar.update(task, advance=1, total=source.total(),
                       status=f"{len(report.published)} published, {len(report.skipped)} skipped")
    if p is not None and p.flush(60):
        from terrawatch.ingest.dlq import KafkaUnavailable

        raise KafkaUnavailable("backfill events not all acknowledged by the broker within 60 s")
    return report


def backfill_roots(settings: Settings) -> list[Path]:
    """Folders the API may backfill from (TERRAWATCH_API_BACKFILL_ROOTS; default the state dir and the
    shared data)."""
    if settings.api_backfill_roots.strip():
        return [Path(p.strip()).resolve() for p in settings.api_backfill_roots.split(",") if p.strip()]
    return [settings.state_dir.resolve(), (REPO_ROOT.parent / "shared" / "data").resolve()]


def allowed_folder(folder: str, roots: list[Path] | None) -> Path:
    """``folder`` (absolute) resolved, if it lies under one of ``roots`` (None: anywhere, the CLI on the operator's
    host): InvalidInput / NotFound otherwise."""
    if "\x00" in folder:
        raise InvalidInput("folder must not contain NUL characters")
    path = Path(folder)  # no ~ expansion: an unknown user raises, and the folder must be absolute anyway
    if not path.is_absolute():
        raise InvalidInput("folder must be an absolute path")
    path = path.resolve()
    if roots is not None and not any(path == r or path.is_relative_to(r) for r in roots):
        raise InvalidInput(f"folder {folder!r} is outside the allowed backfill roots "
                           f"{', '.join(map(str, roots)) or '(none)'} (setting TERRAWATCH_API_BACKFILL_ROOTS; "
                           "default: the state dir and the shared data)")
    if not path.is_dir():
        raise NotFound(f"folder {folder!r} does not exist")
    return path


def backfill_folder(settings: Settings, folder: str, roots: list[Path] | None, *, recursive: bool = False,
                    sensing_time: datetime | None = None, platform: str | None = None, dry_run: bool = False,
                    producer=None, engine=None, audit: Audit | None = None, bbox: BBox = WORLD,
                    start: datetime = ALL_TIME[0], end: datetime = ALL_TIME[1], progress: bool = False) -> BackfillReport:
    """Every scene (GeoTIFF or STAC Item file) in ``folder`` (absolute; under one of ``roots`` unless None) over
    ``bbox`` (lon/lat) sensed in [start, end] (UTC), at most MAX_BACKFILL_FILES files; ``sensing_time`` for
    GeoTIFFs that carry none. With ``audit`` (and not ``dry_run``), its row (``scene.backfill``) is written once
    the broker has the events."""
    from terrawatch.ingest.sources import FolderSource

    source = FolderSource(allowed_folder(folder, roots), sensing_time, recursive=recursive, platform=platform,
                          max_files=MAX_BACKFILL_FILES)
    report = backfill(settings, source, bbox, start, end, dry_run=dry_run, progress=progress, producer=producer)
    if audit is not None and not dry_run:
        with _engine(settings, engine).begin() as conn:
            audit(conn, folder, {"scenes": report.published, "skipped": len(report.skipped), "recursive": recursive})
    return report


def make_source(settings: Settings, *, folder: Path | None = None, stac_api: str | None = None,
                collections: list[str] | None = None, sentinelhub: str | None = None,
                max_cloud: float | None = None, max_items: int | None = None,
                sensing_time: datetime | None = None) -> Source:
    """Exactly one of ``folder``, ``stac_api`` or ``sentinelhub`` (a product: sentinel-2-l1c, sentinel-1-grd)."""
    from terrawatch.ingest.sources import FolderSource, SentinelHubSource, StacApiSource

    chosen = [x for x in (folder, stac_api, sentinelhub) if x]
    if len(chosen) != 1:
        raise ValueError("give exactly one of --folder, --stac-api or --sentinelhub")
    if folder:
        return FolderSource(folder, sensing_time)
    if stac_api:
        return StacApiSource(stac_api, collections or ["sentinel-2-l1c"], max_cloud, max_items)
    return SentinelHubSource(settings, sentinelhub, settings.cache_dir / "sentinelhub", max_cloud=max_cloud)


def publish(settings: Settings, item: dict, producer=None, timeout_s: float = 30.0) -> dict:
    """Publish one scene event (a STAC Item) keyed by its id; KafkaUnavailable unless the broker acknowledges it
    within ``timeout_s``. ``{"published": id, "topic": scenes topic}``."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise InvalidInput("a scene event is a STAC Item JSON object with a non-empty string id")
    kafka_io.publish_items(producer or kafka_io.producer(settings), settings, [item], timeout_s)
    return {"published": item["id"], "topic": settings.scenes_topic}
