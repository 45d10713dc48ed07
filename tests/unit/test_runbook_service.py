"""The runbook's composition (service/runbook.py, bootstrap.build_runbook): one service per area built once per
process, on one pair of pools and one producer factory, by the API (``ApiDeps.runbook``) and the CLI
(``cli/root.cli_runbook``); the /ops routes and the runbook CLI commands call its methods. On fakes (an engine
whose transactions are lists, a producer): no Kafka, no PostGIS. The actions' rules are tested in
test_runbook_actions.py and test_dlq_rules.py; the real services by tests/integration/test_cli_api_parity.py."""

from __future__ import annotations

import pickle
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from terrawatch.service import dlq, runbook, stream_ops
from terrawatch.service.bootstrap import build_runbook
from terrawatch.settings import Settings
from tests.unit.fakes import FakeDlqLog, FakeDlqStates, FakeEngine, FakeProducer, audit_into

S = Settings()
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PKG = Path(__file__).resolve().parents[2] / "services" / "terrawatch"


class CountingFactory:
    """A producer factory that counts its calls."""

    def __init__(self) -> None:
        self.calls, self.producer = 0, FakeProducer()

    def __call__(self):
        self.calls += 1
        return self.producer


def test_every_area_shares_the_pools_and_the_producer_factory_given_once():
    write, read, make = FakeEngine(), FakeEngine(), CountingFactory()
    rb = build_runbook(S, write, read_engine=read, producer=make)
    areas = [rb.streams, rb.consumption, rb.status, rb.reprocess, rb.keys, rb.layers, rb.subscriptions,
             rb.deliveries, rb.alerts]
    assert all(a.s is S and a.engine is write and a.read_engine is read and a.producer is make for a in areas)
    assert rb.dlq.log._make_producer is make and rb.dlq.states.engine is write  # re-drives publish with it too
    assert make.calls == 0  # building connects nothing and opens no producer


def test_without_a_read_pool_reads_use_the_write_pool_and_the_producer_is_built_once_on_first_use(monkeypatch):
    from terrawatch.ingest import kafka_io

    built = []
    monkeypatch.setattr(kafka_io, "producer", lambda settings: built.append(settings) or FakeProducer())
    engine = FakeEngine()
    rb = runbook.build(S, engine)
    assert rb.consumption.read_engine is engine and built == []
    first = rb.streams.producer()
    assert rb.streams.producer() is first and rb.reprocess.producer() is first and built == [S]


def test_the_runbook_methods_are_the_use_cases(monkeypatch):
    """The same answers and transactions as the module functions the unit tests of each area call."""
    from terrawatch.store import control

    held: dict = {"S1A_STORED": ({"type": "Feature", "id": "S1A_STORED", "properties": {}}, [])}
    flags: dict = {}
    monkeypatch.setattr(stream_ops.scenes, "stored_item", lambda engine, sid: held.get(sid, (None, [])))
    monkeypatch.setattr(control, "get_flag", lambda engine, key: flags.get(key))
    monkeypatch.setattr(control, "set_flag", lambda conn, key, value, actor: (
        conn.append(("flag", key)), flags.__setitem__(key, {"value": value, "updated_at": T0, "updated_by": actor})))
    engine, make = FakeEngine(), CountingFactory()
    rb = runbook.build(S, engine, producer=make, dlq=dlq.DlqService(S, FakeDlqLog(), FakeDlqStates()))

    with pytest.raises(stream_ops.SceneNotFound, match="S1A_NONE"):
        rb.streams.replay("S1A_NONE")
    out = rb.streams.replay("S1A_STORED", audit=audit_into)
    assert out["published"] == "S1A_STORED" and [k for _, k, _ in make.producer.sent] == [b"S1A_STORED"]
    assert rb.consumption.pause("maintenance", "op", audit_into)["paused"] is True
    assert rb.consumption.show()["reason"] == "maintenance"
    assert rb.consumption.resume("done", "op", audit_into)["paused"] is False
    assert [tx[-1][1] for tx in engine.committed] == ["S1A_STORED", S.consumer_group, S.consumer_group]
    with pytest.raises(dlq.EntryNotFound):
        rb.dlq.get_entry("0/1")


def test_a_dry_run_backfill_or_reprocess_opens_no_producer(monkeypatch, tmp_path):
    make = CountingFactory()
    rb = runbook.build(S, FakeEngine(), producer=make)
    report = rb.streams.backfill_folder(str(tmp_path), [tmp_path], dry_run=True)
    assert report.published == [] and make.calls == 0


def test_the_api_builds_its_runbook_once_and_an_unpickled_app_its_own():
    from terrawatch.api.deps import ApiDeps

    deps = ApiDeps(S)
    assert deps._runbook is None  # nothing built (nor connected) at construction
    rb = deps.runbook
    assert deps.runbook is rb and rb.streams.producer == deps.producer
    assert rb.status.read_engine is deps.read_engine and rb.keys.engine is deps.engine
    state = deps.__getstate__()  # what Ray Serve pickles (cloudpickle)
    assert state["_runbook"] is None and pickle.loads(pickle.dumps(state["settings"])) == S
    clone = ApiDeps.__new__(ApiDeps)
    clone.__setstate__(state)
    assert clone.runbook is not rb and clone.runbook is clone.runbook


def test_the_cli_builds_its_runbook_once_per_process_and_settings(monkeypatch):
    from terrawatch.cli import root

    monkeypatch.setattr(root, "_RUNBOOK", None)
    first = root.cli_runbook(S)
    assert root.cli_runbook(S) is first and first.dlq.states.engine is root.cli_engine(S)
    assert root.cli_runbook(Settings()) is not first


CALLERS = ["api/routes/ops.py", "api/routes/keys.py", "api/routes/reference.py", "api/routes/subscriptions.py",
           "api/routes/alerts.py", "cli/dlq.py", "cli/streams.py", "cli/reprocess.py", "cli/api.py", "cli/models.py"]
USE_CASES = re.compile(r"(?<![.\w])(?:ops|stream_ops|dlq_svc|dlq|reprocess_svc|keys|layers)\.(?:readiness|pipeline_status|"
                       r"triton_models|consumption|set_consumption|replay|backfill|backfill_folder|reprocess|"
                       r"list_entries|get_entry|redrive|purge|counts|create_key|list_keys|revoke_key|list_layers|"
                       r"drop_layer|load_layer|replace_features)\(|(?<![.\w])(?:subscriptions|svc|deliveries|dsvc|alerts)\."
                       r"(?:create|list_all|get|send_test|rotate_secret|deactivate|list_deliveries|get_delivery|"
                       r"redeliver|transition|events)\(")

IMPORTED = re.compile(r"from terrawatch\.service\.\w+ import [^\n]*\b(?:replay|backfill|backfill_folder|consumption|"
                      r"set_consumption|reprocess|create_key|list_keys|revoke_key|list_layers|drop_layer|load_layer|"
                      r"replace_features|list_entries|get_entry|redrive|purge|transition|list_deliveries|redeliver)\b")


@pytest.mark.parametrize("path", CALLERS)
def test_the_api_and_cli_call_the_runbook_not_the_module_functions(path):
    text = (PKG / path).read_text()
    assert not USE_CASES.findall(text), f"{path} calls a runbook use case directly: use its Runbook service"
    assert not IMPORTED.findall(text), f"{path} imports a runbook use case: use its Runbook service"
