"""SSRF guard: refuse webhook targets (and, through :func:`vet_host`, scene asset and STAC URLs,
``imagery/asset_policy.py``) that resolve to non-public addresses unless allow-listed.

Checked twice: when a subscription is registered and before every delivery
attempt. At delivery the request is sent to the vetted IP address itself
(:func:`pin`), with the original ``Host`` header and TLS SNI name, so a DNS
answer that changes between the check and the connect (DNS rebinding) cannot
redirect the request to an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


class UnsafeTarget(ValueError):
    """A URL whose host is not allowed (non-public address, not allow-listed)."""


class UnresolvableHost(UnsafeTarget):
    pass


class UnsafeWebhookTarget(UnsafeTarget):
    pass


class UnresolvableWebhookHost(UnsafeWebhookTarget, UnresolvableHost):
    """The host name does not resolve (now): refused at registration, retried at delivery."""


def parse_allow_list(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network | str]:
    """``TERRAWATCH_WEBHOOK_ALLOW_PRIVATE``: comma-separated host names and IPs/CIDRs."""
    out: list = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            out.append(item.lower())
    return out


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not ip.is_multicast


def vetted_addresses(url: str, allow: list) -> list[str]:
    """Every address ``url``'s host resolves to; raise :class:`UnsafeWebhookTarget` if any is not allowed.

    Loopback, link-local (incl. the 169.254.169.254 metadata service), private, reserved and
    multicast addresses are refused unless the host name or a network containing the address
    is on the allow-list.
    """
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UnsafeWebhookTarget(f"webhook URL must be http(s) with a host: {url!r}")
    if u.username or u.password:
        raise UnsafeWebhookTarget("webhook URL must not carry credentials")
    host = u.hostname.lower()
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookTarget(f"bad port in webhook URL: {exc}") from exc
    return vet_host(host, port, allow, "webhook host", UnsafeWebhookTarget, UnresolvableWebhookHost)


def vet_host(host: str, port: int, allow: list, what: str = "host", unsafe: type[UnsafeTarget] = UnsafeTarget,
             unresolvable: type[UnsafeTarget] = UnresolvableHost) -> list[str]:
    """Every address ``host`` resolves to; raise ``unsafe`` if any is non-public and not allow-listed."""
    host = host.lower()
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise unresolvable(f"cannot resolve {what} {host!r}: {exc}") from exc
    except (UnicodeError, ValueError) as exc:  # e.g. labels too long for IDNA, NUL bytes
        raise unsafe(f"invalid {what} {host!r}: {exc}") from exc
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    if host in allow:
        return addrs
    for a in addrs:
        ip = ipaddress.ip_address(a.split("%", 1)[0])
        if _public(ip):
            continue
        if any(isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and ip in n for n in allow):
            continue
        raise unsafe(f"{what} {host!r} resolves to non-public address {ip}")
    return addrs


def check_target(url: str, allow: list) -> None:
    """Raise :class:`UnsafeWebhookTarget` unless every address ``url`` resolves to is public or allowed."""
    vetted_addresses(url, allow)


@dataclass(frozen=True)
class PinnedTarget:
    """Where to connect: ``url`` names the vetted IP; send ``host_header`` and use ``sni_hostname`` for TLS."""

    url: str
    host_header: str
    sni_hostname: str | None


def pin(url: str, allow: list) -> PinnedTarget:
    """Vet ``url`` and rewrite it to connect to the first vetted address."""
    addrs = vetted_addresses(url, allow)
    u = urlsplit(url)
    ip = addrs[0]
    literal = f"[{ip}]" if ":" in ip else ip
    netloc = literal if u.port is None else f"{literal}:{u.port}"
    host_header = u.netloc.rsplit("@", 1)[-1]
    sni = u.hostname if u.scheme == "https" else None
    return PinnedTarget(urlunsplit((u.scheme, netloc, u.path or "/", u.query, "")), host_header, sni)
