"""What the worker does when a scene fails: dead-letter it, wait for a dependency, or retry it.

Pure decision logic (no Kafka, SQL or HTTP), unit-tested with plain values. The worker classifies a
failure first (see ``service.worker.classify``):

- ``BAD_INPUT``: the scene's own fault (an invalid event, an unreadable asset, no valid pixels, input a
  model rejects). Retrying cannot help: dead-letter at once.
- ``DEPENDENCY``: Triton, Ray or PostGIS is down or not ready (the error says so, or a readiness probe
  confirms it). Not the scene's fault: consumption pauses and the scene waits, without spending an
  attempt, until the dependency is ready again. Only an outage longer than ``outage_window_s`` dead-letters
  the scene as ``transient`` (a scene that itself crashes a dependency must not stop the pipeline for
  ever; transient entries are re-driven automatically once the dependencies are ready).
- ``UNKNOWN``: an error while every dependency answers its probe (a Ray worker died, Triton failed on
  this input): retried ``max_attempts`` times with exponential backoff, then dead-lettered as
  ``transient``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum


class RestartRequired(Exception):
    """Mixed into an error that means the worker process must restart to recover (e.g. the Ray head it
    joined was replaced: a Ray driver cannot re-join a new cluster in-process)."""


class Failure(Enum):
    BAD_INPUT = "bad_input"
    DEPENDENCY = "dependency"
    UNKNOWN = "unknown"


class Action(Enum):
    DEAD_LETTER = "dead_letter"
    WAIT_FOR_DEPENDENCY = "wait_for_dependency"
    RETRY = "retry"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    wait_s: float = 0.0  # RETRY: backoff before the next attempt (s)


@dataclass(frozen=True)
class RecoveryPolicy:
    """``outage_window_s``: longest time (s) one scene waits out dependency outages before it is
    dead-lettered; ``max_attempts``/``retry_base_s``: tries and backoff base (s) for UNKNOWN failures."""

    outage_window_s: float = 900.0
    max_attempts: int = 3
    retry_base_s: float = 2.0

    def decide(self, failure: Failure, error: str, attempts: int = 1, outage_s: float = 0.0,
               dependency: str | None = None) -> Decision:
        """``attempts``: failed attempts of the scene so far (>= 1), outages not counted; ``outage_s``:
        how long (s) this scene has waited for dependencies so far."""
        if failure is Failure.BAD_INPUT:
            return Decision(Action.DEAD_LETTER, error)
        if failure is Failure.DEPENDENCY:
            if outage_s >= self.outage_window_s:
                return Decision(Action.DEAD_LETTER,
                                f"{dependency or 'a dependency'} unavailable for {outage_s:.0f} s "
                                f"(outage window {self.outage_window_s:.0f} s): {error}")
            return Decision(Action.WAIT_FOR_DEPENDENCY, error)
        if attempts >= self.max_attempts:
            return Decision(Action.DEAD_LETTER, f"gave up after {attempts} attempts: {error}")
        return Decision(Action.RETRY, error, self.retry_base_s * 2 ** (attempts - 1))


def probe_delays(first_s: float = 0.5, cap_s: float = 10.0) -> Iterator[float]:
    """Waits (s) between readiness probes of a dependency that is down: doubling from ``first_s`` to ``cap_s``."""
    d = first_s
    while True:
        yield d
        d = min(d * 2, cap_s)


def pause_reason(dependency: str, seconds: float, window_s: float) -> str:
    """The operator-facing sentence for a dependency pause (``/ops/status``, logs)."""
    return (f"consumption paused: {dependency} unavailable for {seconds:.0f} s; the scene in flight waits "
            f"up to {window_s:.0f} s before it is dead-lettered as transient")
