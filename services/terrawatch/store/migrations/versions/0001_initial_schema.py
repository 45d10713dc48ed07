"""initial schema: scenes, runs, detections, alerts, subscribers, outbox

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 16:28:42.598829
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('hazard', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('confidence', sa.String(length=8), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('area_ha', sa.Float(), nullable=False),
    sa.Column('likelihood', sa.Float(), nullable=False),
    sa.Column('sensors', postgresql.ARRAY(sa.String()), nullable=False),
    sa.Column('observations', sa.Integer(), nullable=False),
    sa.Column('first_sensed', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_sensed', sa.DateTime(timezone=True), nullable=False),
    sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_alerts_hazard'), 'alerts', ['hazard'], unique=False)
    op.create_index(op.f('ix_alerts_last_sensed'), 'alerts', ['last_sensed'], unique=False)
    op.create_index(op.f('ix_alerts_status'), 'alerts', ['status'], unique=False)
    op.create_table('scenes',
    sa.Column('id', sa.String(length=256), nullable=False),
    sa.Column('sensor', sa.String(length=16), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('sensing_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('footprint', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('item', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_scenes_sensing_time'), 'scenes', ['sensing_time'], unique=False)
    op.create_table('subscribers',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('aoi', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('hazards', postgresql.ARRAY(sa.String()), nullable=False),
    sa.Column('min_confidence', sa.String(length=8), server_default='low', nullable=False),
    sa.Column('format', sa.String(length=8), server_default='geojson', nullable=False),
    sa.Column('active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('url')
    )
    op.create_table('alert_events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.UUID(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_alert_events_alert_id'), 'alert_events', ['alert_id'], unique=False)
    op.create_table('detections',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('scene_id', sa.String(length=256), nullable=False),
    sa.Column('hazard', sa.String(length=32), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('area_ha', sa.Float(), nullable=False),
    sa.Column('likelihood', sa.Float(), nullable=False),
    sa.Column('sensing_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('alert_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ),
    sa.ForeignKeyConstraint(['scene_id'], ['scenes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_detections_alert_id'), 'detections', ['alert_id'], unique=False)
    op.create_index(op.f('ix_detections_scene_id'), 'detections', ['scene_id'], unique=False)
    op.create_index(op.f('ix_detections_sensing_time'), 'detections', ['sensing_time'], unique=False)
    op.create_table('scene_runs',
    sa.Column('scene_id', sa.String(length=256), nullable=False),
    sa.Column('hazard', sa.String(length=32), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('tiles', sa.Integer(), nullable=False),
    sa.Column('detections', sa.Integer(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['scene_id'], ['scenes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('scene_id', 'hazard', 'model_version')
    )
    op.create_table('webhook_outbox',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('alert_id', sa.UUID(), nullable=False),
    sa.Column('alert_version', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.UUID(), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('content_type', sa.String(length=64), server_default='application/json', nullable=False),
    sa.Column('status', sa.String(length=12), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alert_id', 'alert_version', 'subscriber_id', name='uq_outbox_alert_version_sub')
    )
    op.create_index(op.f('ix_webhook_outbox_next_attempt_at'), 'webhook_outbox', ['next_attempt_at'], unique=False)
    op.create_index(op.f('ix_webhook_outbox_status'), 'webhook_outbox', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_webhook_outbox_status'), table_name='webhook_outbox')
    op.drop_index(op.f('ix_webhook_outbox_next_attempt_at'), table_name='webhook_outbox')
    op.drop_table('webhook_outbox')
    op.drop_table('scene_runs')
    op.drop_index(op.f('ix_detections_sensing_time'), table_name='detections')
    op.drop_index(op.f('ix_detections_scene_id'), table_name='detections')
    op.drop_index(op.f('ix_detections_alert_id'), table_name='detections')
    op.drop_table('detections')
    op.drop_index(op.f('ix_alert_events_alert_id'), table_name='alert_events')
    op.drop_table('alert_events')
    op.drop_table('subscribers')
    op.drop_index(op.f('ix_scenes_sensing_time'), table_name='scenes')
    op.drop_table('scenes')
    op.drop_index(op.f('ix_alerts_status'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_last_sensed'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_hazard'), table_name='alerts')
    op.drop_table('alerts')
