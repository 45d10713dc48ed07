"""RED metrics of the API: ``terrawatch_http_requests_total`` and ``terrawatch_http_request_duration_seconds``
by route template (``/ops/dlq/{partition}/{offset}``, never the raw path), method and status class.

Label values are bounded: the route is a template of the app's own routes (a request no route matches,
e.g. a scanner's random path, is ``unmatched``), the method one of ``HTTP_METHODS`` or ``other``, the status
class ``1xx``..``5xx``. Requests refused before routing (401, 413, 429 by the access guard) are labelled with
the route they were addressed to. A pure ASGI middleware: it does not buffer bodies or touch streaming.
"""

from __future__ import annotations

import time

from starlette.routing import Match, Mount

from terrawatch.observability.metrics import HTTP_METHODS, HTTP_REQUESTS, HTTP_SECONDS, HTTP_UNMATCHED_ROUTE


def route_template(app, scope: dict) -> str:
    """The template of the route that served (or would serve) ``scope``; ``unmatched`` if none."""
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    if path:
        return path
    return _match(getattr(app, "routes", ()), scope, 0) or HTTP_UNMATCHED_ROUTE


def _match(routes, scope: dict, depth: int) -> str | None:
    """Walk the routes (and routers included in them) for one matching ``scope``: its template."""
    for r in routes:
        inner = getattr(r, "original_router", None)  # FastAPI's included router: its routes carry full paths
        if inner is not None and depth < 4:
            found = _match(getattr(inner, "routes", ()), scope, depth + 1)
            if found:
                return found
            continue
        path = getattr(r, "path", None)
        if not path:
            continue
        if isinstance(r, Mount):  # after routing, root_path names the mount: judge by the raw path
            if scope.get("path", "").startswith(path + "/"):
                return f"{path}/{{path}}"
            continue
        try:
            match, _ = r.matches(dict(scope))
        except Exception:  # noqa: BLE001 - a route that cannot judge this scope does not match it
            continue
        if match != Match.NONE:
            return path
    return None


def route_methods(routes, depth: int = 0) -> list[tuple[str, set[str]]]:
    """(template, methods) of every route, including those of included routers; mounts as ``{path}``."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None and depth < 4:
            out += route_methods(getattr(inner, "routes", ()), depth + 1)
            continue
        path = getattr(r, "path", None)
        if not path:
            continue
        if isinstance(r, Mount):
            out.append((f"{path}/{{path}}", {"GET"}))
        else:
            out.append((path, set(getattr(r, "methods", None) or ())))
    return out


class HttpMetrics:
    """ASGI middleware around the whole app (outermost), so guard refusals and errors are counted too."""

    def __init__(self, app, router_app=None) -> None:
        self.app = app
        self.router_app = router_app  # the FastAPI app whose routes give the templates
        self._primed = False

    def _prime(self) -> None:
        """Export every route's 5xx counter at 0 from the first request on, so the 5xx ratio (alert
        TerrawatchAPIServerErrors) is 0, not absent, while nothing fails; the other classes appear when used."""
        self._primed = True
        for path, methods in route_methods(getattr(self.router_app, "routes", ())):
            for m in methods:
                if m in HTTP_METHODS:
                    HTTP_REQUESTS.labels(path, m, "5xx")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        if not self._primed:
            self._prime()
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "")
            labels = (route_template(self.router_app, scope), method if method in HTTP_METHODS else "other",
                      f"{min(max(status['code'] // 100, 1), 5)}xx")
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_SECONDS.labels(*labels).observe(time.perf_counter() - t0)
