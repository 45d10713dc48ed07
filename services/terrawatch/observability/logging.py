"""Structured JSON logs: one JSON object per line on stderr.

Every record carries ``ts`` (UTC, RFC 3339 with milliseconds), ``level``,
``logger`` and ``msg``, plus the contextual fields set with :func:`log_context`
(``scene_id``, ``tile_id``, ``trace_id`` and any other keyword) and the
``extra={...}`` of the call. Context lives in a :mod:`contextvars` variable, so it
follows asyncio tasks and does not leak between threads.

    configure_logging("INFO")
    with log_context(scene_id="S1A_...", trace_id="4bf9..."):
        log.info("tiled", extra={"tiles": 42})
    # {"ts": "...", "level": "INFO", "logger": "...", "msg": "tiled",
    #  "scene_id": "S1A_...", "trace_id": "4bf9...", "tiles": 42}
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "terrawatch_log_context", default={}
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add ``fields`` to every log record emitted inside the block (nesting merges).

    ``None`` values are dropped, so ``log_context(tile_id=None)`` is a no-op.
    Yields the merged context.
    """
    merged = {**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield merged
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, Any]:
    """The contextual fields in force here (a copy)."""
    return dict(_CONTEXT.get())


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON (non-JSON values go through ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc)
        doc: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_CONTEXT.get())
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Route all logging through one JSON handler on ``stream`` (default stderr).

    ``level`` is a name such as ``"debug"`` or ``"INFO"`` (case-insensitive), usually
    the ``TERRAWATCH_LOG_LEVEL`` setting. Replaces handlers on the root logger, so
    calling it again reconfigures rather than duplicates. Returns the handler.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)
    return handler


class RepeatLimiter:
    """Rate-limit repeated identical log messages, so one outage is one readable line, not a wall.

    The first occurrence of a ``key`` is logged in full (with its traceback when ``exc_info`` is given);
    later ones are only counted, and at most every ``every_s`` s one line says how often the message
    repeated. :meth:`clear` (the condition ended) logs how many were not shown. Keys are chosen by the
    caller: e.g. ``("postgis", "OperationalError")`` - the dependency named, not the changing details.
    Thread-safe. ``clock``: seconds, monotonic (tests pass a fake).
    """

    def __init__(self, logger: logging.Logger, every_s: float = 60.0, clock=None) -> None:
        import threading
        import time

        self.logger = logger
        self.every_s = every_s
        self.clock = clock or time.monotonic
        self._state: dict[Any, list[float]] = {}  # key -> [last emitted at, suppressed since then, total]
        self._lock = threading.Lock()

    def log(self, level: int, key: Any, msg: str, *args: Any, exc_info: Any = None, **fields: Any) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` was logged less than ``every_s`` s ago; True if logged."""
        now = self.clock()
        with self._lock:
            st = self._state.get(key)
            if st is None:
                self._state[key] = [now, 0, 1]
                repeats = 0
            else:
                st[1] += 1
                st[2] += 1
                if now - st[0] < self.every_s:
                    return False
                repeats, since = int(st[1]), now - st[0]
                st[0], st[1] = now, 0
        if repeats:
            self.logger.log(level, msg + " (repeated %d times in the last %.0f s)", *args, repeats, since,
                            extra={**fields, "repeats": repeats})
        else:
            self.logger.log(level, msg, *args, exc_info=exc_info, extra=fields or None)
        return True

    def warning(self, key: Any, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.WARNING, key, msg, *args, **kw)

    def error(self, key: Any, msg: str, *args: Any, **kw: Any) -> bool:
        return self.log(logging.ERROR, key, msg, *args, **kw)

    def clear(self, key: Any, msg: str | None = None, *args: Any, **fields: Any) -> None:
        """The condition behind ``key`` ended: log ``msg`` (if given) with the number of occurrences."""
        with self._lock:
            st = self._state.pop(key, None)
        if st is not None and msg:
            self.logger.info(msg + " (%d occurrences in all)", *args, int(st[2]), extra=fields or None)

    def active(self, key: Any) -> bool:
        with self._lock:
            return key in self._state
