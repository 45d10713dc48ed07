"""Pause-or-dead-letter decisions (domain.recovery) and failure classification (service.worker.classify),
with in-memory probes: no Kafka, Triton, Ray or PostGIS."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from terrawatch.domain.errors import (
    DependencyUnavailable, InvalidEvent, NoValidPixels, TransientError, UnprocessableInput, UnreadableAsset,
)
from terrawatch.domain.recovery import Action, Failure, RecoveryPolicy, probe_delays
from terrawatch.inference.triton import inference_error
from terrawatch.observability.logging import RepeatLimiter
from terrawatch.service.worker import classify
from terrawatch.store.uow import is_db_outage


def up():
    return "ready"


def down(dep):
    def probe():
        raise DependencyUnavailable(dep, f"{dep} is down")
    return probe


POLICY = RecoveryPolicy(outage_window_s=900, max_attempts=3, retry_base_s=2)


def test_bad_input_is_dead_lettered_at_once():
    d = POLICY.decide(Failure.BAD_INPUT, "unreadable asset", attempts=1)
    assert d.action is Action.DEAD_LETTER and d.reason == "unreadable asset"


def test_dependency_outage_waits_until_the_window_then_dead_letters():
    assert POLICY.decide(Failure.DEPENDENCY, "x", outage_s=0, dependency="triton").action is Action.WAIT_FOR_DEPENDENCY
    assert POLICY.decide(Failure.DEPENDENCY, "x", outage_s=899.9, dependency="triton").action is Action.WAIT_FOR_DEPENDENCY
    d = POLICY.decide(Failure.DEPENDENCY, "connection refused", outage_s=900, dependency="triton")
    assert d.action is Action.DEAD_LETTER
    assert d.reason.startswith("triton unavailable for 900 s (outage window 900 s)") and "connection refused" in d.reason


def test_outages_do_not_spend_attempts():
    # many attempts already failed for unknown reasons: an outage still waits, it never dead-letters early
    assert POLICY.decide(Failure.DEPENDENCY, "x", attempts=2, outage_s=10, dependency="ray").action is Action.WAIT_FOR_DEPENDENCY


def test_unknown_failures_retry_with_backoff_then_dead_letter():
    assert [POLICY.decide(Failure.UNKNOWN, "e", attempts=a).wait_s for a in (1, 2)] == [2, 4]
    d = POLICY.decide(Failure.UNKNOWN, "RayActorError: died", attempts=3)
    assert d.action is Action.DEAD_LETTER and d.reason == "gave up after 3 attempts: RayActorError: died"


def test_probe_delays_double_to_the_cap():
    gen = probe_delays(0.5, 10)
    assert [next(gen) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize("exc", [InvalidEvent("bad"), UnreadableAsset("x"), NoValidPixels("x"), UnprocessableInput("x")])
def test_scene_faults_are_bad_input_without_probing(exc):
    called = []
    probes = {"postgis": lambda: called.append("postgis")}
    assert classify(exc, probes) == (Failure.BAD_INPUT, None)
    assert called == []


def test_a_dependency_error_is_confirmed_by_its_probe_first():
    order = []

    def probe(name, ok):
        def p():
            order.append(name)
            if not ok:
                raise RuntimeError(f"{name} down")
        return p

    probes = {"postgis": probe("postgis", True), "triton": probe("triton", False), "ray": probe("ray", True)}
    assert classify(DependencyUnavailable("triton", "UNAVAILABLE"), probes) == (Failure.DEPENDENCY, "triton")
    assert order == ["triton"]  # the suspect is probed first


def test_an_error_naming_a_healthy_dependency_counts_as_an_attempt():
    # e.g. Triton failed on this scene's tensors but answers its readiness probe: the scene may be at fault
    probes = {"postgis": up, "triton": up, "ray": up}
    assert classify(DependencyUnavailable("triton", "blip"), probes) == (Failure.UNKNOWN, None)
    assert classify(TransientError("triton inference failed (INTERNAL)"), probes) == (Failure.UNKNOWN, None)


def test_an_unexplained_error_is_an_outage_when_some_probe_fails():
    probes = {"postgis": up, "triton": up, "ray": down("ray")}
    assert classify(RuntimeError("actor died"), probes) == (Failure.DEPENDENCY, "ray")


def test_a_lost_database_connection_suspects_postgis():
    exc = OperationalError("insert", {}, Exception("server closed the connection unexpectedly"))
    probes = {"triton": down("triton"), "postgis": down("postgis"), "ray": up}
    assert classify(exc, probes, is_db_outage) == (Failure.DEPENDENCY, "postgis")
    assert classify(exc, probes) == (Failure.DEPENDENCY, "triton")  # without the test, the probes' order


@pytest.mark.parametrize("status,kind", [
    ("StatusCode.UNAVAILABLE", DependencyUnavailable), ("StatusCode.NOT_FOUND", DependencyUnavailable),
    ("StatusCode.INVALID_ARGUMENT", UnprocessableInput), ("StatusCode.INTERNAL", TransientError),
])
def test_triton_errors_are_classified_by_grpc_status(status, kind):
    err = inference_error("flood_s1", status, "msg")
    assert type(err) is kind
    if kind is DependencyUnavailable:
        assert err.dependency == "triton"


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_repeated_errors_are_logged_once_with_traceback_then_counted(caplog):
    clock = _Clock()
    lim = RepeatLimiter(logging.getLogger("t.repeat"), every_s=60, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t.repeat"):
        try:
            raise ConnectionError("refused")
        except ConnectionError as exc:
            for _ in range(120):  # every 0.5 s for a minute
                lim.error(("postgis", "ConnectionError"), "dispatcher: postgis unavailable: %s", exc,
                          exc_info=exc, dependency="postgis")
                clock.t += 0.5
            lim.error(("postgis", "ConnectionError"), "dispatcher: postgis unavailable: %s", exc,
                      exc_info=exc, dependency="postgis")
    recs = caplog.records
    assert len(recs) == 2, [r.getMessage() for r in recs]
    assert recs[0].exc_info is not None and recs[0].dependency == "postgis"
    assert recs[1].exc_info is None and recs[1].repeats == 120
    assert "repeated 120 times in the last 60 s" in recs[1].getMessage()


def test_a_cleared_condition_logs_again_in_full(caplog):
    lim = RepeatLimiter(logging.getLogger("t.repeat2"), every_s=60, clock=_Clock())
    with caplog.at_level(logging.INFO, logger="t.repeat2"):
        lim.warning("k", "down")
        lim.warning("k", "down")
        lim.clear("k", "back")
        lim.warning("k", "down")
    assert [r.getMessage() for r in caplog.records] == ["down", "back (2 occurrences in all)", "down"]


def test_only_transient_entries_under_the_limit_are_redriven_automatically():
    from terrawatch.ingest.dlq import DlqRecord
    from terrawatch.service.auto_redrive import redrivable

    base = DlqRecord(reason="triton unavailable", error_code="transient", kind="transient", payload="{}")
    assert redrivable(base, 3)
    assert redrivable(base.model_copy(update={"redrives": 2}), 3)
    assert not redrivable(base.model_copy(update={"redrives": 3}), 3)
    assert not redrivable(DlqRecord(reason="bad", error_code="invalid_event", payload="{}"), 3)  # waits for a fix
    assert not redrivable(base.model_copy(update={"payload": None}), 3)
    old = DlqRecord.parse(b'{"reason": "x", "error_code": "transient", "payload": "{}"}')  # written before the fields
    assert old.kind == "transient" and old.redrives == 0 and redrivable(old, 1)


def test_dispatcher_logs_one_traceback_per_postgis_outage_not_one_per_poll(caplog):
    """The dispatcher polls the outbox every 0.5 s; with PostGIS unreachable (a closed port, no fake) it
    logs the error once with its traceback, naming postgis, and backs off instead of logging every poll."""
    import threading
    import time

    from terrawatch.alerting.dispatcher import Dispatcher
    from terrawatch.settings import Settings
    from terrawatch.store.uow import create_pool

    url = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"
    s = Settings(database_url=url, worker_database_url=url)
    d = Dispatcher(s, create_pool(url))
    with caplog.at_level(logging.INFO, logger="terrawatch.alerting.dispatcher"):
        # polls every 0.02 s with backoff: ~6 failed polls in 1.5 s (the default 0.5 s made it 3 in 4 s)
        t = threading.Thread(target=lambda: d.run_forever(idle_s=0.02), daemon=True)
        t.start()
        time.sleep(1.5)
        d.stop()
        t.join(10)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None and errors[0].dependency == "postgis"
    assert "postgis unavailable" in errors[0].getMessage()
