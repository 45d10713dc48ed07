"""The one place a Kafka client's configuration is built: every producer, consumer and admin client the
project creates (pipeline, DLQ, probes, CLI, API, bench, tests) passes through :func:`client_config`, so
the security settings (``TERRAWATCH_KAFKA_SECURITY_PROTOCOL``, ``_SASL_*``, ``_SSL_CA_LOCATION``,
``_KAFKA_CONFIG``) reach all of them. ``tests/unit/test_kafka_config.py`` fails on a client built otherwise.

This module imports no Kafka client: it returns plain librdkafka dicts.
"""

from __future__ import annotations

import json
from typing import Any

from terrawatch.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

# Keys a client's own code decides (delivery guarantees, group membership): TERRAWATCH_KAFKA_CONFIG may not
# weaken them, and the connection itself comes from TERRAWATCH_KAFKA_BOOTSTRAP.
RESERVED = frozenset({"bootstrap.servers", "acks", "enable.idempotence", "group.id", "enable.auto.commit",
                      "group.instance.id", "isolation.level"})


class KafkaConfigError(ValueError):
    """The Kafka security settings contradict each other or TERRAWATCH_KAFKA_CONFIG is not usable."""


def _extra(settings: Settings) -> dict[str, Any]:
    raw = settings.kafka_config.strip()
    if not raw:
        return {}
    try:
        extra = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KafkaConfigError(f"TERRAWATCH_KAFKA_CONFIG is not JSON: {exc}") from None
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        raise KafkaConfigError("TERRAWATCH_KAFKA_CONFIG must be a JSON object of librdkafka settings")
    reserved = sorted(RESERVED & set(extra))
    if reserved:
        raise KafkaConfigError(f"TERRAWATCH_KAFKA_CONFIG may not set {', '.join(reserved)} (set by terrawatch)")
    bad = [k for k, v in extra.items() if not isinstance(v, (str, int, float, bool))]
    if bad:
        raise KafkaConfigError(f"TERRAWATCH_KAFKA_CONFIG values must be scalars: {', '.join(bad)}")
    return extra


def security_config(settings: Settings) -> dict[str, Any]:
    """The security part of every client's configuration (empty on the plaintext local stack)."""
    conf: dict[str, Any] = {}
    proto = settings.kafka_security_protocol.strip().upper()
    if proto:
        if proto not in PROTOCOLS:
            raise KafkaConfigError(f"TERRAWATCH_KAFKA_SECURITY_PROTOCOL={proto!r}: use one of {', '.join(PROTOCOLS)}")
        conf["security.protocol"] = proto
    sasl = proto.startswith("SASL_")
    if settings.kafka_sasl_mechanism:
        if not sasl:
            raise KafkaConfigError("TERRAWATCH_KAFKA_SASL_MECHANISM needs TERRAWATCH_KAFKA_SECURITY_PROTOCOL "
                                   "SASL_SSL or SASL_PLAINTEXT")
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism.strip().upper()
    if settings.kafka_sasl_username or settings.kafka_sasl_password:
        if not sasl:
            raise KafkaConfigError("TERRAWATCH_KAFKA_SASL_USERNAME/_PASSWORD are set but the security protocol "
                                   "is not SASL_SSL or SASL_PLAINTEXT: they would not be sent")
        conf["sasl.username"] = settings.kafka_sasl_username
        conf["sasl.password"] = settings.kafka_sasl_password
    if settings.kafka_ssl_ca_location:
        if proto not in ("SSL", "SASL_SSL"):
            raise KafkaConfigError("TERRAWATCH_KAFKA_SSL_CA_LOCATION needs security protocol SSL or SASL_SSL")
        conf["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return conf


def client_config(settings: Settings, **client: Any) -> dict[str, Any]:
    """librdkafka configuration of one client: bootstrap servers, the security settings, the extra
    ``TERRAWATCH_KAFKA_CONFIG`` keys, then the client's own keys (keyword arguments with dots written as
    underscores are not accepted: pass ``**{"group.id": ...}``). Raises :class:`KafkaConfigError`."""
    return {"bootstrap.servers": settings.bootstrap, **security_config(settings), **_extra(settings), **client}


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` with passwords and keys masked, for logs and error messages."""
    return {k: ("***" if any(w in k for w in ("password", "secret", "key")) and "location" not in k else v)
            for k, v in conf.items()}
