"""The resolver against a real DNS server on loopback: MX order, null MX, implicit MX."""

from __future__ import annotations

import random

import pytest

from mailstead.delivery.dns import DNSFailure, MXHost, Resolver, order_mx
from mailstead.testing.dns import TestDNSServer


def resolver(dns: TestDNSServer, ip_version: str = "any") -> Resolver:
    return Resolver([dns.address], dns.port, timeout=3.0, ip_version=ip_version)


async def test_mx_hosts_come_in_preference_order(dns_server: TestDNSServer) -> None:
    dns_server.add_many([("b.test", "MX", "20 backup.b.test"), ("b.test", "MX", "10 mx.b.test"),
                         ("b.test", "MX", "30 last.b.test")])
    hosts = await resolver(dns_server).mx("B.test")
    assert [(h.preference, h.name) for h in hosts] == [
        (10, "mx.b.test"), (20, "backup.b.test"), (30, "last.b.test")]
    assert not any(h.implicit for h in hosts)


def test_equal_preferences_are_shuffled_not_dropped() -> None:
    records = [(10, f"mx{i}.b.test") for i in range(6)] + [(5, "first.b.test")]
    orders = {tuple(h.name for h in order_mx(records, random.Random(seed)))
              for seed in range(20)}
    assert len(orders) > 1
    for order in orders:
        assert order[0] == "first.b.test" and sorted(order[1:]) == sorted(
            n for _, n in records[:6])


async def test_null_mx_is_a_permanent_failure(dns_server: TestDNSServer) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    dns_server.add("nomail.test", "A", "127.0.0.1")  # an address does not bring mail back
    with pytest.raises(DNSFailure) as info:
        await resolver(dns_server).mx("nomail.test")
    assert not info.value.temporary and info.value.status == "5.1.10"
    assert "null MX" in info.value.reason


async def test_no_mx_falls_back_to_the_domain_itself(dns_server: TestDNSServer) -> None:
    dns_server.add("plain.test", "A", "127.0.0.1").add("plain.test", "AAAA", "::1")
    r = resolver(dns_server)
    assert await r.mx("plain.test") == [MXHost(0, "plain.test", implicit=True)]
    assert await r.addresses("plain.test") == ["::1", "127.0.0.1"]
    assert await resolver(dns_server, "ipv4").addresses("plain.test") == ["127.0.0.1"]
    assert await resolver(dns_server, "ipv6").addresses("plain.test") == ["::1"]


async def test_nxdomain_is_permanent_and_servfail_temporary(dns_server: TestDNSServer) -> None:
    r = resolver(dns_server)
    with pytest.raises(DNSFailure) as info:
        await r.mx("nowhere.test")
    assert not info.value.temporary and info.value.status == "5.1.2"
    dns_server.add("broken.test", "MX", "10 mx.broken.test")
    dns_server.break_name("broken.test")
    with pytest.raises(DNSFailure) as info:
        await r.mx("broken.test")
    assert info.value.temporary and info.value.status == "4.4.3"


async def test_long_txt_records_are_joined(dns_server: TestDNSServer) -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.add("s._domainkey.a.test", "TXT", value)
    assert await resolver(dns_server).txt("s._domainkey.a.test") == [value]
    assert dns_server.lookup_txt(b"s._domainkey.a.test.") == value.encode()
