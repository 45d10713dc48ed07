"""The DLQ use cases' one rule for the API and the CLI (service/dlq.py): how many ids a call names, what
missing ids do, the list limit. On fakes: no Kafka, no PostGIS."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from terrawatch.ingest.dlq import DlqRecord
from terrawatch.service import dlq
from terrawatch.settings import Settings

S = Settings()


def _entry(entry_id: str, state: str = "pending") -> dlq.DlqEntry:
    part, off = dlq.parse_id(entry_id)
    rec = DlqRecord(reason="r", error_code="unreadable_asset", kind="transient", attempts=1,
                    failed_at=datetime(2026, 1, 1, tzinfo=timezone.utc), payload="{}")
    return dlq.DlqEntry(part, off, rec, state=state)


@pytest.fixture
def stored(monkeypatch):
    """A fake DLQ holding 0/1 (pending) and 0/2 (redriven); records what was marked."""
    held = {"0/1": _entry("0/1"), "0/2": _entry("0/2", "redriven")}
    marked: list[tuple[str, list[str]]] = []

    def get_entries(settings, engine, ids):
        return [held[i] for i in ids if i in held], [i for i in ids if i not in held]

    def mark(settings, engine, entries, state, actor, ids, missing, skipped, audit, then=None):
        marked.append((state, [e.id for e in entries]))
        return datetime.now(timezone.utc)

    monkeypatch.setattr(dlq, "get_entries", get_entries)
    monkeypatch.setattr(dlq, "_mark", mark)
    monkeypatch.setattr(dlq, "depth", lambda settings, engine: 7)
    return marked


def test_some_ids_missing_acts_on_the_others_and_lists_the_missing(stored):
    out = dlq.purge(S, None, ["0/1", "0/2", "0/9"], "op")
    assert out["purged"] == ["0/1"] and out["missing"] == ["0/9"]
    assert out["skipped"] == [{"id": "0/2", "state": "redriven"}] and out["remaining"] == 7
    assert stored == [("purged", ["0/1"])]


def test_no_named_id_exists_is_not_found_and_nothing_changes(stored):
    with pytest.raises(dlq.EntryNotFound, match="0/8, 0/9"):
        dlq.purge(S, None, ["0/8", "0/9"], "op")
    with pytest.raises(dlq.EntryNotFound):
        dlq.redrive(S, None, object(), ["0/8"], "op")
    assert stored == []


@pytest.mark.parametrize("ids, match", [([], "at least one"), ([f"0/{i}" for i in range(dlq.LIMIT + 1)], "at most 1000")])
def test_empty_or_too_many_ids_are_refused_naming_ids(stored, ids, match):
    with pytest.raises(dlq.BadEntryId, match=f"ids: .*{match}"):
        dlq.purge(S, None, ids, "op")
    assert stored == []


def test_a_thousand_ids_are_accepted(stored):
    out = dlq.purge(S, None, ["0/1"] + [f"1/{i}" for i in range(dlq.LIMIT - 1)], "op")
    assert out["purged"] == ["0/1"] and len(out["missing"]) == dlq.LIMIT - 1


@pytest.mark.parametrize("limit", [0, dlq.LIMIT + 1])
def test_list_limit_is_one_to_limit(limit):
    with pytest.raises(dlq.BadEntryId, match="limit must be between 1 and 1000"):
        dlq.list_entries(S, None, "pending", limit)
