"""``/map``: the map page (MapLibre GL JS bundled from npm by ``make web`` into ``api/web/dist``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from terrawatch.api.errors import Unavailable

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

    @router.get("/map", response_class=HTMLResponse, summary="Map of detections, alerts, scenes, reference layers.")
    def map_page() -> HTMLResponse:
        index = WEB_DIST / "index.html"
        if not index.exists():
            raise Unavailable("the map bundle is not built; run `make web`")
        return HTMLResponse(index.read_text(), headers={"Cache-Control": "no-cache"})

    return router


# Vector colours: the map page's HAZARD_COLOUR (api/web/src/map.js; a unit test keeps the two equal).
HAZARD_COLOURS = {"flood": "#1f78b4", "deforestation": "#33a02c", "mining": "#e6550d"}
OTHER_COLOURS = {
    "scene footprint (processed)": "#555555", "scene footprint (outside the models' areas)": "#aaaaaa",
    "scene footprint (failed, see the DLQ)": "#d62728", "reference layer": "#6a3d9a",
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
