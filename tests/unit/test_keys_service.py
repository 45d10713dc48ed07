"""service/keys.py, the one key-management use case of /ops/keys and terrawatch keys, on fakes."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from terrawatch.domain.errors import InvalidInput, NotFound
from terrawatch.service import keys


class FakeEngine:
    @contextmanager
    def begin(self):
        yield "conn"


@pytest.fixture
def stored(monkeypatch):
    active = {"0123456789ab"}
    inserted, audited = [], []
    monkeypatch.setattr(keys.key_store, "revoke", lambda conn, key_id: key_id in active and not active.remove(key_id))
    monkeypatch.setattr(keys.key_store, "insert_key", lambda conn, *row: inserted.append(row))
    return inserted, audited


def test_revoke_an_active_key_audits_it_once(stored):
    _, audited = stored
    keys.revoke_key(FakeEngine(), "0123456789ab", audit=lambda conn, target, details: audited.append(target))
    assert audited == ["0123456789ab"]
    with pytest.raises(keys.KeyNotFound, match="no active key '0123456789ab'"):
        keys.revoke_key(FakeEngine(), "0123456789ab", audit=lambda *a: audited.append(a))
    assert audited == ["0123456789ab"] and issubclass(keys.KeyNotFound, NotFound)


def test_a_malformed_key_id_is_invalid_input(stored):
    with pytest.raises(InvalidInput, match="12 hex characters"):
        keys.revoke_key(FakeEngine(), "../etc")


def test_create_checks_role_and_name_and_returns_the_key_once(stored):
    inserted, _ = stored
    key_id, key = keys.create_key(FakeEngine(), "ci", "operator")
    assert key.startswith(f"tw_{key_id}_") and keys.KEY_RE.match(key)
    assert inserted[0][:3] == (key_id, "ci", "operator") and key.split("_", 2)[2].encode() not in inserted[0][3:5]
    with pytest.raises(InvalidInput, match="role must be one of viewer, operator, admin"):
        keys.create_key(FakeEngine(), "ci", "root")
    with pytest.raises(InvalidInput, match="1-128 characters"):
        keys.create_key(FakeEngine(), "", "viewer")
