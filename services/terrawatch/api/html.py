"""The API's HTML, locked down (issue 25): a ``Content-Security-Policy`` on every HTML response, and ``/docs``
(Swagger UI) served from the local bundle instead of FastAPI's CDN page.

HTML comes from three places: the OGC API pages (tipg with our autoescaping templates, ``api/templates``;
no script at all), ``/map`` (the MapLibre bundle: scripts and a tile worker from this server) and ``/docs``
(Swagger UI from ``swagger-ui-dist``, copied into the same bundle by ``make web``). Each gets the narrowest
policy it works with; every response also gets ``X-Content-Type-Options: nosniff`` so a JSON error that
repeats a caller's ``<script>`` is never sniffed as HTML.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from terrawatch.api.errors import Unavailable

WEB_DIST = Path(__file__).resolve().parent / "web" / "dist"

_COMMON = "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
# OGC API pages and any other HTML: markup and the local stylesheet only, no script.
DEFAULT_POLICY = f"default-src 'none'; style-src 'self'; img-src 'self' data:; {_COMMON}"
# Swagger UI: its bundle and start-up file from here; it sets inline styles and uses data: images.
DOCS_POLICY = (f"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               f"connect-src 'self'; {_COMMON}")


def map_policy(style_url: str = "") -> str:
    """``/map``: MapLibre runs its tile worker from a blob: URL, sets inline styles and draws into blob:/data:
    images. With TERRAWATCH_MAP_STYLE_URL (a remote basemap) the style, its tiles, sprites and glyphs come from
    other https origins, which the policy then allows for data (never for script)."""
    remote = " https:" if style_url else ""
    return (f"default-src 'none'; script-src 'self'; worker-src 'self' blob:; child-src 'self' blob:; "
            f"connect-src 'self'{remote}; img-src 'self' data: blob:{remote}; style-src 'self' 'unsafe-inline'; "
            f"font-src 'self'{remote}; {_COMMON}")


class SecurityHeaders:
    """Pure ASGI middleware (streams untouched): CSP on ``text/html`` responses, ``nosniff`` on all."""

    def __init__(self, app: ASGIApp, map_style_url: str = "") -> None:
        self.app = app
        self.policies = {"/map": map_policy(map_style_url), "/docs": DOCS_POLICY}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        policy = self.policies.get(path.rstrip("/") or "/", DEFAULT_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.lower().startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", policy.encode()))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def docs_router(openapi_url: str = "/openapi.json") -> APIRouter:
    """``/docs``: Swagger UI from ``/map/static/swagger`` (built by ``make web``); ``/redoc`` points to it."""
    router = APIRouter()

    @router.get("/docs", include_in_schema=False, name="swagger_ui_html")
    def swagger_ui_html(request: Request) -> HTMLResponse:
        if not (WEB_DIST / "swagger" / "swagger-ui-bundle.js").exists():
            raise Unavailable("the Swagger UI bundle is not built; run `make web`")
        root = request.scope.get("root_path", "").rstrip("/")
        static = html.escape(f"{root}/map/static/swagger", quote=True)
        spec = html.escape(f"{root}{openapi_url}", quote=True)
        page = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>terrawatch API - Swagger UI</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi="{spec}"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script src="{static}/docs.js"></script>
</body>
</html>
"""
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @router.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> RedirectResponse:
        """ReDoc loaded from a CDN; the local Swagger UI instead."""
        return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + "/docs", status_code=307)

    return router
