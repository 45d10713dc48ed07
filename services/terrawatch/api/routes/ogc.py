"""OGC API - Features (Part 1 Core, GeoJSON, HTML) over the ``ogc`` views, served by tipg under ``/ogc``.

tipg reads the same PostGIS through its own asyncpg pool. Collections are the
views of migration 0003 (``detections``, ``alerts``, ``scenes``,
``reference_layers``), with ids without the schema prefix and
``sensing_time`` as the temporal property. Property filters are plain query
parameters (``?hazard=flood&confidence=high&status=new``), plus ``bbox``,
``datetime``, ``limit``/``offset`` paging and CQL2 ``filter``.

The pool is opened at startup if PostGIS answers, else on the first request
(503 until it does); the catalog is re-read every ``CATALOG_TTL_S`` seconds so
extents follow the data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from sqlalchemy.engine import make_url
from tipg.collections import Catalog, Collection, pg_get_collection_index
from tipg.database import connect_to_db
from tipg.factory import OGCFeaturesFactory
from tipg.settings import DatabaseSettings, PostgresSettings

from terrawatch.api.deps import ApiDeps
from terrawatch.api.errors import InvalidInput, NotFound, Unavailable
from terrawatch.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/ogc"
SCHEMA = "ogc"
CATALOG_TTL_S = 60.0
TITLE = "terrawatch: hazard detections, alerts, scene footprints and reference layers"


def asyncpg_dsn(settings: Settings) -> str:
    return make_url(settings.db_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def open_pool(app: FastAPI, settings: Settings) -> None:
    await connect_to_db(app, schemas=[SCHEMA], tipg_schema="pg_temp",
                        settings=PostgresSettings(database_url=asyncpg_dsn(settings), db_min_conn_size=1,
                                                  db_max_conn_size=5), timeout=5)


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
        collections[col.table] = col.model_copy(update=update)
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


def _check_query(params) -> None:
    """Reject malformed OGC query parameters with 422 before tipg sees them (tipg would answer 500)."""
    import math

    from ciso8601 import parse_rfc3339
    from cql2 import Expr

    for k, v in params.multi_items():
        if "\x00" in k or "\x00" in v:
            raise InvalidInput("query parameters must not contain NUL bytes")
    if params.get("bbox"):
        try:
            bounds = [float(v) for v in params["bbox"].split(",")]
        except ValueError:
            raise InvalidInput("bbox must be 4 or 6 comma-separated numbers") from None
        if len(bounds) not in (4, 6) or not all(math.isfinite(b) for b in bounds):
            raise InvalidInput("bbox must be 4 or 6 comma-separated finite numbers")
    if params.get("simplify"):
        try:
            tolerance = float(params["simplify"])
        except ValueError:
            raise InvalidInput("simplify must be a number (degrees)") from None
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise InvalidInput("simplify must be a finite number >= 0 (degrees)")
    if params.get("datetime"):  # empty = no filter, as tipg reads it
        parts = params["datetime"].split("/")
        if len(parts) > 2 or (len(parts) == 1 and parts[0] in ("", "..")):
            raise InvalidInput("datetime must be an RFC 3339 instant or an interval start/end ('..' = open)")
        for part in parts:
            if part not in ("", ".."):
                try:
                    parse_rfc3339(part)
                except ValueError:
                    raise InvalidInput(f"datetime {part!r} is not RFC 3339") from None
    if "filter" in params:
        try:
            Expr(params["filter"]).to_json()
        except Exception as exc:  # noqa: BLE001 - cql2 raises plain Exceptions for parse errors
            raise InvalidInput(f"filter is not valid CQL2: {str(exc).splitlines()[0][:200]}") from None


async def ogc_query_guard(request: Request) -> None:
    _check_query(request.query_params)


def collection_by_id(
    request: Request, collectionId: Annotated[str, Path(description="Collection identifier")],
) -> Collection:
    catalog = getattr(request.app.state, "collection_catalog", None) or {"collections": {}}
    if collectionId in catalog["collections"]:
        return catalog["collections"][collectionId]
    raise NotFound(f"collection {collectionId!r} not found; collections: {', '.join(catalog['collections'])}")


def ogc_router(deps: ApiDeps) -> APIRouter:
    features = OGCFeaturesFactory(router_prefix=PREFIX, title=TITLE, collection_dependency=collection_by_id)
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(deps.viewer), Depends(ogc_query_guard),
                                                    Depends(catalog_dependency(deps.settings))])
    router.include_router(features.router)
    return router
