"""SSRF guard: refuse webhook targets that resolve to non-public addresses unless allow-listed."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse


class UnsafeWebhookTarget(ValueError):
    pass


def parse_allow_list(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network | str]:
    out: list = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            out.append(item.lower())
    return out


def check_target(url: str, allow: list) -> None:
    """Raise :class:`UnsafeWebhookTarget` unless every address ``url`` resolves to is public or allowed."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UnsafeWebhookTarget(f"webhook URL must be http(s) with a host: {url!r}")
    host = u.hostname.lower()
    if host in allow:
        return
    try:
        infos = socket.getaddrinfo(host, u.port or (443 if u.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeWebhookTarget(f"cannot resolve webhook host {host!r}: {exc}") from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_global and not ip.is_multicast:
            continue
        if any(isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and ip in n for n in allow):
            continue
        raise UnsafeWebhookTarget(f"webhook host {host!r} resolves to non-public address {ip}")
