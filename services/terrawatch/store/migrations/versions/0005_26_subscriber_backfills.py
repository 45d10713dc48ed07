"""Subscribers opt in to backfills (alerts whose last observation is older than the rule's merge window)

Revision ID: 26b
Revises: 26a
Create Date: 2026-12-07 18:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = '26b'
down_revision = '26a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('subscribers', sa.Column('include_backfills', sa.Boolean(), server_default=sa.text('false'),
                                           nullable=False))


def downgrade() -> None:
    op.drop_column('subscribers', 'include_backfills')
