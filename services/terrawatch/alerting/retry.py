"""Retry policy pieces for webhook delivery (pure, in-process): backoff with jitter and circuit breakers."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


def backoff_s(attempt: int, base: float = 2.0, cap: float = 3600.0, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter, U(0, min(cap, base * 2^attempt))."""
    r = rng or random
    return r.uniform(0, min(cap, base * 2 ** min(attempt, 62)))


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False  # a half-open trial request is in flight


class CircuitBreakers:
    """One breaker per endpoint: closed -> open after ``threshold`` consecutive failures ->
    half-open after ``cooldown_s`` (one trial request) -> closed on success, open again on failure.

    State is per dispatcher process; with several dispatchers each trips on its own.
    """

    def __init__(self, threshold: int = 5, cooldown_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str, bool], None] | None = None) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.on_change = on_change
        self._s: dict[str, _State] = {}
        self._lock = threading.Lock()

    def state(self, key: str) -> str:
        with self._lock:
            st = self._s.get(key)
            if st is None or st.opened_at is None:
                return "closed"
            if self.clock() - st.opened_at < self.cooldown_s:
                return "open"
            return "half_open"

    def is_open(self, key: str) -> bool:
        return self.state(key) == "open"

    def acquire(self, key: str) -> bool:
        """Whether a request to ``key`` may start now (reserves the single half-open trial)."""
        with self._lock:
            st = self._s.setdefault(key, _State())
            if st.opened_at is None:
                return True
            if self.clock() - st.opened_at < self.cooldown_s or st.trial:
                return False
            st.trial = True
            return True

    def release(self, key: str) -> None:
        """Give back a reserved half-open trial whose request never completed."""
        with self._lock:
            st = self._s.get(key)
            if st is not None:
                st.trial = False

    def success(self, key: str) -> None:
        with self._lock:
            st = self._s.setdefault(key, _State())
            was_open = st.opened_at is not None
            st.failures, st.opened_at, st.trial = 0, None, False
        if was_open and self.on_change:
            self.on_change(key, False)

    def failure(self, key: str) -> None:
        with self._lock:
            st = self._s.setdefault(key, _State())
            st.failures += 1
            opened = False
            if st.trial or (st.opened_at is None and st.failures >= self.threshold):
                opened = st.opened_at is None
                st.opened_at = self.clock()
            st.trial = False
        if opened and self.on_change:
            self.on_change(key, True)
