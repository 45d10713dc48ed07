"""issue 13: scene status (processing/processed/failed/outside_aoa), reference-layer coverage, legality
and scene status in the ogc views

Revision ID: 13a
Revises: 0003
Create Date: 2026-12-06 14:30:00
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from sqlalchemy.dialects import postgresql

revision = '13a'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before this revision were processed (failed scenes were not stored then).
    op.add_column('scenes', sa.Column('status', sa.String(length=16), server_default='processed', nullable=False))
    op.alter_column('scenes', 'status', server_default='processing')
    op.add_column('scenes', sa.Column('status_reason', sa.Text(), nullable=True))
    op.add_column('scenes', sa.Column('dlq_ref', sa.Text(), nullable=True))
    op.add_column('scenes', sa.Column('hazard_status', postgresql.JSONB(astext_type=sa.Text()),
                                      server_default='{}', nullable=False))
    op.add_column('scenes', sa.Column('status_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                                      nullable=False))
    op.create_check_constraint('ck_scenes_status', 'scenes',
                               "status in ('processing', 'processed', 'failed', 'outside_aoa')")
    op.create_index(op.f('ix_scenes_status'), 'scenes', ['status'], unique=False)
    op.create_table(
        'reference_layer_coverage',
        sa.Column('layer', sa.String(length=64), nullable=False),
        sa.Column('coverage', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=4326,
                                                         from_text='ST_GeomFromEWKT', name='geometry',
                                                         spatial_index=False), nullable=True),
        sa.Column('coverage_source', sa.Text(), nullable=False),
        sa.Column('features', sa.Integer(), nullable=False),
        sa.Column('loaded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('layer'),
    )
    # New columns go at the end of the views (create or replace view may only append columns).
    op.execute("""
        create or replace view ogc.alerts as
        select a.id::text as id, a.hazard, a.status, a.confidence, a.severity, a.area_ha, a.likelihood,
               array_to_string(a.sensors, ',') as sensors, a.observations, a.first_sensed,
               a.last_sensed as sensing_time, a.version, a.geom,
               a.context -> 'legality' ->> 'status' as legality,
               a.context -> 'legality' ->> 'rule' as legality_rule,
               coalesce(a.context -> 'legality' -> 'feature' ->> 'feature_name',
                        a.context -> 'legality' -> 'feature' ->> 'feature_id') as legality_feature,
               a.context -> 'legality' -> 'coverage' ->> 'source' as legality_coverage
        from public.alerts a
    """)
    op.execute("""
        create or replace view ogc.scenes as
        select s.id, s.sensor, s.platform, s.item -> 'properties' ->> 'constellation' as constellation,
               s.sensing_time, s.received_at, s.footprint as geom,
               s.status, s.status_reason, s.dlq_ref, s.hazard_status::text as hazard_status, s.status_at
        from public.scenes s
    """)
    op.execute("comment on view ogc.scenes is 'Footprints of received Sentinel scenes with their processing "
               "status (processing, processed, failed with reason and DLQ reference, outside_aoa), EPSG:4326.'")
    op.execute("comment on view ogc.alerts is 'Alerts: clusters of detections with lifecycle status, confidence "
               "tier and (mining) legality: illegal / licensed / unknown with its rule and feature or coverage, "
               "EPSG:4326.'")


def downgrade() -> None:
    op.execute("drop view if exists ogc.scenes")
    op.execute("drop view if exists ogc.alerts")
    op.execute("""
        create view ogc.alerts as
        select a.id::text as id, a.hazard, a.status, a.confidence, a.severity, a.area_ha, a.likelihood,
               array_to_string(a.sensors, ',') as sensors, a.observations, a.first_sensed,
               a.last_sensed as sensing_time, a.version, a.geom
        from public.alerts a
    """)
    op.execute("""
        create view ogc.scenes as
        select s.id, s.sensor, s.platform, s.item -> 'properties' ->> 'constellation' as constellation,
               s.sensing_time, s.received_at, s.footprint as geom
        from public.scenes s
    """)
    op.drop_table('reference_layer_coverage')
    op.drop_index(op.f('ix_scenes_status'), table_name='scenes')
    op.drop_constraint('ck_scenes_status', 'scenes')
    for c in ('status_at', 'hazard_status', 'dlq_ref', 'status_reason', 'status'):
        op.drop_column('scenes', c)
