"""A signed test event for one subscriber, sent now (``POST /subscriptions/{id}/test``, ``terrawatch
subscriptions test``), so a receiver can check that it verifies terrawatch's signatures before a real alert.

GeoJSON subscribers get ``{"type": "webhook.test", ...}``; CAP subscribers a CAP 1.2 document with
``<status>Test</status>`` (valid against the XSD; CAP's own way to say "not a real alert"). The request goes
through the same SSRF pinning and Standard Webhooks signing as the dispatcher's, with no retry: the answer
reports what the receiver said.
"""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import httpx
from standardwebhooks.webhooks import Webhook

from terrawatch.alerting.cap import CAP_CONTENT_TYPE, CAP_NS, cap_time
from terrawatch.alerting.payloads import GEOJSON_CONTENT_TYPE
from terrawatch.alerting.ssrf import UnresolvableWebhookHost, UnsafeWebhookTarget, pin

TEST_EVENT = "webhook.test"


def test_payload(fmt: str, subscription_id: uuid.UUID, webhook_id: str, sender: str, now: datetime) -> tuple[str, str]:
    """(body, content type) of a test event in the subscriber's format."""
    if fmt == "cap":
        ET.register_namespace("", CAP_NS)
        root = ET.Element(f"{{{CAP_NS}}}alert")
        for tag, text in (("identifier", f"terrawatch-test-{webhook_id}"), ("sender", sender),
                          ("sent", cap_time(now)), ("status", "Test"), ("msgType", "Alert"), ("scope", "Public"),
                          ("note", f"terrawatch webhook test for subscription {subscription_id}; not an alert")):
            ET.SubElement(root, f"{{{CAP_NS}}}{tag}").text = text
        info = ET.SubElement(root, f"{{{CAP_NS}}}info")
        for tag, text in (("category", "Other"), ("event", "terrawatch webhook test"), ("urgency", "Unknown"),
                          ("severity", "Unknown"), ("certainty", "Unknown")):
            ET.SubElement(info, f"{{{CAP_NS}}}{tag}").text = text
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode"), CAP_CONTENT_TYPE
    body = {"type": TEST_EVENT, "timestamp": now.isoformat(),
            "data": {"subscription_id": str(subscription_id),
                     "message": "terrawatch webhook test: verify the signature; this is not an alert"}}
    return json.dumps(body, separators=(",", ":")), GEOJSON_CONTENT_TYPE


def send_test(sub: dict, allow, sender: str, timeout_s: float) -> dict:
    """Sign and POST a test event to subscriber row ``sub`` (url, secret, format, id). Returns
    ``{"webhook_id", "event_type", "delivered", "status_code", "error", "duration_s"}``; never raises for
    the receiver's failures (they are the answer)."""
    webhook_id = f"msg_test_{uuid.uuid4().hex}"
    now = datetime.now(timezone.utc)
    body, ctype = test_payload(sub["format"], sub["id"], webhook_id, sender, now)
    code, error = None, None
    t0 = time.perf_counter()
    try:
        target = pin(sub["url"], allow)
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(sub["secret"]).sign(webhook_id, now, body),
                   "content-type": ctype, "host": target.host_header, "user-agent": "terrawatch-webhooks/1"}
        ext = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False) as http:
            resp = http.post(target.url, content=body.encode(), headers=headers, extensions=ext)
        code = resp.status_code
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except (UnsafeWebhookTarget, UnresolvableWebhookHost) as exc:
        error = f"refused: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {"webhook_id": webhook_id, "event_type": TEST_EVENT, "delivered": error is None, "status_code": code,
            "error": error, "duration_s": round(time.perf_counter() - t0, 3)}
