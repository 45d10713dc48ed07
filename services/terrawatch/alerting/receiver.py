"""A reference webhook receiver: verifies Standard Webhooks signatures, deduplicates by webhook-id.

Used by the demo and the tests; also a starting point for subscribers. It
accepts both payload formats: GeoJSON (``application/json``, parsed) and CAP 1.2
(``application/cap+xml``, kept as text).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def payload_format(content_type: str) -> str:
    ct = (content_type or "").split(";")[0].strip().lower()
    return "cap" if ct in ("application/cap+xml", "application/xml", "text/xml") else "geojson"


class WebhookReceiver:
    """A local HTTP endpoint that verifies Standard Webhooks signatures and counts what it gets.

    ``status_codes``: answers for the first requests (e.g. ``[500, 500]``), then 2xx.
    ``delays``: seconds to stall the first requests before answering (simulates a slow endpoint).
    :meth:`hold_until`: keep one message's answer back until another message has been accepted
    (ordering tests: deterministic, unlike a delay on whichever request happens to arrive first).
    """

    def __init__(self, secret: str | None, status_codes: list[int] | None = None,
                 path: str = "/terrawatch-demo/hook", delays: list[float] | None = None, port: int = 0) -> None:
        """``secret`` may be None and set later with :meth:`use_secret` (once the subscription exists)."""
        self.wh = Webhook(secret) if secret else None
        self.received: list[dict] = []
        self.verified_ids: set[str] = set()
        self.by_format: dict[str, int] = {"geojson": 0, "cap": 0}
        self.attempts: dict[str, int] = {}  # requests per webhook-id
        self.accepted: dict[str, int] = {}  # verified 2xx answers per webhook-id
        self.failures = 0
        self._codes = list(status_codes or [])
        self._delays = list(delays or [])
        self._lock = threading.Lock()
        self._accepted_cv = threading.Condition(self._lock)
        self._holds: dict[str, tuple[str, float]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = receiver._on_delivery(body, headers)
                try:
                    self.send_response(code)
                    self.end_headers()
                except OSError:  # the sender went away (timeout, killed)
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _on_delivery(self, body: bytes, headers: dict) -> int:
        msg_id = headers.get("webhook-id", "")
        with self._lock:
            self.attempts[msg_id] = self.attempts.get(msg_id, 0) + 1
            delay = self._delays.pop(0) if self._delays else 0.0
            code = self._codes.pop(0) if self._codes else 204
            hold = self._holds.pop(msg_id, None)
            if hold is not None:  # wait (bounded) until the other message has been accepted
                other, timeout_s = hold
                self._accepted_cv.wait_for(lambda: other in self.verified_ids, timeout_s)
        if delay:
            time.sleep(delay)
        if code >= 300:
            return code
        try:
            if self.wh is None:
                raise WebhookVerificationError("no secret configured")
            self.wh.verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            with self._lock:
                self.failures += 1
            return 400
        fmt = payload_format(headers.get("content-type", ""))
        text = body.decode()
        with self._lock:
            self.accepted[msg_id] = self.accepted.get(msg_id, 0) + 1
            if msg_id not in self.verified_ids:
                self.verified_ids.add(msg_id)
                self.by_format[fmt] += 1
                self.received.append({"id": msg_id, "format": fmt, "body": text,
                                      "payload": json.loads(text) if fmt == "geojson" else text})
                self._accepted_cv.notify_all()
        return code

    def hold_until(self, msg_id: str, other_id: str, timeout_s: float = 15.0) -> None:
        """Answer ``msg_id`` only after ``other_id`` has been accepted (or after ``timeout_s`` seconds)."""
        with self._lock:
            self._holds[msg_id] = (other_id, timeout_s)

    def use_secret(self, secret: str) -> None:
        self.wh = Webhook(secret)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
