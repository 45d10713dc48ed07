"""Consumption pause/resume: the CLI (``terrawatch consumption show|pause|resume --json``) and the API
(``/ops/consumption``) run one use case (service/ops.set_consumption) and give the same answer, each change
audited with its actor; a reason over 500 characters is refused by both and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, settings_env

pytestmark = pytest.mark.integration


def _cli(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("terrawatch")), *args], env=settings_env(s),
                          capture_output=True, text=True, timeout=120)


def _json(res: subprocess.CompletedProcess) -> dict:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_cli_and_api_pause_and_resume_alike(stack):
    s = isolated(stack.settings, "consumption")
    op = hdr(role_keys(s, "consumption")["operator"])
    with live_api(s) as base:
        def api(method: str, path: str, **kw) -> httpx.Response:
            return httpx.request(method, f"{base}{path}", headers=op, timeout=60, **kw)

        assert _json(_cli(s, "consumption", "show", "--json")) == api("GET", "/ops/consumption").json() \
            == {"paused": False, "reason": None, "updated_at": None, "updated_by": None}

        paused = _json(_cli(s, "consumption", "pause", "--reason", "parity check", "--json"))
        assert paused["paused"] is True and paused["reason"] == "parity check"
        assert paused["updated_by"].startswith("cli:")
        assert api("GET", "/ops/consumption").json() == paused == _json(_cli(s, "consumption", "show", "--json"))

        resumed = api("POST", "/ops/consumption/resume", json={"reason": "parity done"})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["paused"] is False and resumed.json()["reason"] == "parity done"
        assert _json(_cli(s, "consumption", "show", "--json")) == resumed.json()

        long_cli = _cli(s, "consumption", "pause", "--reason", "x" * 501)
        long_api = api("POST", "/ops/consumption/pause", json={"reason": "x" * 501})
        assert long_cli.returncode == 1 and "reason: at most 500 characters" in long_cli.stderr
        assert long_api.status_code in (400, 422) and "reason" in long_api.text  # the body model refuses it
        assert api("GET", "/ops/consumption").json() == resumed.json()

        for action, reason, role in (("consumption.pause", "parity check", "cli"),
                                     ("consumption.resume", "parity done", "operator")):
            rows = api("GET", "/ops/audit", params={"action": action, "limit": 50}).json()
            assert [(r["target"], r["role"]) for r in rows if r["details"].get("reason") == reason] \
                == [(s.consumer_group, role)], rows
