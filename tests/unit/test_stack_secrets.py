"""Pure parts of the local stack's credentials (issue 25): password files, local URLs, Ray driver env."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from sqlalchemy.engine import make_url

from terrawatch.settings import Settings
from terrawatch_dev.stack.postgres import pgpass_text, read_pgpass, scram_verifier


def test_pgpass_round_trip_escapes_colons_and_backslashes(tmp_path):
    pw = {"terrawatch": "a:b\\c", "terrawatch_worker": "plain"}
    f = tmp_path / "pgpass"
    f.write_text(pgpass_text(pw, 15432, Path("/x/pg/sock")))
    assert read_pgpass(f) == pw
    lines = f.read_text().splitlines()
    # each role on 127.0.0.1, localhost and the socket dir, for this port only
    assert len(lines) == 6 and all(":15432:*:" in ln for ln in lines)
    assert {ln.split(":")[0] for ln in lines} == {"127.0.0.1", "localhost", "/x/pg/sock"}
    assert read_pgpass(tmp_path / "missing") == {}


def test_scram_verifier_has_postgres_format_and_fresh_salt():
    v1, v2 = scram_verifier("secret"), scram_verifier("secret")
    m = re.fullmatch(r"SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)", v1)
    assert m, v1
    assert len(base64.b64decode(m.group(1))) == 16
    assert len(base64.b64decode(m.group(2))) == len(base64.b64decode(m.group(3))) == 32
    assert v1 != v2  # a new salt each time
    assert "secret" not in v1


def test_local_urls_name_the_password_file_and_carry_no_password(tmp_path):
    s = Settings(state_dir=tmp_path, pg_port=25432)
    for url, role in ((s.db_url, "terrawatch"), (s.worker_db_url, "terrawatch_worker"),
                      (s.api_read_db_url, "terrawatch_api_read"), (s.api_write_db_url, "terrawatch_api_write")):
        u = make_url(url)
        assert u.username == role and u.password is None and u.port == 25432
        assert u.query["passfile"] == str(tmp_path / "secrets" / "pgpass")
    explicit = "postgresql+psycopg://terrawatch:pw@db:5432/terrawatch"
    assert Settings(state_dir=tmp_path, database_url=explicit).worker_db_url == explicit


def test_ray_driver_env_only_for_the_local_stack(tmp_path):
    env = Settings(state_dir=tmp_path).ray_driver_env
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "secrets" / "ray-token"),
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    assert Settings(state_dir=tmp_path, ray_address="ray://head:10001").ray_driver_env == {}
