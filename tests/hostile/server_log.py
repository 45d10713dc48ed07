"""What the API server logged while a hostile corpus ran: tracebacks and error lines must stay empty."""

from __future__ import annotations

import logging


class ServerErrors(logging.Handler):
    """Collects WARNING+ records; :meth:`failures` lists the ones that mean a 5xx or an unhandled exception."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def failures(self) -> list[str]:
        """Tracebacks and error lines the server logged (a 5xx, an unhandled exception), 300 characters each."""
        return [f"{r.name}: {r.getMessage()[:300]}" for r in self.records
                if r.exc_info or r.levelno >= logging.ERROR or " 500 " in r.getMessage()]
