"""Observed water is its own OGC collection (issue 26: observed water and flood apart, as GFM publishes them)

``ogc.observed_water``: the water each scene's latest flood run observed, before reference water was
subtracted (the flood is the ``detections`` collection). Published by the OGC API like the other ``ogc`` views.

Revision ID: 26d
Revises: 26c
Create Date: 2026-12-07 21:45:00
"""
from alembic import op

revision = '26d'
down_revision = '26c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        create view ogc.observed_water as
        select o.scene_id as id, o.scene_id, o.platform, o.sensing_time, o.model_version,
               round((ST_Area(o.geom::geography) / 10000.0)::numeric, 4)::double precision as area_ha,
               o.geom, o.updated_at
        from public.observed_water o
        where o.geom is not null
    """)
    op.execute("comment on view ogc.observed_water is 'Water observed in each scene by its latest flood run, "
               "before reference water was subtracted (flood = observed water minus reference water).'")


def downgrade() -> None:
    op.execute("drop view if exists ogc.observed_water")
