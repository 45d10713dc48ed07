"""PostGIS unreachable: the API answers 503 with Retry-After, never a 500 (non-negotiable 4).

A real app (create_app) whose database URL points at a closed local port: every connection is refused,
as during a PostGIS restart. Keys are verified in the AccessGuard middleware (outside FastAPI's
exception handlers) and layers in the routes, so both paths are exercised.
"""

from __future__ import annotations

import secrets
import socket

import pytest
from fastapi.testclient import TestClient

from terrawatch.api.app import create_app
from terrawatch.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    port = _closed_port()
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), pg_port=port, api_public_read=True,
                        database_url=f"postgresql+psycopg://terrawatch@127.0.0.1:{port}/terrawatch")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_key_check_with_the_database_down_is_503(client):
    key = f"tw_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"  # well-formed: the guard must ask PostGIS
    r = client.get("/ops/status", headers={"X-API-Key": key})
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after") and r.json()["code"] == "unavailable"


@pytest.mark.parametrize("path", ["/tiles/alerts/3/4/2.pbf", "/ogc/collections/alerts/items?limit=1"])
def test_public_layer_reads_with_the_database_down_are_503(client, path):
    r = client.get(path)
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after")
