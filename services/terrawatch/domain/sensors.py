"""The Sentinel missions terrawatch reads (the STAC ``constellation`` value of a scene event)."""

from __future__ import annotations

from enum import Enum


class Sensor(str, Enum):
    S1 = "sentinel-1"
    S2 = "sentinel-2"
