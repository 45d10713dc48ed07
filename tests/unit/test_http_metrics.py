"""API RED metrics: every route's 5xx counter is exported at 0 from the first request (observability/http_metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from terrawatch.observability.http_metrics import HttpMetrics


def _sample(route: str, method: str, klass: str) -> float | None:
    for line in generate_latest().decode().splitlines():
        if (line.startswith("terrawatch_http_requests_total{") and f'route="{route}"' in line
                and f'method="{method}"' in line and f'status_class="{klass}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_every_route_has_a_zero_5xx_series_and_requests_count():
    app = FastAPI()
    inner = APIRouter(prefix="/inner")

    @inner.post("/things/{tid}")
    def post_thing(tid: int):
        return {}

    @app.get("/hm-ping")
    def ping():
        return {}

    app.include_router(inner)
    client = TestClient(HttpMetrics(app, router_app=app))
    assert client.get("/hm-ping").status_code == 200
    assert _sample("/inner/things/{tid}", "POST", "5xx") == 0.0  # primed, not absent
    assert _sample("/hm-ping", "GET", "5xx") == 0.0
    assert _sample("/hm-ping", "GET", "2xx") >= 1.0
