"""scenes.processing_level: the STAC Item's processing:level as its own column (issue 25)

The STAC API reads through the API read role, which may not read ``scenes.item`` (the event's STAC
Item, with its asset hrefs); the one property it shows from it gets a generated column of its own.

Revision ID: 25a
Revises: 0003
Create Date: 2026-12-07 18:00:00
"""
from alembic import op

revision = '25a'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("alter table scenes add column if not exists processing_level text "
               "generated always as (item #>> '{properties,processing:level}') stored")


def downgrade() -> None:
    op.execute("alter table scenes drop column if exists processing_level")
