"""A domain's settings, DKIM key and expected records, and a DNS server to publish them in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailstead.admin.dns import DomainRecords, expected_records
from mailstead.config.schema import Settings
from mailstead.delivery.dkim import generate_key
from mailstead.testing.dns import TestDNSServer
from mailstead.testing.server import build_settings, deep_merge, settings_dict_for_tests

DOMAIN = "example.org"
HOST = "mail.example.org"
HOST_ADDRESS = "192.0.2.25"


def domain_settings(tmp_path: Path, dns: TestDNSServer | None = None,
                    extra: dict[str, object] | None = None) -> Settings:
    """The standard implicit-TLS ports (so PACC has something to announce), POP3 with
    STARTTLS off (so its SRV record is the "." one), the dev ports for the rest."""
    config: dict[str, object] = {
        "hostname": HOST,
        "listeners": {"imaps": {"port": 993}, "submissions": {"port": 465},
                      "pop3": {"enabled": False}},
    }
    if dns is not None:
        config = deep_merge(config, dns.settings())
    data = settings_dict_for_tests(tmp_path / "data", deep_merge(config, extra or {}),
                                   port=None)
    return build_settings(data)


def publish(dns: TestDNSServer, records: DomainRecords) -> None:
    """Every expected record in the zone, and the hostname's address."""
    for record in records.records:
        dns.add(record.name, record.type, record.value)
    dns.add(records.hostname, "A", HOST_ADDRESS)


@pytest.fixture
def dns_server() -> Iterator[TestDNSServer]:
    with TestDNSServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, dns_server: TestDNSServer) -> Settings:
    return domain_settings(tmp_path, dns_server)


@pytest.fixture
def records(tmp_path: Path, settings: Settings) -> DomainRecords:
    # RSA: its TXT record is longer than one 255-octet string, so splits are exercised.
    key = generate_key(settings.data_dir, DOMAIN, "mail", "rsa2048")
    return expected_records(DOMAIN, settings, [key])
