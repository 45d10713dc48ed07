"""API keys with roles, and the authentication dependency.

A key looks like ``tw_<id>_<secret>``: ``id`` (12 hex) is public and names the
row; only ``sha256(salt || secret)`` with a random 16-byte per-key salt is
stored. The secret carries 256 random bits, so a fast hash is enough (slow
password hashes exist for low-entropy secrets); comparison is constant-time.

Roles are ordered: ``viewer`` (read layers) < ``operator`` (ops actions) <
``admin`` (subscriptions, keys). Failed authentications are rate limited with a
moving window (``limits``), counted where they belong (issue 25 finding 8):

* a key whose id names a stored key (wrong secret, revoked) counts against **that key id**,
  from every address: its owner's typo gives 401, not 429, however many bad keys strangers
  send from the same address, and guessing one key's secret is throttled wherever it comes from;
* any other failure (an unknown id, a malformed key) counts against the **client address**
  (the TCP peer unless a trusted proxy, ``TERRAWATCH_API_TRUSTED_PROXIES``, forwarded it).

Past the limit, further *failing* attempts in that bucket get HTTP 429 until the window moves
on; a valid key is never throttled (only failures are checked).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from terrawatch.api.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated
from terrawatch.store import keys as key_store
from terrawatch.store.audit import Audit
from terrawatch.store.db import Engine


class Role(str, Enum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "operator": 1, "admin": 2}[self.value]


_KEY_RE = re.compile(r"^tw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and name, and its role."""

    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.key_id})"

    def allows(self, role: Role) -> bool:
        return self.role.rank >= role.rank


ANONYMOUS_VIEWER = Principal("anonymous", "anonymous", Role.VIEWER)


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def create_key(engine: Engine, name: str, role: Role | str, created_by: str = "cli",
               audit: Audit | None = None) -> tuple[str, str]:
    """Store a new key and return ``(key_id, full_key)``; the full key is not recoverable later.

    ``audit(conn, key_id, details)`` records the creation in the same transaction."""
    role = Role(role)
    if not name or len(name) > 128:
        raise InvalidInput("key name must be 1-128 characters")
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
    with engine.begin() as conn:
        key_store.insert_key(conn, key_id, name, role.value, salt, _digest(salt, secret), created_by)
        if audit is not None:
            audit(conn, key_id, {"name": name, "role": role.value})
    return key_id, f"tw_{key_id}_{secret}"


def revoke_key(engine: Engine, key_id: str, audit: Audit | None = None) -> bool:
    """Revoke an active key (False if there is none); ``audit`` records it in the same transaction."""
    with engine.begin() as conn:
        done = key_store.revoke(conn, key_id)
        if done and audit is not None:
            audit(conn, key_id, {})
    return done


def list_keys(engine: Engine) -> list[dict]:
    return key_store.list_keys(engine)


def identify(engine: Engine, presented: str) -> tuple[Principal | None, str | None]:
    """``(principal, None)`` for a valid key; ``(None, key_id)`` when the id names a stored key but the
    secret is wrong or the key revoked; ``(None, None)`` for an unknown id or a malformed key."""
    m = _KEY_RE.match(presented.strip())
    if not m:
        return None, None
    key_id, secret = m.groups()
    stored = False

    def check(r) -> bool:
        nonlocal stored
        stored = True
        return r["revoked_at"] is None and hmac.compare_digest(bytes(r["key_hash"]), _digest(bytes(r["salt"]), secret))

    row = key_store.lookup_and_touch(engine, key_id, check)
    if row is None:
        return None, key_id if stored else None
    return Principal(key_id=key_id, name=row["name"], role=Role(row["role"])), None


def verify_key(engine: Engine, presented: str) -> Principal | None:
    """The principal for a presented key, or None if it is unknown, revoked or wrong."""
    return identify(engine, presented)[0]


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
