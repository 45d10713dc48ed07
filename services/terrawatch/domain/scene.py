"""Scenes: what a scene event means once validated.

A scene event is a STAC Item (JSON). Sensing time is ``properties.datetime`` (UTC).
Geometries are GeoJSON in EPSG:4326 (lon, lat).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from terrawatch.domain.errors import InvalidEvent
from terrawatch.domain.hazards import hazards_for
from terrawatch.domain.sensors import Sensor  # defined apart so the hazard registry needs no scene parsing

SCHEMA_PATH = Path(__file__).with_name("schemas") / "scene-event.schema.json"
MAX_FUTURE = timedelta(hours=6)

S1_BANDS = ("VV", "VH")
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
S2_L2A_BANDS = tuple(b for b in S2_BANDS if b != "B10")  # L2A drops B10 (cirrus): 12 bands
SCL = "SCL"  # L2A scene classification layer (Sen2Cor classes), used as the cloud/shadow mask
# SCL classes (Sen2Cor): 0 no data, 1 saturated/defective -> no data; 3 cloud shadow, 8/9 cloud medium/high
# probability, 10 thin cirrus -> cloud; the rest (2 dark/topographic shadow, 4 vegetation, 5 bare, 6 water,
# 7 unclassified, 11 snow) are classified.
SCL_NODATA = (0, 1)
SCL_CLOUD = (3, 8, 9, 10)


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
    mask_bands: tuple[BandRef, ...] = ()  # bands that are masks, not model input (L2A: SCL)
    item: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def is_l2a(self) -> bool:
        """Sentinel-2 Level-2A (surface reflectance, 12 bands, optional SCL)."""
        return self.sensor is Sensor.S2 and self.processing_level == "L2A"

    @property
    def level(self) -> str:
        """Processing level used to pick models: L2A, L1C (S2 default) or the S1 level (GRD/RTC, default GRD)."""
        if self.sensor is Sensor.S1:
            return self.processing_level or "GRD"
        return "L2A" if self.processing_level == "L2A" else "L1C"

    @property
    def relative_orbit(self) -> int | None:
        """STAC ``sat:relative_orbit`` (Sentinel-1 track, 1-175), or None when the event does not say."""
        return (self.item.get("properties") or {}).get("sat:relative_orbit")

    @property
    def pre_event_scene(self) -> str | None:
        """Id of the earlier scene the event names as its pre-event reference (``terrawatch:pre_event_scene``)."""
        return (self.item.get("properties") or {}).get("terrawatch:pre_event_scene")

    @property
    def mask_band(self) -> BandRef | None:
        """The L2A ``SCL`` band when the Item has one (used as the cloud/shadow mask), else None."""
        return next((b for b in self.mask_bands if b.name == SCL), None)


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
    level = props.get("processing:level")
    bands = _band_refs(sensor, item["assets"], level)
    masks = _mask_refs(item["assets"]) if sensor is Sensor.S2 and level == "L2A" else ()
    hazards = tuple(props.get("terrawatch:hazards") or default_hazards(sensor))
    return Scene(
        id=item["id"], sensor=sensor, platform=props["platform"], sensing_time=sensing,
        footprint=footprint, bands=bands, hazards=hazards,
        processing_level=props.get("processing:level"),
        processing_baseline=props.get("s2:processing_baseline"), mask_bands=masks, item=item,
    )


def default_hazards(sensor: Sensor) -> tuple[str, ...]:
    """Every hazard the hazard registry computes from this sensor."""
    return hazards_for(sensor)


def _mask_refs(assets: dict[str, Any]) -> tuple[BandRef, ...]:
    """The ``SCL`` band of an L2A Item: an asset keyed SCL or a multi-band asset listing it."""
    for key, asset in assets.items():
        if key.upper() == SCL:
            return (BandRef(SCL, asset["href"], 1, "class"),)
    for asset in assets.values():
        names = [str(n).upper() for n in asset.get("terrawatch:bands", [])]
        if SCL in names:
            return (BandRef(SCL, asset["href"], names.index(SCL) + 1, "class"),)
    return ()


def _band_refs(sensor: Sensor, assets: dict[str, Any], level: str | None = None) -> tuple[BandRef, ...]:
    """Map the sensor's bands to (href, band index): per-band assets or one multi-band asset.

    S2 L1C needs the 13 L1C bands; S2 L2A the 12 L2A bands (no B10)."""
    if sensor is Sensor.S1:
        wanted = S1_BANDS
    else:
        wanted = S2_L2A_BANDS if level == "L2A" else S2_BANDS
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
    data = [a for k, a in assets.items() if "data" in a.get("roles", []) and k.upper() != SCL]
    if len(data) == 1 and "terrawatch:bands" not in data[0]:
        units = data[0].get("terrawatch:units", default_units)
        return tuple(BandRef(b, data[0]["href"], i + 1, units) for i, b in enumerate(wanted))
    raise InvalidEvent(
        f"missing asset: {sensor.value} needs bands {', '.join(wanted)} as per-band assets "
        "or one data asset listing them in terrawatch:bands"
    )
