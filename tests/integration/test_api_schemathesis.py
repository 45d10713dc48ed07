"""schemathesis against the live API (its published OpenAPI schema): no request may cause a server error."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from terrawatch_dev.api_samples import delete_seeded, seed_layers
from terrawatch.store import tables as t
from terrawatch.store.uow import engine_for
from tests.integration.api_helpers import live_api, role_keys

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 6  # per operation and phase; ~45 operations -> about a minute on 2 cores


def test_schemathesis_finds_no_server_errors(stack, tmp_path):
    s = stack.settings
    engine = engine_for(s.db_url)
    seeded = seed_layers(engine, center=(31.0, 2.0), spread_deg=0.2, scenes=1, detections_per_scene=6,
                         tag=f"st-{uuid.uuid4().hex[:6]}")
    admin = role_keys(s, "schemathesis")["admin"]
    with engine.connect() as c:
        subs_before = set(c.execute(select(t.subscribers.c.id)).scalars())
    st = str(Path(sys.executable).with_name("schemathesis"))
    try:
        with live_api(s) as base:
            res = subprocess.run(
                [st, "run", f"{base}/openapi.json", "--checks", "not_a_server_error",
                 "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--seed", "6",
                 "--phases", "examples,coverage,fuzzing", "--request-timeout", "30", "--no-color",
                 "--header", f"X-API-Key: {admin}", "--generation-database", "none",
                 "--report", "junit", "--report-junit-path", str(tmp_path / "schemathesis.xml")],
                capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache dir stays out of the repo
    finally:
        # Subscriptions the fuzzer created must not receive the other tests' alerts.
        with engine.begin() as c:
            new = set(c.execute(select(t.subscribers.c.id)).scalars()) - subs_before
            if new:
                c.execute(update(t.subscribers).where(t.subscribers.c.id.in_(new)).values(active=False))
        delete_seeded(engine, seeded)
    print(res.stdout[-4000:])
    assert res.returncode == 0, res.stdout[-8000:] + res.stderr[-2000:]
    m = re.search(r"(\d+) generated, (\d+) passed", res.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 500, res.stdout[-2000:]
