"""Alerting: alert payloads, Standard Webhooks signing, SSRF guard and the outbox dispatcher."""
