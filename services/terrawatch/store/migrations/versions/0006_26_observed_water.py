"""Observed water per scene (issue 26): the reference-water product grown from the project's own archive

One row per scene that ran a flood model: the water the model observed (before any reference water was
subtracted), lon/lat MultiPolygon, with the acquisition (platform, sensing time). A later flood run reads
the rows of other acquisitions of the same place as reference water (docs/alerting.md, "Reference water").

Revision ID: 26c
Revises: 26b
Create Date: 2026-12-07 21:00:00
"""
from alembic import op

revision = '26c'
down_revision = '26b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        create table observed_water (
            scene_id varchar(256) primary key references scenes (id) on delete cascade,
            model_version varchar(64) not null,
            platform varchar(32) not null,
            sensing_time timestamptz not null,
            footprint geometry(MultiPolygon, 4326) not null,
            geom geometry(MultiPolygon, 4326),
            updated_at timestamptz not null default now()
        )""")
    op.execute("create index ix_observed_water_footprint on observed_water using gist (footprint)")
    op.execute("create index ix_observed_water_sensing_time on observed_water (sensing_time)")


def downgrade() -> None:
    op.execute("drop table if exists observed_water")
