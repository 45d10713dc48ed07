"""The CLI and the API give the same answer for the same runbook input (one use case behind both).

DLQ entries are written straight to this test's own DLQ topic (no worker needed); each case runs the CLI
(the installed ``terrawatch`` entry point, ``--json``) and the API (a live app) on equivalent input and
compares the answers: the entries listed and shown, a purge naming a missing id (the rest acted on, the
missing one reported), a call none of whose ids exists (404 / exit 1), too many ids or too large a list
(refused by both), and revoking a key that does not exist (404 / exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from terrawatch.ingest import kafka_io
from terrawatch.ingest.dlq import DlqRecord, DlqSource
from terrawatch.service import dlq as dlq_svc
from tests.integration.api_helpers import hdr, live_api, role_keys
from tests.integration.helpers import isolated, settings_env, wait_for

pytestmark = pytest.mark.integration


def _cli(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("terrawatch")), *args], env=settings_env(s),
                          capture_output=True, text=True, timeout=120)


def _dead_letter(s, n: int) -> list[str]:
    """``n`` DLQ records on ``s.dlq_topic`` (one partition's offsets in order); their ids once readable."""
    p = kafka_io.producer(s)
    for i in range(n):
        rec = DlqRecord(reason=f"parity {i}: the asset could not be read", error_code="unreadable_asset",
                        kind="permanent", attempts=1, failed_at=datetime.now(timezone.utc),
                        source=DlqSource(topic=s.scenes_topic, partition=0, offset=i, key=f"parity-{i}"),
                        payload=json.dumps({"id": f"parity-{i}"}))
        p.produce(s.dlq_topic, key=f"parity-{i}".encode(), value=rec.model_dump_json().encode(), partition=0)
    assert p.flush(30) == 0
    entries = wait_for(lambda: (e := dlq_svc.list_entries(s, _engine(s), "pending", 100)) and len(e) == n and e,
                       60, f"{n} DLQ records readable")
    return [e.id for e in entries]


def _engine(s):
    from terrawatch.store.uow import engine_for

    return engine_for(s.db_url)


def _without_times(out: dict) -> dict:
    return {k: v for k, v in out.items() if k not in ("at", "by")}


def test_cli_and_api_answer_the_same_runbook_input(stack):
    s = isolated(stack.settings, "parity")
    keys = role_keys(s, "parity")
    op, admin = hdr(keys["operator"]), hdr(keys["admin"])
    ids = _dead_letter(s, 4)
    with live_api(s) as base:
        def api(method: str, path: str, headers=op, **kw) -> httpx.Response:
            return httpx.request(method, f"{base}{path}", headers=headers, timeout=60, **kw)

        # list and show: the same entries, field for field
        cli_list = _cli(s, "dlq", "list", "--json", "--limit", "10")
        assert cli_list.returncode == 0, cli_list.stderr
        listed = [json.loads(line) for line in cli_list.stdout.splitlines() if line.strip()]
        assert listed == api("GET", "/ops/dlq", params={"limit": 10}).json()
        assert [e["id"] for e in listed] == ids
        cli_show = _cli(s, "dlq", "show", ids[0], "--json")
        assert cli_show.returncode == 0, cli_show.stderr
        assert json.loads(cli_show.stdout) == api("GET", f"/ops/dlq/{ids[0]}").json()

        # a purge naming one missing id: the others are purged, the missing one reported (exit 0 / 200)
        gone = f"0/{10**9}"
        by_cli = _cli(s, "dlq", "purge", ids[0], gone, "--json")
        assert by_cli.returncode == 0, by_cli.stderr
        by_api = api("POST", "/ops/dlq/purge", json={"ids": [ids[1], gone]})
        assert by_api.status_code == 200, by_api.text
        cli_out, api_out = json.loads(by_cli.stdout), by_api.json()
        assert cli_out["purged"] == [ids[0]] and api_out["purged"] == [ids[1]]
        assert _without_times({**cli_out, "purged": None, "remaining": None}) == \
            _without_times({**api_out, "purged": None, "remaining": None}) == \
            {"purged": None, "missing": [gone], "skipped": [], "remaining": None}
        assert api_out["remaining"] == 2 and cli_out["remaining"] == 3  # the CLI ran first

        # the same entry again: skipped by both (already purged), answered alike
        again_cli = json.loads(_cli(s, "dlq", "purge", ids[0], "--json").stdout)
        again_api = api("POST", "/ops/dlq/purge", json={"ids": [ids[0]]}).json()
        assert _without_times(again_cli) == _without_times(again_api) == {
            "purged": [], "missing": [], "skipped": [{"id": ids[0], "state": "purged"}], "remaining": 2}

        # none of the named ids exists: 404 and exit 1, nothing changes
        none_cli = _cli(s, "dlq", "redrive", gone)
        none_api = api("POST", "/ops/dlq/redrive", json={"ids": [gone]})
        assert none_api.status_code == 404 and none_cli.returncode == 1
        assert gone in none_api.json()["description"] and gone in none_cli.stderr
        assert dlq_svc.counts(s, _engine(s))["pending"] == 2

        # too many ids, too large a list: refused by both, naming the parameter
        many = [f"0/{i}" for i in range(dlq_svc.LIMIT + 1)]
        many_cli = _cli(s, "dlq", "purge", *many)
        many_api = api("POST", "/ops/dlq/purge", json={"ids": many})
        assert many_cli.returncode == 1 and "ids: at most 1000" in many_cli.stderr
        assert many_api.status_code in (400, 422) and "ids" in many_api.text
        big_cli = _cli(s, "dlq", "list", "--limit", "1001")
        big_api = api("GET", "/ops/dlq", params={"limit": 1001})
        assert big_cli.returncode == 1 and "limit must be between 1 and 1000" in big_cli.stderr
        assert big_api.status_code in (400, 422) and "limit" in big_api.text

        # revoking a key that does not exist: 404 and exit 1
        rev_cli = _cli(s, "keys", "revoke", "0123456789ab")
        rev_api = api("DELETE", "/ops/keys/0123456789ab", headers=admin)
        assert rev_api.status_code == 404 and rev_cli.returncode == 1
        assert "no active key '0123456789ab'" in rev_api.json()["description"] and "no active key '0123456789ab'" in rev_cli.stderr
