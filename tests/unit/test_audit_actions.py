"""Every action the code records in the audit log is one GET /ops/audit?action= accepts (store/audit.ACTIONS)."""

from __future__ import annotations

import re
from pathlib import Path

from terrawatch.domain.alerts import TRANSITIONS, AlertStatus
from terrawatch.store.audit import ACTIONS

PKG = Path(__file__).resolve().parents[2] / "services" / "terrawatch"
CALL = re.compile(r'(?:auditor\(who, request, |_audit\(who, request, |cli_audit\()"([a-z_]+\.[a-z_.]+)"')


def recorded_actions() -> set[str]:
    found = set()
    for py in PKG.rglob("*.py"):
        found |= set(CALL.findall(py.read_text()))
    return found


def test_every_recorded_action_is_listed():
    found = recorded_actions()
    assert {"consumption.pause", "dlq.redrive", "scene.replay", "key.create"} <= found, found  # the scan works
    assert sorted(found - set(ACTIONS)) == []


def test_alert_transitions_are_listed():
    targets = {dst for dsts in TRANSITIONS.values() for dst in dsts}
    assert targets, TRANSITIONS
    for dst in targets:
        assert f"alert.{AlertStatus(dst).value}" in ACTIONS or AlertStatus(dst) == AlertStatus.NEW
