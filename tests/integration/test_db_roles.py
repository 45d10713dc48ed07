"""Least privilege in PostGIS (issue 12): the API's read role cannot read secrets, keys or the audit log,
cannot read server files, and no service role is a superuser; every table is classified for the API roles."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from terrawatch.store import grants

pytestmark = pytest.mark.integration


def _as(url: str):
    return create_engine(url, poolclass=NullPool)


def _denied(url: str, sql: str) -> str:
    with _as(url).connect() as c, pytest.raises(ProgrammingError) as err:
        c.execute(text(sql))
    return str(err.value.orig)


def test_api_read_role_cannot_reach_secrets_files_or_superuser(stack):
    s = stack.settings
    url = s.api_read_db_url
    assert grants.role_names(s)["api_read"] == "terrawatch_api_read"
    for sql in ["select secret from subscribers", "select id from subscribers", "select * from api_keys",
                "select * from audit_log", "select item from scenes",
                "select query_to_xml('select secret from subscribers', true, true, '')"]:
        assert "permission denied" in _denied(url, sql), sql
    assert "permission denied" in _denied(url, "select pg_read_file('/etc/passwd')")
    assert "permission denied" in _denied(url, "select pg_ls_dir('.')")
    assert "permission denied" in _denied(url, "insert into control (key, value, updated_by) values ('x', '{}', 'x')")
    with _as(url).connect() as c:
        for view in ("detections", "alerts", "scenes", "reference_layers"):
            c.execute(text(f"select count(*) from ogc.{view}")).scalar_one()
        c.execute(text("select count(*) from webhook_outbox")).scalar_one()  # only id, status readable
        assert not c.execute(text("select rolsuper from pg_roles where rolname = current_user")).scalar_one()


def test_no_service_role_is_superuser_and_the_worker_cannot_read_keys(stack):
    s = stack.settings
    names = grants.role_names(s)
    assert len(set(names.values())) == 4, names
    with _as(s.db_url).connect() as c:
        supers = dict(c.execute(text("select rolname, rolsuper from pg_roles where rolname = any(:n)"),
                                {"n": list(names.values())}).all())
    assert supers == {n: False for n in names.values()}, supers
    for sql in ["select * from api_keys", "select * from audit_log"]:
        assert "permission denied" in _denied(s.worker_db_url, sql)
    assert "permission denied" in _denied(s.api_write_db_url, "delete from scenes")


def test_every_table_is_classified_for_the_api_roles(stack):
    with _as(stack.settings.db_url).connect() as c:
        tables = grants.owned_tables(c)
    assert "api_keys" in tables and "spatial_ref_sys" not in tables
    missing = grants.unclassified(tables)
    assert not missing, (f"tables not classified in terrawatch/store/grants.py (API_READ and API_WRITE): {missing}; "
                         "say which columns the API read role may SELECT (usually NONE) and what api_write needs")


def test_grants_are_idempotent_and_api_connections_have_a_statement_timeout(stack):
    from terrawatch.store.migrate import apply_grants
    from terrawatch.store.uow import engine_for

    s = stack.settings
    assert apply_grants(s) == apply_grants(s)
    with engine_for(s.api_read_db_url, s.api_statement_timeout_ms).connect() as c:
        assert c.execute(text("show statement_timeout")).scalar_one() == f"{s.api_statement_timeout_ms // 1000}s"


def test_the_stac_api_runs_as_the_read_role(stack):
    """Issue 25 finding 7: the STAC routes read through api_read (not api_write, which reads webhook secrets)."""
    import inspect

    from terrawatch.api.routes import stac
    from terrawatch.store.product_scenes import scenes
    from terrawatch.store.scenes import extent

    s = stack.settings
    source = inspect.getsource(stac)
    assert "deps.read_engine" in source and "deps.engine" not in source
    read = _as(s.api_read_db_url)
    extent(read)
    with read.connect() as c:
        scenes(c, bbox=(-10.0, 35.0, 5.0, 45.0), ids=["x"], limit=5)
        assert "permission denied" in _denied(s.api_read_db_url, "select secret from subscribers")
