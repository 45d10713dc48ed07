"""``GET /alerts``: the triage list against the real PostGIS (status and hazard filters, "updated since T"
incremental pull, keyset paging through the 'next' link, every bad parameter a 400 naming it)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import hdr, live_api, role_keys

pytestmark = pytest.mark.integration


def _ids(body: dict) -> list[str]:
    return [f["id"] for f in body["features"]]


def test_alert_triage_list_filters_pages_and_refuses_bad_parameters(stack):
    s = stack.settings
    engine = engine_for(s.db_url)
    t0 = datetime.now(timezone.utc)
    # 3 alerts in one transaction: statuses new, acknowledged, confirmed (terrawatch_dev/api_samples.py), one updated_at.
    seeded = seed_layers(engine, center=(31.5, -7.5), spread_deg=0.2, scenes=1, detections_per_scene=12,
                         tag=f"triage-{uuid.uuid4().hex[:6]}")
    mine = {str(a) for a in seeded.alert_ids}
    new_id, ack_id, confirmed_id = (str(a) for a in seeded.alert_ids)
    keys = role_keys(s, "triage")
    try:
        with live_api(s) as base, httpx.Client(base_url=base, headers=hdr(keys["viewer"]), timeout=30) as c:
            def get(**params) -> dict:
                r = c.get("/alerts", params=params)
                assert r.status_code == 200, r.text
                return r.json()

            # Status filter: of this test's alerts only the new one; every feature listed is new.
            body = get(status="new", since=t0.isoformat(), limit=1000)
            assert {f["properties"]["status"] for f in body["features"]} <= {"new"}
            assert set(_ids(body)) & mine == {new_id}
            hazard = body["features"][_ids(body).index(new_id)]["properties"]["hazard"]
            assert {f["properties"]["hazard"] for f in get(hazard=hazard, since=t0.isoformat())["features"]} == {hazard}
            both = get(status="new,confirmed", since=t0.isoformat(), limit=1000)
            assert set(_ids(both)) & mine == {new_id, confirmed_id}

            # Incremental pull: after T only the alert changed after T (an operator acknowledges it).
            t1 = datetime.now(timezone.utc)
            assert not set(_ids(get(since=t1.isoformat()))) & mine
            ack = httpx.post(f"{base}/alerts/{confirmed_id}/acknowledge", headers=hdr(keys["operator"]), timeout=30)
            assert ack.status_code == 200, ack.text
            pulled = get(since=t1.isoformat().replace("+00:00", "Z"), limit=1000)
            assert set(_ids(pulled)) & mine == {confirmed_id}
            changed = pulled["features"][_ids(pulled).index(confirmed_id)]["properties"]
            assert changed["status"] == "acknowledged" and datetime.fromisoformat(changed["updated_at"]) >= t1
            # until is exclusive: the window [t0, t1) holds the two unchanged alerts, not the acknowledged one
            assert set(_ids(get(since=t0.isoformat(), until=t1.isoformat(), limit=1000))) & mine == mine - {confirmed_id}

            # Paging, oldest change first, one per page through the 'next' link: each alert once, in order.
            seen: list[dict] = []
            url = f"/alerts?since={t0.isoformat().replace('+00:00', 'Z')}&sortby=updated_at&limit=1"
            for _ in range(100):
                r = c.get(url)
                assert r.status_code == 200, r.text
                page = r.json()
                assert page["numberReturned"] == len(page["features"]) <= 1
                seen.extend(f["properties"] for f in page["features"])
                nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
                if not nxt:
                    break
                url = nxt[0]
            else:
                pytest.fail("more than 100 pages")
            ids = [p["alert_id"] for p in seen]
            assert len(ids) == len(set(ids)) and mine <= set(ids)
            stamps = [datetime.fromisoformat(p["updated_at"]) for p in seen]
            assert stamps == sorted(stamps)
            assert ids.index(confirmed_id) > max(ids.index(new_id), ids.index(ack_id))  # changed last
            # a cursor is tied to its sort order
            assert "cursor=" in url and "sortby=updated_at" in url
            r = c.get(url.replace("sortby=updated_at", "sortby=-updated_at"))
            assert r.status_code == 400 and "cursor" in r.json()["description"], r.text
            newest_first = get(since=t0.isoformat(), limit=1000)
            stamps = [datetime.fromisoformat(f["properties"]["updated_at"]) for f in newest_first["features"]]
            assert stamps == sorted(stamps, reverse=True)

            # Every bad parameter: 400 naming it (never ignored, never 422/500).
            later = (t0 + timedelta(hours=1)).isoformat()
            for params, word in [({"since": "yesterday"}, "since"), ({"since": "2026-12-07T08:00:00"}, "since"),
                                 ({"until": "2026-13-01T00:00:00Z"}, "until"), ({"since": later, "until": t0.isoformat()}, "since"),
                                 ({"status": "open"}, "status"), ({"hazard": "fire"}, "hazard"),
                                 ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "²"}, "limit"),
                                 ({"sortby": "area_ha"}, "sortby"), ({"cursor": "nonsense"}, "cursor"),
                                 ({"bbox": "0,0,1,1"}, "bbox"), ({"since": ["2026-01-01T00:00:00Z"] * 2}, "since")]:
                r = c.get("/alerts", params=params)
                assert r.status_code == 400 and word in r.json()["description"], (params, r.text)
            # A '+hh:mm' offset sent unencoded arrives as a space: the 400 says so.
            r = c.get("/alerts?since=2026-12-07T08:00:00+01:00")
            assert r.status_code == 400 and "%2B" in r.json()["description"], r.text
            assert httpx.get(f"{base}/alerts", timeout=30).status_code == 401
    finally:
        delete_seeded(engine, seeded)
