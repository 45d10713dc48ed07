"""HTTP authentication: the API key a request presents, who it names, and the failure throttle.

Keys themselves (format, roles, hashing, creation, revocation, verification) are ``service/keys.py``,
shared with ``terrawatch keys``; this module only reads a key off the request and asks :func:`identify`.
Failed authentications are rate limited with a moving window (``limits``), counted where they belong:

* a key whose id names a stored key (wrong secret, revoked) counts against **that key id**,
  from every address: its owner's typo gives 401, not 429, however many bad keys strangers
  send from the same address, and guessing one key's secret is throttled wherever it comes from;
* any other failure (an unknown id, a malformed key) counts against the **client address**
  (the TCP peer unless a trusted proxy, ``TERRAWATCH_API_TRUSTED_PROXIES``, forwarded it).

Past the limit, further *failing* attempts in that bucket get HTTP 429 until the window moves
on; a valid key is never throttled (only failures are checked).
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from terrawatch.api.errors import Forbidden, RateLimited, Unauthenticated
from terrawatch.service.keys import ANONYMOUS_VIEWER, Principal, Role, identify
from terrawatch.store.db import Engine

__all__ = ["ANONYMOUS_VIEWER", "AuthFailureLimiter", "Principal", "Role", "authenticate", "presented_key", "require"]


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request presents: ``X-API-Key``, else ``Authorization: Bearer <key>``."""
    if x_api_key:
        return x_api_key
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def authenticate(engine: Engine, limiter: "AuthFailureLimiter", presented: str, client: str) -> Principal:
    """The principal of a presented key; 401 if it is not valid, 429 once its bucket failed too often.

    A valid key is never throttled: only failures count, and only failing requests are refused past
    the limit. A wrong secret for a stored key id counts against that key id; other failures against
    ``client`` (:class:`AuthFailureLimiter`), so bad keys sent from a shared address lock out neither
    a real user's key nor a typo in its secret.
    """
    principal, key_id = identify(engine, presented)
    if principal is None:
        limiter.check(client, key_id)
        limiter.failed(client, key_id)
        raise Unauthenticated("invalid or revoked API key")
    return principal


class AuthFailureLimiter:
    """Counts failed authentications (moving one-minute window) per stored key id, else per client address."""

    def __init__(self, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(max(1, per_minute))
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    @staticmethod
    def bucket(client: str, key_id: str | None = None) -> str:
        """``key:<id>`` for a failure on a stored key id, ``addr:<client>`` for any other failure."""
        return f"key:{key_id}" if key_id else f"addr:{client}"

    def check(self, client: str, key_id: str | None = None) -> None:
        bucket = self.bucket(client, key_id)
        if not self.limiter.test(self.item, bucket):
            import time

            reset, _ = self.limiter.get_window_stats(self.item, bucket)
            what = "for this key" if key_id else "from this address"
            raise RateLimited(f"too many failed authentications {what}; retry later",
                              retry_after_s=max(1, int(reset - time.time())))

    def failed(self, client: str, key_id: str | None = None) -> None:
        self.limiter.hit(self.item, self.bucket(client, key_id))


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="An API key `tw_<id>_<secret>` (terrawatch keys create).")
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")


def require(role: Role, engine_getter, limiter: AuthFailureLimiter, public: bool = False):
    """A FastAPI dependency: the caller must hold at least ``role``; it returns the :class:`Principal`.

    The role is declared as the scope of the security requirement in the OpenAPI
    document (OpenAPI 3.1 allows role names there), so the schema says which role
    each operation needs. ``public`` (viewer only) lets anonymous callers read
    (settings.api_public_read); the requirement then lists no role.
    """
    public = public and role is Role.VIEWER
    scopes = [] if public else [role.value]

    def dependency(
        request: Request,
        api_key: str | None = Security(api_key_header, scopes=scopes),
        token: HTTPAuthorizationCredentials | None = Security(bearer, scopes=scopes),
    ) -> Principal:
        # AccessGuard (api/guard.py) has usually authenticated the request before its body was read.
        principal = getattr(request.state, "principal", None)
        presented = api_key or (token.credentials if token else None)
        if principal is None:
            if presented is None:
                if public:
                    return ANONYMOUS_VIEWER
                raise Unauthenticated(f"an API key with role {role.value} or higher is required "
                                      "(header X-API-Key or Authorization: Bearer)")
            client = request.client.host if request.client else "unknown"
            principal = authenticate(engine_getter(), limiter, presented, client)
        if not principal.allows(role):
            raise Forbidden(f"role {principal.role.value} may not do this; {role.value} or higher required")
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role.value}"
    dependency.role = role
    dependency.public = public
    return dependency
