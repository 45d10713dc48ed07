"""The DLQ runbook actions (service/dlq.DlqService: list, show, re-drive, purge, depth) and their one rule for
the API and the CLI: how many ids a call names, what missing ids do, the list limit, permanent entries, the
audit row in the marking transaction. On in-memory fakes of the DlqLog and DlqStates ports
(tests/unit/fakes.py): no Kafka, no PostGIS."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from terrawatch.ingest.dlq import DlqRecord, DlqSource, KafkaUnavailable
from terrawatch.service import dlq
from terrawatch.settings import Settings
from tests.unit.fakes import FakeDlqLog, FakeDlqStates

S = Settings()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def rec(kind: str = "transient", payload: str | None = "{}", key: str = "S1A_X", redrives: int = 0) -> DlqRecord:
    return DlqRecord(reason="r", error_code="transient" if kind == "transient" else "invalid_event", kind=kind,
                     attempts=1, failed_at=T0, payload=payload, redrives=redrives,
                     source=DlqSource(topic=S.scenes_topic, partition=0, offset=5, key=key))


def make(records=None, rows=None, refuse=None) -> tuple[dlq.DlqService, FakeDlqLog, FakeDlqStates]:
    log, states = FakeDlqLog(records, refuse=refuse), FakeDlqStates(rows)
    return dlq.DlqService(S, log, states), log, states


def audit_into(conn, target, details) -> None:
    conn.append((target, details))


@pytest.fixture
def two():
    """A DLQ holding 0/1 (pending) and 0/2 (redriven)."""
    return make({0: {1: rec(), 2: rec()}}, {(0, 2): {"state": "redriven", "redrives": 1, "redriven_at": T0,
                                                      "redriven_by": "op", "source_key": "S1A_X"}})


def test_some_ids_missing_acts_on_the_others_and_lists_the_missing(two):
    svc, _, states = two
    out = svc.purge(["0/1", "0/2", "0/9"], "op", audit_into)
    assert out["purged"] == ["0/1"] and out["missing"] == ["0/9"]
    assert out["skipped"] == [{"id": "0/2", "state": "redriven"}] and out["remaining"] == 0
    assert states.rows[(0, 1)]["state"] == "purged" and states.rows[(0, 1)]["purged_by"] == "op"
    assert states.audited == [("0/1", {"ids": ["0/1"], "missing": ["0/9"],
                                        "skipped": [{"id": "0/2", "state": "redriven"}]})]


def test_no_named_id_exists_is_not_found_and_nothing_changes(two):
    svc, log, states = two
    with pytest.raises(dlq.EntryNotFound, match="0/8, 0/9"):
        svc.purge(["0/8", "0/9"], "op")
    with pytest.raises(dlq.EntryNotFound):
        svc.redrive(["0/8"], "op")
    with pytest.raises(dlq.EntryNotFound, match="0/8"):
        svc.get_entry("0/8")
    assert states.transactions == {"committed": 0, "rolled_back": 0} and log.republished == []


@pytest.mark.parametrize("ids, match", [([], "at least one"),
                                        ([f"0/{i}" for i in range(dlq.LIMIT + 1)], "at most 1000")])
def test_empty_or_too_many_ids_are_refused_naming_ids(two, ids, match):
    svc, _, states = two
    with pytest.raises(dlq.BadEntryId, match=f"ids: .*{match}"):
        svc.purge(ids, "op")
    assert states.transactions["committed"] == 0


@pytest.mark.parametrize("bad", ["x", "0-1", "-1/2", "0/"])
def test_an_id_that_is_not_partition_offset_is_refused(two, bad):
    with pytest.raises(dlq.BadEntryId, match="partition/offset|non-negative"):
        two[0].purge([bad], "op")


def test_a_thousand_ids_are_accepted(two):
    out = two[0].purge(["0/1"] + [f"1/{i}" for i in range(dlq.LIMIT - 1)], "op")
    assert out["purged"] == ["0/1"] and len(out["missing"]) == dlq.LIMIT - 1


@pytest.mark.parametrize("limit", [0, dlq.LIMIT + 1])
def test_list_limit_is_one_to_limit(limit):
    svc, _, _ = make()
    with pytest.raises(dlq.BadEntryId, match="limit must be between 1 and 1000"):
        svc.list_entries("pending", limit)
    with pytest.raises(dlq.BadEntryId, match="state must be one of"):
        svc.list_entries("done", 10)


def test_list_by_state_and_the_depth_count_only_retained_records():
    svc, _, _ = make({0: {o: rec() for o in range(3, 8)}, 1: {0: rec()}},
                     {(0, 3): {"state": "purged"}, (0, 4): {"state": "redriven"}, (0, 1): {"state": "purged"}})
    svc.log.low = {0: 3}  # 0/1 left the topic (retention): its mark no longer counts
    assert [e.id for e in svc.list_entries()] == ["0/5", "0/6", "0/7", "1/0"]
    assert [e.id for e in svc.list_entries(limit=2)] == ["0/5", "0/6"]
    assert [e.id for e in svc.list_entries("purged")] == ["0/3"]
    assert [e.id for e in svc.list_entries("redriven")] == ["0/4"]
    assert [(e.id, e.state) for e in svc.list_entries("all", 3)] == [("0/3", "purged"), ("0/4", "redriven"),
                                                                    ("0/5", "pending")]
    assert svc.counts() == {"pending": 4, "redriven": 1, "purged": 1, "retained": 6}
    assert svc.depth() == 4


def test_show_gives_the_earlier_redriven_entries_of_the_same_event():
    later = T0 + timedelta(hours=1)
    svc, _, _ = make({0: {1: rec(key="K"), 2: rec(key="K", redrives=1).model_copy(update={"failed_at": later})}},
                     {(0, 1): {"state": "redriven", "redriven_at": T0, "redriven_by": "op", "source_key": "K",
                               "error_code": "transient", "kind": "transient", "redrives": 1}})
    e = svc.get_entry("0/2")
    assert e.as_dict()["predecessor"] == "0/1"
    assert e.history == [{"id": "0/1", "error_code": "transient", "kind": "transient",
                          "redriven_at": T0.isoformat(), "redriven_by": "op"}]
    assert svc.get_entry("0/1").history == []  # never re-driven before it failed


def test_redrive_republishes_marks_and_audits_in_one_transaction(two):
    svc, log, states = two
    out = svc.redrive(["0/1"], "op", audit_into)
    assert out["redriven"] == ["0/1"] and out["topic"] == S.scenes_topic and out["by"] == "op"
    assert log.republished == [log.records[0][1]]
    assert states.rows[(0, 1)]["state"] == "redriven" and states.rows[(0, 1)]["redrives"] == 1
    assert [t for t, _ in states.audited] == ["0/1"] and out["remaining"] == 0


def test_a_broker_that_refuses_the_redrive_leaves_nothing_marked_or_audited():
    svc, log, states = make({0: {1: rec()}}, refuse=KafkaUnavailable("not acknowledged"))
    with pytest.raises(KafkaUnavailable):
        svc.redrive(["0/1"], "op", audit_into)
    assert states.rows == {} and states.audited == [] and states.transactions["rolled_back"] == 1


def test_permanent_entries_are_refused_by_id_skipped_in_all_and_redriven_with_force():
    svc, log, states = make({0: {1: rec("permanent"), 2: rec(), 3: rec(payload=None)}})
    with pytest.raises(dlq.PermanentEntry, match="0/1 is permanent .*force"):
        svc.redrive(["0/1", "0/2"], "op")
    assert log.republished == [] and states.rows == {}
    out = svc.redrive(None, "op", audit_into)
    assert out["redriven"] == ["0/2"]
    assert out["skipped"] == [{"id": "0/1", "state": "permanent"}, {"id": "0/3", "state": "no_payload"}]
    assert states.audited[-1][0] == "all"
    out = svc.redrive(["0/1"], "op", audit_into, force=True)
    assert out["redriven"] == ["0/1"] and states.audited[-1][1]["force"] is True


def test_purge_all_acts_on_every_pending_entry_and_republishes_nothing(two):
    svc, log, states = two
    out = svc.purge(None, "op", audit_into)
    assert out["purged"] == ["0/1"] and out["missing"] == [] and log.republished == []
    assert states.audited == [("all", {"ids": ["0/1"], "missing": [], "skipped": []})]
    assert svc.list_entries() == []
