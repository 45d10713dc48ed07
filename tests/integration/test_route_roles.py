"""Route roles (issue 12): the table in terrawatch/api/roles.py is what the OpenAPI document shows and
what the server enforces. Walks every operation of /openapi.json and calls it anonymously and with each
role; also with public read on, where only the map layers open up."""

from __future__ import annotations

import uuid

import httpx
import pytest

from terrawatch.api import roles
from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration

RANK = {"none": -1, "viewer": 0, "operator": 1, "admin": 2}
STATE_CHANGING = {"post", "put", "patch", "delete"}


def _fill(path: str) -> str:
    return (path.replace("{alert_id}", str(uuid.uuid4())).replace("{subscription_id}", str(uuid.uuid4()))
            .replace("{key_id}", "0123456789ab").replace("{layer}", "probe-roles").replace("{scene_id}", "probe")
            .replace("{delivery_id}", "msg_probe").replace("{collectionId}", "alerts").replace("{itemId}", "1")
            .replace("{tileMatrixSetId}", "WebMercatorQuad")
            .replace("{collection_id}", "terrawatch-products").replace("{item_id}", "probe").replace("{product}", "flood")
            .replace("{fmt}", "png")
            .replace("{partition}", "0").replace("{offset}", "0").replace("{z}", "0").replace("{x}", "0").replace("{y}", "0"))


def _walk(base: str, keys: dict[str, str], public_read: bool) -> int:
    schema = httpx.get(f"{base}/openapi.json").json()
    unclassified = [f"{m.upper()} {p}" for p, item in schema["paths"].items() for m, op in item.items()
                    if op.get("x-role-unclassified")]
    assert not unclassified, f"routes missing from terrawatch/api/roles.py ROUTE_ROLES: {unclassified}"
    checked = 0
    for path, item in schema["paths"].items():
        for method, op in item.items():
            role = op["x-required-role"]
            assert role == roles.effective(roles.role_for_operation(method, path), public_read), (method, path)
            if method in STATE_CHANGING and (method.upper(), path) not in roles.READ_ONLY:
                assert role in {"operator", "admin"}, f"{method.upper()} {path} declares {role}"
            url = base + _fill(path)
            for who in (None, "viewer", "operator", "admin"):
                r = httpx.request(method, url, headers=hdr(keys[who]) if who else {},
                                  json={} if method in STATE_CHANGING else None, timeout=30)
                rank = RANK[who] if who else -1
                if role != "none" and who is None:
                    expected = {401}
                elif role != "none" and rank < RANK[role]:
                    expected = {403}
                else:
                    expected = None  # allowed: anything but 401/403 (and never 5xx)
                where = f"{method.upper()} {path} as {who or 'anonymous'} (needs {role})"
                if expected:
                    assert r.status_code in expected, f"{where}: {r.status_code} {r.text[:200]}"
                else:
                    assert r.status_code not in (401, 403), f"{where}: {r.status_code} {r.text[:200]}"
                    assert r.status_code < 500 or r.status_code == 503, f"{where}: {r.status_code} {r.text[:200]}"
                checked += 1
    return checked


def test_every_route_enforces_its_documented_role(stack):
    s = stack.settings
    keys = role_keys(s, "roles")
    with live_api(s) as base:
        try:
            assert _walk(base, keys, public_read=False) > 150
        finally:  # the walk paused consumption of the default group as operator/admin
            httpx.post(base + "/ops/consumption/resume", headers=hdr(keys["operator"]), json={})
    with live_api(s.model_copy(update={"api_public_read": True})) as base:
        _walk(base, keys, public_read=True)
        for path in ("/ops/status", "/ops/consumption", "/ops/models", f"/alerts/{uuid.uuid4()}",
                     f"/alerts/{uuid.uuid4()}/events"):
            assert httpx.get(base + path).status_code == 401, path  # public read opens only the layers
        assert httpx.get(base + "/ogc/collections").status_code == 200
