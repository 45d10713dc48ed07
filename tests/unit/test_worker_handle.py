"""Worker.handle and Worker.run: retry, outage ride-out and dead-letter classification, with in-memory fakes
of the worker's ports (service.ports): no Kafka, Ray, Triton or PostGIS. The real services are exercised by
tests/integration/test_pipeline.py and tests/faults/."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from terrawatch.domain.errors import DependencyUnavailable, DlqWriteError, TransientError, UnreadableAsset
from terrawatch.domain.recovery import RestartRequired
from terrawatch.service.pipeline import SceneOutcome
from terrawatch.service.worker import Worker, _Interrupted, _RestartRequested
from terrawatch.settings import Settings


def item(scene_id: str = "S1A_TEST") -> dict:
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": scene_id,
        "geometry": {"type": "Polygon", "coordinates": [[[-1, 40], [-0.9, 40], [-0.9, 40.1], [-1, 40.1], [-1, 40]]]},
        "properties": {"datetime": datetime.now(timezone.utc).isoformat(), "platform": "sentinel-1a",
                       "constellation": "sentinel-1"},
        "assets": {"vv": {"href": "file:///data/vv.tif"}, "vh": {"href": "file:///data/vh.tif"}},
    }


class Msg:
    def __init__(self, value: bytes, offset: int = 0) -> None:
        self._value, self._offset = value, offset

    def topic(self) -> str:
        return "terrawatch.scenes"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self._value


class FakeConsumer:
    on_revoke = None

    def __init__(self, msgs=()) -> None:
        self.queue = list(msgs)
        self.committed: list[int] = []
        self.held: list[int] = []
        self.paused = False
        self.pauses = 0
        self.closed = False

    def membership(self) -> str:
        return "a dynamic member"

    def subscribe(self) -> None:
        pass

    revoke: list | None = None  # partitions to revoke at the next poll (as librdkafka does, from poll)

    def poll(self, timeout_s: float, log_errors: bool = True):
        if self.revoke is not None and self.on_revoke is not None:
            keys, self.revoke = self.revoke, None
            self.on_revoke(keys)
            self.revoked_at_poll = True
        return self.queue.pop(0) if self.queue and not self.paused else None

    def commit(self, msg, stop) -> None:
        self.committed.append(msg.offset())

    def hold(self, msg) -> None:
        self.held.append(msg.offset())

    def pause_all(self) -> None:
        self.paused, self.pauses = True, self.pauses + 1

    def resume_all(self) -> None:
        self.paused = False

    def lag(self) -> dict[int, int]:
        return {0: len(self.queue)}

    def close(self) -> None:
        self.closed = True


class FakeDlq:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict] = []
        self.fail = fail

    def send(self, msg, reason, code, attempts, stop, dependency=None) -> str:
        if self.fail:
            raise DlqWriteError("broker down")
        self.sent.append({"offset": msg.offset(), "reason": reason, "code": code, "attempts": attempts,
                          "dependency": dependency})
        return f"terrawatch.scenes.dlq[0]@{len(self.sent) - 1}"

    def flush(self, timeout_s: float) -> None:
        pass


class FakeStore:
    def __init__(self) -> None:
        self.failed: list[tuple[str, str, str | None]] = []
        self.paused = False

    def consumption_paused(self) -> bool:
        return self.paused

    def mark_failed(self, scene, reason, dlq_ref) -> None:
        self.failed.append((scene.id, reason, dlq_ref))


class FakePipeline:
    """``process`` raises the queued errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.assets = SimpleNamespace(check_url=lambda url: None)

    def process(self, scene) -> SceneOutcome:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return SceneOutcome(scene.id, "processed", tiles=4)


class Probe:
    """A readiness probe that is down for its first ``down`` calls (raising ``exc``)."""

    def __init__(self, down: int = 0, exc: BaseException | None = None) -> None:
        self.down, self.calls = down, 0
        self.exc = exc or DependencyUnavailable("triton", "triton is down")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.down:
            raise self.exc
        return "ready"


def make(pipeline, probes=None, window_s: float = 5.0, msgs=(), dlq=None, **kw) -> Worker:
    s = Settings(outage_window_s=window_s, outage_probe_max_s=0.02, control_poll_s=0.0)
    return Worker(s, pipeline=pipeline, consumer=FakeConsumer(msgs), dlq=dlq or FakeDlq(), store=FakeStore(),
                  probes=probes or {"postgis": Probe(), "triton": Probe(), "ray": Probe()},
                  max_attempts=3, retry_base_s=0.001, probe_first_s=0.005, **kw)


def event(scene_id: str = "S1A_TEST", offset: int = 0) -> Msg:
    return Msg(json.dumps(item(scene_id)).encode(), offset)


def test_a_processed_scene_is_not_dead_lettered():
    w = make(FakePipeline())
    assert w.handle(event()) == "processed"
    assert w.dlq.sent == [] and w.store.failed == []


@pytest.mark.parametrize("raw, code", [(b"{not json", "invalid_event"), (b"\xff\xfe", "invalid_event"),
                                       (json.dumps({"type": "Feature"}).encode(), "invalid_event")])
def test_an_invalid_event_goes_to_the_dlq_once_without_processing(raw, code):
    pipeline = FakePipeline()
    w = make(pipeline)
    assert w.handle(Msg(raw, 7)) == "dlq"
    assert pipeline.calls == 0
    assert [(d["offset"], d["code"], d["attempts"]) for d in w.dlq.sent] == [(7, code, 1)]
    assert w.store.failed == []  # no valid scene: no footprint to mark


def test_the_event_is_resolved_by_the_injected_resolver_with_the_asset_url_check():
    seen = []

    def resolve(raw, check_url):  # a reference event -> the scene event it names
        seen.append((json.loads(raw), check_url))
        return json.dumps(item("S1A_RESOLVED")).encode()

    pipeline = FakePipeline()
    w = make(pipeline, resolve=resolve)
    assert w.handle(Msg(json.dumps({"terrawatch:resolve": "https://example.org/item"}).encode())) == "processed"
    assert seen == [({"terrawatch:resolve": "https://example.org/item"}, pipeline.assets.check_url)]
    assert pipeline.calls == 1 and w.dlq.sent == []


def test_a_catalogue_that_does_not_answer_while_resolving_dead_letters_the_event_once():
    def resolve(raw, check_url):
        raise TransientError("catalogue 503 after retries")

    pipeline = FakePipeline()
    w = make(pipeline, resolve=resolve)
    assert w.handle(event()) == "dlq"
    assert pipeline.calls == 0
    assert [(d["code"], d["attempts"]) for d in w.dlq.sent] == [(TransientError.code, 1)]


def test_bad_input_from_the_pipeline_is_dead_lettered_at_once_and_the_scene_marked_failed():
    pipeline = FakePipeline(UnreadableAsset("vv.tif: not a GeoTIFF"))
    w = make(pipeline)
    assert w.handle(event()) == "dlq"
    assert pipeline.calls == 1
    (sent,) = w.dlq.sent
    assert sent["code"] == UnreadableAsset.code and "not a GeoTIFF" in sent["reason"] and sent["attempts"] == 1
    assert w.store.failed == [("S1A_TEST", f"{UnreadableAsset.code}: {sent['reason']}", "terrawatch.scenes.dlq[0]@0")]


def test_an_unknown_error_with_healthy_dependencies_is_retried_then_succeeds():
    pipeline = FakePipeline(RuntimeError("flaky"), RuntimeError("flaky"))
    w = make(pipeline)
    assert w.handle(event()) == "processed"
    assert pipeline.calls == 3 and w.dlq.sent == []


def test_an_unknown_error_repeated_max_attempts_times_is_dead_lettered_transient():
    pipeline = FakePipeline(*(RuntimeError("boom") for _ in range(5)))
    w = make(pipeline)
    assert w.handle(event()) == "dlq"
    assert pipeline.calls == 3
    (sent,) = w.dlq.sent
    assert sent["code"] == "transient" and sent["attempts"] == 3 and sent["dependency"] is None
    assert sent["reason"] == "gave up after 3 attempts: RuntimeError: boom"


def test_a_dependency_outage_pauses_consumption_and_retries_the_scene_when_it_is_back():
    triton = Probe(down=3)
    pipeline = FakePipeline(DependencyUnavailable("triton", "connection refused"))
    w = make(pipeline, probes={"postgis": Probe(), "triton": triton, "ray": Probe()})
    seen = []
    w.probes["triton"] = lambda: (seen.append(w.dependency_down), triton())[1]
    assert w.handle(event()) == "processed"
    assert pipeline.calls == 2  # the outage spent no attempt: retried once it answered
    assert triton.calls == 4 and w.dlq.sent == []
    # run() pauses every partition while dependency_down is set; handle() (a scene thread) never touches
    # the consumer
    assert set(seen[1:]) == {"triton"} and w.consumer.pauses == 0
    assert w.dependency_down is None


def test_an_unexplained_error_during_an_outage_is_blamed_on_the_failing_probe():
    ray = Probe(down=2, exc=DependencyUnavailable("ray", "gcs unreachable"))
    pipeline = FakePipeline(RuntimeError("actor died"))
    w = make(pipeline, probes={"postgis": Probe(), "triton": Probe(), "ray": ray})
    seen = []
    w.probes["ray"] = lambda: (seen.append(w.dependency_down), ray())[1]
    assert w.handle(event()) == "processed"
    assert "ray" in seen and w.dlq.sent == [] and w.dependency_down is None


def test_an_outage_longer_than_the_window_dead_letters_the_scene_as_transient_naming_the_dependency():
    pipeline = FakePipeline(DependencyUnavailable("triton", "connection refused"))
    w = make(pipeline, probes={"postgis": Probe(), "triton": Probe(down=10**6), "ray": Probe()}, window_s=0.05)
    assert w.handle(event()) == "dlq"
    (sent,) = w.dlq.sent
    assert sent["code"] == "transient" and sent["dependency"] == "triton"
    assert sent["reason"].startswith("triton unavailable for") and "connection refused" in sent["reason"]
    assert w.store.failed and w.store.failed[0][0] == "S1A_TEST"
    assert not w.consumer.paused


def test_stop_during_an_outage_leaves_the_scene_unfinished():
    pipeline = FakePipeline(DependencyUnavailable("triton", "down"))
    w = make(pipeline, probes={"triton": Probe(down=10**6)})
    threading.Timer(0.05, w.stop).start()
    with pytest.raises(_Interrupted):
        w.handle(event())
    assert w.dlq.sent == []


def test_a_probe_that_needs_a_process_restart_asks_for_one():
    class HeadRestarted(DependencyUnavailable, RestartRequired):
        pass

    pipeline = FakePipeline(DependencyUnavailable("ray", "head gone"))
    w = make(pipeline, probes={"ray": Probe(down=10**6, exc=HeadRestarted("ray", "new session"))})
    with pytest.raises(_RestartRequested):
        w.handle(event())
    assert w.dlq.sent == []


def test_run_commits_each_handled_event_including_dead_lettered_ones():
    w = make(FakePipeline(), msgs=[event("A", 0), Msg(b"junk", 1), event("B", 2)])
    w.run(max_idle_s=0.0)
    # one commit may cover several events (Kafka stores "next to read"): increasing, ending at the last
    assert w.consumer.committed == sorted(set(w.consumer.committed)) and w.consumer.committed[-1] == 2
    assert [d["offset"] for d in w.dlq.sent] == [1]
    assert w.consumer.closed


def test_run_leaves_an_event_uncommitted_when_the_dlq_write_fails():
    w = make(FakePipeline(), msgs=[event("A", 0), Msg(b"junk", 1), event("B", 2)], dlq=FakeDlq(fail=True))
    w.run(max_idle_s=0.0)
    assert w.consumer.committed == [0]  # stopped at the junk event: redelivered after a restart


def test_run_holds_events_while_the_operator_paused_consumption():
    w = make(FakePipeline(), msgs=[event("A", 0)])
    w.store.paused = True
    w.consumer.pause_all = lambda: None  # a message fetched before the pause took hold is still delivered
    w.run(max_idle_s=0.0)
    assert w.consumer.held == [0] and w.consumer.committed == []


class GatedPipeline:
    """``process`` blocks until the test opens the scene's gate; records the scenes in process at once."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.assets = SimpleNamespace(check_url=lambda url: None)
        self._lock = threading.Lock()

    def gate(self, scene_id: str) -> threading.Event:
        with self._lock:
            return self.gates.setdefault(scene_id, threading.Event())

    def process(self, scene) -> SceneOutcome:
        with self._lock:
            self.started.append(scene.id)
        assert self.gate(scene.id).wait(10), f"{scene.id} never released"
        return SceneOutcome(scene.id, "processed", tiles=4)


def wait_until(cond, timeout: float = 5.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def run_in_thread(w: Worker) -> threading.Thread:
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return t


def test_scenes_in_flight_overlap_and_commit_in_offset_order():
    pipeline = GatedPipeline()
    w = make(pipeline, msgs=[event("A", 0), event("B", 1), event("C", 2)])
    w.s = w.s.model_copy(update={"scenes_in_flight": 2})
    t = run_in_thread(w)
    wait_until(lambda: sorted(pipeline.started) == ["A", "B"])  # two at once, the third waits for a slot
    pipeline.gate("B").set()  # B finishes first: not committed before A
    wait_until(lambda: "C" in pipeline.started)  # ... but its slot goes to C
    assert w.consumer.committed == []
    pipeline.gate("A").set()
    wait_until(lambda: w.consumer.committed[-1:] == [1])
    pipeline.gate("C").set()
    wait_until(lambda: w.consumer.committed[-1:] == [2])
    w.stop()
    t.join(5)
    assert not t.is_alive() and w.consumer.closed


def test_stop_finishes_the_scenes_in_flight_and_commits_them():
    pipeline = GatedPipeline()
    w = make(pipeline, msgs=[event("A", 0), event("B", 1)])
    t = run_in_thread(w)
    wait_until(lambda: len(pipeline.started) == 2)
    w.stop()
    pipeline.gate("A").set()
    pipeline.gate("B").set()
    t.join(5)
    assert not t.is_alive() and w.consumer.committed[-1] == 1 and w.consumer.closed


def test_a_revoked_partition_commits_finished_scenes_and_abandons_the_rest_uncommitted():
    pipeline = GatedPipeline()
    w = make(pipeline, msgs=[event("A", 0), event("B", 1)])
    w.s = w.s.model_copy(update={"scenes_in_flight": 2})
    w.flight.revoke_drain_s = 0.2
    t = run_in_thread(w)
    wait_until(lambda: len(pipeline.started) == 2)
    pipeline.gate("A").set()
    wait_until(lambda: w.consumer.committed == [0])
    # a rebalance takes partition 0 while B is in flight (librdkafka calls the callback from inside poll)
    w.consumer.revoke = [("terrawatch.scenes", 0)]
    wait_until(lambda: getattr(w.consumer, "revoked_at_poll", False))
    assert len(w.flight.inflight) == 0  # B forgotten: never committed by this worker
    pipeline.gate("B").set()  # B's write may still finish (the new owner's run marker makes it a no-op)
    w.stop()
    t.join(5)
    assert w.consumer.committed == [0] and w.dlq.sent == []


def test_an_abandoned_scene_is_never_dead_lettered_by_its_old_owner():
    pipeline = FakePipeline(UnreadableAsset("bad"))
    w = make(pipeline)
    gone = threading.Event()
    gone.set()
    with pytest.raises(_Interrupted):
        w.handle(event(), gone)
    assert w.dlq.sent == [] and w.store.failed == []
