"""The local stack's KRaft cluster id is never read as a command-line option by StorageTool."""

from __future__ import annotations

import base64
import uuid

from terrawatch_dev.stack import kafka


def test_cluster_id_never_starts_with_a_dash(monkeypatch):
    # uuid4 bytes whose base64 starts with '-' (0xf8 -> '-' in the URL-safe alphabet), then a normal one
    dash = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    normal = uuid.UUID(bytes=bytes([0x10]) + bytes(15))
    assert base64.urlsafe_b64encode(dash.bytes).decode().startswith("-")
    draws = iter([dash, dash, normal])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    cid = kafka.new_cluster_id()
    assert not cid.startswith("-") and len(cid) == 22
    assert base64.urlsafe_b64decode(cid + "==") == normal.bytes
