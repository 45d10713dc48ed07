"""What code outside ``store/`` may know about the database: opaque handle types and the error families.

Modules outside ``store/`` import no SQLAlchemy (tests/unit/test_sql_boundary.py checks it); they hold an
``Engine`` (a pool, from :func:`terrawatch.store.uow.engine_for`) or a ``Connection`` (one transaction)
only to hand it back to ``store/`` functions. The exception tuples below are what the API maps to HTTP
(api/errors.py): an outage (503) and a value the database refused (422/400).
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

__all__ = ["Engine", "Connection", "OUTAGE_ERRORS", "DATA_ERRORS", "plain_postgres_dsn", "postgis_version"]

# PostGIS unreachable, restarting or dropping the connection (psycopg through SQLAlchemy).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
# SQLSTATE class 22 (data exception): a bound value the database cannot take (NUL byte, text for a number).
DATA_ERRORS: tuple[type[BaseException], ...] = (DataError,)


def plain_postgres_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as a plain ``postgresql://`` DSN (asyncpg, tipg)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgis_version(engine: Engine) -> str:
    """``postgis <version>`` of the database behind ``engine`` (a readiness check: it needs a live connection)."""
    with engine.connect() as conn:
        return "postgis " + conn.execute(text("select postgis_lib_version()")).scalar_one()
