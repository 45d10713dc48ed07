"""The failed-auth throttle counts failures per stored key id as well as per address (issue 25 finding 8):
a stranger's bad keys from a shared address lock out neither a valid key nor its owner's typo."""

from __future__ import annotations

import secrets

import pytest

from terrawatch.api import errors
from terrawatch.service import keys as key_service
from terrawatch.api.security import AuthFailureLimiter, authenticate
from terrawatch.service.keys import _digest

LIMIT = 5
ADDRESS = "10.0.0.7"  # everyone behind one proxy


@pytest.fixture
def keys(monkeypatch):
    """Two stored keys (alice valid, bob revoked) in a fake key table; returns alice's full key."""
    rows = {}
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    rows["aaaaaaaaaaaa"] = {"id": "aaaaaaaaaaaa", "name": "alice", "role": "viewer", "salt": salt,
                            "key_hash": _digest(salt, secret), "revoked_at": None}
    rows["bbbbbbbbbbbb"] = {**rows["aaaaaaaaaaaa"], "id": "bbbbbbbbbbbb", "name": "bob", "revoked_at": "2026-01-01"}

    def lookup(engine, key_id, check):
        row = rows.get(key_id)
        return dict(row) if row is not None and check(row) else None

    monkeypatch.setattr(key_service.key_store, "lookup_and_touch", lookup)
    return f"tw_aaaaaaaaaaaa_{secret}"


def _status(lim, presented, client=ADDRESS) -> int:
    try:
        authenticate(None, lim, presented, client)
        return 200
    except errors.RateLimited:
        return 429
    except errors.Unauthenticated:
        return 401


def stranger(i: int) -> str:
    return f"tw_{i:012x}_{'x' * 43}"


def test_strangers_bad_keys_lock_out_neither_a_valid_key_nor_its_owners_typo(keys):
    lim = AuthFailureLimiter(LIMIT)
    statuses = [_status(lim, stranger(i)) for i in range(LIMIT + 5)] + [_status(lim, "garbage")]
    assert statuses == [401] * LIMIT + [429] * 6  # unknown ids and malformed keys: per address
    assert _status(lim, keys) == 200  # the valid key
    typo = keys[:-3] + ("abc" if not keys.endswith("abc") else "xyz")
    assert _status(lim, typo) == 401  # alice's typo in her secret: her key id's bucket, not the address's
    assert _status(lim, stranger(99), client="10.0.0.8") == 401  # another address is not affected


def test_guessing_one_keys_secret_is_throttled_per_key_from_every_address(keys):
    lim = AuthFailureLimiter(LIMIT)
    wrong = "tw_aaaaaaaaaaaa_" + "y" * 43
    statuses = [_status(lim, wrong, client=f"198.51.100.{i}") for i in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429] * 2  # rotating addresses does not help
    assert _status(lim, keys, client="198.51.100.1") == 200  # the valid key is never throttled
    assert _status(lim, "tw_bbbbbbbbbbbb_" + "y" * 43) == 401  # another key's bucket (revoked bob)
    assert _status(lim, stranger(1)) == 401  # the address bucket is untouched by per-key failures


def test_buckets():
    assert AuthFailureLimiter.bucket("10.0.0.1") == "addr:10.0.0.1"
    assert AuthFailureLimiter.bucket("10.0.0.1", "aaaaaaaaaaaa") == "key:aaaaaaaaaaaa"
    lim = AuthFailureLimiter(1)
    lim.failed("10.0.0.1", "aaaaaaaaaaaa")
    with pytest.raises(errors.RateLimited, match="for this key"):
        lim.check("10.0.0.2", "aaaaaaaaaaaa")
    lim.check("10.0.0.1")
