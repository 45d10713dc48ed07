"""A minimal STAC API (core, collections, features, item-search with GET) for the scene products.

``/stac`` landing page, ``/stac/conformance``, ``/stac/collections``, ``/stac/collections/terrawatch-products``,
``.../items`` and ``/stac/search`` (GET and POST; ``bbox`` or ``intersects`` (a GeoJSON geometry), ``datetime``,
``ids``, ``collections``, ``limit``, ``offset``; newest scene first; ``next`` links; any other parameter is a 400),
``.../items/{id}`` and the asset files at ``/stac/assets/{id}/{product}.tif`` (COG bytes with HTTP Range support
and HEAD, so GDAL/QGIS read them remotely; any other path under an asset, e.g. GDAL's ``.aux.xml``/``.ovr``/``.msk``
sidecar probes, is a 404). Read access = the map layers'.
Every query runs as the API read role (``deps.read_engine``), which cannot read webhook secrets or STAC Item JSON.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from terrawatch.api.deps import ApiDeps
from terrawatch.domain.products import SCENE_ID_CHARS
from terrawatch.api.errors import BadRequest, InvalidInput, NotFound
from terrawatch.api.security import Principal
from terrawatch.products import stac as ps
from terrawatch.products import tiles as pt
from terrawatch.store.product_scenes import scenes

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
GEOJSON = "application/geo+json"
MAX_LIMIT = 500
SceneId = Annotated[str, Path(pattern=SCENE_ID_CHARS)]


Bbox = Annotated[str | None, Query(max_length=200, description="minlon,minlat,maxlon,maxlat (EPSG:4326)")]
Datetime = Annotated[str | None, Query(alias="datetime", max_length=100,
                                       description="RFC 3339 instant or interval a/b (.. = open)")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


class SearchBody(BaseModel):
    """STAC item search (POST). Unknown members are refused (422)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=6)
    intersects: dict | None = Field(default=None, description="A GeoJSON geometry (EPSG:4326); not with bbox.")
    datetime_: str | None = Field(default=None, alias="datetime", max_length=100)
    ids: list[Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=MAX_LIMIT)
    collections: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=20)
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=10_000_000)


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        raise InvalidInput("bbox must be 4 numbers: minlon,minlat,maxlon,maxlat") from None
    if len(v) == 6:  # 3D bbox: drop the heights
        v = [v[0], v[1], v[3], v[4]]
    if (len(v) != 4 or not all(math.isfinite(x) for x in v) or not (-180 <= v[0] <= 180 and -180 <= v[2] <= 180
                                                                    and -90 <= v[1] <= v[3] <= 90)):
        raise InvalidInput("bbox must be minlon,minlat,maxlon,maxlat in EPSG:4326 with minlat <= maxlat")
    if v[0] > v[2]:
        raise InvalidInput("bbox crossing the antimeridian is not supported; split it in two")
    return v[0], v[1], v[2], v[3]


MAX_INTERSECTS_VERTICES = 10_000
ASSET_FILE = re.compile(r"^([a-z_]{1,32})(\.tif)?$")
# The query parameters each GET route honours; any other is refused (a filter is never silently ignored).
SEARCH_PARAMS = {"bbox", "intersects", "datetime", "ids", "collections", "limit", "offset"}
ITEMS_PARAMS = {"bbox", "datetime", "limit", "offset"}


def _only(request: Request, allowed: set[str]) -> None:
    for k in request.query_params:
        if k not in allowed:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise BadRequest(f"unknown query parameter {k[:64]!r}; this resource takes: {takes}")


def _intersects(value: str | dict | None):
    """A shapely geometry from a GeoJSON geometry (text or object), lon/lat; 400/422 for anything else."""
    if value is None:
        return None
    from shapely.geometry import shape

    try:
        g = json.loads(value) if isinstance(value, str) else value
        if not isinstance(g, dict) or g.get("type") not in (
                "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"):
            raise ValueError("not a GeoJSON geometry")
        geom = shape(g)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidInput(f"intersects must be a GeoJSON geometry (Point, LineString, Polygon or Multi*): "
                           f"{str(exc)[:80]}") from None
    import shapely

    if geom.is_empty or shapely.get_num_coordinates(geom) > MAX_INTERSECTS_VERTICES:
        raise InvalidInput(f"intersects must be non-empty with at most {MAX_INTERSECTS_VERTICES} vertices")
    minx, miny, maxx, maxy = geom.bounds
    if not all(map(math.isfinite, geom.bounds)) or minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidInput("intersects coordinates must be finite lon/lat (EPSG:4326)")
    return geom if geom.is_valid else shapely.make_valid(geom)


def _time(text: str) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("datetime must be RFC 3339 (e.g. 2024-05-01T00:00:00Z) or an interval a/b with .. "
                           "for an open end") from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _interval(text: str | None) -> tuple[datetime | None, datetime | None]:
    if text is None:
        return None, None
    if len(text) > 100:
        raise InvalidInput("datetime too long")
    if "/" in text:
        a, _, b = text.partition("/")
        start, end = _time(a), _time(b)
        if start and end and start > end:
            raise InvalidInput("datetime interval start is after its end")
        return start, end
    d = _time(text)
    if d is None:
        raise InvalidInput("datetime '..' needs an interval")
    return d, d


def stac_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/stac", tags=["STAC products"])
    root = deps.settings.products_dir

    def base(request: Request) -> str:
        return str(request.url_for("stac_landing")).rstrip("/")

    def api_root(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    @router.get("", summary="STAC API landing page (catalog).")
    def stac_landing(request: Request, _: Principal = Depends(deps.layers)) -> dict:
        _only(request, set())
        b = base(request)
        return {"type": "Catalog", "stac_version": "1.0.0", "id": "terrawatch",
                "title": "terrawatch products", "description": "Scene products of terrawatch as STAC.",
                "conformsTo": CONFORMS, "links": [
                    {"rel": "self", "href": b, "type": "application/json"},
                    {"rel": "root", "href": b, "type": "application/json"},
                    {"rel": "conformance", "href": f"{b}/conformance", "type": "application/json"},
                    {"rel": "data", "href": f"{b}/collections", "type": "application/json"},
                    {"rel": "child", "href": f"{b}/collections/{ps.COLLECTION_ID}", "type": "application/json"},
                    {"rel": "search", "href": f"{b}/search", "type": GEOJSON, "method": "GET"},
                    {"rel": "search", "href": f"{b}/search", "type": GEOJSON, "method": "POST"},
                    {"rel": "service-desc", "href": f"{api_root(request)}/openapi.json",
                     "type": "application/vnd.oai.openapi+json;version=3.0"}]}

    @router.get("/conformance", summary="STAC API conformance classes.")
    def stac_conformance(_: Principal = Depends(deps.layers)) -> dict:
        return {"conformsTo": CONFORMS}

    def _collection(request: Request) -> dict:
        from terrawatch.store.scenes import extent

        bbox, interval = extent(deps.read_engine)
        return ps.collection(base(request), bbox, interval)

    @router.get("/collections", summary="The STAC collections (terrawatch-products).")
    def stac_collections(request: Request, _: Principal = Depends(deps.layers)) -> dict:
        _only(request, set())
        b = base(request)
        return {"collections": [_collection(request)],
                "links": [{"rel": "self", "href": f"{b}/collections", "type": "application/json"},
                          {"rel": "root", "href": b, "type": "application/json"}]}

    @router.get("/collections/{collection_id}", summary="One STAC collection.")
    def stac_collection(collection_id: Annotated[str, Path(max_length=64)], request: Request,
                        _: Principal = Depends(deps.layers)) -> dict:
        if collection_id != ps.COLLECTION_ID:
            raise NotFound(f"no collection {collection_id[:64]!r}; collections: {ps.COLLECTION_ID}")
        return _collection(request)

    def _search(request: Request, bbox, datetime_, ids, limit, offset, body: dict | None = None,
                intersects=None) -> JSONResponse:
        if bbox is not None and intersects is not None:
            raise BadRequest("give bbox or intersects, not both (STAC API item search)")
        start, end = _interval(datetime_)
        box = _bbox(bbox)
        geom = _intersects(intersects)
        id_list = ids if isinstance(ids, list) else [i for i in (ids or "").split(",") if i] or None
        if id_list and (len(id_list) > MAX_LIMIT or not all(pt.SCENE_ID.match(i) for i in id_list)):
            raise InvalidInput(f"ids: at most {MAX_LIMIT} scene ids matching {pt.SCENE_ID.pattern}")
        with deps.read_engine.connect() as conn:
            rows, total = scenes(conn, bbox=box, start=start, end=end, ids=id_list, limit=limit, offset=offset,
                                 intersects=geom)
        b, a = base(request), api_root(request)
        feats = [f for r in rows if (f := ps.item(r, root / r.id, b, a)) is not None]
        links = [{"rel": "self", "href": str(request.url), "type": GEOJSON},
                 {"rel": "root", "href": b, "type": "application/json"}]
        if offset + limit < total and body is not None:
            links.append({"rel": "next", "href": str(request.url), "type": GEOJSON, "method": "POST",
                          "body": {**body, "offset": offset + limit, "limit": limit}})
        elif offset + limit < total:
            params = dict(request.query_params)
            params.update({"offset": str(offset + limit), "limit": str(limit)})
            links.append({"rel": "next", "href": f"{str(request.url).split('?')[0]}?{urlencode(params)}",
                          "type": GEOJSON, "method": "GET"})
        return JSONResponse({"type": "FeatureCollection", "features": feats, "links": links,
                             "numberMatched": total, "numberReturned": len(feats)}, media_type=GEOJSON)


    @router.get("/collections/{collection_id}/items", summary="Items of the products collection.",
                response_class=JSONResponse)
    def stac_items(collection_id: Annotated[str, Path(max_length=64)], request: Request, bbox: Bbox = None,
                   datetime_: Datetime = None, limit: Limit = 100, offset: Offset = 0,
                   _: Principal = Depends(deps.layers)) -> JSONResponse:
        if collection_id != ps.COLLECTION_ID:
            raise NotFound(f"no collection {collection_id[:64]!r}")
        _only(request, ITEMS_PARAMS)
        return _search(request, bbox, datetime_, None, limit, offset)

    @router.get("/search", summary="STAC item search (GET): bbox or intersects, datetime, ids, collections.",
                response_class=JSONResponse)
    def stac_search(request: Request, bbox: Bbox = None, datetime_: Datetime = None,
                    intersects: Annotated[str | None, Query(
                        max_length=200_000, description="A GeoJSON geometry (EPSG:4326) as JSON text; not with bbox.")
                    ] = None,
                    ids: Annotated[str | None, Query(max_length=20_000)] = None,
                    collections: Annotated[str | None, Query(max_length=1000)] = None,
                    limit: Limit = 100, offset: Offset = 0, _: Principal = Depends(deps.layers)) -> JSONResponse:
        _only(request, SEARCH_PARAMS)
        if collections and ps.COLLECTION_ID not in collections.split(","):
            return JSONResponse({"type": "FeatureCollection", "features": [], "numberMatched": 0,
                                 "numberReturned": 0, "links": []}, media_type=GEOJSON)
        return _search(request, bbox, datetime_, ids, limit, offset, intersects=intersects)

    @router.post("/search", summary="STAC item search (POST, JSON body): bbox, datetime, ids, collections.",
                 response_class=JSONResponse)
    def stac_search_post(body: SearchBody, request: Request,
                         _: Principal = Depends(deps.layers)) -> JSONResponse:
        if body.collections is not None and ps.COLLECTION_ID not in body.collections:
            return JSONResponse({"type": "FeatureCollection", "features": [], "numberMatched": 0,
                                 "numberReturned": 0, "links": []}, media_type=GEOJSON)
        bbox = ",".join(repr(float(v)) for v in body.bbox) if body.bbox is not None else None
        return _search(request, bbox, body.datetime_, body.ids, body.limit, body.offset,
                       body=body.model_dump(by_alias=True, exclude_none=True), intersects=body.intersects)

    @router.get("/collections/{collection_id}/items/{item_id}", summary="One products Item.",
                response_class=JSONResponse)
    def stac_item(collection_id: Annotated[str, Path(max_length=64)], item_id: SceneId, request: Request,
                  _: Principal = Depends(deps.layers)) -> JSONResponse:
        if collection_id != ps.COLLECTION_ID:
            raise NotFound(f"no collection {collection_id[:64]!r}")
        _only(request, set())
        if set(item_id) <= {"."}:  # "." and ".." are never scene ids (and never path parts)
            raise NotFound(f"no products item {item_id}")
        with deps.read_engine.connect() as conn:
            rows, _n = scenes(conn, ids=[item_id], limit=1)
        it = ps.item(rows[0], root / rows[0].id, base(request), api_root(request)) if rows else None
        if it is None:
            raise NotFound(f"no products item {item_id}")
        return JSONResponse(it, media_type=GEOJSON)

    @router.api_route("/assets/{scene_id}/{product}", methods=["GET", "HEAD"],
                      summary="A product COG (`<product>.tif`; HTTP Range and HEAD supported).",
                      response_class=FileResponse)
    def stac_asset(scene_id: SceneId, product: Annotated[str, Path(max_length=64)],
                   _: Principal = Depends(deps.layers)) -> FileResponse:
        m = ASSET_FILE.match(product)
        if m is None:  # GDAL's sidecar probes (.aux.xml, .ovr, .msk) and any other name: plainly absent
            raise NotFound(f"no asset {product[:64]!r} of scene {scene_id}")
        path = pt.product_file(root, scene_id, m.group(1))
        return FileResponse(path, media_type=ps.COG, filename=f"{scene_id}_{path.name}")

    return router
