"""alerting: delivery attempts, retry windows and redelivery, subscriber metadata, event versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alert_events', sa.Column('alert_version', sa.Integer(), nullable=True))
    op.add_column('subscribers', sa.Column('description', sa.Text(), nullable=True))
    op.add_column('subscribers', sa.Column('created_by', sa.String(length=128), nullable=True))
    op.add_column('webhook_outbox', sa.Column('window_start', sa.DateTime(timezone=True),
                                              server_default=sa.text('now()'), nullable=False))
    # Rows enqueued before this revision start their retry window at enqueue time.
    op.execute("update webhook_outbox set window_start = created_at")
    op.add_column('webhook_outbox', sa.Column('redeliveries', sa.Integer(), server_default='0', nullable=False))
    op.add_column('webhook_outbox', sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('webhook_outbox', sa.Column('last_status_code', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_webhook_outbox_subscriber_id'), 'webhook_outbox', ['subscriber_id'], unique=False)
    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('delivery_id', sa.String(length=64), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('outcome', sa.String(length=12), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_outbox.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_webhook_attempts_delivery_id'), 'webhook_attempts', ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_webhook_attempts_delivery_id'), table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index(op.f('ix_webhook_outbox_subscriber_id'), table_name='webhook_outbox')
    op.drop_column('webhook_outbox', 'last_status_code')
    op.drop_column('webhook_outbox', 'failed_at')
    op.drop_column('webhook_outbox', 'redeliveries')
    op.drop_column('webhook_outbox', 'window_start')
    op.drop_column('subscribers', 'created_by')
    op.drop_column('subscribers', 'description')
    op.drop_column('alert_events', 'alert_version')
