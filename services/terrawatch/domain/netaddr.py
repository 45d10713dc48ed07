"""One address classifier for every outbound request (webhooks and scene assets, issue 25).

:func:`non_public_reason` says why an address may not be reached without an allowance, or None for
a public address. IPv6 forms that carry an IPv4 address are unwrapped first, so ``[::127.0.0.1]``
is loopback like ``127.0.0.1``:

* IPv4-mapped ``::ffff:a.b.c.d`` and IPv4-compatible ``::a.b.c.d`` (deprecated, still routed by some stacks);
* NAT64 ``64:ff9b::/96`` (RFC 6052, the IPv4 address in the last 32 bits); the local-use NAT64
  prefix ``64:ff9b:1::/48`` (RFC 8215) is never public (its embedding depends on the operator's prefix length);
* 6to4 ``2002::/16`` (bits 16-47) and Teredo ``2001::/32`` (server and obfuscated client).

An address is public when it is global unicast (``is_global``, not multicast) and every IPv4
address it carries is too. Pure functions: no I/O, no settings.
"""

from __future__ import annotations

import ipaddress
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_COMPAT = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (empty for IPv4 and plain IPv6)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return [low32]
    if ip in _COMPAT and int(ip) > 1:  # ::a.b.c.d (not :: and ::1, themselves unspecified/loopback)
        return [low32]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)  # (server, client)
    return []


def _reason(ip: IPAddress) -> str | None:
    """The classification ladder both families share (IPv6 site-local counts as private)."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or getattr(ip, "is_site_local", False):
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def non_public_reason(ip: IPAddress | str) -> str | None:
    """Why ``ip`` is not a public unicast address (``loopback``, ``private``, ...), or None if it is."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])
    inner = embedded_ipv4(ip)
    for v4 in inner:
        reason = _reason(v4)
        if reason is not None:
            return f"{reason} (embedded {v4})"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "local-use NAT64"
        if inner:  # the carried IPv4 addresses are public; the wrapper itself is a transition prefix
            return None
    return _reason(ip)


def is_public(ip: IPAddress | str) -> bool:
    return non_public_reason(ip) is None
