"""The API's RED metrics: count and latency by route template and status class, with bounded labels."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from terrawatch.api import create_app
from terrawatch.settings import Settings


def _requests(body: str) -> dict[tuple[str, str, str], float]:
    return {(s.labels["route"], s.labels["method"], s.labels["status_class"]): s.value
            for fam in text_string_to_metric_families(body) for s in fam.samples
            if s.name == "terrawatch_http_requests_total"}


def test_requests_are_counted_by_template_and_status_class_never_by_raw_path():
    client = TestClient(create_app(Settings()))
    before = _requests(client.get("/metrics").text)
    client.get("/ops/livez")
    for i in range(3):
        client.get(f"/no/such/path/{i}")  # a scanner: one bounded label, not three
    client.get("/ops/dlq/0/12")  # refused by the access guard (no key): labelled with the route it addressed
    client.request("BREW", "/ops/livez")
    after = _requests(client.get("/metrics").text)
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    assert delta[("/ops/livez", "GET", "2xx")] == 1
    assert delta[("unmatched", "GET", "4xx")] == 3
    assert delta[("/ops/dlq/{partition}/{offset}", "GET", "4xx")] == 1
    assert ("/ops/livez", "other", "4xx") in delta
    assert not any("/no/such" in route or "/0/12" in route for route, _, _ in after)


def test_the_api_exports_only_its_own_families():
    body = TestClient(create_app(Settings())).get("/metrics").text
    names = {fam.name for fam in text_string_to_metric_families(body) if fam.name.startswith("terrawatch_")}
    assert {"terrawatch_http_requests", "terrawatch_build_info"} <= names
    assert "terrawatch_outage_window_seconds" not in names and "terrawatch_scenes_in_flight" not in names
    assert "terrawatch_http_request_duration_seconds" in names
