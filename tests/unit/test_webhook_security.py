"""Standard Webhooks signatures verify with the standardwebhooks package; SSRF guard; backoff."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from terrawatch.alerting.dispatcher import backoff_s
from terrawatch.alerting.ssrf import UnsafeWebhookTarget, check_target, parse_allow_list

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_roundtrip_and_tamper_detection():
    body = '{"type":"alert.created","data":{}}'
    ts = datetime.now(timezone.utc)
    sig = Webhook(SECRET).sign("msg_1", ts, body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(ts.timestamp())), "webhook-signature": sig}
    assert Webhook(SECRET).verify(body, headers) == {"type": "alert.created", "data": {}}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("created", "deleted"), headers)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
    "http://[::1]/x", "http://192.168.0.10/", "ftp://example.org/x", "http:///nohost",
])
def test_private_targets_refused(url):
    with pytest.raises(UnsafeWebhookTarget):
        check_target(url, [])


def test_allow_list_admits_loopback():
    check_target("http://127.0.0.1:9000/hook", parse_allow_list("127.0.0.1"))
    check_target("http://127.0.0.1:9000/hook", parse_allow_list("127.0.0.0/8"))


def test_backoff_grows_and_is_capped():
    assert all(0 <= backoff_s(1) <= 4 for _ in range(50))
    assert all(0 <= backoff_s(30, cap=600) <= 600 for _ in range(50))
    assert max(backoff_s(8) for _ in range(200)) > 4
