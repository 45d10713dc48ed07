"""Apply Alembic migrations (``terrawatch db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.pool import NullPool

from terrawatch.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.db_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "heads") -> None:
    """Migrate to ``revision`` as the owner, then apply the role grants (``store/grants.py``)."""
    command.upgrade(alembic_config(settings), revision)
    apply_grants(settings)


def apply_grants(settings: Settings) -> list[str]:
    from sqlalchemy import create_engine

    from terrawatch.store import grants

    engine = create_engine(settings.db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            return grants.apply(conn, grants.role_names(settings))
    finally:
        engine.dispose()
