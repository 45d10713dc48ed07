"""``terrawatch run``'s process as the composition root wires it (service/bootstrap.PipelineProcess): the DLQ
depth reporter starts, the dispatcher runs on its own thread while the worker consumes, and is stopped when
the worker returns or fails. Fakes for the worker, reporter and dispatcher."""

from __future__ import annotations

import threading

import pytest

from terrawatch.service.bootstrap import PipelineProcess


class FakeWorker:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error, self.handlers, self.idle = error, False, None

    def install_signal_handlers(self) -> None:
        self.handlers = True

    def run(self, max_idle_s=None) -> None:
        self.idle = max_idle_s
        if self.error is not None:
            raise self.error


class FakeDepth:
    started = False

    def start(self):
        self.started = True
        return self


class FakeDispatcher:
    def __init__(self) -> None:
        self.running, self.stopped = threading.Event(), threading.Event()

    def run_forever(self) -> None:
        self.running.set()
        self.stopped.wait(10)

    def stop(self) -> None:
        self.stopped.set()


def test_the_dispatcher_runs_beside_the_worker_and_stops_with_it():
    w, depth, d = FakeWorker(), FakeDepth(), FakeDispatcher()
    p = PipelineProcess(w, depth, d)
    p.run(max_idle_s=3.0)
    assert depth.started and w.handlers and w.idle == 3.0
    assert d.running.is_set() and d.stopped.is_set()
    p.thread.join(5)
    assert not p.thread.is_alive()


def test_a_failing_worker_still_stops_the_dispatcher():
    d = FakeDispatcher()
    p = PipelineProcess(FakeWorker(RuntimeError("boom")), FakeDepth(), d)
    with pytest.raises(RuntimeError):
        p.run()
    assert d.stopped.is_set()


def test_without_a_dispatcher_only_the_worker_runs():
    p = PipelineProcess(FakeWorker(), FakeDepth())
    p.run()
    assert p.thread is None
