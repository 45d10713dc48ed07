"""The public API as an attacker sees it (issue 12): filters that call database functions, unknown
properties, huge literals, oversized and deeply nested filters, oversized bodies, spoofed forwarding
headers. Anonymous (public read on) and with a viewer key: every answer is a 4xx with a message, never
a 5xx; a sleep function costs no time (compared with a baseline request in the same test); the API is
healthy afterwards. Runs on the session stack with one live uvicorn server.
"""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace

import httpx
import pytest

from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration

ITEMS = "/ogc/collections/{c}/items"

# Each a CQL2-text filter that PostGIS would run as SQL if it were only parsed, with what must be named.
DB_FUNCTION_FILTERS = [
    ("pg_sleep(0.5) IS NULL", "pg_sleep"),
    ("pg_sleep_for('1 second') IS NULL", "pg_sleep_for"),
    ("current_setting('data_directory') = 'x'", "current_setting"),
    ("version() = 'x'", "version"),
    ("pg_read_file('/etc/passwd') = 'x'", "pg_read_file"),
    ("pg_ls_dir('.') IS NULL", "pg_ls_dir"),
    ("query_to_xml('select secret from subscribers', true, true, '') IS NULL", "query_to_xml"),
    ("xpath('/x', query_to_xml('select 1', true, true, '')) IS NULL", "xpath"),
    ("lower(hazard) = 'flood'", "lower"),
    ("dblink('host=x', 'select 1') IS NULL", "dblink"),
]

BAD_FILTERS = [
    ("secret = 'x'", "secret"),  # unknown property
    ("hazard = 'a' AND subscribers_secret IS NULL", "subscribers_secret"),
    ("area_ha > 1e400", "out of range"),  # overflowing literal
    ("area_ha > 99999999999999999999999999999", "out of range"),
    ("hazard > 5", "cannot compare"),
    ("hazard = '" + "x" * 5000 + "'", "characters"),
    ("hazard = 'a' OR " * 625 + "hazard = 'b'", "characters"),  # > 10,000 characters
    ("(" * 200 + "hazard = 'a'" + ")" * 200, "nested"),
    ("NOT (" * 30 + "hazard = 'a'" + ")" * 30, "nested"),
    ("hazard = ", "not valid"),
]


@pytest.fixture(scope="module")
def hapi(stack):
    s = stack.settings.model_copy(update={"api_public_read": True})
    engine = engine_for(s.db_url)
    seeded = seed_layers(engine, center=(-60.5, -10.5), spread_deg=0.2, scenes=1, detections_per_scene=40,
                         tag=f"hostile-{uuid.uuid4().hex[:6]}")
    keys = role_keys(s, "hostile")
    with live_api(s) as base:
        yield SimpleNamespace(s=s, base=base, keys=keys, seeded=seeded, engine=engine,
                              bbox=",".join(str(v) for v in seeded.bounds))
    delete_seeded(engine, seeded)


def _callers(hapi):
    return [("anonymous", {}), ("viewer", hdr(hapi.keys["viewer"]))]


def _get(hapi, headers, collection="detections", **params) -> httpx.Response:
    return httpx.get(hapi.base + ITEMS.format(c=collection), headers=headers, params=params, timeout=60)


def _assert_4xx(r: httpx.Response, what: str, expect: str | None = None, status: int = 400) -> None:
    assert r.status_code == status, f"{what}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert body.get("description"), f"{what}: no message"
    if expect:
        assert expect in body["description"], f"{what}: {body['description'][:300]}"
    assert len(r.content) < 4096, f"{what}: a {len(r.content)}-byte answer (echoing the input?)"


def test_filters_calling_database_functions_are_refused_by_name(hapi):
    for who, headers in _callers(hapi):
        for text, name in DB_FUNCTION_FILTERS:
            r = _get(hapi, headers, filter=text, bbox=hapi.bbox)
            _assert_4xx(r, f"{who} {text}", f"'{name}' is not allowed")
            tree = {"op": "isNull", "args": [{"op": name, "args": ["x"]}]}
            r = _get(hapi, headers, filter=json.dumps(tree), **{"filter-lang": "cql2-json"})
            _assert_4xx(r, f"{who} cql2-json {name}", f"'{name}' is not allowed")


def test_bad_filters_are_400_with_a_message(hapi):
    for who, headers in _callers(hapi):
        for text, expect in BAD_FILTERS:
            _assert_4xx(_get(hapi, headers, filter=text), f"{who} {text[:60]}", expect)
        for collection in ("alerts", "scenes", "reference_layers"):
            _assert_4xx(_get(hapi, headers, collection, filter="nope = 1"), collection, "unknown property 'nope'")


def test_a_sleep_filter_costs_no_time(hapi):
    """Compared with the same request without the sleep, in this test (no absolute wall-clock bound)."""
    headers = hdr(hapi.keys["viewer"])
    base_params = {"bbox": hapi.bbox, "limit": 40}

    def timed(**extra) -> tuple[float, httpx.Response]:
        t0 = time.perf_counter()
        r = _get(hapi, headers, **base_params, **extra)
        return time.perf_counter() - t0, r

    baseline = min(timed(filter="hazard IS NOT NULL")[0] for _ in range(3))
    sleepy = []
    for _ in range(3):
        dt, r = timed(filter="pg_sleep(0.25) IS NULL AND hazard IS NOT NULL")  # 40 rows: 10 s if it ran
        assert r.status_code == 400
        sleepy.append(dt)
    print(f"sleep filter: baseline {baseline * 1000:.0f} ms, with pg_sleep {min(sleepy) * 1000:.0f} ms (400)")
    # Had pg_sleep run, each request would take >= 40 x 0.25 s more than the baseline.
    assert min(sleepy) < baseline + 2.0, (baseline, sleepy)


def test_allowed_cql2_classes_run(hapi):
    """The declared conformance classes work against PostGIS (200), text and JSON."""
    headers = hdr(hapi.keys["viewer"])
    minx, miny, maxx, maxy = hapi.seeded.bounds
    poly = f"POLYGON(({minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}))"
    for text in [
        "hazard IN ('flood', 'mining', 'deforestation') AND area_ha BETWEEN 0 AND 1000000",
        "casei(hazard) LIKE casei('FL%') OR hazard <> 'flood'",
        f"S_INTERSECTS(geom, {poly}) AND NOT status IS NULL OR status IS NULL",
        f"S_WITHIN(geom, BBOX({minx - 1}, {miny - 1}, {maxx + 1}, {maxy + 1}))",
        "T_AFTER(sensing_time, TIMESTAMP('2000-01-01T00:00:00Z'))",
        "T_DURING(sensing_time, INTERVAL('2000-01-01', '2100-01-01'))",
        "sensing_time > DATE('2000-01-01') AND scene_id = scene_id",
    ]:
        r = _get(hapi, headers, filter=text, bbox=hapi.bbox, limit=100)
        assert r.status_code == 200, f"{text}: {r.status_code} {r.text[:300]}"
        assert r.json()["numberMatched"] == 40, text
    tree = {"op": "and", "args": [{"op": "=", "args": [{"property": "hazard"}, "flood"]},
                                  {"op": "s_intersects", "args": [{"property": "geom"}, {"bbox": [minx, miny, maxx, maxy]}]}]}
    r = _get(hapi, headers, filter=json.dumps(tree), **{"filter-lang": "cql2-json"})
    assert r.status_code == 200, r.text[:300]


def test_ogc_part1_parameters(hapi):
    headers = hdr(hapi.keys["viewer"])
    _assert_4xx(_get(hapi, headers, limit="abc"), "limit=abc")
    _assert_4xx(_get(hapi, headers, bbox="1,2,3"), "bbox=1,2,3")
    _assert_4xx(_get(hapi, headers, datetime="yesterday"), "datetime=yesterday")
    _assert_4xx(_get(hapi, headers, frobnicate="1"), "unknown parameter", "unknown query parameter 'frobnicate'")
    _assert_4xx(_get(hapi, headers, area_ha="abc"), "area_ha=abc")
    _assert_4xx(_get(hapi, headers, crs="http://www.opengis.net/def/crs/EPSG/0/3857"), "crs=3857", "CRS84")
    ok = _get(hapi, headers, crs="http://www.opengis.net/def/crs/OGC/1.3/CRS84", bbox=hapi.bbox, limit=5)
    assert ok.status_code == 200, ok.text[:300]
    capped = _get(hapi, headers, limit=10 ** 9, bbox=hapi.bbox)
    assert capped.status_code == 200 and capped.json()["numberReturned"] == 40, capped.text[:300]
    day = hapi.seeded.times[0].date().isoformat()
    r = _get(hapi, headers, datetime=day, bbox=hapi.bbox, limit=100)
    assert r.status_code == 200 and r.json()["numberMatched"] == 40, r.text[:300]
    landing = httpx.get(hapi.base + "/ogc/", headers=headers).json()
    desc = next(link for link in landing["links"] if link["rel"] == "service-desc")
    version = httpx.get(desc["href"]).json()["openapi"]
    assert desc["type"].endswith("version=" + version[:3]), (desc, version)
    conf = httpx.get(hapi.base + "/ogc/conformance", headers=headers).json()["conformsTo"]
    assert "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2" in conf
    assert not [c for c in conf if c.endswith("/oas30") or "accent" in c or "arithmetic" in c]


def test_api_is_healthy_after(hapi):
    assert httpx.get(hapi.base + "/ops/livez").status_code == 200
    r = _get(hapi, hdr(hapi.keys["viewer"]), bbox=hapi.bbox, limit=100)
    assert r.status_code == 200 and r.json()["numberMatched"] == 40


def _raw(hapi, head: str, body: bytes = b"", read_timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw HTTP/1.1 (headers, then ``body``) and return (status, response bytes)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(hapi.base)
    with socket.create_connection((u.hostname, u.port), timeout=read_timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head_part.split(b" ")[1]), head_part + b"\r\n\r\n" + rest


def test_bodies_are_bounded_and_checked_after_the_key(hapi):
    keys = hapi.keys
    # Declared 50 MB: refused from the headers alone, anonymous or not.
    for who in (None, "viewer", "operator"):
        extra = f"X-API-Key: {keys[who]}\n" if who else ""
        status, resp = _raw(hapi, f"POST /ops/consumption/pause HTTP/1.1\nHost: x\n{extra}"
                                  "Content-Type: application/json\nContent-Length: 50000000\n")
        assert status == 413, (who, resp[:300])
    # Authentication before the body is read: the server answers 401/403 to the headers of a 500 kB
    # body that never arrives (the route would wait for it).
    for who, expected in ((None, 401), ("viewer", 403)):
        extra = f"X-API-Key: {keys[who]}\n" if who else ""
        status, resp = _raw(hapi, f"POST /ops/consumption/pause HTTP/1.1\nHost: x\n{extra}"
                                  "Content-Type: application/json\nContent-Length: 500000\n", read_timeout=10)
        assert status == expected, (who, resp[:300])
    op = hdr(keys["operator"])
    # A chunked body over the limit (no Content-Length) is cut off with 413.
    def chunks():
        for _ in range(40):
            yield b"x" * 65536
    r = httpx.post(hapi.base + "/ops/consumption/pause", headers={**op, "Content-Type": "application/json"},
                   content=chunks(), timeout=60)
    assert r.status_code == 413, r.text[:300]
    # A large invalid body under the limit: 422, and the answer does not echo it.
    r = httpx.post(hapi.base + "/ops/consumption/pause", headers=op, json={"reason": "x" * 900_000})
    assert r.status_code == 422 and len(r.content) < 4096, (r.status_code, len(r.content))
    r = httpx.post(hapi.base + "/ops/dlq/redrive", headers=op, json={"ids": ["y" * 100_000]})
    assert r.status_code == 422 and len(r.content) < 4096, (r.status_code, len(r.content))
    # Reference layers take larger bodies (TERRAWATCH_API_MAX_UPLOAD_BYTES): 2 MB is not a 413 there.
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "n" * 200, "i": i},
         "geometry": {"type": "Polygon", "coordinates": [[[-60.5, -10.5], [-60.49, -10.5], [-60.49, -10.49],
                                                          [-60.5, -10.5]]]}} for i in range(5000)]}
    body = json.dumps(fc)
    assert len(body) > hapi.s.api_max_body_bytes
    layer = f"big-{uuid.uuid4().hex[:6]}"
    r = httpx.put(f"{hapi.base}/ops/reference-layers/{layer}", headers={**op, "Content-Type": "application/json"},
                  content=body, timeout=120)
    assert r.status_code == 200, r.text[:300]
    httpx.delete(f"{hapi.base}/ops/reference-layers/{layer}", headers=op)
    r = httpx.post(hapi.base + "/ops/consumption/resume", headers=op, json={})
    assert r.status_code == 200


def test_spoofed_forwarding_headers_neither_bypass_nor_redirect_the_throttle(hapi):
    """No trusted proxies are configured: X-Forwarded-For is ignored for the throttle and the audit log."""
    from sqlalchemy import select

    from terrawatch.store import tables as t

    bad = "tw_0123456789ab_" + "x" * 43
    statuses = [httpx.get(hapi.base + "/ops/status", headers={"X-API-Key": bad, "X-Forwarded-For": f"10.9.{i}.1",
                                                               "Forwarded": f"for=10.8.{i}.1"}).status_code
                for i in range(hapi.s.api_auth_failures_per_minute + 5)]
    assert statuses[:hapi.s.api_auth_failures_per_minute] == [401] * hapi.s.api_auth_failures_per_minute
    assert set(statuses[hapi.s.api_auth_failures_per_minute:]) == {429}, statuses  # rotating the header: no bypass
    # Valid keys from the same address keep working while the failures are throttled.
    assert httpx.get(hapi.base + "/ops/status", headers=hdr(hapi.keys["viewer"]), timeout=60).status_code in (200, 503)
    op = {**hdr(hapi.keys["operator"]), "X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.66"}
    assert httpx.post(hapi.base + "/ops/consumption/resume", headers=op, json={"reason": "spoof"}).status_code == 200
    with hapi.engine.connect() as c:
        client = c.execute(select(t.audit_log.c.client).where(t.audit_log.c.action.like("consumption.%"))
                           .order_by(t.audit_log.c.at.desc()).limit(1)).scalar_one()
    assert str(client) == "127.0.0.1", client
