"""OGC API - Features (Part 1 Core, GeoJSON, HTML) over the ``ogc`` views, served by tipg under ``/ogc``.

tipg reads the same PostGIS through its own asyncpg pool. Collections are the
views of migration 0003 (``detections``, ``alerts``, ``scenes``,
``reference_layers``), with ids without the schema prefix and
``sensing_time`` as the temporal property. Property filters are plain query
parameters (``?hazard=flood&confidence=high&status=new``), plus ``bbox``,
``datetime``, ``limit``/``offset`` paging and CQL2 ``filter``.

The pool is opened at startup if PostGIS answers, else on the first request
(503 until it does); the catalog is re-read every ``CATALOG_TTL_S`` seconds so
extents follow the data. GeoJSON geometries are PostGIS's text at 7 decimals,
not re-parsed (store/ogc_features.py); GeoJSON bodies are gzipped at level 1
(:func:`gzip_geojson`).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import datetime as dt
import logging
import math
import re
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio.to_thread
import jinja2
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.templating import Jinja2Templates
from tipg.dependencies import OutputType
from tipg.resources.enums import MediaType
from tipg.collections import Catalog, Collection, pg_get_collection_index
from tipg.database import connect_to_db
from tipg.factory import OGCFeaturesFactory
from tipg.settings import DatabaseSettings, PostgresSettings

from terrawatch.api import cql
from terrawatch.api.deps import ApiDeps
from terrawatch.api.errors import BadRequest, NotFound, Unavailable, excerpt
from terrawatch.settings import Settings
from terrawatch.store.db import plain_postgres_dsn
from terrawatch.store.ogc_features import feature_collection

log = logging.getLogger(__name__)

PREFIX = "/ogc"
SCHEMA = "ogc"
CATALOG_TTL_S = 60.0
TITLE = "terrawatch: hazard detections, alerts, scene footprints and reference layers"


def asyncpg_dsn(settings: Settings) -> str:
    """tipg's pool logs in as the API's read role (SELECT on the ``ogc`` views only)."""
    return plain_postgres_dsn(settings.api_read_db_url)


async def open_pool(app: FastAPI, settings: Settings) -> None:
    await connect_to_db(app, schemas=[SCHEMA], tipg_schema="pg_temp",
                        settings=PostgresSettings(database_url=asyncpg_dsn(settings), db_min_conn_size=1,
                                                  db_max_conn_size=5), timeout=5,
                        server_settings={"statement_timeout": str(settings.api_statement_timeout_ms)})


async def refresh_catalog(app: FastAPI) -> None:
    db = DatabaseSettings(schemas=[SCHEMA], application_schema="pg_temp", only_spatial_tables=True)
    async with app.state.pool.acquire() as conn:
        found = await pg_get_collection_index(conn, settings=db)
    collections: dict[str, Collection] = {}
    for col in found:
        update: dict = {"id": col.table, "title": col.table.replace("_", " ")}
        when = next((c for c in col.table_columns if c.name == "sensing_time"), None)
        if when is not None:
            update["datetime_column"] = when
        # GeoJSON geometries written once by PostGIS, 7 decimals (store/ogc_features.py)
        collections[col.table] = feature_collection(col, **update)
    app.state.collection_catalog = Catalog(collections=collections, last_updated=dt.datetime.now())


async def close_pool(app: FastAPI) -> None:
    pool = getattr(app.state, "pool", None)
    if pool is not None:
        await pool.close()
        app.state.pool = None


def _lock(app: FastAPI) -> asyncio.Lock:
    if getattr(app.state, "ogc_lock", None) is None:
        app.state.ogc_lock = asyncio.Lock()
    return app.state.ogc_lock


def catalog_dependency(settings: Settings):
    async def ogc_catalog(request: Request) -> None:
        app = request.app
        catalog = getattr(app.state, "collection_catalog", None)
        fresh = catalog and (dt.datetime.now() - catalog["last_updated"]).total_seconds() < CATALOG_TTL_S
        if fresh:
            return
        async with _lock(app):
            try:
                if getattr(app.state, "pool", None) is None:
                    await open_pool(app, settings)
                await refresh_catalog(app)
            except Exception as exc:  # noqa: BLE001
                if catalog:  # serve the last catalog rather than fail
                    log.warning("OGC catalog refresh failed: %s", exc)
                    return
                raise Unavailable(f"PostGIS is not reachable for the OGC API: {type(exc).__name__}") from exc

    return ogc_catalog


CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_NAMES = {CRS84, "[OGC:CRS84]", "OGC:CRS84", "https://www.opengis.net/def/crs/OGC/1.3/CRS84"}
OPENAPI_31 = "application/vnd.oai.openapi+json;version=3.1"
# Parameters this module handles itself on top of the route's own (tipg ignores them).
CRS_PARAMS = ("crs", "bbox-crs", "filter-crs")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _flat_query_names(route) -> set[str]:
    """Query parameter names a FastAPI route declares, its sub-dependencies included (cached per route)."""
    names = getattr(route, "_tw_query_names", None)
    if names is None:
        names, todo = set(), [route.dependant]
        while todo:
            dependant = todo.pop()
            names |= {p.alias for p in dependant.query_params}
            todo.extend(dependant.dependencies)
        route._tw_query_names = names
    return names


def _day_bounds(day: str) -> tuple[str, str]:
    d = dt.date.fromisoformat(day)
    return f"{d.isoformat()}T00:00:00Z", f"{(d + dt.timedelta(days=1)).isoformat()}T00:00:00Z"


def _datetime_param(value: str) -> str:
    """Validate ``datetime`` (RFC 3339 instant or interval); a date-only value covers that whole day (UTC).

    tipg reads a closed interval as ``[start, end)`` and ``../end`` as ``<= end``; the rewrite keeps
    those semantics, so ``2024-05-01`` = the day, ``2024-05-01/2024-05-03`` = the three days.
    """
    from ciso8601 import parse_rfc3339

    parts = value.split("/")
    if len(parts) > 2 or (len(parts) == 1 and parts[0] in ("", "..")):
        raise BadRequest("datetime must be an RFC 3339 date or timestamp or an interval start/end ('..' = open)")
    out = []
    for i, part in enumerate(parts):
        if part in ("", ".."):
            out.append(part)
            continue
        if _DATE_ONLY.match(part):
            try:
                start, end = _day_bounds(part)
            except ValueError:
                raise BadRequest(f"datetime {part[:40]!r} is not a valid date") from None
            if len(parts) == 1:
                return f"{start}/{end}"
            if i == 0:
                out.append(start)
            elif parts[0] in ("", ".."):  # ../day includes `end`: stop at the day's last microsecond
                out.append(f"{part}T23:59:59.999999Z")
            else:  # start/day is [start, end): end at the next midnight
                out.append(end)
            continue
        try:
            parse_rfc3339(part)
        except ValueError:
            raise BadRequest(f"datetime {part[:40]!r} is not RFC 3339") from None
        out.append(part)
    return "/".join(out)


# Integer column types and their ranges: an id or value outside raised inside cql2-rs (beyond 128 bits) or
# PostgreSQL (`bigint out of range`), a 500 or a 400 carrying the database's text (issue 25).
INTEGER_RANGES = {
    "smallint": 2**15, "int2": 2**15, "smallserial": 2**15,
    "integer": 2**31, "int": 2**31, "int4": 2**31, "serial": 2**31,
    "bigint": 2**63, "int8": 2**63, "bigserial": 2**63,
}
_INTEGER = re.compile(r"^[+-]?\d{1,40}$")


def _integer_in_range(value: str, pg_type: str) -> bool:
    bound = INTEGER_RANGES.get(pg_type.lower())
    if bound is None:
        return True
    return bool(_INTEGER.match(value.strip())) and -bound <= int(value) < bound


def _check_ids(values: list[str], collection: Collection) -> None:
    """``ids``/the item id against an integer id column: integers in the column's range, else 400."""
    id_type = getattr(getattr(collection, "id_column", None), "type", "") or ""
    if id_type.lower() not in INTEGER_RANGES:
        return
    for value in values:
        if not _integer_in_range(value, id_type):
            raise BadRequest(f"id {excerpt(value)!r} is not valid: collection {collection.id!r} has integer ids "
                             f"({id_type}, |id| < 2^{INTEGER_RANGES[id_type.lower()].bit_length() - 1})")


def _check_property_value(name: str, value: str, kind: str) -> None:
    """A property filter (``?area_ha=2``) must be a value of the column's type (else a database error)."""
    import uuid

    from ciso8601 import parse_rfc3339

    try:
        if kind == "number":
            if not math.isfinite(float(value)):
                raise ValueError
        elif kind == "uuid":
            uuid.UUID(value)
        elif kind == "time":
            parse_rfc3339(value)
        elif kind == "bool" and value.lower() not in ("true", "false"):
            raise ValueError
        elif kind in ("geometry", "other"):
            raise BadRequest(f"property {name!r} cannot be filtered with a query parameter; use filter")
    except ValueError:
        raise BadRequest(f"{name}={value[:40]!r} is not a valid {kind}") from None


def _check_property_names(param: str, value: str, columns: dict[str, str]) -> None:
    """``properties`` (names to return) and ``sortby`` (``[+|-]name``, comma-separated) name the collection's
    properties: an unknown name is a 400 naming it (tipg ignored an unknown ``properties`` name and returned
    none for it). ``properties=`` (empty) asks for no properties, as Part 1 reads it."""
    if param == "properties":
        if value.strip() == "":
            return
        allowed = sorted(n for n, t in columns.items() if cql.kind_of_column(t) != "geometry")
        names = [n.strip() for n in value.split(",")]
    else:
        allowed = sorted(columns)
        names = [n.strip().removeprefix("-").removeprefix("+").strip() for n in value.split(",")]
    for name in names:
        if name not in allowed:
            raise BadRequest(f"{param}: {excerpt(name)!r} is not a property of this collection; its properties: "
                             f"{', '.join(allowed)}")


def _check_query(params: QueryParams, settings: Settings, columns: dict[str, str] | None = None,
                 items: bool = False, known: set[str] | None = None) -> list[tuple[str, str]]:
    """Reject malformed or unknown OGC query parameters with 400 (Part 1) before tipg sees them.

    ``columns`` (name -> PostgreSQL type) are the collection's, ``items`` says the route lists
    items (property filters allowed), ``known`` the route's own parameter names (None: not checked).
    Returns the parameters to hand on (``limit`` capped at the maximum, date-only ``datetime``
    expanded to the day, the CRS parameters consumed).
    """
    column_kinds = {n: cql.kind_of_column(t) for n, t in (columns or {}).items()} if items else {}
    if known is not None:
        known = known | set(CRS_PARAMS) | set(column_kinds)
    out: list[tuple[str, str]] = []
    for k, v in params.multi_items():
        if "\x00" in k or "\x00" in v:
            raise BadRequest("query parameters must not contain NUL bytes")
        if known is not None and k not in known:
            raise BadRequest(f"unknown query parameter {k[:64]!r}; this resource takes: {', '.join(sorted(known))}")
        if k == "offset":
            if not (_INTEGER.match(v) and 0 <= int(v) < 2**63):
                raise BadRequest("offset must be a non-negative integer below 2^63")
        if k in CRS_PARAMS:
            if v not in CRS84_NAMES:
                raise BadRequest(f"{k} {v[:80]!r} is not supported; supported: {CRS84}")
            continue
        if k == "limit":
            try:
                limit = int(v)
            except ValueError:
                raise BadRequest("limit must be a non-negative integer") from None
            if limit < 0:
                raise BadRequest("limit must be a non-negative integer")
            v = str(min(limit, settings.api_ogc_max_limit))  # Part 1: a larger limit is capped, not refused
        elif k == "bbox":
            try:
                bounds = [float(b) for b in v.split(",")]
            except ValueError:
                raise BadRequest("bbox must be 4 or 6 comma-separated numbers") from None
            if len(bounds) not in (4, 6) or not all(math.isfinite(b) for b in bounds):
                raise BadRequest("bbox must be 4 or 6 comma-separated finite numbers")
        elif k == "simplify" and v:
            try:
                tolerance = float(v)
            except ValueError:
                raise BadRequest("simplify must be a number (degrees)") from None
            if not (math.isfinite(tolerance) and tolerance >= 0):
                raise BadRequest("simplify must be a finite number >= 0 (degrees)")
        elif k == "datetime" and v:  # empty = no filter, as tipg reads it
            v = _datetime_param(v)
        elif k in ("properties", "sortby") and columns is not None:
            _check_property_names(k, v, columns)
        elif k in column_kinds:
            _check_property_value(k, v, column_kinds[k])
            if not _integer_in_range(v, columns[k]):
                raise BadRequest(f"{k}={excerpt(v)!r} is not an integer in the range of {columns[k]}")
        out.append((k, v))
    if "filter" in params:
        tree = cql.parse(params["filter"], params.get("filter-lang"), settings.api_filter_max_chars)
        if columns is None:
            raise BadRequest("filter applies to a collection's items")
        cql.check(tree, columns)
        tree = cql.normalise(tree)
        cql.renders(tree)
        # tipg gets exactly the tree that was checked, as CQL2-JSON.
        out = [(k, v) for k, v in out if k not in ("filter", "filter-lang")]
        out += [("filter", json.dumps(tree, separators=(",", ":"))), ("filter-lang", "cql2-json")]
    return out


async def ogc_query_guard(request: Request) -> None:
    settings: Settings = request.app.state.deps.settings
    if any("\x00" in str(v) for v in request.path_params.values()):
        # A NUL in a text id reached asyncpg and broke the protocol ("insufficient data left in message": 503).
        raise BadRequest("the path must not contain NUL bytes")
    collection = None
    collection_id = request.path_params.get("collectionId")
    if collection_id is not None:
        collection = collection_by_id(request, collection_id)
    route = request.scope.get("route")
    known = _flat_query_names(route) if route is not None else None
    items = route is not None and route.path.endswith("/items")
    # GDAL's OAPIF driver sends the query of "OAPIF:<...>/collections/{id}?hazard=flood" to the collection
    # document too, then to every items request: the collection accepts (and checks) the same property
    # filters, so stock GDAL filters on the server.
    props = items or (route is not None and route.path.endswith("/collections/{collectionId}"))
    columns = {c.name: c.type for c in collection.table_columns} if collection is not None else None
    if collection is not None:
        ids = [i for v in request.query_params.getlist("ids") for i in v.split(",") if i] if items else []
        item_id = request.path_params.get("itemId")
        _check_ids(ids + ([item_id] if item_id is not None else []), collection)
    params = _check_query(request.query_params, settings, columns, props, known)
    query_string = urlencode(params).encode()
    if query_string != request.scope.get("query_string", b""):
        # Hand the normalised parameters to tipg (and to the `next` links it builds from the URL).
        request.scope["query_string"] = query_string
        request._query_params = QueryParams(query_string)  # Starlette caches the parsed query here


def collection_by_id(
    request: Request, collectionId: Annotated[str, Path(description="Collection identifier", max_length=128)],
) -> Collection:
    catalog = getattr(request.app.state, "collection_catalog", None) or {"collections": {}}
    if collectionId in catalog["collections"]:
        return catalog["collections"][collectionId]
    raise NotFound(f"collection {collectionId[:64]!r} not found; collections: {', '.join(catalog['collections'])}")


# tipg's own templates render values unescaped (a reference-layer feature named <script>... ran in the
# visitor's browser, issue 25) and load jQuery/Bootstrap/Leaflet from CDNs. Ours replace every one of them
# (no fallback to tipg's: a page without a template here fails instead of rendering unescaped), with
# autoescape on for every template, server-rendered tables, no script, and one local stylesheet.
TEMPLATE_DIR = FilePath(__file__).resolve().parents[1] / "templates"
TEMPLATES = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True))


FEATURES_CONFORMS = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landingPage",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
]


class Features(OGCFeaturesFactory):
    """tipg's Features factory with the conformance we implement and a landing page naming OpenAPI 3.1.

    The ``oas30`` classes are not claimed: ``/openapi.json`` is OpenAPI 3.1 (FastAPI).
    """

    @property
    def conforms_to(self) -> list[str]:
        return [*FEATURES_CONFORMS, *cql.CONFORMANCE]

    def _create_html_response(self, request: Request, data: Any, template_name: str, title: str | None = None,
                              **kwargs: Any):
        # The stylesheet comes with the /map bundle (`make web`), from this server.
        static_root = str(request.base_url).rstrip("/") + "/map/static"
        return super()._create_html_response(request, data, template_name, title=title, static_root=static_root,
                                             **kwargs)

    def _additional_collection_tiles_links(self, request: Request, collection: Collection) -> list:
        # + the ready-made styles of alerts and detections (api/routes/styles.py), rel "stylesheet"
        from tipg import model

        from terrawatch.api.routes.styles import style_links

        base = str(request.base_url).rstrip("/")
        return [*super()._additional_collection_tiles_links(request, collection),
                *(model.Link.model_construct(**link) for link in style_links(base, collection.id))]

    def _conformance_route(self):
        @self.router.get("/conformance", tags=["OGC Common"], summary="Conformance classes implemented.")
        def conformance(request: Request, output_type: Annotated[MediaType | None, Depends(OutputType)] = None):
            data = {"conformsTo": self.conforms_to}
            if output_type == MediaType.html:
                return self._create_html_response(request, data, template_name="conformance")
            return JSONResponse(data)

    def _landing_route(self):
        @self.router.get("/", tags=["OGC Common"], summary="OGC API landing page.")
        def landing(request: Request, output_type: Annotated[MediaType | None, Depends(OutputType)] = None):
            links = [
                {"title": "Landing Page", "href": self.url_for(request, "landing"), "type": "application/json",
                 "rel": "self"},
                {"title": "the API definition (JSON)", "href": str(request.url_for("openapi")),
                 "type": OPENAPI_31, "rel": "service-desc"},
                {"title": "the API documentation", "href": str(request.url_for("swagger_ui_html")),
                 "type": "text/html", "rel": "service-doc"},
                {"title": "Conformance", "href": self.url_for(request, "conformance"), "type": "application/json",
                 "rel": "conformance"},
                *[link.model_dump(exclude_none=True, mode="json") for link in self.links(request)],
            ]
            data = {"title": self.title, "links": links}
            if output_type == MediaType.html:
                return self._create_html_response(request, data, template_name="landing", title=self.title)
            return JSONResponse(data)


# GeoJSON pages are compressed here, at zlib level 1, instead of by the app's GZipMiddleware (level 6, which
# passes a response that already has a Content-Encoding): on a 1.4 MB page of polygons level 6 took 81 ms
# of CPU against 17 ms for level 1, for a body 16 % larger (393 vs 455 kB; docs/performance.md "API under
# load"). Small bodies are left as they are, as the middleware leaves them.
GEOJSON_GZIP_LEVEL = 1
GEOJSON_GZIP_MIN_BYTES = 1024
GEOJSON_GZIP_THREAD_BYTES = 128 * 1024  # larger bodies are compressed off the event loop (zlib frees the GIL)


async def gzip_geojson(request: Request, response: Response) -> Response:
    """``response`` gzipped at ``GEOJSON_GZIP_LEVEL`` when it is a GeoJSON body of at least
    ``GEOJSON_GZIP_MIN_BYTES`` and the client accepts gzip; other responses unchanged."""
    body = getattr(response, "body", None)
    if (not isinstance(body, bytes) or len(body) < GEOJSON_GZIP_MIN_BYTES or "content-encoding" in response.headers
            or not response.headers.get("content-type", "").startswith(MediaType.geojson.value)):
        return response
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return response  # (the middleware adds Vary: Accept-Encoding)
    if len(body) >= GEOJSON_GZIP_THREAD_BYTES:
        body = await anyio.to_thread.run_sync(functools.partial(gzip.compress, body, GEOJSON_GZIP_LEVEL, mtime=0))
    else:
        body = gzip.compress(body, GEOJSON_GZIP_LEVEL, mtime=0)
    response.body = body
    response.headers["Content-Encoding"] = "gzip"
    response.headers.append("Vary", "Accept-Encoding")
    response.headers["Content-Length"] = str(len(body))
    return response


class FeaturesRoute(APIRoute):
    """tipg's routes, their GeoJSON bodies gzipped by :func:`gzip_geojson`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await gzip_geojson(request, await handler(request))

        return route


def ogc_router(deps: ApiDeps) -> APIRouter:
    features = Features(router_prefix=PREFIX, title=TITLE, collection_dependency=collection_by_id, templates=TEMPLATES,
                        router=APIRouter(route_class=FeaturesRoute))
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(deps.layers), Depends(catalog_dependency(deps.settings)),
                                                    Depends(ogc_query_guard)])
    router.include_router(features.router)
    return router
