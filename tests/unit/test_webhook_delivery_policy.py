"""Pure delivery policy: circuit breakers, backoff, SSRF pinning, and the reference receiver's verification."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timezone

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from terrawatch.alerting.receiver import WebhookReceiver
from terrawatch.alerting.retry import CircuitBreakers, backoff_s
from terrawatch.alerting.ssrf import UnsafeWebhookTarget, check_target, parse_allow_list, pin


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_threshold_and_half_opens_with_one_trial():
    clock, changes = Clock(), []
    b = CircuitBreakers(threshold=3, cooldown_s=10, clock=clock, on_change=lambda k, o: changes.append((k, o)))
    for _ in range(2):
        assert b.acquire("e")
        b.failure("e")
    assert b.state("e") == "closed"
    b.failure("e")
    assert b.state("e") == "open" and not b.acquire("e") and changes == [("e", True)]
    assert b.acquire("other")  # breakers are per endpoint
    clock.t = 10.5
    assert b.state("e") == "half_open"
    assert b.acquire("e") and not b.acquire("e")  # exactly one trial
    b.failure("e")  # trial failed: open again for a full cooldown
    assert b.state("e") == "open"
    clock.t = 21
    assert b.acquire("e")
    b.success("e")
    assert b.state("e") == "closed" and changes[-1] == ("e", False)
    assert b.acquire("e") and b.acquire("e")


def test_breaker_release_returns_the_trial():
    clock = Clock()
    b = CircuitBreakers(threshold=1, cooldown_s=1, clock=clock)
    b.failure("e")
    clock.t = 2
    assert b.acquire("e") and not b.acquire("e")
    b.release("e")
    assert b.acquire("e")


def test_backoff_full_jitter_bounds():
    import random

    rng = random.Random(1)
    waits = [backoff_s(n, base=2, cap=100, rng=rng) for n in range(1, 12) for _ in range(20)]
    assert all(0 <= w <= 100 for w in waits)
    assert max(backoff_s(1, 2, 100, rng) for _ in range(200)) <= 4


def test_pin_connects_to_the_vetted_address_and_keeps_host_and_sni():
    allow = parse_allow_list("localhost,127.0.0.0/8")
    t = pin("https://localhost:8443/hook?x=1", allow)
    assert t.url.split("//")[1].split("/")[0] in ("127.0.0.1:8443", "[::1]:8443")
    assert t.url.endswith("/hook?x=1") and t.host_header == "localhost:8443" and t.sni_hostname == "localhost"
    t = pin("http://127.0.0.1:9000/h", allow)
    assert t.url == "http://127.0.0.1:9000/h" and t.sni_hostname is None


@pytest.mark.parametrize("url", ["http://[::ffff:127.0.0.1]/x", "http://user:pw@example.org/x",
                                 "http://0.0.0.0/x", "http://100.64.0.1/x", "http://224.0.0.1/x"])
def test_more_unsafe_targets_are_refused(url):
    with pytest.raises(UnsafeWebhookTarget):
        check_target(url, parse_allow_list("10.0.0.0/8"))


def _post(rx: WebhookReceiver, secret: str, body: str, ctype: str, msg_id: str) -> int:
    ts = datetime.now(timezone.utc)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(ts.timestamp())),
               "webhook-signature": Webhook(secret).sign(msg_id, ts, body), "content-type": ctype}
    return httpx.post(rx.url, content=body.encode(), headers=headers, timeout=5).status_code


def test_receiver_verifies_both_formats_and_deduplicates():
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    rx = WebhookReceiver(secret, status_codes=[500])
    try:
        assert _post(rx, secret, '{"a":1}', "application/json", "msg_1") == 500
        assert _post(rx, secret, '{"a":1}', "application/json", "msg_1") == 204
        assert _post(rx, secret, '{"a":1}', "application/json", "msg_1") == 204
        assert _post(rx, secret, "<alert/>", "application/cap+xml", "msg_2") == 204
        wrong = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        assert _post(rx, wrong, "<alert/>", "application/cap+xml", "msg_3") == 400
    finally:
        rx.close()
    assert rx.attempts == {"msg_1": 3, "msg_2": 1, "msg_3": 1}
    assert rx.by_format == {"geojson": 1, "cap": 1} and rx.failures == 1
    assert rx.verified_ids == {"msg_1", "msg_2"}
