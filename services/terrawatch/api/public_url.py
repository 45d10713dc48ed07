"""Absolute links come from configuration, never from the client's ``Host`` header (issue 25 finding 7).

Every absolute URL the API writes (TileJSON tile templates, STAC and OGC API links, the landing page)
is built by Starlette from the request's ``Host`` header, scheme and ``root_path``. This outermost
ASGI middleware replaces them before any route runs:

1. ``TERRAWATCH_API_PUBLIC_URL`` set (e.g. ``https://terrawatch.agency.example/api``): its scheme,
   host and path prefix (as ``root_path``; the proxy forwards the path with the prefix or without it);
2. else, from a peer in ``TERRAWATCH_API_TRUSTED_PROXIES``: its ``X-Forwarded-Host`` (when it is a
   plain ``host[:port]``; the scheme comes from ``X-Forwarded-Proto`` via uvicorn's ProxyHeadersMiddleware);
3. else the address the server listens on (``scope["server"]``, e.g. ``http://127.0.0.1:18080`` for
   ``terrawatch serve``); a ``Host`` of ``localhost``, ``127.0.0.1`` or ``[::1]`` with the server's own
   port is kept (the same server under another loopback name: the map's same-origin checks hold).

A request with ``Host: evil.example`` therefore gets links on the configured or listening address.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")


# Names of this machine a browser may use for a server on loopback; a Host header naming one of them with
# the server's own port is kept (the map at http://localhost:PORT/map loads its tiles from the same origin).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def parse_public_url(text: str) -> tuple[str, str, str] | None:
    """``(scheme, host[:port], path prefix)`` of ``TERRAWATCH_API_PUBLIC_URL``, None when empty; ValueError if malformed."""
    text = (text or "").strip()
    if not text:
        return None
    u = urlsplit(text)
    if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment or "@" in u.netloc \
            or not _HOST.match(u.netloc):
        raise ValueError(f"TERRAWATCH_API_PUBLIC_URL must be http(s)://host[:port][/prefix], got {text[:100]!r}")
    return u.scheme, u.netloc, u.path.rstrip("/")


def _networks(text: str) -> list:
    out = []
    for item in (x.strip() for x in (text or "").split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # a host name: uvicorn's ProxyHeadersMiddleware matches it literally; so do we
    return out


class PublicOrigin:
    def __init__(self, app: ASGIApp, public_url: str = "", trusted_proxies: str = "") -> None:
        self.app = app
        self.public = parse_public_url(public_url)
        self.proxies = _networks(trusted_proxies)
        self.proxy_names = {x.strip() for x in (trusted_proxies or "").split(",") if x.strip()}
        self.warned = False

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not (self.proxies or self.proxy_names):
            return False
        if "*" in self.proxy_names or client[0] in self.proxy_names:
            return True
        try:
            ip = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(ip in n for n in self.proxies)

    def origin(self, scope: Scope, headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str, str | None]:
        """``(scheme or None to keep, host, root_path or None to keep)`` for this request."""
        if self.public is not None:
            scheme, host, prefix = self.public
            return scheme, host, prefix
        if self._trusted(scope):
            fwd = next((v.decode("latin-1") for k, v in headers if k == b"x-forwarded-host"), "")
            fwd = fwd.split(",")[0].strip()
            if fwd and _HOST.match(fwd):
                return None, fwd, None
        server = scope.get("server")
        if server:
            host, port = server[0], server[1]
            if host in ("0.0.0.0", "::") and not self.warned:
                self.warned = True
                log.warning("TERRAWATCH_API_PUBLIC_URL is not set and the API listens on %s: absolute links "
                            "(TileJSON, STAC, OGC) name that address; set the public URL", host)
            given = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
            if given in {f"{name}:{port}" for name in LOOPBACK_NAMES}:  # localhost vs 127.0.0.1: same server
                return None, given, None
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scope.get("scheme", "http"))
            return None, host if port is None or port == default else f"{host}:{port}", None
        return None, "localhost", None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        scheme, host, prefix = self.origin(scope, headers)
        scope = dict(scope)
        # With a configured URL the scheme is configuration too: uvicorn's ProxyHeadersMiddleware (inside
        # this one) must not replace it from X-Forwarded-Proto.
        drop = {b"host", b"x-forwarded-proto"} if scheme is not None else {b"host"}
        scope["headers"] = [(k, v) for k, v in headers if k not in drop] + [(b"host", host.encode("latin-1"))]
        if scheme is not None:
            scope["scheme"] = scheme if scope["type"] == "http" else {"http": "ws", "https": "wss"}[scheme]
        if prefix:
            scope["root_path"] = prefix
        await self.app(scope, receive, send)
