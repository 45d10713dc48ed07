"""API: hashed API keys, audit log, control flags, reference layers, and the `ogc` schema of views

The `ogc` schema holds read-only views that the OGC API - Features endpoint
(tipg) and the vector tiles publish; it exposes only public columns (no STAC
item JSON, no subscriber secrets).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22 17:00:00
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_keys',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('salt', sa.LargeBinary(), nullable=False),
        sa.Column('key_hash', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('created_by', sa.String(length=160), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role in ('viewer', 'operator', 'admin')", name='ck_api_keys_role'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('actor', sa.String(length=160), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.Text(), nullable=True),
        sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        sa.Column('client', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'], unique=False)
    op.create_index(op.f('ix_audit_log_action'), 'audit_log', ['action'], unique=False)
    op.create_table(
        'control',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_by', sa.String(length=160), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_table(
        'reference_features',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('layer', sa.String(length=64), nullable=False),
        sa.Column('name', sa.Text(), nullable=True),
        sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        sa.Column('geom', geoalchemy2.types.Geometry(srid=4326, from_text='ST_GeomFromEWKT', name='geometry',
                                                     nullable=False), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_reference_features_layer'), 'reference_features', ['layer'], unique=False)
    # geoalchemy2's alembic helpers are not wired in env.py, so the GiST index is created here.
    op.execute("create index if not exists idx_reference_features_geom on reference_features using gist (geom)")

    op.execute("create schema if not exists ogc")
    op.execute("""
        create view ogc.detections as
        select d.id, d.scene_id, d.hazard, d.model_version, d.area_ha, d.likelihood, d.sensing_time,
               d.alert_id::text as alert_id, a.confidence, a.status,
               d.geom
        from public.detections d left join public.alerts a on a.id = d.alert_id
    """)
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
    op.execute("""
        create view ogc.reference_layers as
        select r.id, r.layer, r.name, r.properties::text as properties, r.created_at,
               r.geom
        from public.reference_features r
    """)
    op.execute("comment on view ogc.detections is "
               "'Hazard detection polygons (one per connected region per scene), EPSG:4326, area in hectares.'")
    op.execute("comment on view ogc.alerts is "
               "'Alerts: clusters of detections with lifecycle status and confidence tier, EPSG:4326.'")
    op.execute("comment on view ogc.scenes is 'Footprints of processed Sentinel scenes, EPSG:4326.'")
    op.execute("comment on view ogc.reference_layers is "
               "'Reference features (areas of interest, protected areas, ...) grouped by layer, EPSG:4326.'")


def downgrade() -> None:
    op.execute("drop schema if exists ogc cascade")
    op.drop_index(op.f('ix_reference_features_layer'), table_name='reference_features')
    op.drop_table('reference_features')
    op.drop_table('control')
    op.drop_index(op.f('ix_audit_log_action'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_at'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('api_keys')
