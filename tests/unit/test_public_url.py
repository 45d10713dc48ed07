"""Absolute links come from TERRAWATCH_API_PUBLIC_URL, a trusted proxy's X-Forwarded-Host or the listening
address, never from the client's Host header (issue 25 finding 7). Runs without a database: the routes
used here (landing page, /tiles index, STAC landing) build links without one."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from terrawatch.api import create_app
from terrawatch.api.public_url import parse_public_url
from terrawatch.settings import Settings

PATHS = ("/", "/tiles", "/stac")
EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


def _links(settings: Settings, headers: dict, client=("testclient", 50000)) -> str:
    with TestClient(create_app(settings), client=client) as c:
        out = []
        for p in PATHS:
            r = c.get(p, headers=headers)
            assert r.status_code == 200, (p, r.status_code, r.text[:200])
            out.append(json.dumps(r.json()))
        return "\n".join(out)


def test_the_clients_host_header_never_reaches_a_link():
    s = Settings(api_public_read=True, pg_port=1)
    text = _links(s, EVIL)
    assert "evil.example" not in text
    assert "http://testserver/tiles/detections.json" in text  # the listening address (TestClient's server)


def test_configured_public_url_with_a_prefix():
    s = Settings(api_public_read=True, pg_port=1, api_public_url="https://maps.agency.example/tw/")
    text = _links(s, EVIL)
    assert "evil.example" not in text and "testserver" not in text
    assert "https://maps.agency.example/tw/tiles/detections.json" in text
    assert "https://maps.agency.example/tw/stac/search" in text
    with TestClient(create_app(s)) as c:  # the proxy may forward the path with the prefix kept
        assert c.get("/tw/tiles", headers=EVIL).json()["alerts"] == "https://maps.agency.example/tw/tiles/alerts.json"


def test_forwarded_host_only_from_a_trusted_proxy():
    s = Settings(api_public_read=True, pg_port=1, api_trusted_proxies="10.0.0.0/8")
    fwd = {"Host": "evil.example", "X-Forwarded-Host": "maps.agency.example", "X-Forwarded-Proto": "https"}
    assert "https://maps.agency.example/tiles/alerts.json" in _links(s, fwd, client=("10.1.2.3", 40000))
    text = _links(s, fwd, client=("192.0.2.9", 40000))  # not a trusted proxy
    assert "maps.agency.example" not in text and "evil.example" not in text
    bad = {**fwd, "X-Forwarded-Host": "evil.example/x?"}  # not a host[:port]: ignored
    assert "evil.example" not in _links(s, bad, client=("10.1.2.3", 40000))


@pytest.mark.parametrize("bad", ["ftp://x", "https://u@x", "https://x/?a=1", "x.example", "https://ex ample"])
def test_malformed_public_urls_are_refused(bad):
    with pytest.raises(ValueError):
        parse_public_url(bad)
    assert parse_public_url("") is None
    assert parse_public_url("http://127.0.0.1:18080") == ("http", "127.0.0.1:18080", "")


def test_loopback_names_of_the_same_server_are_kept():
    s = Settings(api_public_read=True, pg_port=1)
    with TestClient(create_app(s), base_url="http://127.0.0.1:18080") as c:
        for host in ("localhost:18080", "127.0.0.1:18080", "[::1]:18080"):
            assert c.get("/tiles", headers={"Host": host}).json()["alerts"] == f"http://{host}/tiles/alerts.json"
        for host in ("localhost:9999", "localhost.evil.example:18080", "evil.example"):
            assert host not in json.dumps(c.get("/tiles", headers={"Host": host}).json())


def test_the_access_guard_matches_routes_under_the_public_urls_prefix():
    s = Settings(api_public_read=False, pg_port=1, api_public_url="https://maps.agency.example/tw")
    with TestClient(create_app(s)) as c:
        for path in ("/tw/ops/status", "/ops/status", "/tw/tiles", "/tiles"):
            r = c.get(path)  # the proxy kept the prefix, or stripped it: the guard sees the same route
            assert r.status_code == 401 and "API key" in r.json()["description"], (path, r.status_code)
        # Only a matched upload route takes 2 MB (else 413 from the headers): the guard found the route.
        for path in ("/tw/ops/reference-layers/x", "/ops/reference-layers/x"):
            assert c.put(path, content=b"x" * 2_000_000).status_code == 401, path
        assert c.put("/tw/ops/nope", content=b"x" * 2_000_000).status_code == 413
