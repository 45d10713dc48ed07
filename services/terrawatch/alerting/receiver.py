"""A reference webhook receiver: verifies Standard Webhooks signatures, deduplicates by webhook-id.

Used by the demo and the tests; also a starting point for subscribers.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class WebhookReceiver:
    """A local HTTP endpoint that verifies Standard Webhooks signatures and counts what it gets."""

    def __init__(self, secret: str, status_codes: list[int] | None = None, path: str = "/terrawatch-demo/hook") -> None:
        self.wh = Webhook(secret)
        self.received: list[dict] = []
        self.verified_ids: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.failures = 0
        self._codes = list(status_codes or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = receiver._on_delivery(body, headers)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _on_delivery(self, body: bytes, headers: dict) -> int:
        with self._lock:
            msg_id = headers.get("webhook-id", "")
            self.attempts[msg_id] = self.attempts.get(msg_id, 0) + 1
            if self._codes:
                code = self._codes.pop(0)
                if code >= 300:
                    return code
            try:
                payload = self.wh.verify(body, headers)
            except WebhookVerificationError:
                self.failures += 1
                return 400
            if msg_id not in self.verified_ids:
                self.verified_ids.add(msg_id)
                self.received.append({"id": msg_id, "payload": payload})
            return 204

    def close(self) -> None:
        self.server.shutdown()
