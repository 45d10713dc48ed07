"""ASGI middleware: the route's role (``api/roles.py``) is checked and the body size bounded
*before* any route reads or parses the body.

* A ``Content-Length`` above the route's limit is answered 413 at once; a chunked body is counted
  as it streams and cut off with 413 at the limit (``TERRAWATCH_API_MAX_BODY_BYTES``, 1 MiB by
  default; ``..._MAX_UPLOAD_BYTES`` for :data:`~terrawatch.api.roles.UPLOAD_ROUTES`).
* Authentication happens here for every route that needs a key: an anonymous 50 MB POST to an
  operator route is a 401 without reading a byte of it.
* Failed authentications are throttled per stored key id (a wrong secret) and otherwise per client
  address (the TCP peer, or the address a trusted proxy forwarded: ``TERRAWATCH_API_TRUSTED_PROXIES``);
  a *valid* key is never throttled, so a stranger sending bad keys from a shared address locks out
  neither real users nor their typos (``api/security.py``).
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from terrawatch.api import roles
from terrawatch.api.errors import (
    DATABASE_UNAVAILABLE, Forbidden, PayloadTooLarge, RateLimited, TerrawatchError, Unauthenticated, Unavailable,
    status_for,
)
from terrawatch.api.security import Role, authenticate, presented_key


def _error_response(exc: TerrawatchError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status = status_for(exc)
    headers = [(b"content-type", b"application/json")]
    if isinstance(exc, Unauthenticated):
        headers.append((b"www-authenticate", b'Bearer realm="terrawatch", ApiKey header="X-API-Key"'))
    if isinstance(exc, RateLimited):
        headers.append((b"retry-after", str(exc.retry_after_s).encode()))
    if isinstance(exc, Unavailable):
        headers.append((b"retry-after", b"5"))
    if isinstance(exc, PayloadTooLarge):
        headers.append((b"connection", b"close"))
    body = json.dumps({"code": exc.code, "description": exc.reason}).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body


async def _send_error(send: Send, exc: TerrawatchError) -> None:
    status, headers, body = _error_response(exc)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _route_path(scope: Scope) -> str:
    """The path the router matches: without ``root_path`` when the proxy kept the public URL's prefix."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


class AccessGuard:
    def __init__(self, app: ASGIApp, deps) -> None:
        self.app = app
        self.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":  # CORS preflight: no body, no key
            await self.app(scope, receive, send)
            return
        s = self.deps.settings
        method, path = scope["method"], _route_path(scope)
        found = roles.lookup(method, path)
        upload = found is not None and (method, found[0]) in roles.UPLOAD_ROUTES
        limit = s.api_max_body_bytes if not upload else max(s.api_max_upload_bytes, s.api_max_body_bytes)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, PayloadTooLarge("invalid Content-Length"))
                return
            if int(declared) > limit:
                await _send_error(send, PayloadTooLarge(f"request body of {declared} bytes; at most {limit} allowed"))
                return
        if found is not None:
            role = roles.effective(found[1], s.api_public_read)
            try:
                principal = await self._authorise(scope, headers, role)
            except TerrawatchError as exc:
                await _send_error(send, exc)
                return
            except DATABASE_UNAVAILABLE:  # keys live in PostGIS: an outage is a 503, not a 500
                await _send_error(send, Unavailable("the database is unavailable; retry shortly"))
                return
            if principal is not None:
                scope.setdefault("state", {})["principal"] = principal
        await self._call_limited(scope, receive, send, limit)

    async def _authorise(self, scope: Scope, headers: dict[str, str], role: str):
        if role == roles.NONE:
            return None
        presented = presented_key(headers.get("x-api-key"), headers.get("authorization"))
        if presented is None:
            raise Unauthenticated(f"an API key with role {role} or higher is required "
                                  "(header X-API-Key or Authorization: Bearer)")
        return await self._verify(scope, presented, Role(role))

    async def _verify(self, scope: Scope, presented: str, needed: Role):
        client = scope.get("client")
        address = client[0] if client else "unknown"
        principal = await run_in_threadpool(authenticate, self.deps.engine, self.deps.limiter, presented, address)
        if not principal.allows(needed):
            raise Forbidden(f"role {principal.role.value} may not do this; {needed.value} or higher required")
        return principal

    async def _call_limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        too_large = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    if not started:
                        await _send_error(send, PayloadTooLarge(f"request body over {limit} bytes"))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the 413 has been sent; the route's own answer is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
