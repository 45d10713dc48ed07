"""Stream operations: replay a stored scene and backfill an area/period, both through Kafka like live traffic.

Replay republishes the STAC Item stored in ``scenes.item`` under the scene id as
key. The worker's idempotency key (scene id, hazard, model version) makes a
replay a no-op while the served model versions are unchanged; after a model
update it yields a new run next to the old one. (There is no ``--force``: redoing
a run under the same key would mean deleting its detections and alert links
first, which is not a cheap, safe operation.)

Backfill publishes one event per scene a source finds (``ingest.sources``),
with a progress bar on stderr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from terrawatch.domain.errors import NotFound
from terrawatch.ingest import kafka_io
from terrawatch.ingest.sources import BBox, Source
from terrawatch.settings import Settings
from terrawatch.store import scenes
from terrawatch.store.uow import engine_for

log = logging.getLogger(__name__)


class SceneNotFound(NotFound, LookupError):
    pass


def stored_item(settings: Settings, scene_id: str) -> tuple[dict, list[dict]]:
    """The scene's stored STAC Item and its runs (hazard, model_version, finished_at)."""
    item, runs = scenes.stored_item(engine_for(settings.db_url), scene_id)
    if item is None:
        raise SceneNotFound(f"scene {scene_id!r} is not in the scenes table")
    return item, runs


def replay(settings: Settings, scene_id: str, producer=None) -> dict:
    """Republish a stored scene's Item to the scenes topic; report the runs it already has."""
    item, runs = stored_item(settings, scene_id)
    p = producer or kafka_io.producer(settings)
    kafka_io.publish_scene(p, settings, item)
    if p.flush(30):
        raise RuntimeError("replay not acknowledged by the broker within 30 s")
    return {"published": scene_id, "topic": settings.scenes_topic,
            "existing_runs": [f"{r['hazard']}@{r['model_version']}" for r in runs],
            "note": "runs with the currently served model versions are skipped by the worker (idempotency key)"}


@dataclass
class BackfillReport:
    source: str
    published: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"source": self.source, "published": len(self.published), "scene_ids": self.published,
                "skipped": len(self.skipped), "skipped_entries": self.skipped[:100], "dry_run": self.dry_run}


def backfill(settings: Settings, source: Source, bbox: BBox, start: datetime, end: datetime,
             dry_run: bool = False, progress: bool = True, producer=None) -> BackfillReport:
    """Publish an event for every scene ``source`` has over ``bbox`` in [start, end] (UTC)."""
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
        raise RuntimeError("backfill events not all acknowledged by the broker within 60 s")
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
