"""Alerts and detections carry created_at / updated_at in the OGC views; one data version for tile caches

``tile_data_version`` holds one row whose ``version`` is bumped, at commit time, by every transaction that
changes a table the map layers read (scenes, detections, alerts, reference features). A deferred constraint
trigger does it, so the new version becomes visible in the same commit as the data: a reader that reads the
version *before* rendering can never cache older data under a newer version. The function is SECURITY
DEFINER so the API write role (alert transitions) needs no privilege on the table.

Revision ID: 26a
Revises: 13a
Create Date: 2026-12-07 18:10:00
"""
from alembic import op

revision = '26a'
down_revision = '13a'
branch_labels = None
depends_on = None

LAYER_TABLES = ("scenes", "detections", "alerts", "reference_features")


def upgrade() -> None:
    op.execute("""
        create table tile_data_version (
            id smallint primary key default 1 check (id = 1),
            version bigint not null default 0,
            changed_at timestamptz not null default now()
        )""")
    op.execute("insert into tile_data_version (id, version) values (1, 0)")
    op.execute("""
        create or replace function bump_tile_data_version() returns trigger
        language plpgsql security definer set search_path = public, pg_temp as $$
        begin
            -- once per transaction: the row lock is taken at commit time only
            if coalesce(current_setting('terrawatch.tile_version_bumped', true), '') = txid_current()::text then
                return null;
            end if;
            perform set_config('terrawatch.tile_version_bumped', txid_current()::text, true);
            update tile_data_version set version = version + 1, changed_at = now() where id = 1;
            return null;
        end $$""")
    for t in LAYER_TABLES:
        op.execute(f"""
            create constraint trigger {t}_tile_data_version after insert or update or delete on {t}
            deferrable initially deferred for each row execute function bump_tile_data_version()""")
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
               a.context -> 'legality' -> 'coverage' ->> 'source' as legality_coverage,
               a.created_at, a.updated_at
        from public.alerts a
    """)
    op.execute("""
        create or replace view ogc.detections as
        select d.id, d.scene_id, d.hazard, d.model_version, d.area_ha, d.likelihood, d.sensing_time,
               d.alert_id::text as alert_id, a.confidence, a.status,
               d.geom,
               d.created_at, greatest(d.created_at, a.updated_at) as updated_at
        from public.detections d left join public.alerts a on a.id = d.alert_id
    """)
    op.execute("create index if not exists ix_alerts_updated_at on alerts (updated_at)")
    op.execute("comment on column ogc.alerts.created_at is 'When terrawatch raised the alert (UTC).'")
    op.execute("comment on column ogc.alerts.updated_at is 'When the alert last changed: new observation, "
               "status transition or withdrawal (UTC).'")
    op.execute("comment on column ogc.detections.updated_at is 'Later of the detection''s creation and its "
               "alert''s last change (UTC).'")


def downgrade() -> None:
    for t in LAYER_TABLES:
        op.execute(f"drop trigger if exists {t}_tile_data_version on {t}")
    op.execute("drop function if exists bump_tile_data_version()")
    op.execute("drop table if exists tile_data_version")
    op.execute("drop index if exists ix_alerts_updated_at")
    op.execute("drop view if exists ogc.detections")
    op.execute("drop view if exists ogc.alerts")
    op.execute("""
        create view ogc.alerts as
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
        create view ogc.detections as
        select d.id, d.scene_id, d.hazard, d.model_version, d.area_ha, d.likelihood, d.sensing_time,
               d.alert_id::text as alert_id, a.confidence, a.status,
               d.geom
        from public.detections d left join public.alerts a on a.id = d.alert_id
    """)
