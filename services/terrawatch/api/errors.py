"""The one place where errors become HTTP responses.

Every error terrawatch raises on purpose (``TerrawatchError``: the kinds ``NotFound``, ``Conflict``,
``InvalidInput``, ``Unavailable``, ... live in :mod:`terrawatch.domain.errors`; services raise them or
subclasses of them, routes let them through) maps to a 4xx (or 503 for an unavailable dependency) with a
human-readable message, in the body shape tipg uses::

    {"code": "not_found", "description": "scene 'x' not found"}

Anything else is a bug and stays a 500 (schemathesis checks there are none).
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from tipg import errors as tipg_errors

from terrawatch.domain.errors import (  # noqa: F401 - the error kinds, re-exported for the routes
    BadRequest, Conflict, Forbidden, InvalidEvent, InvalidInput, NotFound, PayloadTooLarge, RateLimited,
    TerrawatchError, TransientError, Unauthenticated, Unavailable, UnreadableAsset, UnsupportedScene,
)
from terrawatch.store.db import DATA_ERRORS, OUTAGE_ERRORS

log = logging.getLogger(__name__)


STATUS: dict[type[TerrawatchError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    BadRequest: 400,
    PayloadTooLarge: 413,
    Unauthenticated: 401,
    Forbidden: 403,
    RateLimited: 429,
    Unavailable: 503,
    InvalidEvent: 422,
    UnreadableAsset: 422,
    UnsupportedScene: 422,
    TransientError: 503,
}


# tipg's own errors (OGC API - Features). Its catch-all `Exception` entry is left out on purpose:
# an unexpected error is a 500 from the server, not a message echoing internals.
TIPG_STATUS: dict[type[Exception], int] = {
    cls: code for cls, code in tipg_errors.DEFAULT_STATUS_CODES.items()
    if isinstance(cls, type) and issubclass(cls, tipg_errors.TiPgError)
}


# Raised when PostGIS cannot be reached or drops the connection (psycopg through SQLAlchemy for the
# app's own routes, asyncpg for tipg's OGC routes, a bare refused socket from either).
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *OUTAGE_ERRORS,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
)


def is_ogc(request: Request) -> bool:
    """OGC API - Features routes answer invalid parameters with 400 (Part 1), the rest with 422."""
    return request.url.path == "/ogc" or request.url.path.startswith("/ogc/")


def status_for(exc: TerrawatchError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _response(exc: TerrawatchError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="terrawatch", ApiKey header="X-API-Key"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, (Unavailable, TransientError)):
        headers["Retry-After"] = "5"
    return JSONResponse({"code": exc.code, "description": exc.reason}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers: terrawatch errors, and tipg's own (OGC API) errors."""

    async def on_terrawatch_error(request: Request, exc: TerrawatchError) -> JSONResponse:
        if status_for(exc) >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.reason)
        return _response(exc)

    async def on_tipg_error(request: Request, exc: Exception) -> JSONResponse:
        status = TIPG_STATUS[type(exc)]
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"code": type(exc).__name__, "description": str(exc)}, status_code=status)

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        # SQLSTATE class 22 (data exception): a value the database cannot take, e.g. a NUL byte in
        # text or text where a number belongs. Queries bind parameters, so this is the input's fault.
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return JSONResponse({"code": "invalid_value", "description": f"invalid value: {first}"},
                            status_code=400 if is_ogc(request) else 422)

    async def on_postgres_error(request: Request, exc: Exception) -> JSONResponse:
        # The OGC API renders the (allow-listed, type-checked) filter into SQL: a remaining syntax or
        # type error (class 42) is still the filter's fault. A statement timeout is 503, anything
        # else a bug (500, logged).
        sqlstate = getattr(exc, "sqlstate", "") or ""
        if sqlstate == "57014":
            return JSONResponse({"code": "timeout", "description": "the query exceeded the API's statement "
                                 "timeout (TERRAWATCH_API_STATEMENT_TIMEOUT_MS); narrow it (bbox, datetime, limit)"},
                                status_code=503, headers={"Retry-After": "5"})
        if is_ogc(request) and sqlstate[:2] in ("22", "42"):
            return JSONResponse({"code": "invalid_query", "description": "the query cannot be evaluated: "
                                 + str(exc).splitlines()[0][:200]}, status_code=400)
        log.error("%s %s: database error %s: %s", request.method, request.url.path, sqlstate, exc)
        return JSONResponse({"code": "internal", "description": "internal error"}, status_code=500)

    async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # PostGIS down or restarting (refused connection, server closed it, admin shutdown): the
        # request was fine, the dependency is not. 503 with Retry-After, one warning line, no traceback.
        orig = getattr(exc, "orig", None) or exc
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or ""
        if sqlstate == "57014":
            return JSONResponse({"code": "timeout", "description": "the query exceeded the API's statement "
                                 "timeout (TERRAWATCH_API_STATEMENT_TIMEOUT_MS); narrow it (bbox, datetime, limit)"},
                                status_code=503, headers={"Retry-After": "5"})
        if sqlstate and not sqlstate.startswith(("08", "53", "57P")):
            log.error("%s %s: database error %s: %s", request.method, request.url.path, sqlstate, orig)
            return JSONResponse({"code": "internal", "description": "internal error"}, status_code=500)
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path,
                    str(orig).splitlines()[0][:200] if str(orig) else type(orig).__name__)
        return JSONResponse({"code": "unavailable", "description": "the database is unavailable; retry shortly"},
                            status_code=503, headers={"Retry-After": "5"})

    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default 422 echoes each invalid input whole (a 47 MB body came back whole); show
        # where and why, and at most a short prefix of the value. OGC API Part 1 answers 400.
        details = []
        for err in exc.errors()[:20]:
            item = {"loc": list(err.get("loc", ()))[:8], "msg": str(err.get("msg", ""))[:200],
                    "type": err.get("type")}
            value = err.get("input")
            if isinstance(value, (str, int, float, bool)) or value is None:
                text = str(value)
                item["input"] = text if len(text) <= 64 else text[:64] + "..."
            details.append(item)
        return JSONResponse({"code": "invalid_input", "description": "invalid request", "detail": details},
                            status_code=400 if is_ogc(request) else 422)

    app.add_exception_handler(TerrawatchError, on_terrawatch_error)  # every kind, by its MRO (status_for)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    for cls in DATA_ERRORS:
        app.add_exception_handler(cls, on_data_error)
    app.add_exception_handler(asyncpg.exceptions.DataError, on_data_error)
    app.add_exception_handler(asyncpg.exceptions.PostgresError, on_postgres_error)
    for cls in DATABASE_UNAVAILABLE:
        app.add_exception_handler(cls, on_database_unavailable)
    for cls in TIPG_STATUS:
        app.add_exception_handler(cls, on_tipg_error)
