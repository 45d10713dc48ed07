"""``/tiles``: Mapbox Vector Tiles per layer (XYZ, WebMercatorQuad) and TileJSON 3.0.0.

The layers, their SQL and the simplification by zoom are in :mod:`terrawatch.store.vector_tiles`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from terrawatch.api.deps import ApiDeps
from terrawatch.api.errors import InvalidInput, NotFound
from terrawatch.api.security import Principal
from terrawatch.store import vector_tiles
from terrawatch.store.vector_tiles import LAYERS, MAX_ZOOM  # noqa: F401 - also read by tests

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

LayerName = Annotated[str, Path(description="Layer: " + ", ".join(LAYERS), pattern=r"^[a-z_]{1,32}$")]


class VectorLayer(BaseModel):
    id: str
    description: str
    fields: dict[str, str]
    minzoom: int
    maxzoom: int


class TileJSONBase(BaseModel):
    """The TileJSON 3.0.0 fields every layer document has; bounds are lon/lat (EPSG:4326)."""
    tilejson: str = "3.0.0"
    name: str
    description: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: list[float]


class TileJSON(TileJSONBase):
    vector_layers: list[VectorLayer]
    time_range: list[int] | None = Field(
        default=None, serialization_alias="terrawatch:time_range",
        description="[min, max] sensing time of the layer's features (Unix seconds), for a time slider.")


def render_tile(conn, layer: str, z: int, x: int, y: int) -> bytes:
    """One MVT tile of ``layer`` (bytes, possibly empty)."""
    if layer not in LAYERS:
        raise NotFound(f"no layer {layer!r}; layers: {', '.join(LAYERS)}")
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom {z} outside 0..{MAX_ZOOM}")
    n = 2 ** z
    if not (0 <= x < n and 0 <= y < n):
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist in WebMercatorQuad")
    return vector_tiles.render(conn, layer, z, x, y)


def tiles_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/tiles", tags=["vector tiles"])

    @router.get("/{layer}/{z}/{x}/{y}.pbf", response_class=Response,
                responses={200: {"content": {MVT_MEDIA_TYPE: {}}, "description": "A Mapbox Vector Tile."}},
                summary="One vector tile (XYZ, WebMercatorQuad).")
    def tile(layer: LayerName, z: Annotated[int, Path(ge=0, le=MAX_ZOOM)], x: Annotated[int, Path(ge=0)],
             y: Annotated[int, Path(ge=0)], _: Principal = Depends(deps.layers)) -> Response:
        with deps.read_engine.connect() as conn:
            body = render_tile(conn, layer, z, x, y)
        return Response(body, media_type=MVT_MEDIA_TYPE, headers={"Cache-Control": "private, max-age=30"})

    @router.get("/{layer}.json", response_model=TileJSON, response_model_by_alias=True,
                summary="TileJSON 3.0.0 of one layer.")
    def tilejson(layer: LayerName, request: Request, _: Principal = Depends(deps.layers)) -> dict:
        if layer not in LAYERS:
            raise NotFound(f"no layer {layer!r}; layers: {', '.join(LAYERS)}")
        spec = LAYERS[layer]
        with deps.read_engine.connect() as conn:
            bounds = vector_tiles.bounds(conn, layer) or [-180.0, -85.0511, 180.0, 85.0511]
            times = vector_tiles.time_range(conn, layer)
        url = str(request.url_for("tile", layer=layer, z="{z}", x="{x}", y="{y}"))
        url = url.replace("%7B", "{").replace("%7D", "}")
        return {
            "name": layer, "description": spec["description"], "tiles": [url], "minzoom": 0, "maxzoom": MAX_ZOOM,
            "bounds": bounds,
            "vector_layers": [{"id": layer, "description": spec["description"], "minzoom": 0, "maxzoom": MAX_ZOOM,
                               "fields": {k: typ for k, (_, typ) in spec["fields"].items()}}],
            "time_range": times,
        }

    @router.get("", summary="The layers that have tiles.")
    def layers(request: Request, _: Principal = Depends(deps.layers)) -> dict[str, str]:
        return {name: str(request.url_for("tilejson", layer=name)) for name in LAYERS}

    return router
