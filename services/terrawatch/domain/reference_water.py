"""Flood = observed water minus reference water (pure).

Like Copernicus GFM, a flood is water observed now that is not normally water. Reference
(permanent or seasonal) water comes from a layer loaded into PostGIS (``terrawatch layers load <file>
--kind reference_water``; e.g. JRC Global Surface Water occurrence polygons, OSM water bodies) and from
the project's own history (:func:`history_reference`: water observed in other acquisitions of the same
place at least :data:`HISTORY_MIN_GAP_DAYS` apart, outside established flood alerts), subtracted from the
observed-water polygons with :func:`subtract_reference`. The previous scene alone is not used: during a
flood lasting several passes it is already flooded (docs/alerting.md).

Geometries are EPSG:4326 lon/lat; areas are geodesic hectares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import shapely
from shapely.geometry.base import BaseGeometry

from terrawatch.domain.polygons import Detection, as_multipolygon, geodesic_area_ha

REFERENCE_WATER = "reference_water"
# Water seen in this many other acquisitions, at least HISTORY_MIN_GAP_DAYS away, is reference water.
HISTORY_MIN_ACQUISITIONS = 1
# Days between two acquisitions for one to be the other's history: longer than a flood usually lasts and than
# the flood rule's merge window (an ongoing flood's earlier passes never make its water "permanent").
HISTORY_MIN_GAP_DAYS = 30.0
# Alerts whose water is known to be a flood (their water never becomes reference water): a reference was
# known when they were raised, or a person / an independent acquisition confirmed them.
ESTABLISHED_SOURCES = ("reference_layer", "history", "pre_event_scene")
ESTABLISHED_STATUSES = ("confirmed", "acknowledged", "resolved")


@dataclass(frozen=True)
class Observation:
    """One earlier (or later) flood run of a place: its acquisition (platform, sensing time UTC), the scene
    footprint and the water the model observed in it (None = none), both lon/lat."""

    scene_id: str
    platform: str
    sensing_time: datetime
    footprint: BaseGeometry
    water: BaseGeometry | None


@dataclass(frozen=True)
class EstablishedFlood:
    """A flood alert known to be a flood (see :data:`ESTABLISHED_SOURCES`), lon/lat, over [first, last] sensed."""

    geom: BaseGeometry
    first_sensed: datetime
    last_sensed: datetime


def established(status: str, reference_source: str | None) -> bool:
    """Whether a flood alert's water is known to be flood water (never reference water)."""
    return status in ESTABLISHED_STATUSES or reference_source in ESTABLISHED_SOURCES


def _at_least(geoms: list[BaseGeometry], k: int) -> BaseGeometry | None:
    """The area covered by at least ``k`` of ``geoms`` (None when nothing is)."""
    levels: list[BaseGeometry | None] = [None] * k  # levels[i]: covered by >= i + 1 geometries so far
    for g in geoms:
        for i in range(k - 1, -1, -1):
            add = g if i == 0 else (None if levels[i - 1] is None else levels[i - 1].intersection(g))
            if add is None or add.is_empty:
                continue
            levels[i] = add if levels[i] is None else levels[i].union(add)
    out = None if levels[k - 1] is None else as_multipolygon(levels[k - 1])
    return None if out is None or out.is_empty else out


def history_reference(sensing_time: datetime, observations: list[Observation], floods: list[EstablishedFlood],
                      min_gap: timedelta, min_acquisitions: int = HISTORY_MIN_ACQUISITIONS,
                      ) -> tuple[BaseGeometry | None, BaseGeometry | None]:
    """Reference water from the archive for a scene sensed at ``sensing_time``: (water, coverage), lon/lat.

    Only acquisitions at least ``min_gap`` away from ``sensing_time`` count (before or after: a re-processed
    or late scene sees the whole archive); one acquisition is one (platform, sensing time), however many
    scene ids it arrived under. ``water``: area observed as water in at least ``min_acquisitions`` of them,
    minus established flood alerts (:class:`EstablishedFlood`) whose period includes that observation.
    ``coverage``: area those acquisitions observed at all (their footprints, same count) - where the history
    can tell permanent water from new water. None = nothing.
    """
    k = max(1, int(min_acquisitions))
    acqs: dict[tuple[str, datetime], list[Observation]] = {}
    for o in observations:
        if abs(o.sensing_time - sensing_time) >= min_gap:
            acqs.setdefault((o.platform, o.sensing_time), []).append(o)
    waters, footprints = [], []
    for (_, when), obs in sorted(acqs.items(), key=lambda kv: kv[0][1]):
        footprints.append(shapely.union_all([shapely.make_valid(o.footprint) for o in obs]))
        wet = [shapely.make_valid(o.water) for o in obs if o.water is not None and not o.water.is_empty]
        if not wet:
            continue
        w = shapely.union_all(wet)
        flood = [shapely.make_valid(f.geom) for f in floods if f.first_sensed <= when <= f.last_sensed]
        if flood:
            w = w.difference(shapely.union_all(flood))
        if not w.is_empty:
            waters.append(w)
    return _at_least(waters, k), _at_least(footprints, k)


def subtract_reference(dets: list[Detection], reference: list[BaseGeometry], min_area_ha: float) -> list[Detection]:
    """``dets`` minus the union of ``reference``; each polygon part left below ``min_area_ha`` (ha) is dropped
    (the minimum mapping unit applies to polygons, so the slivers a river's edge leaves between two
    acquisitions' water masks do not add up to a detection).

    A detection's likelihood is kept; its pixel count is scaled by the area that remains.
    """
    if not reference or not dets:
        return list(dets)
    ref = shapely.union_all([shapely.make_valid(g) for g in reference])
    shapely.prepare(ref)
    out = []
    for d in dets:
        if not ref.intersects(d.geometry):
            out.append(d)
            continue
        rest = as_multipolygon(d.geometry.difference(ref))
        rest = as_multipolygon(shapely.union_all([p for p in rest.geoms if geodesic_area_ha(p) >= min_area_ha])
                               if rest.geoms else rest)
        if rest.is_empty:
            continue
        area = geodesic_area_ha(rest)
        if area < min_area_ha:
            continue
        pixels = max(1, round(d.pixels * area / d.area_ha)) if d.area_ha > 0 else d.pixels
        out.append(Detection(d.hazard, rest, area, d.likelihood, pixels))
    return out
