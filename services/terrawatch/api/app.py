"""The terrawatch HTTP API: one FastAPI app for uvicorn (``terrawatch serve``) and Ray Serve.

Mounted: ``/ogc`` (OGC API - Features, tipg), ``/tiles`` (MVT + TileJSON),
``/map`` (MapLibre page), ``/ops`` (health, status, runbook actions, keys,
reference layers) and, when present, the alerting routers (``/subscriptions``,
``/alerts``). The OpenAPI document is at ``/openapi.json``; every operation
carries ``x-required-role`` (``none``, ``viewer``, ``operator``, ``admin``),
derived from the auth dependency it actually uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import types
import typing
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import terrawatch
from terrawatch.api import errors
from terrawatch.api import roles
from terrawatch.api.deps import ApiDeps
from terrawatch.api.guard import AccessGuard
from terrawatch.api.html import SecurityHeaders, docs_router
from terrawatch.api.public_url import PublicOrigin
from terrawatch.api.routes import ogc
from terrawatch.api.routes.alerts import alerts_router
from terrawatch.api.routes.analysis import analysis_router
from terrawatch.api.routes.keys import keys_router
from terrawatch.api.routes.map import map_router, map_static
from terrawatch.api.routes.ops import ops_router
from terrawatch.api.routes.raster import raster_router
from terrawatch.api.routes.stac import stac_router
from terrawatch.api.routes.styles import styles_router
from terrawatch.api.routes.subscriptions import subscriptions_router
from terrawatch.api.routes.reference import reference_router
from terrawatch.api.routes.tiles import tiles_router
from terrawatch.observability.http_metrics import HttpMetrics
from terrawatch.observability.metrics import OwnedRegistry
from terrawatch.settings import Settings

log = logging.getLogger(__name__)

# Routers other parts of terrawatch provide (module, factory); mounted when the module exists.
DESCRIPTION = """\
Near-real-time hazard monitoring of Sentinel scenes (floods, deforestation, illegal mining).

* **OGC API - Features** at [`/ogc`](ogc): detections, alerts, scene footprints, reference layers.
* **Vector tiles** at `/tiles/{layer}/{z}/{x}/{y}.pbf`, TileJSON at `/tiles/{layer}.json`; map at [`/map`](map).
* **Raster tiles** of each scene's products at `/raster/scenes/{scene_id}/{product}/{z}/{x}/{y}.png`,
  TileJSON at `/raster/scenes/{scene_id}/{product}.json` (product: a hazard's likelihood or `quicklook`).
* **STAC API** at [`/stac`](stac): the `terrawatch-products` collection (likelihood COGs, quicklooks), item search.
* **Operations** at `/ops`: health, pipeline status and runbook actions (audited).

Authenticate with `X-API-Key: tw_...` or `Authorization: Bearer tw_...` (keys from `terrawatch keys create`).
Roles: viewer (read layers), operator (ops actions), admin (subscriptions, keys).
"""


def required_role(operation: dict) -> str:
    """The role an OpenAPI operation needs: the strongest role named in its security requirements."""
    roles = {scope for req in operation.get("security", []) for scopes in req.values() for scope in scopes}
    for role in ("admin", "operator", "viewer"):
        if role in roles:
            return role
    return "none"


def _repeatable(annotation: object) -> bool:
    """Whether a parameter's type takes several values (``list[str]``, ``tuple``, ...), through Optional."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_repeatable(a) for a in typing.get_args(annotation))
    return origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset)


def declared_query(route) -> set[str]:
    """The query parameter names (aliases) a FastAPI route declares, through its dependencies too."""
    return set(_query_fields(route))


def _query_fields(route) -> dict[str, bool]:
    """name (alias) -> whether it may be repeated, of every query parameter the route declares."""
    out: dict[str, bool] = {}
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        for p in dep.query_params:
            out[p.alias] = _repeatable(p.field_info.annotation)
        stack.extend(dep.dependencies)
    return out


async def refuse_undeclared_query(request: Request) -> None:
    """One rule for parameters (issue 26): a query parameter the route does not declare, or a single-valued one
    given twice (FastAPI would silently keep the last), is a 400 naming it, on every route (``/ogc`` checks its
    own in ``api/routes/ogc.py``: a collection's properties are parameters there). Declared parameters are
    exactly those the OpenAPI document lists. ``async``: no I/O, so it runs on the event loop (a plain ``def``
    dependency would cost every request, tiles included, a hop through the thread pool)."""
    route = request.scope.get("route")
    if route is None or not request.query_params or errors.is_ogc(request):
        return
    fields = getattr(route, "_tw_query", None)
    if fields is None:
        fields = route._tw_query = _query_fields(route)
    unknown = sorted(set(request.query_params.keys()) - set(fields))
    if unknown:
        takes = ", ".join(sorted(fields)) or "no query parameters"
        raise errors.BadRequest(f"unknown query parameter {errors.excerpt(unknown[0], 64)!r}; "
                                f"{request.url.path[:80]} takes {takes}")
    for name, repeatable in fields.items():
        n = len(request.query_params.getlist(name))
        if n > 1 and not repeatable:
            raise errors.BadRequest(f"{name} given {n} times; give it once (comma-separated where it takes a list)")


def error_responses(schema: dict) -> None:
    """Every operation declares its 400 (a bad parameter) with the :class:`~terrawatch.api.errors.ErrorBody`
    schema; FastAPI's default 422 "Validation Error" (which parameters never get: they are 400) is removed, and
    an operation with a JSON body declares 422 for an invalid body, with the same schema."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = errors.ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path_item in schema["paths"].values():
        for op in path_item.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            bad = responses.setdefault("400", {})
            bad.setdefault("description", "A query or path parameter is missing, malformed, out of range or "
                                          "unknown; the description names it.")
            bad["content"] = ref
            if "requestBody" in op:
                responses["422"] = {"description": "The JSON body is not valid for this operation; the description "
                                                   "and `detail` say where.", "content": ref}
    if "#/components/schemas/HTTPValidationError" not in json.dumps(schema["paths"]):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)


def create_app(settings: Settings) -> FastAPI:
    deps = ApiDeps(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            await asyncio.wait_for(ogc.open_pool(app, settings), timeout=10)
            await ogc.refresh_catalog(app)
        except Exception as exc:  # noqa: BLE001 - the API starts anyway; /ops/readyz tells what is down
            log.warning("OGC API not connected at startup (%s); will retry on first request", exc)
            app.state.pool = None
        yield
        await ogc.close_pool(app)
        deps.close()

    app = FastAPI(title="terrawatch API", version=terrawatch.__version__ if hasattr(terrawatch, "__version__")
                  else "0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # FastAPI's pages load from a CDN: api/html.py serves /docs
                  dependencies=[Depends(refuse_undeclared_query)])
    app.state.deps = deps
    app.state.pool = None
    errors.install(app)

    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    # Level 6 (zlib's default), not Starlette's 9: the map's 1.1 MB basemap compresses 9x faster, 0.2% larger.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    # Role check and body limit before any route reads the body (api/guard.py, api/roles.py).
    app.add_middleware(AccessGuard, deps=deps)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"], allow_credentials=False)
    proxies = [p.strip() for p in settings.api_trusted_proxies.split(",") if p.strip()]
    if proxies:  # X-Forwarded-For/-Proto believed only from these peers
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    # Content-Security-Policy on every HTML response, nosniff on all (api/html.py; error pages too).
    app.add_middleware(SecurityHeaders, map_style_url=settings.map_style_url)
    # Request count and latency per route template and status class (observability/http_metrics.py).
    app.add_middleware(HttpMetrics, router_app=app)
    metrics_registry = OwnedRegistry("api")  # only the API's own families (docs/metrics.md)
    # Outermost: Host/scheme/root_path from TERRAWATCH_API_PUBLIC_URL (or a trusted proxy's X-Forwarded-Host,
    # else the listening address), never from the client's Host header (api/public_url.py).
    app.add_middleware(PublicOrigin, public_url=settings.api_public_url, trusted_proxies=settings.api_trusted_proxies)

    app.include_router(ops_router(deps))
    app.include_router(keys_router(deps))
    app.include_router(reference_router(deps))
    app.include_router(tiles_router(deps))
    app.include_router(raster_router(deps))
    app.include_router(analysis_router(deps))
    app.include_router(stac_router(deps))
    app.include_router(ogc.ogc_router(deps))
    app.include_router(map_router(settings.map_style_url))
    app.include_router(styles_router())
    app.mount("/map/static", map_static(), name="map-static")
    app.include_router(subscriptions_router(deps))
    app.include_router(alerts_router(deps))
    app.include_router(docs_router(app.openapi_url))

    @app.get("/", tags=["landing"], summary="Links to the API's parts.")
    def landing(request: Request) -> dict:
        base = str(request.base_url).rstrip("/")
        return {"title": "terrawatch API", "links": {
            "ogc_api": f"{base}/ogc", "stac": f"{base}/stac", "map": f"{base}/map", "tiles": f"{base}/tiles", "openapi": f"{base}/openapi.json",
            "docs": f"{base}/docs", "livez": f"{base}/ops/livez", "readyz": f"{base}/ops/readyz"}}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Prometheus exposition of this process (scraped as job terrawatch-api)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        error_responses(schema)
        for path, path_item in schema["paths"].items():
            for method, op in path_item.items():
                # The table in api/roles.py is the one place; a route it does not list shows the role
                # its own dependency declares (and tests/integration/test_route_roles.py fails).
                role = roles.role_for_operation(method, path)
                if role is None:
                    op["x-required-role"] = required_role(op)
                    op["x-role-unclassified"] = True
                    continue
                role = roles.effective(role, settings.api_public_read)
                op["x-required-role"] = role
                if role == roles.NONE:
                    op.pop("security", None)
                else:
                    op["security"] = [{"APIKeyHeader": [role]}, {"HTTPBearer": [role]}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
    return app
