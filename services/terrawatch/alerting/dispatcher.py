"""Outbox dispatcher: deliver pending webhooks with Standard Webhooks signatures and retries.

Claiming: due rows are locked with ``FOR UPDATE SKIP LOCKED`` (several
dispatchers never claim the same row at once) and leased by moving their
``next_attempt_at`` forward by ``lease_s``; the HTTP request runs after the
claim has committed. A dispatcher that dies mid-send leaves the row pending, so
it is attempted again when the lease ends - at least once, never lost. The
``webhook-id`` header is the outbox row id, stable across retries and
redeliveries, so receivers deduplicate.

Every attempt is recorded: its ``webhook_attempts`` row is written with outcome ``sending`` in the claim
transaction, before the request leaves, and completed (``succeeded``, ``retry``, ``failed``) after it. A
row still ``sending`` when the delivery is claimed again was cut short by a crash: it becomes ``unknown``.

Order: one alert's messages reach a subscriber in version order (created, updated, cancelled):
a version is not claimed while an earlier version of the same alert for the same subscriber is
still pending (in flight or waiting for a retry); a delivery that ``failed`` for good no longer
holds the later ones back. Different alerts go out in parallel.

Per endpoint (subscriber): at most ``max_per_endpoint`` requests in flight, a
circuit breaker (no requests while open, one trial when half-open), per-request
timeouts. Failed attempts are retried with exponential backoff and full jitter
until the retry window (24 h by default) has passed, then the delivery is
``failed``: listed for operators and redeliverable through the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from terrawatch.alerting.retry import CircuitBreakers, backoff_s
from terrawatch.alerting.ssrf import UnresolvableWebhookHost, UnsafeWebhookTarget, parse_allow_list, pin
from terrawatch.observability.metrics import (
    OUTBOX_DEPTH, OUTBOX_FAILED, WEBHOOK_CIRCUIT_OPEN, WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_LAG_SECONDS,
    WEBHOOK_SECONDS,
)
from terrawatch.settings import Settings
from terrawatch.observability.logging import RepeatLimiter
from terrawatch.store import outbox
from terrawatch.store.outbox import AttemptOutcome, OutboxStatus
from terrawatch.store.db import Engine
from terrawatch.store.uow import is_db_outage

log = logging.getLogger(__name__)

__all__ = ["Dispatcher", "backoff_s"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def webhook_client(timeout_s: float, workers: int) -> httpx.Client:
    """The dispatcher's HTTP client: ``timeout_s`` per request phase, no redirects, 2 connections per worker."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                        limits=httpx.Limits(max_connections=workers * 2))


class Dispatcher:
    def __init__(self, settings: Settings, engine: Engine, *, http: httpx.Client | None = None,
                 batch: int = 50, retry_window: timedelta | None = None,
                 retry_base_s: float | None = None, retry_cap_s: float | None = None,
                 max_per_endpoint: int | None = None, workers: int | None = None,
                 breaker_failures: int | None = None, breaker_cooldown_s: float | None = None,
                 timeout_s: float | None = None, lease_s: float | None = None) -> None:
        """``engine``: the process' PostGIS pool (outbox claims and attempts); ``http``: the client webhooks
        leave through (closed by :meth:`close`; default :func:`webhook_client` of the timeout and workers).
        Both are passed by the composition root (``service.bootstrap.build_dispatcher``). The other
        parameters default to the ``TERRAWATCH_WEBHOOK_*`` settings; tests pass short ones."""
        s = settings
        self.s = s
        self.engine = engine
        self.batch = batch
        self.retry_window = retry_window or timedelta(hours=s.webhook_retry_window_h)
        self.retry_base_s = s.webhook_retry_base_s if retry_base_s is None else retry_base_s
        self.retry_cap_s = s.webhook_retry_cap_s if retry_cap_s is None else retry_cap_s
        self.max_per_endpoint = max(1, max_per_endpoint or s.webhook_max_per_endpoint)
        self.workers = max(1, workers or s.webhook_workers)
        self.timeout_s = timeout_s or s.webhook_timeout_s
        # A claim must outlive one attempt (connect + write + read timeouts) with margin.
        self.lease_s = lease_s or s.webhook_lease_s or (4 * self.timeout_s + 30)
        self.allow = parse_allow_list(s.webhook_allow_private, s)  # bare entries exclude the stack's ports
        self.breakers = CircuitBreakers(
            breaker_failures or s.webhook_breaker_failures,
            s.webhook_breaker_cooldown_s if breaker_cooldown_s is None else breaker_cooldown_s,
            on_change=lambda key, is_open: WEBHOOK_CIRCUIT_OPEN.labels(key).set(1 if is_open else 0))
        self.http = http if http is not None else webhook_client(self.timeout_s, self.workers)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="webhook")
        self._inflight: dict[str, int] = defaultdict(int)
        self._futures: set[Future] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._errors = RepeatLimiter(log, every_s=60.0)
        self._failing = "unknown"

    # loop ------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run_forever(self, idle_s: float = 0.5) -> None:
        """Dispatch until stopped. Through a PostGIS outage it keeps trying with backoff (up to 10 s)
        and logs the error once with its traceback, then once a minute with a count."""
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    claimed = self.run_once()
                    if failures:
                        self._errors.clear(("iteration", self._failing), "dispatcher: %s available again",
                                           self._failing, dependency=self._failing)
                    failures = 0
                except Exception as exc:  # noqa: BLE001 - keep dispatching through DB hiccups
                    failures += 1
                    self._failing = "postgis" if is_db_outage(exc) else "unknown"
                    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
                    what = "postgis unavailable" if self._failing == "postgis" else "iteration failed"
                    self._errors.error(("iteration", self._failing), "dispatcher: %s, deliveries wait (%s: %s)",
                                       what, type(exc).__name__, first_line, exc_info=exc, dependency=self._failing)
                    claimed = 0
                if not claimed:
                    self._wake.wait(min(idle_s * 2 ** min(failures, 5), 10.0) if failures else idle_s)
                    self._wake.clear()
        finally:
            self.close()

    def close(self) -> None:
        """Wait for attempts in flight, then release the threads and connections."""
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.http.close()

    def run_once(self, wait: bool = False) -> int:
        """Claim due deliveries and start sending them; return how many were claimed.

        ``wait``: block until the attempts started here have finished (tests, batch use).
        """
        rows = self._claim()
        futures = []
        for row in rows:
            f = self.pool.submit(self._deliver, row)
            with self._lock:
                self._futures.add(f)
            f.add_done_callback(self._done)
            futures.append(f)
        if wait:
            for f in futures:
                f.result()
        return len(rows)

    def drain(self, timeout: float = 60.0, subscribers=None, idle_s: float = 0.05) -> None:
        """Dispatch until no delivery is pending (of ``subscribers``, if given) or in flight (tests, one-shot runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.run_once(wait=True)
            with self._lock:
                busy = bool(self._futures)
            pending = outbox.pending_count(self.engine, subscribers)
            if not pending and not busy:
                return
            if not n:
                time.sleep(idle_s)
        raise TimeoutError(f"outbox not drained within {timeout}s")

    def _done(self, f: Future) -> None:
        with self._lock:
            self._futures.discard(f)
        self._wake.set()
        exc = f.exception()
        if exc is not None:
            dep = "postgis" if is_db_outage(exc) else "unknown"
            self._errors.error(("attempt", dep, type(exc).__name__),
                               "webhook attempt could not be recorded (%s): %s; it is retried when its lease ends",
                               dep, type(exc).__name__, exc_info=exc, dependency=dep)

    # claim -------------------------------------------------------------------
    def _claim(self) -> list[dict]:
        now = _now()
        claimed: list[dict] = []
        with self.engine.begin() as conn:
            for sid in outbox.due_endpoints(conn, now, self.batch):
                key = str(sid)
                WEBHOOK_CIRCUIT_OPEN.labels(key)  # exported (0 = closed) from the first claim, not only once opened
                if self.breakers.is_open(key):
                    self._expire_blocked(conn, sid, now)
                    continue
                with self._lock:
                    room = self.max_per_endpoint - self._inflight[key]
                if room <= 0:
                    continue
                for row in outbox.lock_due(conn, sid, now, room):
                    if not self.breakers.acquire(key):  # half-open: only one trial
                        break
                    claimed.append(self._record_attempt(conn, row, now))
                    with self._lock:
                        self._inflight[key] += 1
            pending, failed = outbox.pending_and_failed(conn)
        OUTBOX_DEPTH.set(pending)
        OUTBOX_FAILED.set(failed)
        return claimed

    def _record_attempt(self, conn, row: dict, now: datetime) -> dict:
        """Lease the delivery and write its attempt row (outcome ``sending``) before any request leaves.

        An earlier attempt still ``sending`` was cut short (the sender crashed or was killed mid-request and
        its lease ran out): it becomes ``unknown`` - the receiver may or may not have it; the re-send
        carries the same webhook-id, so receivers deduplicate.
        """
        row["attempt"] = row["attempts"] + 1
        row["attempt_id"], cut = outbox.start_attempt(
            conn, row["id"], row["attempt"], now + timedelta(seconds=self.lease_s),
            "no outcome recorded: the sender stopped during the attempt; re-sent with the same webhook-id")
        for n in cut:
            WEBHOOK_DELIVERIES.labels(str(row["subscriber_id"]), AttemptOutcome.UNKNOWN).inc()
            log.warning("webhook %s attempt %d to subscriber %s ended with no recorded outcome (sender stopped "
                        "mid-send); sending it again", row["id"], n, row["subscriber_id"])
        return row

    def _expire_blocked(self, conn, sid, now: datetime) -> None:
        """Fail the due rows of an endpoint whose circuit is open once their retry window has passed."""
        n = outbox.expire_due(conn, sid, now, self.retry_window, " (circuit open at window end)",
                              "circuit open; retry window elapsed")
        if n:
            WEBHOOK_DELIVERIES.labels(str(sid), AttemptOutcome.FAILED).inc(n)

    # one attempt -------------------------------------------------------------
    def _deliver(self, row: dict) -> None:
        key = str(row["subscriber_id"])
        try:
            self._attempt(row, key)
        except Exception:
            self.breakers.release(key)  # the lease runs out and the row is attempted again
            raise
        finally:
            with self._lock:
                self._inflight[key] -= 1

    def _attempt(self, row: dict, key: str) -> None:
        attempt = row["attempt"]  # counted and recorded (outcome "sending") when claimed
        code: int | None = None
        error: str | None = None
        permanent = False
        t0 = time.perf_counter()
        if not row["active"]:
            error, permanent = "subscription deactivated", True
        else:
            try:
                target = pin(row["url"], self.allow)
                ts = _now()
                headers = {"webhook-id": row["id"], "webhook-timestamp": str(int(ts.timestamp())),
                           "webhook-signature": Webhook(row["secret"]).sign(row["id"], ts, row["payload"]),
                           "content-type": row["content_type"], "host": target.host_header,
                           "user-agent": "terrawatch-webhooks/1"}
                ext = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
                try:
                    resp = self.http.post(target.url, content=row["payload"].encode(), headers=headers,
                                          extensions=ext)
                    code = resp.status_code
                    if not 200 <= code < 300:
                        error = f"HTTP {code}"
                finally:
                    WEBHOOK_SECONDS.labels(key).observe(time.perf_counter() - t0)
            except UnresolvableWebhookHost as exc:  # DNS trouble may pass: retry
                error = f"unresolvable: {exc}"
            except UnsafeWebhookTarget as exc:
                error, permanent = f"refused: {exc}", True
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration = time.perf_counter() - t0
        now = _now()
        if error is None:
            self.breakers.success(key)
            outcome = AttemptOutcome.SUCCEEDED
            values = {"status": OutboxStatus.DELIVERED, "delivered_at": now, "failed_at": None, "next_attempt_at": now}
        else:
            if not permanent:
                self.breakers.failure(key)
            if permanent or now - row["window_start"] >= self.retry_window:
                outcome = AttemptOutcome.FAILED
                values = {"status": OutboxStatus.FAILED, "failed_at": now, "next_attempt_at": now}
            else:
                outcome = AttemptOutcome.RETRY
                wait = backoff_s(attempt, self.retry_base_s, self.retry_cap_s)
                values = {"next_attempt_at": now + timedelta(seconds=wait)}
        # The delivery only if nobody else took it over meanwhile (lease ran out, redelivery); this
        # attempt's own row in any case (what happened to this request is known now).
        outbox.finish_attempt(self.engine, row["id"], attempt, row["attempt_id"], outcome, code, error, duration,
                              values)
        WEBHOOK_DELIVERIES.labels(key, outcome).inc()
        if outcome == AttemptOutcome.SUCCEEDED:
            WEBHOOK_DELIVERY_LAG_SECONDS.labels(key).observe((now - row["window_start"]).total_seconds())
        elif outcome == AttemptOutcome.FAILED:
            log.warning("webhook %s to subscriber %s failed after %d attempts: %s", row["id"], key, attempt, error)
