"""Shared fixtures. Integration tests run against a real stack started once per session.

The test stack uses its own state dir and ports (so it can run beside a demo
stack) and is stopped at the end of the session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from terrawatch.settings import REPO_ROOT, Settings

SHARED = Path(os.environ.get("TERRAWATCH_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# TERRAWATCH_TEST_PORT_OFFSET (a multiple of 100, <= 900) lets several test sessions run side by side. Above 500
# metrics_port (29464 + offset) lies inside offset 0's Ray worker ports (30000-30999): pick a free one there.
_OFF = int(os.environ.get("TERRAWATCH_TEST_PORT_OFFSET", "0"))
TEST_PORTS = dict(
    kafka_port=29092 + _OFF, kafka_controller_port=29093 + _OFF, pg_port=25432 + _OFF,
    triton_http_port=28000 + _OFF, triton_grpc_port=28001 + _OFF, triton_metrics_port=28002 + _OFF,
    ray_port=26379 + _OFF, ray_min_worker_port=30000 + _OFF * 10, metrics_port=29464 + _OFF,
)


# TERRAWATCH_TEST_KAFKA_BROKERS=3 runs the test stack's Kafka as three KRaft nodes that admit only SASL/SCRAM
# clients (topics RF 3, min.insync.replicas 2; node n on kafka_port + 10(n-1)); every client and worker of the
# suite then authenticates; Ray runs as two nodes. Default 1: one plaintext node, one Ray node (the fault suite
# starts a second one for its multi-node tests).
_BROKERS = int(os.environ.get("TERRAWATCH_TEST_KAFKA_BROKERS", "1"))


def _kafka_mode() -> dict:
    if _BROKERS == 1:
        return {}
    return dict(kafka_brokers=_BROKERS, ray_nodes=2,
                kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
                kafka_sasl_username="terrawatch", kafka_sasl_password=secrets.token_urlsafe(18))


_REQUIRE_DATA = False


def pytest_addoption(parser):
    parser.addoption("--require-data", action="store_true",
                     help="a missing ../shared/data file fails the test instead of skipping it (make test uses it)")


def pytest_configure(config):
    global _REQUIRE_DATA
    _REQUIRE_DATA = config.getoption("--require-data")


def shared_path(*parts: str) -> Path:
    """Path of a file under the shared real data; skip (or, with --require-data, fail) where it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"shared data not available: {p} (TERRAWATCH_SHARED_DATA overrides {SHARED})"
        if _REQUIRE_DATA:
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return p


def needs_shared(*paths: str) -> pytest.MarkDecorator:
    """Mark a test (or a module via ``pytestmark``) as needing these files under the shared data."""
    return pytest.mark.shared_data(*paths)


def pytest_collection_modifyitems(config, items):
    # Tests are marked by what they need: `stack` wherever the real local stack is a fixture.
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)
        if "quality" in Path(str(item.fspath)).parts:  # tests/quality: real models on real data (slow)
            item.add_marker(pytest.mark.quality)


def pytest_runtest_setup(item):
    for mark in item.iter_markers("shared_data"):
        for rel in mark.args:
            shared_path(*Path(rel).parts)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    state = Path(os.environ.get("TERRAWATCH_TEST_STATE_DIR") or tempfile.mkdtemp(prefix="tw-test-"))
    # Test scenes are written under the temp dir and read from the shared data; stand-in HTTP
    # servers (remote COG, STAC, Sentinel Hub) listen on loopback, which assets may not reach by default.
    return Settings(state_dir=state, asset_file_roots=f"{state},{tempfile.gettempdir()},{SHARED}",
                    asset_allow_hosts="127.0.0.1,::1,localhost", **TEST_PORTS, **_kafka_mode())


@pytest.fixture(scope="session")
def stack(stack_settings: Settings):
    from terrawatch_dev.stack import Stack

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
