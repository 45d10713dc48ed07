"""``/tiles``: Mapbox Vector Tiles per layer (XYZ, WebMercatorQuad) and TileJSON 3.0.0.

The layers, their SQL and the simplification by zoom are in :mod:`terrawatch.store.vector_tiles`.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.datastructures import QueryParams
from pydantic import BaseModel, Field

from terrawatch.api.conditional import none_match
from terrawatch.api.deps import ApiDeps
from terrawatch.api.errors import BadRequest, NotFound
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


def _instant(name: str, value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time (e.g. 2024-05-01T00:00:00Z), "
                         f"not {value[:40]!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def tile_filters(layer: str, params: QueryParams) -> dict[str, object]:
    """The validated filters of a tile request; any other parameter, a repeated one or a value outside the
    allowed set is a 400 that names it (a filter is honoured or refused, never ignored)."""
    allowed = vector_tiles.FILTERS[layer]
    out: dict[str, object] = {}
    for name, value in params.multi_items():
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise BadRequest(f"unknown query parameter {name[:64]!r} for layer {layer}; it takes: {takes}")
        if name in out:
            raise BadRequest(f"{name} given twice; give one comma-separated list")
        column, kind, values = allowed[name]
        if kind == "values":
            picked = [v.strip() for v in value.split(",") if v.strip()]
            bad = [v for v in picked if v not in values]
            if not picked or bad:
                raise BadRequest(f"{name}={value[:40]!r}: allowed values are {', '.join(values)}")
            out[name] = sorted(set(picked))
        else:
            out[name] = _instant(name, value)
    return out


def _filter_doc(name: str) -> str:
    layers = [lyr for lyr, f in vector_tiles.FILTERS.items() if name in f]
    kinds = {vector_tiles.FILTERS[lyr][name][1] for lyr in layers}
    if "values" in kinds:
        values = sorted({v for lyr in layers for v in vector_tiles.FILTERS[lyr][name][2]})
        what = "comma-separated, any of: " + ", ".join(values)
    elif name == "updated_since":
        what = "ISO 8601 instant: features created or changed at or after it"
    else:
        what = "ISO 8601 instant, sensing time " + ("at or after it" if "after" in kinds else "before it")
    return f"{what}. Layers: {', '.join(layers)} (on another layer: 400)."


FILTER_NAMES = sorted({name for f in vector_tiles.FILTERS.values() for name in f})


def _filter_params() -> list[inspect.Parameter]:
    Parameter = inspect.Parameter
    return [Parameter(name, Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, Query(max_length=400, description=_filter_doc(name))])
            for name in FILTER_NAMES]


async def declared_filters(**_: str | None) -> None:
    """Declares every layer's filter to FastAPI (and so to the OpenAPI document); :func:`tile_filters` checks
    the request's parameters against the layer's own (a filter of another layer is a 400). ``async``: it does
    nothing, so it costs no hop through the thread pool."""


declared_filters.__signature__ = inspect.Signature(_filter_params())


def check_tile(layer: str, z: int, x: int, y: int) -> None:
    """404 for an unknown layer and for a tile outside WebMercatorQuad (as raster tiles answer)."""
    if layer not in LAYERS:
        raise NotFound(f"no layer {layer!r}; layers: {', '.join(LAYERS)}")
    if not 0 <= z <= MAX_ZOOM:
        raise BadRequest(f"zoom {z} outside 0..{MAX_ZOOM}")
    n = 2 ** z
    if not (0 <= x < n and 0 <= y < n):
        raise NotFound(f"tile {z}/{x}/{y} does not exist in WebMercatorQuad")


def tiles_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/tiles", tags=["vector tiles"])
    cache = deps.tile_cache  # one byte budget with the raster tiles
    router.tile_cache = cache  # read by tests and the bench

    @router.get("/{layer}/{z}/{x}/{y}.pbf", response_class=Response,
                responses={200: {"content": {MVT_MEDIA_TYPE: {}}, "description": "A Mapbox Vector Tile."},
                           304: {"description": "Not modified (If-None-Match matched the tile's ETag)."}},
                summary="One vector tile (XYZ, WebMercatorQuad), filtered on the server.",
                description="Query parameters filter the features on the server; per layer: "
                + "; ".join(f"**{lyr}**: " + (", ".join(f"`{k}`" for k in f) or "none")
                            for lyr, f in vector_tiles.FILTERS.items())
                + ". `hazard`, `status`, `confidence`, `severity`, `sensor`: comma-separated values (any of); "
                "`since`/`until`: sensing time (ISO 8601, `since` inclusive, `until` exclusive); `updated_since`: "
                "features created or changed at or after that instant. Any other parameter is a 400. Tiles "
                "carry an `ETag` keyed by the layers' data version; `If-None-Match` answers 304.")
    def tile(layer: LayerName, z: Annotated[int, Path(ge=0, le=MAX_ZOOM)], x: Annotated[int, Path(ge=0)],
             y: Annotated[int, Path(ge=0)], request: Request, _: Principal = Depends(deps.layers),
             __: None = Depends(declared_filters)) -> Response:
        check_tile(layer, z, x, y)
        filters = tile_filters(layer, request.query_params)
        with deps.read_engine.connect() as conn:
            # The version is read before the tile is rendered: the cached bytes are never older than it.
            version = vector_tiles.data_version(conn)
            key = (version, layer, z, x, y, tuple(sorted((k, str(v)) for k, v in filters.items())))
            etag = cache.etag(key)
            headers = {"Cache-Control": "private, max-age=30", "ETag": etag}
            if none_match(request.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            body = cache.get(key)
            if body is None:
                body = vector_tiles.render(conn, layer, z, x, y, filters=filters)
                cache.put(key, body)
        return Response(body, media_type=MVT_MEDIA_TYPE, headers=headers)

    @router.get("/{layer}.json", response_model=TileJSON, response_model_by_alias=True,
                summary="TileJSON 3.0.0 of one layer.")
    def tilejson(layer: LayerName, request: Request, _: Principal = Depends(deps.layers),
                 __: None = Depends(declared_filters)) -> dict:
        if layer not in LAYERS:
            raise NotFound(f"no layer {layer!r}; layers: {', '.join(LAYERS)}")
        filters = tile_filters(layer, request.query_params)
        spec = LAYERS[layer]
        with deps.read_engine.connect() as conn:
            bounds = vector_tiles.bounds(conn, layer) or [-180.0, -85.0511, 180.0, 85.0511]
            times = vector_tiles.time_range(conn, layer)
        url = str(request.url_for("tile", layer=layer, z="{z}", x="{x}", y="{y}"))
        url = url.replace("%7B", "{").replace("%7D", "}")
        if filters:  # a filtered TileJSON hands the same filters to every tile
            url += "?" + str(request.query_params)
        return {
            "name": layer, "description": spec["description"], "tiles": [url], "minzoom": 0, "maxzoom": MAX_ZOOM,
            "bounds": bounds,
            "vector_layers": [{"id": layer, "description": spec["description"], "minzoom": 0, "maxzoom": MAX_ZOOM,
                               "fields": {k: typ for k, (_, typ) in spec["fields"].items()}}],
            "time_range": times,
        }

    @router.get("", summary="The layers that have tiles.")
    def layers(request: Request, _: Principal = Depends(deps.layers)) -> dict[str, str]:
        if request.query_params:
            raise BadRequest(f"unknown query parameter {next(iter(request.query_params))[:64]!r}; "
                             "this resource takes none")
        return {name: str(request.url_for("tilejson", layer=name)) for name in LAYERS}

    return router
