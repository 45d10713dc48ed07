"""PostGIS storage: tables (SQLAlchemy Core + GeoAlchemy2), Alembic migrations, unit of work."""
