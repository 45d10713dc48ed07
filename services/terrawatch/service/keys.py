"""API keys: roles, creation, listing, revocation and verification (use cases of ``/ops/keys`` and
``terrawatch keys``; HTTP authentication in ``api/security.py`` verifies keys through :func:`identify`).

A key looks like ``tw_<id>_<secret>``: ``id`` (12 hex) is public and names the row; only
``sha256(salt || secret)`` with a random 16-byte per-key salt is stored. The secret carries 256 random
bits, so a fast hash is enough (slow password hashes exist for low-entropy secrets); comparison is
constant-time. Roles are ordered: ``viewer`` (read layers) < ``operator`` (ops actions) < ``admin``
(subscriptions, keys).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import Enum

from terrawatch.domain.errors import InvalidInput, NotFound
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


KEY_RE = re.compile(r"^tw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,128})$")
KEY_ID_PATTERN = r"^[0-9a-f]{12}$"


class KeyNotFound(NotFound):
    """No active key with that id (revocation)."""


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


def parse_role(role: Role | str) -> Role:
    """``role`` as a :class:`Role`; InvalidInput naming the roles otherwise."""
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}, not {str(role)[:40]!r}") from None


def create_key(engine: Engine, name: str, role: Role | str, created_by: str = "cli",
               audit: Audit | None = None) -> tuple[str, str]:
    """Store a new key and return ``(key_id, full_key)``; the full key is not recoverable later.

    ``audit(conn, key_id, details)`` records the creation in the same transaction."""
    role = parse_role(role)
    if not name or len(name) > 128:
        raise InvalidInput("key name must be 1-128 characters")
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
    with engine.begin() as conn:
        key_store.insert_key(conn, key_id, name, role.value, salt, _digest(salt, secret), created_by)
        if audit is not None:
            audit(conn, key_id, {"name": name, "role": role.value})
    return key_id, f"tw_{key_id}_{secret}"


def revoke_key(engine: Engine, key_id: str, audit: Audit | None = None) -> None:
    """Revoke an active key; :class:`KeyNotFound` if there is none. ``audit`` records it in the same
    transaction."""
    if not re.match(KEY_ID_PATTERN, key_id):
        raise InvalidInput(f"a key id is 12 hex characters, not {key_id[:40]!r}")
    with engine.begin() as conn:
        done = key_store.revoke(conn, key_id)
        if done and audit is not None:
            audit(conn, key_id, {})
    if not done:
        raise KeyNotFound(f"no active key {key_id!r}")


def list_keys(engine: Engine) -> list[dict]:
    """Every key (id, name, role, created/used/revoked times; never a secret or hash)."""
    return key_store.list_keys(engine)


def identify(engine: Engine, presented: str) -> tuple[Principal | None, str | None]:
    """``(principal, None)`` for a valid key; ``(None, key_id)`` when the id names a stored key but the
    secret is wrong or the key revoked; ``(None, None)`` for an unknown id or a malformed key."""
    m = KEY_RE.match(presented.strip())
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
