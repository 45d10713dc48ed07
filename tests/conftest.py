"""Shared fixtures. Integration tests run against a real stack started once per session.

The test stack uses its own state dir and ports (so it can run beside a demo
stack) and is stopped at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from terrawatch.settings import REPO_ROOT, Settings

SHARED = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

TEST_PORTS = dict(
    kafka_port=29092, kafka_controller_port=29093, pg_port=25432,
    triton_http_port=28000, triton_grpc_port=28001, triton_metrics_port=28002,
    ray_port=26379, ray_min_worker_port=27000, metrics_port=29464,
)


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    state = Path(os.environ.get("TERRAWATCH_TEST_STATE_DIR") or tempfile.mkdtemp(prefix="tw-test-"))
    return Settings(state_dir=state, **TEST_PORTS)


@pytest.fixture(scope="session")
def stack(stack_settings: Settings):
    from terrawatch.stack import Stack

    s = Stack(stack_settings)
    try:
        s.up()
    except Exception:
        s.down()
        raise
    yield s
    s.down()
    if not os.environ.get("TERRAWATCH_TEST_STATE_DIR"):
        shutil.rmtree(stack_settings.state_dir, ignore_errors=True)
