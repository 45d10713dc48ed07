"""Scenes: what a scene event means once validated.

A scene event is a STAC Item (JSON). Sensing time is ``properties.datetime`` (UTC).
Geometries are GeoJSON in EPSG:4326 (lon, lat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from terrawatch.domain.errors import InvalidEvent

SCHEMA_PATH = Path(__file__).with_name("schemas") / "scene-event.schema.json"
MAX_FUTURE = timedelta(hours=6)

S1_BANDS = ("VV", "VH")
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")


class Sensor(str, Enum):
    S1 = "sentinel-1"
    S2 = "sentinel-2"


@dataclass(frozen=True)
class BandRef:
    """Where one logical band lives: an asset href and a 1-based band index in it."""

    name: str
    href: str
    index: int
    units: str


@dataclass(frozen=True)
class Scene:
    id: str
    sensor: Sensor
    platform: str
    sensing_time: datetime
    footprint: BaseGeometry
    bands: tuple[BandRef, ...]
    hazards: tuple[str, ...]
    processing_level: str | None = None
    processing_baseline: str | None = None
    item: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)


@lru_cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def parse_event(raw: bytes | str, now: datetime | None = None) -> Scene:
    """Decode and validate one Kafka message value; raise :class:`InvalidEvent` with a reason."""
    try:
        item = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, > 4300-digit ints, deep nesting
        raise InvalidEvent(f"malformed JSON: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if not isinstance(item, dict):
        raise InvalidEvent("event is not a JSON object (expected a STAC Item)")
    return scene_from_item(item, now)


def scene_from_item(item: dict[str, Any], now: datetime | None = None) -> Scene:
    errors = sorted(_validator().iter_errors(item), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise InvalidEvent(f"schema violation at {where}: {err.message}")
    props = item["properties"]
    sensor = Sensor(props["constellation"])
    if not props["platform"].startswith(sensor.value):
        raise InvalidEvent(f"platform {props['platform']} does not belong to constellation {sensor.value}")
    try:
        sensing = datetime.fromisoformat(props["datetime"].replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidEvent(f"properties.datetime {props['datetime'][:64]!r} is not an RFC 3339 date-time: {exc}") from exc
    if sensing.tzinfo is None:
        sensing = sensing.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    if sensing > now + MAX_FUTURE:
        raise InvalidEvent(f"sensing time {sensing.isoformat()} is in the future (now {now.isoformat()})")
    try:
        footprint = shape(item["geometry"])
    except Exception as exc:  # shapely raises several types for bad coordinates
        raise InvalidEvent(f"invalid footprint geometry: {exc}") from exc
    if footprint.is_empty or not footprint.is_valid or footprint.area <= 0:
        raise InvalidEvent("footprint geometry is empty, invalid or has zero area")
    minx, miny, maxx, maxy = footprint.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidEvent("footprint is outside lon/lat bounds (geometry must be EPSG:4326)")
    bands = _band_refs(sensor, item["assets"])
    hazards = tuple(props.get("terrawatch:hazards") or default_hazards(sensor))
    return Scene(
        id=item["id"], sensor=sensor, platform=props["platform"], sensing_time=sensing,
        footprint=footprint, bands=bands, hazards=hazards,
        processing_level=props.get("processing:level"),
        processing_baseline=props.get("s2:processing_baseline"), item=item,
    )


def default_hazards(sensor: Sensor) -> tuple[str, ...]:
    """Every hazard the hazard registry computes from this sensor."""
    from terrawatch.domain.hazards import hazards_for  # the registry imports Sensor from here

    return hazards_for(sensor)


def _band_refs(sensor: Sensor, assets: dict[str, Any]) -> tuple[BandRef, ...]:
    """Map the sensor's bands to (href, band index): per-band assets or one multi-band asset."""
    wanted = S1_BANDS if sensor is Sensor.S1 else S2_BANDS
    default_units = "dB" if sensor is Sensor.S1 else "reflectance_x10000"
    by_key = {k.upper(): v for k, v in assets.items()}
    if all(b in by_key for b in wanted):
        return tuple(
            BandRef(b, by_key[b]["href"], 1, by_key[b].get("terrawatch:units", default_units)) for b in wanted
        )
    for asset in assets.values():
        names = [n.upper() for n in asset.get("terrawatch:bands", [])]
        if names and all(b in names for b in wanted):
            units = asset.get("terrawatch:units", default_units)
            return tuple(BandRef(b, asset["href"], names.index(b) + 1, units) for b in wanted)
    data = [a for a in assets.values() if "data" in a.get("roles", [])]
    if len(data) == 1 and "terrawatch:bands" not in data[0]:
        units = data[0].get("terrawatch:units", default_units)
        return tuple(BandRef(b, data[0]["href"], i + 1, units) for i, b in enumerate(wanted))
    raise InvalidEvent(
        f"missing asset: {sensor.value} needs bands {', '.join(wanted)} as per-band assets "
        "or one data asset listing them in terrawatch:bands"
    )
