"""Issue 25, second round from outside: stored XSS through the OGC HTML pages, third-party assets and no
Content-Security-Policy on the API's HTML, 500s on CQL2 intervals and integer ids, and 4xx bodies that echo
the caller's input whole or carry PostgreSQL's error text. Runs on the session stack with one live server;
the server's log is watched for tracebacks and 5xx while the requests run.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import uuid
from html.parser import HTMLParser
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import text

from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.settings import REPO_ROOT
from terrawatch.store.uow import UnitOfWork, engine_for
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.hostile.server_log import ServerErrors

pytestmark = pytest.mark.integration

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
# What PostgreSQL says; none of it may reach a caller.
DATABASE_TEXT = ("out of range for type", "bigint out of range", "operator does not exist", "invalid input syntax",
                 "SQLSTATE", "ERROR:", "psycopg", "asyncpg")


@pytest.fixture(scope="module")
def xapi(stack):
    s = stack.settings.model_copy(update={"api_public_read": True})
    engine = engine_for(s.db_url)
    tag = f"xss-{uuid.uuid4().hex[:6]}"
    seeded = seed_layers(engine, center=(-61.5, -11.5), spread_deg=0.2, scenes=1, detections_per_scene=4, tag=tag)
    scene_id = seeded.scene_ids[0]
    with UnitOfWork(engine, "test") as uow:  # what an asset-policy reason naming a hostile host looked like
        uow.scenes.set_status(scene_id, "failed", reason=f"unreadable_asset: cannot resolve asset host '{IMG}'")
    with engine.begin() as conn:
        ref_id = conn.execute(text(
            "insert into reference_features (layer, name, properties, geom) values (:layer, :name, :props, "
            "ST_GeomFromText('POINT(-61.5 -11.5)', 4326)) returning id"),
            {"layer": tag, "name": SCRIPT, "props": json.dumps({"note": IMG})}).scalar_one()
    keys = role_keys(s, "xss")
    try:
        with live_api(s) as base:
            log = ServerErrors()
            watched = [logging.getLogger(), logging.getLogger("uvicorn.error"), logging.getLogger("uvicorn.access")]
            for lg in watched:
                lg.addHandler(log)
            try:
                yield SimpleNamespace(s=s, base=base, keys=keys, scene_id=scene_id, ref_id=ref_id, log=log,
                                      layer=tag)
            finally:
                for lg in watched:
                    lg.removeHandler(log)
    finally:
        with engine.begin() as conn:
            conn.execute(text("delete from reference_features where id = :id"), {"id": ref_id})
        delete_seeded(engine, seeded)


def _get(xapi, path: str, **params) -> httpx.Response:
    return httpx.get(xapi.base + path, params=params, timeout=60, follow_redirects=True)


# ---------------------------------------------------------------- finding 4: stored XSS, CSP, CDN assets

def test_stored_markup_comes_back_escaped_on_ogc_html_pages(xapi):
    pages = [
        (f"/ogc/collections/reference_layers/items", {"f": "html", "layer": xapi.layer}, (SCRIPT, IMG)),
        (f"/ogc/collections/reference_layers/items/{xapi.ref_id}", {"f": "html"}, (SCRIPT, IMG)),
        ("/ogc/collections/scenes/items", {"f": "html", "ids": xapi.scene_id}, (IMG,)),
        (f"/ogc/collections/scenes/items/{xapi.scene_id}", {"f": "html"}, (IMG,)),
    ]
    for path, params, payloads in pages:
        r = _get(xapi, path, **params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.status_code)
        for payload in payloads:
            assert payload not in r.text, f"{path}: {payload} came back raw"
            escaped = payload.replace("<", "&lt;").replace(">", "&gt;")
            assert escaped in r.text, f"{path}: {payload} not shown escaped"
        assert "<script" not in r.text.lower(), f"{path}: the OGC pages carry no script at all"


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.urls.append(("script", a["src"]))
            else:
                self.inline_scripts += 1
        elif tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.urls.append(("style", a["href"]))
        elif tag in ("img", "iframe", "source", "embed") and a.get("src"):
            self.urls.append((tag, a["src"]))


def _html_pages(xapi) -> list[str]:
    pages = ["/ogc/?f=html", "/ogc/conformance?f=html", "/ogc/collections?f=html", "/docs", "/map"]
    for c in ("detections", "alerts", "scenes", "reference_layers"):
        pages += [f"/ogc/collections/{c}?f=html", f"/ogc/collections/{c}/queryables?f=html",
                  f"/ogc/collections/{c}/items?f=html&limit=3"]
    return pages + [f"/ogc/collections/scenes/items/{xapi.scene_id}?f=html"]


def test_every_html_page_has_a_strict_csp_and_only_local_assets(xapi):
    for path in _html_pages(xapi):
        r = httpx.get(xapi.base + path, timeout=60, follow_redirects=True)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.status_code)
        csp = r.headers.get("content-security-policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("default-src") == ["'none'"], (path, csp)
        assert "'unsafe-inline'" not in directives.get("script-src", []), (path, csp)
        assert "'unsafe-eval'" not in csp and directives.get("frame-ancestors") == ["'none'"], (path, csp)
        assert r.headers.get("x-content-type-options") == "nosniff"
        found = _Assets()
        found.feed(r.text)
        assert found.inline_scripts == 0, f"{path}: inline script (the CSP would block it)"
        for kind, url in found.urls:
            assert not re.match(r"^(https?:)?//", url) or url.startswith(xapi.base + "/"), \
                f"{path}: {kind} from another origin: {url}"
            asset = httpx.get(url if url.startswith("http") else httpx.URL(str(r.url)).join(url), timeout=60)
            assert asset.status_code == 200, f"{path}: {kind} {url} -> {asset.status_code} (run `make web`)"
    assert httpx.get(xapi.base + "/redoc", timeout=30).headers["location"].endswith("/docs")


def test_pages_run_under_their_csp_in_chromium(xapi):
    web = REPO_ROOT / "services" / "terrawatch" / "api" / "web"
    assert (web / "node_modules" / "playwright-core").exists(), "npm packages missing: run `make web`"
    if shutil.which("chromium") is None:
        subprocess.run(["bash", str(REPO_ROOT / "deploy" / "tools" / "install-chromium.sh")], check=True)
    paths = ["/docs", f"/ogc/collections/reference_layers/items?f=html&layer={xapi.layer}",
             f"/ogc/collections/scenes/items/{xapi.scene_id}?f=html"]
    res = subprocess.run(["node", "check-html.mjs", xapi.base, *paths], cwd=web, capture_output=True, text=True,
                         timeout=240)
    pages = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(pages) == len(paths), res.stderr[-3000:]
    for page in pages:
        assert page["status"] == 200, page["path"]
        assert page["csp_violations"] == [] and page["console_errors"] == [], page
        assert page["dialogs"] == [] and page["foreign_requests"] == [], page
    docs, items, item = pages
    assert docs["operations"] > 20, "Swagger UI did not render the API's operations from the local bundle"
    assert SCRIPT in items["text"] and IMG in items["text"] and IMG in item["text"]  # shown as text


# ---------------------------------------------------------------- finding 5: never 5xx on bad values

BAD_VALUES = [
    ("detections", {"filter": "T_DURING(sensing_time, INTERVAL(casei('x'), '..'))"}, "interval bounds"),
    ("detections", {"filter-lang": "cql2-json", "filter": json.dumps(
        {"op": "t_during", "args": [{"property": "sensing_time"},
                                    {"interval": [{"op": "casei", "args": ["x"]}, ".."]}]})}, "interval bounds"),
    ("detections", {"filter-lang": "cql2-json", "filter": json.dumps(
        {"op": "t_during", "args": [{"property": "sensing_time"}, {"interval": [{"property": "sensing_time"}, ".."]}]})},
     "interval bounds"),
    ("detections", {"filter": "T_AFTER(sensing_time, DATE('9999-12-31'))"}, "out of range"),
    ("detections", {"filter": "T_AFTER(sensing_time, TIMESTAMP('9999-12-31T23:59:59Z'))"}, "out of range"),
    ("detections", {"ids": "99999999999999999999999"}, "integer ids"),
    ("detections", {"ids": "1,18446744073709551616"}, "integer ids"),
    ("detections", {"ids": "-9223372036854775809"}, "integer ids"),
    ("reference_layers", {"ids": "99999999999999999999999"}, "integer ids"),
    ("detections", {"ids": "abc"}, "integer ids"),
    ("detections", {"id": "99999999999999999999999"}, "range of bigint"),
    ("detections", {"offset": "99999999999999999999999"}, "offset"),
]


def test_values_the_database_cannot_take_are_400_without_database_text(xapi):
    callers = [("anonymous", {}), ("viewer", hdr(xapi.keys["viewer"]))]
    for who, headers in callers:
        for collection, params, expect in BAD_VALUES:
            r = httpx.get(f"{xapi.base}/ogc/collections/{collection}/items", params=params, headers=headers,
                          timeout=60)
            what = f"{who} {collection} {params}"
            assert r.status_code == 400, f"{what}: {r.status_code} {r.text[:300]}"
            body = r.json()["description"]
            assert expect in body, f"{what}: {body}"
            assert not any(t in r.text for t in DATABASE_TEXT), f"{what}: {body}"
        for collection, item in (("detections", "18446744073709551616"), ("reference_layers", "-99999999999999999999"),
                                 ("detections", "1.5")):
            r = httpx.get(f"{xapi.base}/ogc/collections/{collection}/items/{item}", headers=headers, timeout=60)
            assert r.status_code == 400 and "integer ids" in r.json()["description"], (who, item, r.text[:300])
        for collection in ("alerts", "scenes"):  # a NUL in a text id broke asyncpg's protocol: 503
            r = httpx.get(f"{xapi.base}/ogc/collections/{collection}/items/%00", headers=headers, timeout=60)
            assert r.status_code == 400 and "NUL" in r.json()["description"], (who, collection, r.text[:300])
    # The same interval given with timestamp objects as bounds is valid CQL2: answered, not refused.
    ok = {"op": "t_during", "args": [{"property": "sensing_time"},
                                     {"interval": [{"timestamp": "2000-01-01T00:00:00Z"}, ".."]}]}
    r = httpx.get(f"{xapi.base}/ogc/collections/detections/items", timeout=60,
                  params={"filter-lang": "cql2-json", "filter": json.dumps(ok)})
    assert r.status_code == 200 and r.json()["numberMatched"] >= 4, r.text[:300]
    assert xapi.log.failures() == [], xapi.log.failures()[:5]


# ---------------------------------------------------------------- finding 7: echo and database text

def test_4xx_bodies_echo_at_most_a_short_excerpt(xapi):
    long = "x" * 6000
    cases = [
        f"/ogc/collections/alerts/items/{long}",  # tipg's 404 named the id whole
        f"/ogc/collections/detections/items/{long}",
        f"/ogc/collections/{long}/items",
        f"/ogc/collections/detections/items?sortby={long}",
        f"/ogc/collections/detections/items?{long}=1",
        f"/ogc/collections/detections/items?filter={long}%20%3D%201",
        f"/ogc/collections/detections/items?hazard=flood&datetime={long}",
        f"/alerts/{long}",
        f"/stac/collections/{long}",
    ]
    for path in cases:
        r = httpx.get(xapi.base + path, headers=hdr(xapi.keys["viewer"]), timeout=60)
        assert 400 <= r.status_code < 500, f"{path[:80]}: {r.status_code}"
        assert len(r.content) < 1200, f"{path[:80]}: {len(r.content)} bytes: {r.text[:200]}"
        assert "x" * 81 not in r.text, f"{path[:80]}: more than 80 characters of the input: {r.text[:200]}"
    # Markup in an echoed excerpt is JSON-escaped (and the answer is JSON with nosniff, never HTML).
    r = httpx.get(f"{xapi.base}/ogc/collections/{IMG}/items", timeout=60)
    assert r.status_code == 404 and b"<img" not in r.content and r.headers["x-content-type-options"] == "nosniff"
    assert IMG in r.json()["description"], r.text


def test_no_tracebacks_or_5xx_were_logged(xapi):
    assert xapi.log.failures() == [], xapi.log.failures()[:5]
