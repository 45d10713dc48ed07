"""Helpers for the API tests: a live uvicorn server in a thread, keys per role, seeded layers."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import uvicorn

from terrawatch.api import create_app
from terrawatch.service.keys import Role, create_key
from terrawatch.settings import Settings
from terrawatch.store.uow import engine_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_api(settings: Settings):
    """Serve ``create_app(settings)`` on a free 127.0.0.1 port; yield its base URL."""
    port = free_port()
    # As `terrawatch serve`: uvicorn's own proxy_headers would believe X-Forwarded-For from 127.0.0.1;
    # forwarding headers are the app's business (TERRAWATCH_API_TRUSTED_PROXIES).
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True, name=f"api-{port}")
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/ops/livez", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        raise TimeoutError("API did not start")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


def role_keys(settings: Settings, tag: str) -> dict[str, str]:
    """One fresh key per role: {"viewer": "tw_...", "operator": ..., "admin": ...}."""
    engine = engine_for(settings.db_url)
    return {r.value: create_key(engine, f"test-{tag}-{r.value}", r, created_by="pytest")[1] for r in Role}


def hdr(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
