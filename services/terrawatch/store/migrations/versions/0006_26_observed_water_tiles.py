"""Observed water is a vector tile layer (issue 26): its changes bump the tile data version too

``observed_water`` joins the tables whose every change bumps ``tile_data_version`` at commit (the deferred
constraint trigger of migration 26a), so a cached ``/tiles/observed_water`` tile is never served after the
water it shows changed. (The pipeline writes it in the transaction that also finishes its scene, which bumped
the version already; the trigger makes that a property of the table, not of the one writer.)

Revision ID: 26e
Revises: 26d
Create Date: 2026-12-08 00:30:00
"""
from alembic import op

revision = '26e'
down_revision = '26d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        create constraint trigger observed_water_tile_data_version after insert or update or delete on observed_water
        deferrable initially deferred for each row execute function bump_tile_data_version()""")


def downgrade() -> None:
    op.execute("drop trigger if exists observed_water_tile_data_version on observed_water")
