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

    @router.get("/map", response_class=HTMLResponse, summary="Map of detections, alerts, scenes, reference layers.")
    def map_page() -> HTMLResponse:
        index = WEB_DIST / "index.html"
        if not index.exists():
            raise Unavailable("the map bundle is not built; run `make web`")
        return HTMLResponse(index.read_text(), headers={"Cache-Control": "no-cache"})

    return router


def map_static() -> StaticFiles:
    """The bundle's static files, mounted at /map/static (checked lazily, so the API starts without it)."""
    return StaticFiles(directory=WEB_DIST, check_dir=False)
