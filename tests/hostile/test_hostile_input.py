"""The hostile corpus through the real pipeline: each bad event gets a DLQ entry with its specific
reason, a duplicate event is a no-op, the consumer keeps running, and valid scenes are processed."""

from __future__ import annotations

import base64
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from terrawatch.ingest import kafka_io
from terrawatch.store import tables as t
from tests.faults.helpers import next_origin, stop_worker
from tests.hostile.corpus import build, valid_item
from tests.integration.helpers import count, isolated, read_dlq, runs_for, start_worker, wait_for

pytestmark = pytest.mark.integration


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_base(tmp_path):
    """A local HTTP server over an empty folder: every asset URL on it answers 404."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_hostile_corpus_is_dead_lettered_with_specific_reasons(stack, tmp_path, http_base):
    s = isolated(stack.settings, "hostile")
    cases, _ = build(tmp_path / "corpus", http_base, next_origin(), state=stack.settings.state_dir)
    valid = valid_item(tmp_path, next_origin(), "first")
    last = valid_item(tmp_path, next_origin(), "last")
    log = tmp_path / "worker.log"
    w = start_worker(s, log)
    try:
        p = kafka_io.producer(s)
        kafka_io.publish_scene(p, s, valid)
        for c in cases:
            p.produce(s.scenes_topic, key=c.name.encode(), value=c.payload)
        kafka_io.publish_scene(p, s, valid)  # the same event again: a no-op, not an error
        kafka_io.publish_scene(p, s, last)
        assert p.flush(30) == 0
        dlq = read_dlq(s, expect=len(cases), timeout=300)
        wait_for(lambda: runs_for(s, valid["id"]) and runs_for(s, last["id"]), 300, "the valid scenes")
        wait_for(lambda: log.read_text(errors="replace").count(f"scene {valid['id']} ") >= 2, 120,
                 "the duplicate event to be handled")
        assert w.poll() is None, "the consumer must survive the corpus"
        extra = read_dlq(s, expect=len(cases) + 1, timeout=5)
    finally:
        stop_worker(w)

    by_key = {d["source"]["key"]: d for d in dlq}
    assert len(extra) == len(cases), f"unexpected DLQ entries: {[d['source']['key'] for d in extra[len(cases):]]}"
    missing = [c.name for c in cases if c.name not in by_key]
    assert not missing, f"no DLQ entry for {missing}"
    wrong = {}
    for c in cases:
        d = by_key[c.name]
        if d["error_code"] != c.code or not all(r in d["reason"] for r in c.reason):
            wrong[c.name] = (d["error_code"], d["reason"][:200])
        original = base64.b64decode(d["payload"]) if d["payload_encoding"] == "base64" else d["payload"].encode()
        assert original == c.payload, f"{c.name}: the DLQ must keep the original payload"
    assert not wrong, f"DLQ entries without their specific reason: {wrong}"

    # The duplicate: one run, one set of detections, the second delivery logged as a duplicate.
    assert len(runs_for(s, valid["id"])) == 1
    assert count(s, t.detections, t.detections.c.scene_id == valid["id"]) == runs_for(s, valid["id"])[0]["detections"]
    assert f"scene {valid['id']} duplicate" in log.read_text(errors="replace")
    assert valid["id"] not in by_key and last["id"] not in by_key
