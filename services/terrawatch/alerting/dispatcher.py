"""Outbox dispatcher: deliver pending webhooks with Standard Webhooks signatures and retries.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several dispatchers never
send the same delivery at once; the ``webhook-id`` header is the outbox row id,
stable across retries, so receivers can deduplicate.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from terrawatch.alerting.ssrf import UnsafeWebhookTarget, check_target, parse_allow_list
from terrawatch.observability.metrics import OUTBOX_DEPTH, WEBHOOK_DELIVERIES, WEBHOOK_SECONDS
from terrawatch.settings import Settings
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for

log = logging.getLogger(__name__)


def backoff_s(attempt: int, base: float = 2.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter, seconds before attempt ``attempt + 1``."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


class Dispatcher:
    def __init__(self, settings: Settings, batch: int = 20, retry_window: timedelta = timedelta(hours=24)) -> None:
        self.s = settings
        self.engine = engine_for(settings.db_url)
        self.batch = batch
        self.retry_window = retry_window
        self.allow = parse_allow_list(settings.webhook_allow_private)
        self.http = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self, idle_s: float = 0.5) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:  # noqa: BLE001 - keep dispatching through DB hiccups
                log.exception("dispatcher iteration failed")
                sent = 0
            if not sent:
                self._stop.wait(idle_s)

    def run_once(self) -> int:
        """Claim and attempt up to ``batch`` due deliveries; return how many were attempted."""
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(t.webhook_outbox, t.subscribers.c.url, t.subscribers.c.secret)
                .join(t.subscribers, t.subscribers.c.id == t.webhook_outbox.c.subscriber_id)
                .where(t.webhook_outbox.c.status == "pending", t.webhook_outbox.c.next_attempt_at <= now)
                .order_by(t.webhook_outbox.c.next_attempt_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True, of=t.webhook_outbox)
            ).mappings().all()
            for row in rows:
                conn.execute(update(t.webhook_outbox).where(t.webhook_outbox.c.id == row["id"])
                             .values(**self._attempt(row, now)))
            depth = conn.execute(select(func.count()).select_from(t.webhook_outbox)
                                 .where(t.webhook_outbox.c.status == "pending")).scalar_one()
        OUTBOX_DEPTH.set(depth)
        return len(rows)

    def _attempt(self, row, now: datetime) -> dict:
        endpoint = row["url"]
        attempts = row["attempts"] + 1
        error: str | None = None
        try:
            check_target(endpoint, self.allow)
            ts = datetime.now(timezone.utc)
            sig = Webhook(row["secret"]).sign(row["id"], ts, row["payload"])
            headers = {"webhook-id": row["id"], "webhook-timestamp": str(int(ts.timestamp())),
                       "webhook-signature": sig, "content-type": row["content_type"]}
            t0 = time.perf_counter()
            try:
                resp = self.http.post(endpoint, content=row["payload"].encode(), headers=headers)
            finally:
                WEBHOOK_SECONDS.labels(endpoint).observe(time.perf_counter() - t0)
            if 200 <= resp.status_code < 300:
                WEBHOOK_DELIVERIES.labels(endpoint, "succeeded").inc()
                return {"status": "delivered", "attempts": attempts, "delivered_at": now, "last_error": None}
            error = f"HTTP {resp.status_code}"
        except UnsafeWebhookTarget as exc:
            error = f"refused: {exc}"
            WEBHOOK_DELIVERIES.labels(endpoint, "failed").inc()
            return {"status": "failed", "attempts": attempts, "last_error": error}
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if now - row["created_at"] >= self.retry_window:
            WEBHOOK_DELIVERIES.labels(endpoint, "failed").inc()
            return {"status": "failed", "attempts": attempts, "last_error": error}
        WEBHOOK_DELIVERIES.labels(endpoint, "retry").inc()
        return {"status": "pending", "attempts": attempts, "last_error": error,
                "next_attempt_at": now + timedelta(seconds=backoff_s(attempts))}
