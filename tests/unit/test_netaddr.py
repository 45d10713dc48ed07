"""One address classifier for webhooks and assets (issue 25, finding 6): IPv4 carried in IPv6 is
unwrapped; private allowances are per host *and* port."""

from __future__ import annotations

import pytest

from terrawatch.alerting.ssrf import UnsafeWebhookTarget, check_target, parse_allow_list, stack_ports
from terrawatch.domain.errors import UnreadableAsset
from terrawatch.domain.netaddr import embedded_ipv4, is_public, non_public_reason
from terrawatch.imagery.asset_policy import AssetPolicy
from terrawatch.settings import Settings

EMBEDDED = [
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:127.0.0.1",  # IPv4-mapped
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64 prefix
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "::", "::1", "fe80::1", "fc00::1", "ff02::1", "127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1",
]


@pytest.mark.parametrize("ip", EMBEDDED)
def test_non_public_addresses_including_ipv4_carried_in_ipv6(ip):
    assert non_public_reason(ip) is not None


@pytest.mark.parametrize("ip", ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses(ip):
    assert is_public(ip)


def test_embedded_forms_are_unwrapped():
    import ipaddress

    for six, four in [("::127.0.0.1", "127.0.0.1"), ("64:ff9b::7f00:1", "127.0.0.1"), ("2002:7f00:1::1", "127.0.0.1"),
                      ("::ffff:10.0.0.1", "10.0.0.1")]:
        assert str(embedded_ipv4(ipaddress.ip_address(six))[0]) == four
    assert "loopback" in non_public_reason("::127.0.0.1")
    assert "link-local" in non_public_reason("64:ff9b::a9fe:a9fe")


@pytest.mark.parametrize("url", ["http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::1]/",
                                 "http://[64:ff9b::a9fe:a9fe]/latest/meta-data"])
def test_webhook_guard_and_asset_policy_refuse_embedded_ipv4(tmp_path, url):
    with pytest.raises(UnsafeWebhookTarget, match="non-public"):
        check_target(url, [])
    policy = AssetPolicy.from_settings(Settings(state_dir=tmp_path))
    with pytest.raises(UnreadableAsset, match="non-public"):
        policy.check(url + "a.tif")


@pytest.mark.parametrize("url", ["http://[::ffff:127.0.0.1]:9000/h", "http://[::127.0.0.1]/h",
                                 "http://[64:ff9b::7f00:1]/h", "http://[2002:7f00:1::1]/h"])
def test_an_ipv4_allowance_does_not_admit_ipv6_wrapping_it(url):
    check_target("http://127.0.0.1:9000/h", parse_allow_list("127.0.0.0/8"))
    with pytest.raises(UnsafeWebhookTarget, match="non-public"):
        check_target(url, parse_allow_list("127.0.0.0/8,127.0.0.1"))
    check_target(url, parse_allow_list("::/0"))  # an IPv6 allowance names them on purpose


def test_allowances_are_per_host_and_port():
    s = Settings()
    bare = parse_allow_list("127.0.0.1", s)
    check_target("http://127.0.0.1:9000/hook", bare)
    for port in (s.triton_http_port, s.triton_grpc_port, s.pg_port, s.kafka_port, s.ray_port, s.ray_port + 4,
                 s.api_port, 8000, 5432):
        with pytest.raises(UnsafeWebhookTarget, match="stack's own services"):
            check_target(f"http://127.0.0.1:{port}/v2/repository/models/x/unload", bare)
    named = parse_allow_list(f"127.0.0.1:{s.triton_http_port},[::1]:9001,localhost:9002", s)
    check_target(f"http://127.0.0.1:{s.triton_http_port}/", named)  # named on purpose: allowed
    check_target("http://[::1]:9001/", named)
    check_target("http://localhost:9002/", named)
    for url in ("http://127.0.0.1:9000/", "http://[::1]:9000/", "http://localhost:9003/"):
        with pytest.raises(UnsafeWebhookTarget):
            check_target(url, named)


def test_stack_ports_include_configured_service_urls():
    s = Settings(triton_url="triton.svc:8801", database_url="postgresql+psycopg://u@db:6543/tw",
                 ray_address="ray://head:10101")
    assert {8801, 6543, 10101, s.pg_port, 5432} <= stack_ports(s)


@pytest.mark.parametrize("bad", ["127.0.0.1:http", "[::1]x", "127.0.0.1:70000"])
def test_malformed_allowances_are_refused(bad):
    with pytest.raises(ValueError):
        parse_allow_list(bad)


def test_stack_ports_include_every_kafka_node_of_the_multinode_stack():
    s = Settings(kafka_brokers=3, kafka_port=19092, kafka_controller_port=19093)
    assert {19092, 19102, 19112, 19093, 19103, 19113} <= stack_ports(s)
