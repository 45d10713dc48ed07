"""TERRAWATCH_WEBHOOK_SUBSCRIBERS goes through the subscriptions use case's validation (SSRF guard, secret)
before the upsert; the store call is replaced by a list (the upsert itself runs in the worker's start-up)."""

from __future__ import annotations

from terrawatch.domain.hazards import HAZARDS
from terrawatch.service import subscriptions
from terrawatch.settings import Settings


def test_static_subscribers_are_validated_and_bad_entries_skipped(monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(subscriptions.store, "upsert_by_url", lambda engine, values, on_conflict: calls.append(
        (values, on_conflict)))
    s = Settings(webhook_allow_private="127.0.0.1", webhook_subscribers=(
        " http://127.0.0.1:9911/hook|whsec_a ,"      # allowed (private address opted in)
        "http://10.1.2.3/hook|whsec_b,"              # private, not allowed: refused by the SSRF guard
        "ftp://127.0.0.1/x|whsec_c,"                 # not http(s)
        "http://127.0.0.1:9912/nosecret|,"           # no secret
        "http://127.0.0.1:9913/nosecret"))
    assert subscriptions.sync_static(object(), s) == 1
    ((values, on_conflict),) = calls
    assert values["url"] == "http://127.0.0.1:9911/hook" and values["secret"] == "whsec_a"
    assert values["hazards"] == list(HAZARDS) and values["min_confidence"] == "low" and values["format"] == "geojson"
    assert on_conflict == {"secret": "whsec_a", "active": True}
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 4


def test_no_static_subscribers_no_upsert(monkeypatch):
    monkeypatch.setattr(subscriptions.store, "upsert_by_url", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    assert subscriptions.sync_static(object(), Settings(webhook_subscribers="")) == 0
