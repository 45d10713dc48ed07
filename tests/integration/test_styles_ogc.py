"""The OGC collections of alerts and detections link their ready-made styles (rel ``stylesheet``, OGC API -
Styles media types), the links resolve without a key, and the other collections link none (issue 26)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration
TYPES = {"application/vnd.mapbox.style+json", "application/vnd.qgis.qml"}


def test_collections_link_their_styles_and_the_links_resolve(stack):
    s = stack.settings
    viewer = role_keys(s, "styles")["viewer"]
    with live_api(s) as base:
        listed = httpx.get(f"{base}/ogc/collections", headers=hdr(viewer))
        assert listed.status_code == 200, listed.text
        by_id = {c["id"]: c for c in listed.json()["collections"]}
        for cid in ("alerts", "detections", "scenes"):
            doc = httpx.get(f"{base}/ogc/collections/{cid}", headers=hdr(viewer))
            assert doc.status_code == 200, doc.text
            for links in (doc.json()["links"], by_id[cid]["links"]):
                sheets = [lk for lk in links if lk["rel"] == "stylesheet"]
                if cid == "scenes":
                    assert sheets == []
                    continue
                assert {lk["type"] for lk in sheets} == TYPES
                for lk in sheets:
                    assert lk["href"].startswith(base + "/styles/")
                    r = httpx.get(lk["href"])  # no key: styles carry no data
                    assert r.status_code == 200 and r.headers["content-type"].startswith(lk["type"])
                    if lk["type"].endswith("+json"):
                        style = r.json()
                        assert style["version"] == 8 and style["sources"][cid]["url"] == f"{base}/tiles/{cid}.json"
                        tj = httpx.get(style["sources"][cid]["url"], headers=hdr(viewer))
                        assert tj.status_code == 200 and cid in {v["id"] for v in tj.json()["vector_layers"]}
                    else:
                        assert ET.fromstring(r.text).find("renderer-v2").get("type") == "RuleRenderer"
        html = httpx.get(f"{base}/ogc/collections/alerts", params={"f": "html"}, headers=hdr(viewer))
        assert html.status_code == 200 and "/styles/alerts.qml" in html.text
