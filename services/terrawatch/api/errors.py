"""The one place where errors become HTTP responses.

Every error terrawatch raises on purpose (``TerrawatchError``: the kinds ``NotFound``, ``Conflict``,
``InvalidInput``, ``Unavailable``, ... live in :mod:`terrawatch.domain.errors`; services raise them or
subclasses of them, routes let them through) maps to a 4xx (or 503 for an unavailable dependency) with a
human-readable message, in the body shape tipg uses::

    {"code": "not_found", "description": "scene 'x' not found"}

Invalid input is a 400 when the request has no body (its input can only be its path and query: one rule for
parameters, issue 26) and on ``/ogc``; 422 only for an invalid JSON body. Starlette's own HTTP errors (no
route, method not allowed, a body that is not JSON) answer in the same shape. :class:`ErrorBody` is that
shape in the OpenAPI document (``api/app.py`` declares it as every operation's 400).

Anything else is a bug and stays a 500 (schemathesis checks there are none).
"""

from __future__ import annotations

import json
import logging
import re
import typing

import asyncpg
import http

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from tipg import errors as tipg_errors

from terrawatch.domain.errors import (  # noqa: F401 - the error kinds, re-exported for the routes
    BadRequest, Conflict, Forbidden, InvalidEvent, InvalidInput, NotFound, PayloadTooLarge, RateLimited,
    TerrawatchError, TransientError, Unauthenticated, Unavailable, UnreadableAsset, UnsupportedScene,
)
from terrawatch.store.db import DATA_ERRORS, OUTAGE_ERRORS

log = logging.getLogger(__name__)

# A 4xx body shows at most this much of any one caller-chosen value (issue 25: tipg echoed 6,000 characters).
EXCERPT_CHARS = 80
# ... and at most this much message in all (the allow-list messages name every allowed function).
MAX_DESCRIPTION_CHARS = 600
_LONG_TOKEN = re.compile(r"\S{%d,}" % (EXCERPT_CHARS + 1))


def excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as text, cut to ``limit`` characters with ``…`` (for messages that name an input)."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def bounded(message: str) -> str:
    """A message made safe to return: every run of non-space characters longer than ``EXCERPT_CHARS`` (an
    echoed input) cut to an excerpt, control characters dropped, the whole bounded."""
    message = "".join(ch if ch.isprintable() else " " for ch in str(message))
    message = _LONG_TOKEN.sub(lambda m: excerpt(m.group(0)), message)
    return excerpt(message, MAX_DESCRIPTION_CHARS)


class JSONResponse(_JSONResponse):
    """JSON with ``<``, ``>`` and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same JSON
    value): an error body that repeats a caller's ``<script>`` is inert even if something renders it as HTML."""

    def render(self, content: typing.Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


# What a database error (SQLSTATE) means for the caller, without the database's own text (which names
# types, operators and values: `bigint out of range`, `operator does not exist: text > integer`).
SQLSTATE_MESSAGES = {
    "22003": "a number is out of range for the property it is compared with",
    "22P02": "a value is not valid for the type of the property it is compared with",
    "22007": "a date or time value is not valid",
    "22008": "a date or time value is out of range",
    "22001": "a text value is too long for its property",
    "22021": "a text value contains bytes that are not valid UTF-8 (or a NUL byte)",
    "22023": "a parameter value is not valid",
    "2201W": "limit must be a non-negative integer",
    "2201X": "offset must be a non-negative integer",
    "22012": "the query divides by zero",
    "42883": "an operator or function does not apply to the types of its operands",
    "42804": "a value has the wrong type for its property",
    "42703": "unknown property",
    "42601": "the query cannot be parsed",
}


def database_message(sqlstate: str) -> str:
    """A short, fixed message for a database error class: never the server's text."""
    if sqlstate in SQLSTATE_MESSAGES:
        return SQLSTATE_MESSAGES[sqlstate]
    if sqlstate.startswith("22"):
        return "a value in the request is not valid for its property"
    return "the query cannot be evaluated for these parameters"


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


# tipg errors that name a parameter the request got wrong (tipg answers 422, 404 or, for a collection
# without the column asked for, 500): 400 on /ogc like every other invalid parameter.
TIPG_INVALID_PARAMETER: tuple[type[Exception], ...] = (
    tipg_errors.InvalidBBox, tipg_errors.InvalidDatetime, tipg_errors.InvalidLimit, tipg_errors.InvalidPropertyName,
    tipg_errors.InvalidGeometryColumnName, tipg_errors.InvalidDatetimeColumnName, tipg_errors.MissingFunctionParameter,
    tipg_errors.MissingDatetimeColumn, tipg_errors.MissingGeometryColumn,
)


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
    """OGC API - Features routes answer every invalid input with 400 (Part 1)."""
    return request.url.path == "/ogc" or request.url.path.startswith("/ogc/")


def has_body(request: Request) -> bool:
    """Whether the request carries a body (a ``Content-Length`` above 0, or a chunked one)."""
    length = request.headers.get("content-length")
    return bool(request.headers.get("transfer-encoding")) or (length is not None and length.strip() not in ("", "0"))


def invalid_status(request: Request) -> int:
    """The status of an invalid input: 400 when it can only be a parameter (an ``/ogc`` route, or a request
    without a body: its input is its path and query), 422 for an invalid body elsewhere (issue 26: one rule
    for parameters, so ``GET /stac/search?bbox=1,2,3`` is a 400 like every other bad parameter)."""
    return 400 if is_ogc(request) or not has_body(request) else 422


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx the API answers (the shape tipg uses)."""

    code: str = Field(description="Machine-readable kind, e.g. bad_request, invalid_input, not_found.",
                      examples=["bad_request"])
    description: str = Field(description="What is wrong, naming the parameter or member (inputs cut to 80 "
                                         "characters).", examples=["invalid parameter: limit"])
    detail: list[dict[str, typing.Any]] | None = Field(
        default=None, description="Validation errors only: one entry per problem with `loc` (where: "
                                  "query/path/body and the name), `msg`, `type` and a short `input` excerpt.")


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
    return JSONResponse({"code": exc.code, "description": bounded(exc.reason)}, status_code=status, headers=headers)


# Starlette's and FastAPI's own HTTP errors (no route matched, a method not allowed, a body that is not JSON)
# answer in the same body shape as ours: their default is {"detail": "Not Found"}, with no description.
HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
              414: "uri_too_long", 415: "unsupported_media_type", 429: "rate_limited"}


def install(app: FastAPI) -> None:
    """Register the handlers: terrawatch errors, and tipg's own (OGC API) errors."""

    async def on_terrawatch_error(request: Request, exc: TerrawatchError) -> JSONResponse:
        if status_for(exc) >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.reason)
        response = _response(exc)
        if response.status_code == 422 and isinstance(exc, InvalidInput):
            response.status_code = invalid_status(request)  # a request without a body: a bad parameter
        return response

    async def on_tipg_error(request: Request, exc: Exception) -> JSONResponse:
        status = TIPG_STATUS[type(exc)]
        if isinstance(exc, TIPG_INVALID_PARAMETER):  # OGC API Part 1: an invalid parameter is a 400
            status = 400
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        # tipg names the caller's input whole ("Item <6,000 characters> ... does not exist"): bounded.
        return JSONResponse({"code": type(exc).__name__, "description": bounded(str(exc))}, status_code=status)

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        # SQLSTATE class 22 (data exception): a value the database cannot take, e.g. a NUL byte in
        # text or text where a number belongs. Queries bind parameters, so this is the input's fault.
        # The database's own text stays in the log (it names types and values), the caller gets its class.
        orig = getattr(exc, "orig", None) or exc
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or ""
        log.info("%s %s: database data error %s: %s", request.method, request.url.path, sqlstate,
                 excerpt(str(orig).splitlines()[0] if str(orig) else type(orig).__name__, 200))
        return JSONResponse({"code": "invalid_value", "description": f"invalid value: {database_message(sqlstate)}"},
                            status_code=invalid_status(request))

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
            log.info("%s %s: database error %s: %s", request.method, request.url.path, sqlstate,
                     excerpt(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 200))
            return JSONResponse({"code": "invalid_query", "description": "the query cannot be evaluated: "
                                 + database_message(sqlstate)}, status_code=400)
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
            loc = [excerpt(part, 64) if isinstance(part, str) else part for part in list(err.get("loc", ()))[:8]]
            item = {"loc": loc, "msg": bounded(str(err.get("msg", ""))[:200]),
                    "type": err.get("type")}
            value = err.get("input")
            if isinstance(value, (str, int, float, bool)) or value is None:
                item["input"] = excerpt(value, 64)
            details.append(item)
        # One rule for parameters (issue 26): a query or path parameter the request got wrong is a 400 that
        # names it, on every route; an invalid JSON body stays a 422 (except on /ogc: OGC API Part 1).
        params_only = all(err.get("loc", ("body",))[:1] and err["loc"][0] in ("query", "path") for err in exc.errors())
        names = sorted({str(err["loc"][1])[:64] for err in exc.errors() if len(err.get("loc", ())) > 1})
        description = f"invalid parameter: {', '.join(names)}" if params_only and names else "invalid request"
        return JSONResponse({"code": "invalid_input", "description": description, "detail": details},
                            status_code=400 if params_only else invalid_status(request))

    async def on_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if exc.status_code in (204, 304) or exc.status_code < 200:
            return Response(status_code=exc.status_code, headers=headers)
        phrase = http.HTTPStatus(exc.status_code).phrase if exc.status_code in http.HTTPStatus._value2member_map_ \
            else "error"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
        if exc.status_code == 404 and detail == phrase:
            detail = f"nothing at {excerpt(request.url.path)} (see /openapi.json for the routes)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {excerpt(request.url.path)}"
        elif detail == "There was an error parsing the body":
            detail = "the body is not valid JSON (or not UTF-8, or nested too deeply)"
        code = HTTP_CODES.get(exc.status_code, "error" if exc.status_code >= 500 else "bad_request")
        return JSONResponse({"code": code, "description": bounded(detail)}, status_code=exc.status_code,
                            headers=headers)

    app.add_exception_handler(StarletteHTTPException, on_http_exception)
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
