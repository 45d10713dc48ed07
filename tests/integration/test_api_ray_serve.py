"""The same API app deployed once on the test stack's Ray cluster with Ray Serve."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.api_helpers import free_port, hdr, role_keys

pytestmark = pytest.mark.integration


def test_api_runs_under_ray_serve(stack):
    import ray
    from ray import serve

    from terrawatch_dev.stack.ray_serve import APP_NAME, run_on_ray_serve

    s = stack.settings
    viewer = role_keys(s, "serve")["viewer"]
    port = free_port()
    was_connected = ray.is_initialized()
    try:
        base = run_on_ray_serve(s, "127.0.0.1", port).rstrip("/")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ops/livez", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert httpx.get(f"{base}/ops/livez", timeout=10).json() == {"status": "ok"}
        cols = httpx.get(f"{base}/ogc/collections", headers=hdr(viewer), timeout=30)
        assert cols.status_code == 200, cols.text
        assert {"detections", "alerts", "scenes", "reference_layers"} <= {c["id"] for c in cols.json()["collections"]}
        assert httpx.get(f"{base}/ogc/collections", timeout=10).status_code == 401
        ready = httpx.get(f"{base}/ops/readyz", timeout=60).json()
        assert ready["checks"]["ray"]["ok"], ready  # inside a replica Ray is the cluster itself
        assert serve.status().applications[APP_NAME].status == "RUNNING"
    finally:
        if ray.is_initialized():  # serve.shutdown() would otherwise start a local Ray instance
            serve.shutdown()
            if not was_connected:
                ray.shutdown()
