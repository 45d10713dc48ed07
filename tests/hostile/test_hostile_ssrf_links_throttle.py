"""Issue 25 (second security round), findings 6-8 over HTTP against the real stack: IPv4 carried in IPv6
and the stack's own ports as webhook targets, the client's Host header in absolute links, anonymous
readiness, what public read opens, and a failed-auth throttle that strangers cannot turn against a user."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration

EVIL = "evil.example"


@pytest.fixture(scope="module")
def api(stack):
    s = stack.settings.model_copy(update={"api_public_read": True, "webhook_allow_private": "127.0.0.1"})
    keys = role_keys(s, "ssrf-links")
    with live_api(s) as base:
        yield s, base, keys


@pytest.mark.parametrize("url", ["http://[::127.0.0.1]/hook", "http://[64:ff9b::7f00:1]/hook",
                                 "http://[2002:7f00:1::1]/hook", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
                                 "http://[::ffff:a9fe:a9fe]/latest/meta-data"])
def test_ipv4_carried_in_ipv6_is_no_webhook_target(api, url):
    s, base, keys = api
    r = httpx.post(base + "/subscriptions", json={"url": url, "hazards": ["flood"]}, headers=hdr(keys["admin"]))
    assert r.status_code == 422, (url, r.status_code, r.text[:300])
    assert "non-public address" in r.json()["description"]


def test_a_private_allowance_without_a_port_does_not_open_the_stacks_services(api):
    s, base, keys = api
    for port in (s.triton_http_port, s.triton_grpc_port, s.pg_port, s.kafka_port, s.ray_port):
        url = f"http://127.0.0.1:{port}/v2/repository/models/flood_s1/unload"
        r = httpx.post(base + "/subscriptions", json={"url": url, "hazards": ["flood"]}, headers=hdr(keys["admin"]))
        assert r.status_code == 422, (port, r.status_code, r.text[:300])
        assert "one of the stack's own services" in r.json()["description"]


def test_the_clients_host_header_never_reaches_an_absolute_link(api):
    s, base, keys = api
    paths = ["/", "/tiles", "/tiles/detections.json", "/stac", "/stac/collections", "/stac/search?limit=5",
             "/ogc", "/ogc/", "/ogc/collections"]
    for who in ({}, hdr(keys["viewer"])):
        for p in paths:
            r = httpx.get(base + p, headers={**who, "Host": EVIL, "X-Forwarded-Host": EVIL,
                                             "X-Forwarded-Proto": "https"}, timeout=60)
            assert r.status_code in (200, 307), (p, r.status_code, r.text[:200])
            text = r.text + r.headers.get("location", "")  # /ogc redirects to /ogc/: an absolute Location
            assert EVIL not in text, (p, text[:300])
            assert base in text, (p, text[:300])  # links on the listening address


def test_anonymous_readiness_names_no_versions_or_internals(api):
    s, base, keys = api
    r = httpx.get(base + "/ops/readyz", timeout=60)
    assert r.status_code in (200, 503)
    checks = r.json()["checks"]
    assert set(checks) == {"kafka", "postgis", "triton", "ray"}
    assert {c["detail"] for c in checks.values()} <= {"ok", "unavailable"}, checks
    assert not re.search(r"postgis \d|session_|127\.0\.0\.1|gcs at", r.text), r.text
    full = httpx.get(base + "/ops/readyz", headers=hdr(keys["viewer"]), timeout=60).json()["checks"]
    if full["postgis"]["ok"]:
        assert full["postgis"]["detail"].startswith("postgis ")  # a key still sees the details
    assert httpx.get(base + "/ops/readyz", headers={"X-API-Key": "tw_0123456789ab_" + "x" * 43}).status_code == 401


def test_public_read_opens_exactly_the_map_layers(api):
    s, base, keys = api
    assert httpx.get(base + "/stac").status_code == 200
    assert httpx.get(base + "/stac/search?limit=1").status_code == 200
    for p in ("/raster/scenes/probe/flood.json", "/stac/assets/probe/flood"):
        assert httpx.get(base + p).status_code == 404, p  # public layers: no such scene, not 401
    for p in ("/ops/status", "/ops/consumption", "/ops/models", "/ops/dlq", "/subscriptions"):
        assert httpx.get(base + p).status_code == 401, p


def test_strangers_bad_keys_lock_out_neither_a_valid_key_nor_its_owners_typo(stack):
    s = stack.settings.model_copy(update={"api_auth_failures_per_minute": 5})
    keys = role_keys(s, "throttle")
    limit = s.api_auth_failures_per_minute
    with live_api(s) as base:  # a fresh limiter; every request comes from 127.0.0.1
        def get(key: str) -> httpx.Response:
            return httpx.get(base + "/ops/status", headers={"X-API-Key": key}, timeout=60)

        strangers = [get(f"tw_{i:012x}_{'x' * 43}").status_code for i in range(limit + 3)]
        assert strangers == [401] * limit + [429] * 3, strangers
        assert get(keys["viewer"]).status_code in (200, 503)  # the valid key
        typo = keys["viewer"][:-4] + ("zzzz" if not keys["viewer"].endswith("zzzz") else "yyyy")
        assert get(typo).status_code == 401  # its owner's typo: counted against the key id, not the address
        guesses = [get(typo) for _ in range(limit)]
        assert guesses[-1].status_code == 429 and "for this key" in guesses[-1].json()["description"]
        assert get(keys["viewer"]).status_code in (200, 503)  # never throttled
        assert get(keys["operator"][:-4] + "zzzz").status_code == 401  # another key's bucket
