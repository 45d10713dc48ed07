"""Table definitions. Geometries are EPSG:4326; areas in hectares; times timestamptz (UTC)."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, Column, DateTime, Float, ForeignKey, Integer, LargeBinary, MetaData,
    SmallInteger, String, Table, Text, UniqueConstraint, func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData()

scenes = Table(
    "scenes", metadata,
    Column("id", String(256), primary_key=True),
    Column("sensor", String(16), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("sensing_time", DateTime(timezone=True), nullable=False, index=True),
    Column("footprint", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
    Column("item", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    # processing | processed | failed (status_reason, dlq_ref = DLQ record "topic[partition]@offset") |
    # outside_aoa (every hazard asked for lies outside its model's area of applicability); migration 13a
    Column("status", String(16), nullable=False, server_default="processing", index=True),
    Column("status_reason", Text, nullable=True),
    Column("dlq_ref", Text, nullable=True),
    # per hazard: {"status": processed|outside_aoa|no_earlier_scene, "pixels_outside_aoa": n, ...}
    Column("hazard_status", JSONB, nullable=False, server_default="{}"),
    Column("status_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    CheckConstraint("status in ('processing', 'processed', 'failed', 'outside_aoa')", name="ck_scenes_status"),
)

scene_runs = Table(
    "scene_runs", metadata,
    Column("scene_id", String(256), ForeignKey("scenes.id", ondelete="CASCADE"), primary_key=True),
    Column("hazard", String(32), primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("tiles", Integer, nullable=False),
    Column("detections", Integer, nullable=False),
    Column("finished_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

scene_hazard_skips = Table(  # hazards asked for but not run on a scene, and why (e.g. mining on S2 L2A)
    "scene_hazard_skips", metadata,
    Column("scene_id", String(256), ForeignKey("scenes.id", ondelete="CASCADE"), primary_key=True),
    Column("hazard", String(32), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

detections = Table(
    "detections", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("scene_id", String(256), ForeignKey("scenes.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("hazard", String(32), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
    Column("area_ha", Float, nullable=False),
    Column("likelihood", Float, nullable=False),
    Column("sensing_time", DateTime(timezone=True), nullable=False, index=True),
    Column("alert_id", UUID(as_uuid=True), ForeignKey("alerts.id"), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

alerts = Table(
    "alerts", metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("hazard", String(32), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("confidence", String(8), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False),
    Column("area_ha", Float, nullable=False),
    Column("likelihood", Float, nullable=False),
    Column("sensors", ARRAY(String), nullable=False),
    Column("observations", Integer, nullable=False),
    Column("first_sensed", DateTime(timezone=True), nullable=False),
    Column("last_sensed", DateTime(timezone=True), nullable=False, index=True),
    Column("context", JSONB, nullable=False, server_default="{}"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

alert_events = Table(
    "alert_events", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("alert_id", UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("alert_version", Integer, nullable=True),  # the alert version this change produced
)

subscribers = Table(
    "subscribers", metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("url", Text, nullable=False, unique=True),
    Column("secret", Text, nullable=False),
    Column("aoi", Geometry("MULTIPOLYGON", srid=4326), nullable=True),
    Column("hazards", ARRAY(String), nullable=False),
    Column("min_confidence", String(8), nullable=False, server_default="low"),
    Column("format", String(8), nullable=False, server_default="geojson"),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_by", String(128), nullable=True),
    # also send alerts whose last observation is older than the rule's merge window (migration 26b)
    Column("include_backfills", Boolean, nullable=False, server_default="false"),
)

webhook_outbox = Table(
    "webhook_outbox", metadata,
    Column("id", String(64), primary_key=True),  # the Standard Webhooks webhook-id, stable across retries
    Column("alert_id", UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("alert_version", Integer, nullable=False),
    Column("subscriber_id", UUID(as_uuid=True), ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("event_type", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("content_type", String(64), nullable=False, server_default="application/json"),
    Column("status", String(12), nullable=False, server_default="pending", index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), server_default=func.now(), nullable=False, index=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    # Start of the current retry window: enqueue time, reset by an operator's redelivery.
    Column("window_start", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("redeliveries", Integer, nullable=False, server_default="0"),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    UniqueConstraint("alert_id", "alert_version", "subscriber_id", name="uq_outbox_alert_version_sub"),
)

# One row per HTTP attempt of a delivery (and per give-up without an attempt), for operators.
webhook_attempts = Table(
    "webhook_attempts", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), ForeignKey("webhook_outbox.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("outcome", String(12), nullable=False),  # succeeded | retry | failed
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_s", Float, nullable=True),
)

# API (migration 0003) ---------------------------------------------------------

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),  # public key id, the part of the key before the secret
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("key_hash", LargeBinary, nullable=False),  # sha256(salt || secret)
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("created_by", String(160), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("role in ('viewer', 'operator', 'admin')", name="ck_api_keys_role"),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), server_default=func.now(), nullable=False, index=True),
    Column("actor", String(160), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("target", Text, nullable=True),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("client", String(64), nullable=True),
)

control = Table(
    "control", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Column("updated_by", String(160), nullable=False),
)

reference_features = Table(
    "reference_features", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("layer", String(64), nullable=False, index=True),
    Column("name", Text, nullable=True),
    Column("properties", JSONB, nullable=False, server_default="{}"),
    Column("geom", Geometry(srid=4326, spatial_index=False), nullable=False),  # GiST index made in 0003
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

# One row: a version bumped at commit by every change to a table the map layers read (migration 26a's
# deferred trigger); vector tile caches and ETags are keyed by it.
tile_data_version = Table(
    "tile_data_version", metadata,
    Column("id", SmallInteger, primary_key=True, server_default="1"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("changed_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

# What operators did with a scene DLQ entry (the entry itself is the Kafka record at dlq topic/partition/offset).
# No row = pending. Kafka records are immutable, so "purged" is recorded here; retention removes the record.
dlq_entries = Table(
    "dlq_entries", metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("kind", String(16), nullable=True),
    Column("source_key", Text, nullable=True),
    Column("redriven_at", DateTime(timezone=True), nullable=True),
    Column("redriven_by", String(160), nullable=True),
    Column("redrives", Integer, nullable=False, server_default="0"),
    Column("purged_at", DateTime(timezone=True), nullable=True),
    Column("purged_by", String(160), nullable=True),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    CheckConstraint("state in ('pending', 'redriven', 'purged')", name="ck_dlq_entries_state"),
)

# Water a flood model observed in each scene, before reference water was subtracted (migration 26c): the
# reference-water product grown from the archive (store/reference_history.py, docs/alerting.md).
observed_water = Table(
    "observed_water", metadata,
    Column("scene_id", String(256), ForeignKey("scenes.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version", String(64), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("sensing_time", DateTime(timezone=True), nullable=False),
    Column("footprint", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True),
    Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

# What each reference layer claims to cover (migration 13a): "outside every concession" is evidence of
# illegality only inside the concession layer's coverage (declared with --coverage, else its extent).
reference_layer_coverage = Table(
    "reference_layer_coverage", metadata,
    Column("layer", String(64), primary_key=True),
    Column("coverage", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True),
    Column("coverage_source", Text, nullable=False),
    Column("features", Integer, nullable=False),
    Column("loaded_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)
