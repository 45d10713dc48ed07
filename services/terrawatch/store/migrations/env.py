"""Alembic environment: the URL comes from terrawatch settings (TERRAWATCH_DATABASE_URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from terrawatch.store.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")


def include_object(obj, name, type_, reflected, compare_to):
    # PostGIS owns these; never let autogenerate touch them.
    return not (type_ == "table" and name in {"spatial_ref_sys"})


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
