"""XYZ raster tiles and TileJSON of each scene's products (per-hazard likelihood, quicklook), rio-tiler.

``/raster/scenes/{scene_id}/{product}/{z}/{x}/{y}.png`` (or ``.webp``) and
``/raster/scenes/{scene_id}/{product}.json`` (TileJSON 3.0.0). ``product``: a hazard (``flood``,
``deforestation``, ``mining``: band 1 likelihood 0-100 through a colour ramp, excluded pixels transparent)
or ``quicklook`` (``composite=truecolor|falsecolor`` for S2, ``vvvh`` for S1). Products are files under
``TERRAWATCH_PRODUCTS_ROOT``; the scene id is checked against the scene-event id pattern and the
resolved path must stay inside that folder. Unknown scene/product and tiles outside the product's lon/lat
bounds (the TileJSON's) or the tile matrix are 404; a tile inside the bounds that misses the (tilted)
footprint is an empty transparent tile; bad parameters 422; a zoom whose tile would read more than
``TERRAWATCH_RASTER_MAX_SOURCE_PIXELS`` (below the TileJSON's ``minzoom``) 400 before anything is read.
Tiles carry ``Cache-Control``, a strong ``ETag`` (the file's version and the request) and answer
``If-None-Match`` with 304 without rendering; ``X-Raster-Read-Level`` (-1 = full resolution, k = k-th
overview) and ``X-Raster-Read-Pixels`` say what rendering the tile reads, ``X-Tile-Cache`` (hit/miss)
whether it was rendered for this request. Rendered tiles are kept in the API's tile cache
(``api/tile_cache.py``) under the ETag's key (:func:`terrawatch.products.tiles.tile_key`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from terrawatch.api.conditional import none_match
from terrawatch.api.deps import ApiDeps
from terrawatch.domain.products import SCENE_ID_CHARS
from terrawatch.api.routes.tiles import TileJSONBase
from terrawatch.api.security import Principal
from terrawatch.products import tiles as pt

SceneId = Annotated[str, Path(description="Scene id (scene-event id pattern).", pattern=SCENE_ID_CHARS)]
Product = Annotated[str, Path(description="A hazard (" + ", ".join(pt.PRODUCTS[:-2]) + "), flood_fused (S1 + S2) "
                              "or quicklook.",
                              pattern=r"^[a-z_]{1,32}$")]
Composite = Annotated[Literal["truecolor", "falsecolor", "vvvh"] | None,
                      Query(description="Quicklook bands: truecolor/falsecolor (S2), vvvh (S1).")]
MEDIA = {"png": "image/png", "webp": "image/webp"}
# Private: tiles may need an API key. A product is rewritten only when its scene is reprocessed; the ETag
# lets a client revalidate after 5 minutes for the price of a stat().
CACHE_CONTROL = "private, max-age=300"


class RasterTileJSON(TileJSONBase):
    scheme: str = "xyz"
    attribution: str | None = Field(default=None)


def raster_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/raster", tags=["raster tiles"])
    root = deps.settings.products_dir
    max_pixels = deps.settings.raster_max_source_pixels
    cache = deps.tile_cache  # rendered tiles, shared with the vector tiles (api/tile_cache.py)

    def _file(scene_id: str, product: str):
        return pt.product_file(root, scene_id, product)

    @router.get("/scenes/{scene_id}/{product}/{z}/{x}/{y}.{fmt}", response_class=Response,
                responses={200: {"content": {"image/png": {}, "image/webp": {}},
                                 "description": f"A {pt.TILE_SIZE} px raster tile."},
                           304: {"description": "Not modified: If-None-Match holds the tile's ETag."},
                           400: {"description": "The zoom is below the layer's minzoom: its tile would read more "
                                                "than TERRAWATCH_RASTER_MAX_SOURCE_PIXELS pixels."}},
                summary="One raster tile of a scene product (XYZ, WebMercatorQuad).")
    def raster_tile(scene_id: SceneId, product: Product, z: Annotated[int, Path(ge=0, le=pt.MAX_ZOOM)],
                    x: Annotated[int, Path(ge=0, le=2 ** pt.MAX_ZOOM)],
                    y: Annotated[int, Path(ge=0, le=2 ** pt.MAX_ZOOM)], fmt: Literal["png", "webp"],
                    request: Request, composite: Composite = None,
                    _: Principal = Depends(deps.layers)) -> Response:
        path = _file(scene_id, product)
        plan = pt.check_tile(path, z, x, y, max_pixels)  # a refused tile is refused even with an If-None-Match
        if composite is not None and product != pt.QUICKLOOK:  # (a quicklook's own bands are checked on render)
            pt.quicklook_bands(product, 0, composite)
        # One key for the cache and the ETag: the file's version and every parameter that changes the bytes.
        key = pt.tile_key(path, product, z, x, y, fmt, composite, max_pixels)
        tag = cache.etag(key)
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": tag}
        if none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers=headers)

        def render() -> bytes:  # in FastAPI's thread pool (a sync route), never on the event loop
            return pt.render_planned(path, product, z, x, y, composite, img_format=fmt.upper(),
                                     max_pixels=max_pixels)[0]

        body, hit = cache.get_or_render(key, render)
        if body == pt.empty_tile(fmt.upper()):  # inside the bounds, outside the footprint: nothing read
            plan = pt.ReadPlan(z, plan.level, 0)
        headers |= {"X-Raster-Read-Level": str(plan.level.overview), "X-Raster-Read-Pixels": str(plan.pixels),
                    "X-Tile-Cache": "hit" if hit else "miss"}
        return Response(body, media_type=MEDIA[fmt], headers=headers)

    @router.get("/scenes/{scene_id}/{product}.json", response_model=RasterTileJSON,
                summary="TileJSON 3.0.0 of one scene product.")
    def raster_tilejson(scene_id: SceneId, product: Product, request: Request, composite: Composite = None,
                        _: Principal = Depends(deps.layers)) -> dict:
        path = _file(scene_id, product)
        info = pt.info(path, max_pixels)
        pt.quicklook_bands(product, info.bands, composite)  # 400 where it does not apply
        url = str(request.url_for("raster_tile", scene_id=scene_id, product=product, z="{z}", x="{x}", y="{y}",
                                  fmt="png")).replace("%7B", "{").replace("%7D", "}")
        if product == pt.QUICKLOOK and composite:
            url += f"?composite={composite}"
        # minzoom: the lowest zoom whose tile reads at most TERRAWATCH_RASTER_MAX_SOURCE_PIXELS (a lower one is
        # refused), so the map never asks for a refused tile; it depends on the product's overviews
        desc = (f"Quicklook of scene {scene_id}" if product == pt.QUICKLOOK
                else f"{product} likelihood 0-100 of scene {scene_id} (excluded pixels transparent)")
        return {"name": f"{scene_id} {product}", "description": desc, "tiles": [url],
                "minzoom": info.minzoom, "maxzoom": info.maxzoom, "bounds": list(info.bounds),
                "attribution": "Contains modified Copernicus Sentinel data"}

    return router
