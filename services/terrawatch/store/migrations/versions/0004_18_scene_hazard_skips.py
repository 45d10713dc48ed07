"""Hazards a scene was not run for, with the reason (e.g. mining on a Sentinel-2 L2A scene)

Revision ID: 18a
Revises: 0003
Create Date: 2026-12-06 14:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '18a'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'scene_hazard_skips',
        sa.Column('scene_id', sa.String(length=256), sa.ForeignKey('scenes.id', ondelete='CASCADE'), nullable=False),
        sa.Column('hazard', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('scene_id', 'hazard'),
    )


def downgrade() -> None:
    op.drop_table('scene_hazard_skips')
