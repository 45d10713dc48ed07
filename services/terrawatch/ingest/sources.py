"""Where backfill scene events come from: a local folder, a STAC API search, or Sentinel Hub.

Every source yields terrawatch scene events (STAC Item dicts that ``parse_event``
accepts) for one area and period, plus the entries it skipped and why:
``events(bbox, start, end) -> Iterator[Event]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from shapely.geometry import box

from terrawatch.domain.errors import TerrawatchError
from terrawatch.domain.scene import scene_from_item

GEOTIFF_SUFFIXES = (".tif", ".tiff")
# Sensing time in Sentinel product / file names: 20240501T100559 (or a bare 20240501).
_NAME_TIME = re.compile(r"(?<!\d)(\d{8})(?:T(\d{6}))?(?!\d)")

BBox = tuple[float, float, float, float]


@dataclass
class Event:
    """One backfill entry: the scene event, or ``item=None`` and the reason it was skipped."""

    source: str
    item: dict | None = None
    skipped: str | None = None


class Source(Protocol):
    name: str

    def events(self, bbox: BBox, start: datetime, end: datetime) -> Iterator[Event]: ...

    def total(self) -> int | None: ...


def _in_scope(item: dict, bbox: BBox, start: datetime, end: datetime) -> str | None:
    """None if the item's footprint meets ``bbox`` and its time lies in [start, end], else why not."""
    scene = scene_from_item(item, now=datetime.now(timezone.utc))
    if not scene.footprint.intersects(box(*bbox)):
        return "footprint outside the bbox"
    if not start <= scene.sensing_time <= end:
        return f"sensed {scene.sensing_time.isoformat()}, outside the period"
    return None


def time_from_name(name: str) -> datetime | None:
    """The first plausible date(+time) in a file name, UTC."""
    for m in _NAME_TIME.finditer(name):
        try:
            return datetime.strptime(m.group(1) + (m.group(2) or "000000"), "%Y%m%d%H%M%S").replace(
                tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


class FolderSource:
    """GeoTIFFs (2 bands S1 dB / 13 bands S2 L1C / 12 bands S2 L2A) and STAC Item JSON files under a folder, recursively."""

    def __init__(self, folder: Path, default_time: datetime | None = None, recursive: bool = True,
                 platform: str | None = None, max_files: int | None = None) -> None:
        """``default_time``: sensing time of GeoTIFFs that carry none (tag or date in the name);
        ``platform``: of GeoTIFFs (default sentinel-1a / sentinel-2a); ``max_files``: refuse a bigger folder."""
        self.folder = folder.expanduser().resolve()
        self.default_time, self.platform = default_time, platform
        if not self.folder.is_dir():
            raise FileNotFoundError(f"folder {self.folder} does not exist")
        self.name = f"folder:{self.folder}"
        self._files = sorted(p for p in (self.folder.rglob("*") if recursive else self.folder.iterdir())
                             if p.is_file() and p.suffix.lower() in (*GEOTIFF_SUFFIXES, ".json", ".geojson"))
        if max_files is not None and len(self._files) > max_files:
            from terrawatch.domain.errors import InvalidInput

            raise InvalidInput(f"{len(self._files)} GeoTIFF / STAC Item files found; at most {max_files} per backfill")

    def total(self) -> int | None:
        return len(self._files)

    def events(self, bbox: BBox, start: datetime, end: datetime) -> Iterator[Event]:
        from terrawatch.imagery.stac import RESOLVE_KEY, resolve_event
        from terrawatch.ingest.stac_items import item_from_geotiff

        for path in self._files:
            src = str(path)
            try:
                if path.suffix.lower() in GEOTIFF_SUFFIXES:
                    item = item_from_geotiff(path, sensing_time=self._tiff_time(path), platform=self.platform)
                else:
                    obj = json.loads(path.read_text())
                    if not isinstance(obj, dict) or (obj.get("type") != "Feature" and RESOLVE_KEY not in obj):
                        yield Event(src, skipped="not a STAC Item")
                        continue
                    item = json.loads(resolve_event(json.dumps(obj)))
                why = _in_scope(item, bbox, start, end)
            except (TerrawatchError, ValueError, OSError) as exc:
                reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                yield Event(src, skipped=reason[:300])
                continue
            yield Event(src, item=item) if why is None else Event(src, skipped=why)

    def _tiff_time(self, path: Path) -> datetime:
        import rasterio

        with rasterio.open(path) as ds:
            tag = ds.tags().get("TIFFTAG_DATETIME")
        if tag:
            return datetime.strptime(tag, "%Y:%m:%d %H:%M:%S").replace(tzinfo=timezone.utc)
        t = time_from_name(path.stem) or self.default_time
        if t is None:
            raise ValueError("no sensing time (no TIFFTAG_DATETIME, no date in the file name)")
        return t


class StacApiSource:
    """Items of a STAC API search (pages followed), converted to scene events."""

    def __init__(self, api_url: str, collections: list[str], max_cloud: float | None = None,
                 max_items: int | None = None) -> None:
        self.api_url, self.collections, self.max_cloud, self.max_items = api_url, collections, max_cloud, max_items
        self.name = f"stac:{api_url}"
        self._matched: int | None = None

    def total(self) -> int | None:
        return self._matched

    def events(self, bbox: BBox, start: datetime, end: datetime) -> Iterator[Event]:
        from terrawatch.imagery.stac import normalize_item, search_items

        query = {"eo:cloud_cover": {"lt": self.max_cloud}} if self.max_cloud is not None else None
        period = f"{start.isoformat().replace('+00:00', 'Z')}/{end.isoformat().replace('+00:00', 'Z')}"
        for raw in search_items(self.api_url, collections=self.collections or None, bbox=list(bbox),
                                datetime=period, query=query, max_items=self.max_items):
            src = next((lk["href"] for lk in raw.get("links", []) if lk.get("rel") == "self"), raw.get("id", "?"))
            try:
                item = normalize_item(raw)
                why = _in_scope(item, bbox, start, end)
            except TerrawatchError as exc:
                yield Event(src, skipped=exc.reason[:300])
                continue
            yield Event(src, item=item) if why is None else Event(src, skipped=why)


class SentinelHubSource:
    """Sentinel Hub Catalog search + Process API renders over the bbox (see ``imagery.sentinelhub``)."""

    def __init__(self, settings, product: str, out_dir: Path, resolution_m: float = 10.0,
                 max_cloud: float | None = None) -> None:
        from terrawatch.imagery.sentinelhub import SentinelHub

        self.hub, self.product, self.out_dir = SentinelHub(settings), product, out_dir
        self.resolution_m, self.max_cloud = resolution_m, max_cloud
        self.name = f"sentinelhub:{product}"

    def total(self) -> int | None:
        return None

    def events(self, bbox: BBox, start: datetime, end: datetime) -> Iterator[Event]:
        for item in self.hub.items(self.product, bbox, start, end, self.out_dir, self.resolution_m,
                                   max_cloud=self.max_cloud):
            yield Event(item["assets"]["data"]["href"], item=item)
