"""Database roles and their privileges: the one definition, applied after ``upgrade heads``.

Roles (their login URLs are settings, one per role; docs/security.md):

* **owner** (``TERRAWATCH_DATABASE_URL``, default role ``terrawatch``): owns the schema; runs the
  migrations, this grants step and the admin CLI. Not a superuser: the superuser only creates the
  database, the roles and the ``postgis`` extension (``stack/postgres.py`` locally, the DBA elsewhere).
* **worker** (``TERRAWATCH_WORKER_DATABASE_URL``, ``terrawatch_worker``): the pipeline and the
  dispatcher. Reads and writes every pipeline table (default privileges cover tables later
  migrations add), never ``api_keys`` or ``audit_log``.
* **api_read** (``TERRAWATCH_API_READ_DATABASE_URL``, ``terrawatch_api_read``): what anonymous and
  viewer requests run as (OGC API / tipg, vector tiles, status and alert reads). ``SELECT`` on the
  published ``ogc`` views and on the columns listed in :data:`API_READ`; nothing else, so
  ``subscribers.secret``, ``api_keys`` and ``audit_log`` are unreadable to it.
* **api_write** (``TERRAWATCH_API_WRITE_DATABASE_URL``, ``terrawatch_api_write``): authentication and
  the operator/admin routes; the privileges in :data:`API_WRITE`.

Every table the migrations create must appear in both :data:`API_READ` and :data:`API_WRITE`
(``NONE`` is a valid answer): ``tests/integration/test_db_roles.py`` fails on a table that is not
classified, so a new table is never readable by the API by accident. :func:`apply` is idempotent:
it revokes what the API roles hold on ``public`` tables and grants the table again.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

ALL = "all"  # every column
NONE: tuple[str, ...] = ()

# table -> columns api_read may SELECT (ALL, a tuple of columns, or NONE).
API_READ: dict[str, str | tuple[str, ...]] = {
    # no STAC item JSON; processing_level (migration 25a) for the STAC API
    "scenes": ("id", "sensor", "platform", "sensing_time", "received_at", "footprint", "processing_level"),
    "scene_runs": ALL,
    "detections": ALL,
    "alerts": ALL,
    "alert_events": ALL,
    "webhook_outbox": ("id", "status"),  # /ops/status counts deliveries by status
    "control": ALL,  # /ops/consumption: the pause flag
    "reference_features": ALL,
    "reference_layer_coverage": ALL,
    "scene_hazard_skips": ALL,
    "dlq_entries": ("topic", "partition", "offset", "state"),  # /ops/status counts entries by state
    "subscribers": NONE,  # webhook signing secrets
    "webhook_attempts": NONE,
    "api_keys": NONE,
    "audit_log": NONE,
    "alembic_version": NONE,
    "tile_data_version": ("id", "version"),  # vector tile cache key and ETag
    "observed_water": ALL,  # observed water per scene (issue 26): public like detections
}

# table -> privileges of api_write ("" = none).
API_WRITE: dict[str, str] = {
    "api_keys": "SELECT, INSERT, UPDATE",  # verify (last_used_at), create, revoke
    "audit_log": "SELECT, INSERT",  # every action; GET /ops/audit
    "control": "SELECT, INSERT, UPDATE",  # pause / resume
    "reference_features": "SELECT, INSERT, DELETE",  # PUT / DELETE /ops/reference-layers
    "reference_layer_coverage": "SELECT, INSERT, UPDATE, DELETE",  # the layer's declared coverage
    "dlq_entries": "SELECT, INSERT, UPDATE",  # /ops/dlq redrive / purge marks
    "alerts": "SELECT, UPDATE",  # lifecycle transitions
    "alert_events": "SELECT, INSERT",
    "webhook_outbox": "SELECT, INSERT, UPDATE",  # transition webhooks, redeliver
    "webhook_attempts": "SELECT",  # delivery details
    "subscribers": "SELECT, INSERT, UPDATE",  # subscriptions (create, rotate, deactivate)
    "scenes": "SELECT",  # replay republishes the stored STAC Item
    "scene_runs": "SELECT",
    "detections": "SELECT",
    "scene_hazard_skips": "SELECT",
    "alembic_version": "",
    "tile_data_version": "",  # bumped by the SECURITY DEFINER trigger of migration 26a
    "observed_water": "",  # written by the worker only
}

# Tables the worker role may not touch at all.
WORKER_DENIED = ("api_keys", "audit_log", "alembic_version")

ROLES = ("worker", "api_read", "api_write")


DEFAULT_NAMES = {"worker": "terrawatch_worker", "api_read": "terrawatch_api_read", "api_write": "terrawatch_api_write"}


def role_names(settings) -> dict[str, str]:
    """The login role of each service: {"owner": ..., "worker": ..., "api_read": ..., "api_write": ...}.

    A role's name is the user of its URL setting when that is set, else the default name, so the
    migrations (run with the owner URL alone) still grant the roles the services log in as.
    """
    explicit = {"worker": settings.worker_database_url, "api_read": settings.api_read_database_url,
                "api_write": settings.api_write_database_url}
    names = {"owner": make_url(settings.db_url).username}
    for role, url in explicit.items():
        names[role] = (make_url(url).username if url else None) or DEFAULT_NAMES[role]
    return names


def owned_tables(conn: Connection) -> list[str]:
    """Tables and partitions in ``public`` that belong to the schema (not to an extension, e.g. spatial_ref_sys)."""
    return list(conn.execute(text("""
        select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p')
          and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
        order by 1""")).scalars())


def unclassified(tables: list[str]) -> list[str]:
    return [t for t in tables if t not in API_READ or t not in API_WRITE]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply(conn: Connection, names: dict[str, str]) -> list[str]:
    """Grant each role what this module says (as the owner, idempotent). Returns the statements run.

    Roles that do not exist are skipped with a warning (a deployment that has not created them yet);
    an unclassified table gets nothing from the API roles.
    """
    existing = set(conn.execute(text("select rolname from pg_roles")).scalars())
    owner = names["owner"]
    roles = {k: v for k, v in names.items() if k in ROLES and v and v != owner}
    for k, v in list(roles.items()):
        if v not in existing:
            log.warning("database role %s (%s) does not exist; its grants are skipped", v, k)
            del roles[k]
    stmts: list[str] = []
    tables = owned_tables(conn)
    missing = unclassified(tables)
    if missing:
        log.warning("tables not classified in terrawatch.store.grants (the API roles get nothing): %s", missing)
    if roles:
        everyone = ", ".join(_q(r) for r in roles.values())
        stmts.append(f"grant usage on schema public to {everyone}")
        stmts.append("create schema if not exists ogc")
        stmts.append(f"grant usage on schema ogc to {everyone}")
    if "worker" in roles:
        w = _q(roles["worker"])
        stmts += [f"grant select, insert, update, delete on all tables in schema public to {w}",
                  f"grant usage, select on all sequences in schema public to {w}",
                  f"alter default privileges for role {_q(owner)} in schema public "
                  f"grant select, insert, update, delete on tables to {w}",
                  f"alter default privileges for role {_q(owner)} in schema public "
                  f"grant usage, select on sequences to {w}",
                  f"grant select on all tables in schema ogc to {w}"]
        stmts += [f"revoke all on {_q(t)} from {w}" for t in WORKER_DENIED if t in tables]
    for key in ("api_read", "api_write"):
        if key not in roles:
            continue
        r = _q(roles[key])
        stmts.append(f"revoke all on all tables in schema public from {r}")
        stmts.append(f"revoke all on all sequences in schema public from {r}")
    if "api_read" in roles:
        r = _q(roles["api_read"])
        stmts += [f"grant select on all tables in schema ogc to {r}",
                  f"alter default privileges for role {_q(owner)} in schema ogc grant select on tables to {r}"]
        for t in tables:
            cols = API_READ.get(t, NONE)
            if cols == ALL:
                stmts.append(f"grant select on {_q(t)} to {r}")
            elif cols:
                have = set(conn.execute(text("select column_name from information_schema.columns where "
                                             "table_schema = 'public' and table_name = :t"), {"t": t}).scalars())
                if set(cols) - have:
                    log.warning("grants: %s has no columns %s", t, sorted(set(cols) - have))
                if set(cols) & have:
                    stmts.append(f"grant select ({', '.join(_q(c) for c in cols if c in have)}) on {_q(t)} to {r}")
    if "api_write" in roles:
        r = _q(roles["api_write"])
        stmts.append(f"grant select on all tables in schema ogc to {r}")
        for t in tables:
            privs = API_WRITE.get(t, "")
            if privs:
                stmts.append(f"grant {privs} on {_q(t)} to {r}")
        stmts.append(f"grant usage, select on all sequences in schema public to {r}")
    for s in stmts:
        conn.execute(text(s))
    return stmts
