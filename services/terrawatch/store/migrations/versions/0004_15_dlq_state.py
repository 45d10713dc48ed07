"""DLQ entry state (pending / redriven / purged), keyed by DLQ topic/partition/offset

Revision ID: 15a
Revises: 0003
Create Date: 2026-12-06 14:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '15a'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dlq_entries',
        sa.Column('topic', sa.String(length=249), nullable=False),
        sa.Column('partition', sa.Integer(), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('error_code', sa.String(length=64), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=True),
        sa.Column('source_key', sa.Text(), nullable=True),
        sa.Column('redriven_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('redriven_by', sa.String(length=160), nullable=True),
        sa.Column('redrives', sa.Integer(), server_default='0', nullable=False),
        sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('purged_by', sa.String(length=160), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("state in ('pending', 'redriven', 'purged')", name='ck_dlq_entries_state'),
        sa.PrimaryKeyConstraint('topic', 'partition', 'offset'),
    )


def downgrade() -> None:
    op.drop_table('dlq_entries')
