"""SQL for Mapbox Vector Tiles per layer from PostGIS ``ST_AsMVT`` (XYZ, WebMercatorQuad).

Geometries are simplified by zoom before encoding: snapped to a grid and
Douglas-Peucker simplified with a tolerance of half a 256-px screen pixel at
that zoom (``tolerance_m``), so a z5 tile carries a few vertices per feature
instead of every 10 m vertex. A feature whose bounding box is under 2 x 2
pixels at that zoom (``point_area_m2``), or that collapses below one tile
unit, is sent as a point (``ST_PointOnSurface``), so small detections stay
visible but cheap at low zooms. Likelihood (0-100) is rounded to an integer
and area to 0.1 ha, which lets MVT's value dictionary share them. Layer SQL
is fixed per layer name; z/x/y and limits are bound parameters. The API's
``/tiles`` routes (api/routes/tiles.py) validate the request and call :func:`render`.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.engine import Connection

from terrawatch.domain.hazards import HAZARDS

EXTENT = 4096  # MVT units per tile side
BUFFER = 64  # MVT units of buffer around the tile (avoids seams when rendering outlines)
MAX_FEATURES_PER_TILE = 20_000
MAX_ZOOM = 22
WEB_MERCATOR_WIDTH_M = 2 * math.pi * 6378137.0

# Per layer: the ogc view it reads, its MVT properties (SQL expressions over the view's columns) with types.
LAYERS: dict[str, dict] = {
    "detections": {
        "view": "ogc.detections",
        "description": "Hazard detection polygons per scene.",
        "fields": {"id": ("id", "Number"), "hazard": ("hazard", "String"), "confidence": ("confidence", "String"),
                   "status": ("status", "String"), "likelihood": ("round(likelihood)::int", "Number"),
                   "area_ha": ("round(area_ha::numeric, 1)::float8", "Number"), "scene_id": ("scene_id", "String"),
                   "t": ("extract(epoch from sensing_time)::bigint", "Number"),
                   "created": ("extract(epoch from created_at)::bigint", "Number"),
                   "updated": ("extract(epoch from updated_at)::bigint", "Number")},
        "time": "sensing_time",
    },
    "alerts": {
        "view": "ogc.alerts",
        "description": "Alerts (clusters of detections) with status and confidence.",
        "fields": {"id": ("id", "String"), "hazard": ("hazard", "String"), "status": ("status", "String"),
                   "confidence": ("confidence", "String"), "severity": ("severity", "String"),
                   "area_ha": ("round(area_ha::numeric, 1)::float8", "Number"),
                   "likelihood": ("round(likelihood)::int", "Number"),
                   "observations": ("observations", "Number"),
                   "t": ("extract(epoch from sensing_time)::bigint", "Number"),
                   "t0": ("extract(epoch from first_sensed)::bigint", "Number"),
                   # when terrawatch raised / last changed the alert (Unix seconds), for "what is new since"
                   "created": ("extract(epoch from created_at)::bigint", "Number"),
                   "updated": ("extract(epoch from updated_at)::bigint", "Number"),
                   # mining: illegal / licensed / unknown, the rule and the feature or coverage it used
                   "legality": ("legality", "String"), "legality_rule": ("legality_rule", "String"),
                   "legality_feature": ("legality_feature", "String"),
                   "legality_coverage": ("legality_coverage", "String")},
        "time": "sensing_time",
    },
    "scenes": {
        "view": "ogc.scenes",
        "description": "Footprints of received scenes with their status: processing, processed, failed (with the "
                       "reason and DLQ record), outside_aoa.",
        "fields": {"id": ("id", "String"), "platform": ("platform", "String"), "sensor": ("sensor", "String"),
                   "t": ("extract(epoch from sensing_time)::bigint", "Number"),
                   "status": ("status", "String"), "status_reason": ("left(status_reason, 300)", "String"),
                   "dlq_ref": ("dlq_ref", "String"), "hazard_status": ("hazard_status", "String")},
        "time": "sensing_time",
    },
    "observed_water": {
        "view": "ogc.observed_water",
        "description": "Water each scene's latest flood run observed, before reference water was subtracted "
                       "(flood = observed water minus reference water: the detections).",
        "fields": {"id": ("id", "String"), "scene_id": ("scene_id", "String"), "platform": ("platform", "String"),
                   "model_version": ("model_version", "String"),
                   "area_ha": ("round(area_ha::numeric, 1)::float8", "Number"),
                   "t": ("extract(epoch from sensing_time)::bigint", "Number"),
                   "updated": ("extract(epoch from updated_at)::bigint", "Number")},
        "time": "sensing_time",
    },
    "reference_layers": {
        "view": "ogc.reference_layers",
        "description": "Reference features (areas of interest, protected areas, ...).",
        "fields": {"id": ("id", "Number"), "layer": ("layer", "String"), "name": ("name", "String")},
        "time": None,
    },
}


# Per layer: the query parameters a tile request may filter on -> (SQL column of the view, kind, allowed values).
# kind "values": a comma-separated list of allowed values (OR); kind "after"/"before": an ISO 8601 instant,
# inclusive lower / exclusive upper bound. Any other parameter is refused by the route (400).
_ALERT_STATUSES = ("new", "confirmed", "acknowledged", "resolved", "false_positive")
_CONFIDENCES = ("low", "high", "highest")
_SCENE_STATUSES = ("processing", "processed", "failed", "outside_aoa")


def _time_filters(column: str | None, updated: str | None = None) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    out: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    if column:
        out["since"] = (column, "after", ())
        out["until"] = (column, "before", ())
    if updated:
        out["updated_since"] = (updated, "after", ())
    return out


def _filters(hazards: tuple[str, ...]) -> dict[str, dict[str, tuple[str, str, tuple[str, ...]]]]:
    return {
        "detections": {"hazard": ("hazard", "values", hazards), "status": ("status", "values", _ALERT_STATUSES),
                       "confidence": ("confidence", "values", _CONFIDENCES),
                       **_time_filters("sensing_time", "updated_at")},
        "alerts": {"hazard": ("hazard", "values", hazards), "status": ("status", "values", _ALERT_STATUSES),
                   "confidence": ("confidence", "values", _CONFIDENCES),
                   "severity": ("severity", "values", ("minor", "moderate", "severe", "extreme")),
                   **_time_filters("sensing_time", "updated_at")},
        "scenes": {"status": ("status", "values", _SCENE_STATUSES), "sensor": ("sensor", "values", ("S1", "S2")),
                   **_time_filters("sensing_time")},
        "observed_water": {**_time_filters("sensing_time", "updated_at")},
        "reference_layers": {},
    }


FILTERS = _filters(HAZARDS)


def tolerance_m(z: int) -> float:
    """Simplification tolerance (EPSG:3857 metres) at zoom ``z``: half a 256-px pixel."""
    return WEB_MERCATOR_WIDTH_M / (256 * 2 ** z) / 2


def point_area_m2(z: int) -> float:
    """Features whose bounding box is smaller than 2 x 2 screen pixels at ``z`` are drawn as points."""
    px = WEB_MERCATOR_WIDTH_M / (256 * 2 ** z)
    return 4 * px * px


def _where(layer: str, filters: dict[str, object]) -> str:
    """SQL conditions for ``filters`` (already validated names); values are bound as ``:f_<name>``."""
    conds = []
    for name in sorted(filters):
        column, kind, _ = FILTERS[layer][name]
        if kind == "values":
            conds.append(f"v.{column} = any(:f_{name})")
        elif kind == "after":
            conds.append(f"v.{column} >= :f_{name}")
        else:
            conds.append(f"v.{column} < :f_{name}")
    return "".join(f" and {c}" for c in conds)


def _tile_sql(layer: str, where: str = "") -> str:
    spec = LAYERS[layer]
    props = ", ".join(f"{expr} as {name}" for name, (expr, _) in spec["fields"].items())
    names = ", ".join(spec["fields"])
    # Built only from the constants above; request values are bound parameters.
    return f"""
        with bounds as (
            select ST_TileEnvelope(:z, :x, :y) as env,
                   ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326) as env4326
        ), src as (
            select {props}, ST_Transform(v.geom, 3857) as g
            from {spec['view']} v, bounds
            where v.geom && bounds.env4326{where}
            limit :max_features
        ), simp as (
            select *, case when ST_Area(ST_Envelope(g)) < :point_area then ST_PointOnSurface(g)
                           else ST_SimplifyPreserveTopology(ST_SnapToGrid(g, :tol / 4), :tol) end as gs
            from src
        ), mvt as (
            select {names},
                   coalesce(ST_AsMVTGeom(gs, bounds.env, {EXTENT}, {BUFFER}, true),
                            ST_AsMVTGeom(ST_PointOnSurface(g), bounds.env, {EXTENT}, {BUFFER}, true)) as geom
            from simp, bounds
        )
        select ST_AsMVT(mvt.*, :layer, {EXTENT}, 'geom') from mvt where geom is not null
    """


TILE_SQL = {name: text(_tile_sql(name)) for name in LAYERS}
EXTENT_SQL = {
    name: text(f"select ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) from (select ST_Extent(geom) as e "
               f"from {spec['view']}) s")
    for name, spec in LAYERS.items()
}
TIME_SQL = {
    name: text(f"select extract(epoch from min({spec['time']}))::bigint, "
               f"extract(epoch from max({spec['time']}))::bigint from {spec['view']}")
    for name, spec in LAYERS.items() if spec["time"]
}



def render(conn: Connection, layer: str, z: int, x: int, y: int, simplify: bool = True,
           filters: dict[str, object] | None = None) -> bytes:
    """One MVT tile of ``layer`` (bytes, possibly empty). ``simplify=False``: tolerance 0 and no points
    (for the benchmark's comparison). ``filters``: validated values by name of :data:`FILTERS` ``[layer]``
    (a list of strings for "values", an aware datetime for "after"/"before")."""
    filters = filters or {}
    sql = TILE_SQL[layer] if not filters else text(_tile_sql(layer, _where(layer, filters)))
    res = conn.execute(sql, {
        "z": z, "x": x, "y": y, "margin": BUFFER / EXTENT, "layer": layer, "max_features": MAX_FEATURES_PER_TILE,
        "tol": tolerance_m(z) if simplify else 0.0, "point_area": point_area_m2(z) if simplify else 0.0,
        **{f"f_{k}": v for k, v in filters.items()},
    }).scalar_one()
    return bytes(res) if res is not None else b""


def bounds(conn: Connection, layer: str) -> list[float] | None:
    """[west, south, east, north] (lon/lat) of the layer's features, or None when it is empty."""
    ext = conn.execute(EXTENT_SQL[layer]).one()
    return [float(v) for v in ext] if ext[0] is not None else None


def time_range(conn: Connection, layer: str) -> list[int] | None:
    """[min, max] sensing time (Unix seconds) of the layer's features; None for an empty or timeless layer."""
    if layer not in TIME_SQL:
        return None
    times = conn.execute(TIME_SQL[layer]).one()
    return [int(times[0]), int(times[1])] if times[0] is not None else None


VERSION_SQL = text("select version from tile_data_version where id = 1")


def data_version(conn: Connection) -> int:
    """The layers' data version: bumped in the same commit as every change to scenes, detections, alerts or
    reference features (migration 26a). Read it *before* rendering: a tile cached under it is never older."""
    return int(conn.execute(VERSION_SQL).scalar_one_or_none() or 0)
