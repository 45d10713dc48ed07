"""Start the API as a managed background process next to the local stack (used by ``make demo``)."""

from __future__ import annotations

import os
import sys
import time

import httpx

from terrawatch.settings import Settings
from terrawatch_dev.stack.process import ManagedProcess


def api_urls(settings: Settings) -> dict[str, str]:
    base = f"http://{settings.api_host}:{settings.api_port}"
    return {"api_url": base, "ogc_url": f"{base}/ogc", "map_url": f"{base}/map"}


def start_api(settings: Settings, public_read: bool = True, timeout_s: float = 60,
              extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Start ``terrawatch serve`` as ManagedProcess("api") unless running; wait for /ops/livez; return its URLs.

    ``public_read`` serves the map layers without a key, so ``ogrinfo OAPIF:<ogc_url>`` and the map
    page work as they are; ops actions still need an operator key (``terrawatch keys create``).
    """
    proc = ManagedProcess("api", settings.state_dir)
    urls = api_urls(settings)
    if proc.pid() is None:
        env = {**os.environ, "TERRAWATCH_API_PUBLIC_READ": "true" if public_read else "false",
               "TERRAWATCH_STATE_DIR": str(settings.state_dir), **(extra_env or {})}
        proc.start([sys.executable, "-m", "terrawatch.cli", "serve", "--host", settings.api_host,
                    "--port", str(settings.api_port)], env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.pid() is None:
            raise RuntimeError(f"the API exited at start; see {proc.log_file}")
        try:
            if httpx.get(urls["api_url"] + "/ops/livez", timeout=2).status_code == 200:
                return urls
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the API did not answer within {timeout_s:.0f}s; see {proc.log_file}")
