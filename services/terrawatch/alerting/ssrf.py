"""SSRF guard: refuse webhook targets (and, through :func:`vet_host`, scene asset and STAC URLs,
``imagery/asset_policy.py``) that resolve to non-public addresses unless allow-listed.

Checked twice: when a subscription is registered and before every delivery
attempt. At delivery the request is sent to the vetted IP address itself
(:func:`pin`), with the original ``Host`` header and TLS SNI name, so a DNS
answer that changes between the check and the connect (DNS rebinding) cannot
redirect the request to an internal address.

Which addresses are non-public is decided in one place, :mod:`terrawatch.domain.netaddr`
(IPv4 carried in IPv6 unwrapped: ``::a.b.c.d``, ``::ffff:``, NAT64, 6to4, Teredo). An allowance
admits a host *and* a port (:class:`AllowList`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from terrawatch.domain import netaddr


class UnsafeTarget(ValueError):
    """A URL whose host is not allowed (non-public address, not allow-listed)."""


class UnresolvableHost(UnsafeTarget):
    pass


class UnsafeWebhookTarget(UnsafeTarget):
    pass


class UnresolvableWebhookHost(UnsafeWebhookTarget, UnresolvableHost):
    """The host name does not resolve (now): refused at registration, retried at delivery."""


@dataclass(frozen=True)
class Allowance:
    """One allow-list entry: a host name or a network, and the port it admits (None: any port
    that is not one of the stack's own service ports)."""

    target: ipaddress.IPv4Network | ipaddress.IPv6Network | str
    port: int | None = None

    def matches(self, host: str, ips: list) -> bool:
        if isinstance(self.target, str):
            return self.target == host
        # The address itself: an IPv4 allowance does not admit an IPv6 address wrapping it (::127.0.0.1,
        # 64:ff9b::7f00:1), which would reach whatever a NAT64/6to4 gateway or the OS makes of it.
        return all(ip in self.target for ip in ips)

    def admits(self, host: str, ips: list, port: int, protected: frozenset[int]) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.port is None and port in protected:
            return False
        return self.matches(host, ips)


@dataclass(frozen=True)
class AllowList:
    """Private targets allowed anyway (``TERRAWATCH_WEBHOOK_ALLOW_PRIVATE``, ``TERRAWATCH_ASSET_ALLOW_HOSTS``).

    An entry is ``host``, ``IP`` or ``CIDR``, optionally with ``:port`` (IPv6 in brackets:
    ``[::1]:8080``, ``[fd00::/8]:443``). An entry without a port admits every port *except*
    ``protected``: the stack's own service ports (:func:`stack_ports`), so allowing ``127.0.0.1``
    for a local webhook receiver does not open Triton's model control, PostgreSQL, Kafka or Ray.
    To reach such a port on purpose, name it (``127.0.0.1:18000``).
    """

    entries: tuple[Allowance, ...] = ()
    protected: frozenset[int] = frozenset()

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def admits(self, host: str, ips: list, port: int) -> bool:
        return any(e.admits(host, ips, port, self.protected) for e in self.entries)

    def blocked_port(self, host: str, ips: list, port: int) -> bool:
        """True when an entry without a port matches the host but ``port`` is a protected one."""
        return port in self.protected and any(e.port is None and e.matches(host, ips) for e in self.entries)


# Well-known ports of the services the stack runs (in containers and under Helm they listen on these):
# PostgreSQL, Redis-protocol Ray GCS, Triton HTTP/gRPC/metrics, Ray dashboard/client/agent, Kafka, worker metrics.
WELL_KNOWN_SERVICE_PORTS = frozenset({5432, 6379, 8000, 8001, 8002, 8265, 9092, 9093, 9464, 10001, 52365})
_PORT_SETTINGS = ("kafka_port", "kafka_controller_port", "pg_port", "triton_http_port", "triton_grpc_port",
                  "triton_metrics_port", "metrics_port", "dispatcher_metrics_port", "api_port")
_URL_SETTINGS = ("kafka_bootstrap", "triton_url", "ray_address", "database_url", "worker_database_url",
                 "api_read_database_url", "api_write_database_url")


def stack_ports(settings=None) -> frozenset[int]:
    """The ports of the stack's own services: the local stack's ports, those of configured service
    URLs, and the well-known ports of PostgreSQL, Kafka, Triton and Ray."""
    ports = set(WELL_KNOWN_SERVICE_PORTS)
    if settings is None:
        return frozenset(ports)
    ports |= {v for n in _PORT_SETTINGS if isinstance(v := getattr(settings, n, None), int)}
    brokers = getattr(settings, "kafka_brokers", 1)
    for base in ("kafka_port", "kafka_controller_port"):  # multi-node mode: node n is 10(n-1) ports above
        b = getattr(settings, base, None)
        if isinstance(b, int) and isinstance(brokers, int):
            ports |= {b + 10 * i for i in range(max(1, brokers))}
    ray = getattr(settings, "ray_port", None)
    if isinstance(ray, int):
        ports |= set(range(ray, ray + 10))  # GCS, client server, dashboard agent, metrics, runtime-env agent
    # Not the 1000 Ray worker ports: they may overlap the OS's ephemeral range, where local receivers
    # (port 0) land; the workers' gRPC needs the Ray token (docs/security.md).
    for name in _URL_SETTINGS:
        for part in str(getattr(settings, name, None) or "").split(","):
            try:
                p = urlsplit(part if "//" in part else f"//{part.strip()}").port
            except ValueError:
                p = None
            if p:
                ports.add(p)
    return frozenset(ports)


def _entry(item: str) -> Allowance:
    host, port = item, None
    if item.startswith("["):  # [v6], [v6]:port, [v6/len]:port
        host, _, rest = item[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"allow-list entry {item!r}: expected [address]:port")
            port = int(rest[1:])
    elif item.count(":") == 1:  # host:port, a.b.c.d:port, a.b.c.d/n:port
        host, _, p = item.partition(":")
        if not p.isdigit():
            raise ValueError(f"allow-list entry {item!r}: the port must be a number")
        port = int(p)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"allow-list entry {item!r}: port out of range")
    try:
        return Allowance(ipaddress.ip_network(host, strict=False), port)
    except ValueError:
        return Allowance(host.lower().rstrip("."), port)


def parse_allow_list(text: str, settings=None) -> AllowList:
    """``TERRAWATCH_WEBHOOK_ALLOW_PRIVATE`` / ``..._ASSET_ALLOW_HOSTS``: comma-separated ``host[:port]``,
    ``IP[:port]``, ``CIDR[:port]`` (IPv6 in brackets when with a port). Entries without a port
    exclude :func:`stack_ports` of ``settings``."""
    entries = tuple(_entry(x.strip()) for x in (text or "").split(",") if x.strip())
    return AllowList(entries, stack_ports(settings))


def _as_allow_list(allow) -> AllowList:
    if isinstance(allow, AllowList):
        return allow
    # A plain list: host names / networks without ports; the well-known service ports stay protected.
    return AllowList(tuple(a if isinstance(a, Allowance) else Allowance(a) for a in allow or ()), stack_ports(None))


def vetted_addresses(url: str, allow: AllowList | list) -> list[str]:
    """Every address ``url``'s host resolves to; raise :class:`UnsafeWebhookTarget` if any is not allowed.

    Loopback, link-local (incl. the 169.254.169.254 metadata service), private, reserved and
    multicast addresses (also when carried in IPv6) are refused unless an allowance names the host,
    or a network containing the address, and the port.
    """
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UnsafeWebhookTarget(f"webhook URL must be http(s) with a host: {url[:200]!r}")
    if u.username or u.password:
        raise UnsafeWebhookTarget("webhook URL must not carry credentials")
    host = u.hostname.lower()
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookTarget(f"bad port in webhook URL: {exc}") from exc
    return vet_host(host, port, allow, "webhook host", UnsafeWebhookTarget, UnresolvableWebhookHost)


def vet_host(host: str, port: int, allow: AllowList | list, what: str = "host",
             unsafe: type[UnsafeTarget] = UnsafeTarget, unresolvable: type[UnsafeTarget] = UnresolvableHost) -> list[str]:
    """Every address ``host`` resolves to; raise ``unsafe`` if any is non-public and not allow-listed.

    Non-public is :func:`terrawatch.domain.netaddr.non_public_reason` (IPv4 carried in IPv6 unwrapped);
    an allowance must admit the host (its name, or a network holding every non-public address) and the port.
    """
    host = host.lower()
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise unresolvable(f"cannot resolve {what} {host!r}: {exc}") from exc
    except (UnicodeError, ValueError) as exc:  # e.g. labels too long for IDNA, NUL bytes
        raise unsafe(f"invalid {what} {host!r}: {exc}") from exc
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    bad = [(ip, why) for a in addrs
           if (why := netaddr.non_public_reason(ip := ipaddress.ip_address(a.split("%", 1)[0]))) is not None]
    if not bad:
        return addrs
    allow = _as_allow_list(allow)
    name, ips = host.rstrip("."), [ip for ip, _ in bad]
    if allow.admits(name, ips, port):
        return addrs
    ip, why = bad[0]
    if allow.blocked_port(name, ips, port):
        raise unsafe(f"{what} {host!r} resolves to non-public address {ip} ({why}) and port {port} is one of "
                     "the stack's own services; an allowance for it must name the port (host:port)")
    raise unsafe(f"{what} {host!r} resolves to non-public address {ip} ({why})")


def check_target(url: str, allow: AllowList | list) -> None:
    """Raise :class:`UnsafeWebhookTarget` unless every address ``url`` resolves to is public or allowed."""
    vetted_addresses(url, allow)


@dataclass(frozen=True)
class PinnedTarget:
    """Where to connect: ``url`` names the vetted IP; send ``host_header`` and use ``sni_hostname`` for TLS."""

    url: str
    host_header: str
    sni_hostname: str | None


def pin(url: str, allow: AllowList | list) -> PinnedTarget:
    """Vet ``url`` and rewrite it to connect to the first vetted address."""
    addrs = vetted_addresses(url, allow)
    u = urlsplit(url)
    ip = addrs[0]
    literal = f"[{ip}]" if ":" in ip else ip
    netloc = literal if u.port is None else f"{literal}:{u.port}"
    host_header = u.netloc.rsplit("@", 1)[-1]
    sni = u.hostname if u.scheme == "https" else None
    return PinnedTarget(urlunsplit((u.scheme, netloc, u.path or "/", u.query, "")), host_header, sni)
