"""What a domain publishes: each record read back by a zone-file parser, as a DNS server
would load it, and the documents whose id and digest the records carry."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest
from pydantic import ValidationError

from mailstead.admin.dns import (
    DomainRecords,
    expected_records,
    mta_sts_policy,
    pacc_document,
)
from mailstead.config.endpoints import client_endpoints
from mailstead.config.schema import Settings
from mailstead.delivery.dkim import load_keys

from .conftest import DOMAIN, HOST, domain_settings


def _zone(records: DomainRecords) -> dns.zone.Zone:
    """The printed lines as a zone: comments, quoting and string splits must parse."""
    return dns.zone.from_text(
        f"$ORIGIN {DOMAIN}.\n@ 3600 IN SOA ns. host. 1 3600 600 86400 60\n@ IN NS ns.\n"
        + records.zone_text(), origin=DOMAIN + ".", relativize=False, check_origin=False)


def _rdatas(zone: dns.zone.Zone, name: str, rtype: str) -> list[str]:
    found = zone.get_rdataset(name + ".", rtype)
    if found is None:
        return []
    if rtype == "TXT":
        return [b"".join(r.strings).decode() for r in found]
    return sorted(r.to_text() for r in found)


def test_every_record_parses_as_printed_with_its_value(records: DomainRecords) -> None:
    zone = _zone(records)
    for record in records.records:
        assert record.value in _rdatas(zone, record.name, record.type), record
    # The RSA key's TXT record is longer than a string may be: split, and rejoined whole.
    dkim = next(r for r in records.records if r.purpose == "dkim")
    assert len(dkim.value) > 255 and dkim.zone_lines()[1].count('" "') >= 1
    assert zone.get_rdataset(dkim.name + ".", "TXT") is not None


def test_the_records_and_the_reasons(records: DomainRecords, settings: Settings) -> None:
    by_name = {(r.name, r.type): r.value for r in records.records}
    assert by_name[(DOMAIN, "MX")] == f"10 {HOST}."
    assert by_name[(DOMAIN, "TXT")] == f"v=spf1 a:{HOST} -all"
    assert by_name[(f"_dmarc.{DOMAIN}", "TXT")] == "v=DMARC1; p=quarantine"
    assert by_name[(f"_smtp._tls.{DOMAIN}", "TXT")] == \
        f"v=TLSRPTv1; rua=mailto:postmaster@{DOMAIN}"
    for name in ("mta-sts", "autoconfig", "autodiscover", "ua-auto-config"):
        assert by_name[(f"{name}.{DOMAIN}", "CNAME")] == f"{HOST}."
    key = load_keys(settings.data_dir)[DOMAIN][0]
    assert by_name[(f"mail._domainkey.{DOMAIN}", "TXT")] == key.txt_value
    assert all(r.why for r in records.records)
    # The server's own addresses are the admin's to publish, and said so.
    assert any("A and/or AAAA" in note for note in records.notes)


def test_srv_records_follow_the_enabled_listeners(records: DomainRecords,
                                                  settings: Settings) -> None:
    srv = {r.name.removesuffix("." + DOMAIN): r.value for r in records.records
           if r.type == "SRV"}
    listeners = settings.listeners
    assert srv == {
        "_submissions._tcp": f"0 1 465 {HOST}.",
        "_submission._tcp": f"5 1 {listeners.submission.port} {HOST}.",
        "_imaps._tcp": f"0 1 993 {HOST}.",
        "_imap._tcp": f"5 1 {listeners.imap.port} {HOST}.",
        "_pop3s._tcp": f"10 1 {listeners.pop3s.port} {HOST}.",
        "_pop3._tcp": "0 0 0 .",  # disabled: RFC 6186 §4's "not provided"
    }


def test_the_mta_sts_id_follows_the_policy(tmp_path: Path) -> None:
    testing = mta_sts_policy(domain_settings(tmp_path))
    assert testing.text() == (f"version: STSv1\r\nmode: testing\r\nmx: {HOST}\r\n"
                              "max_age: 604800\r\n")
    enforce = mta_sts_policy(domain_settings(tmp_path, extra={"mta_sts": {
        "mode": "enforce", "extra_mx": ["*.Backup.example.net"]}}))
    assert "mode: enforce\r\n" in enforce.text()
    assert f"mx: {HOST}\r\nmx: *.backup.example.net\r\n" in enforce.text()
    assert enforce.id != testing.id and enforce.id.isalnum() and len(enforce.id) <= 32
    assert mta_sts_policy(domain_settings(tmp_path)).id == testing.id  # stable
    txt = next(r for r in expected_records(DOMAIN, domain_settings(tmp_path), []).records
               if r.name == f"_mta-sts.{DOMAIN}")
    assert txt.value == f"v=STSv1; id={testing.id}"


def test_configured_reports_spf_terms_and_dmarc_policy(tmp_path: Path) -> None:
    settings = domain_settings(tmp_path, extra={"dns": {
        "dmarc_policy": "reject", "dmarc_rua": "reports@elsewhere.example",
        "tls_rpt_rua": "https://tlsrpt.example.net/v1", "spf_extra": ["include:relay.test"]},
        "delivery": {"relay": {"host": "relay.test"}}})
    records = expected_records(DOMAIN, settings, [])
    values = {r.name: r.value for r in records.records if r.type == "TXT"}
    assert values[f"_dmarc.{DOMAIN}"] == \
        "v=DMARC1; p=reject; rua=mailto:reports@elsewhere.example"
    assert values[f"_smtp._tls.{DOMAIN}"] == "v=TLSRPTv1; rua=https://tlsrpt.example.net/v1"
    assert values[DOMAIN] == f"v=spf1 a:{HOST} include:relay.test -all"
    notes = " ".join(records.notes)
    assert "no DKIM key" in notes and "mailstead dkim keygen example.org" in notes
    assert "_report._dmarc" in notes  # an outside report address needs its consent


@pytest.mark.parametrize(("section", "says"), [
    ({"dns": {"dmarc_rua": "not an address"}}, "not a report address"),
    ({"dns": {"spf_extra": ["+all"]}}, "not an SPF mechanism"),
    ({"mta_sts": {"mode": "strict"}}, "testing"),
    ({"mta_sts": {"max_age_seconds": 10}}, "greater than or equal"),
    ({"mta_sts": {"extra_mx": ["bad host"]}}, "not an MX host name"),
])
def test_bad_settings_are_refused(tmp_path: Path, section: dict[str, object],
                                  says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        domain_settings(tmp_path, extra=section)


def test_pacc_announces_the_implicit_tls_listeners_on_standard_ports(tmp_path: Path) -> None:
    settings = domain_settings(tmp_path)
    document = pacc_document(DOMAIN, client_endpoints(settings))
    assert document is not None
    parsed = json.loads(document)
    # POP3 over TLS listens on its dev port here, so it cannot be announced.
    assert parsed["protocols"] == {"imap": {"host": HOST}, "smtp": {"host": HOST}}
    assert parsed["authentication"] == {"password": True}
    assert parsed["info"]["provider"]["shortName"] == DOMAIN
    digest = next(r.value for r in expected_records(DOMAIN, settings, []).records
                  if r.name == f"_ua-auto-config.{DOMAIN}")
    assert digest == "v=UAAC1; a=sha256; d=" + base64.b64encode(
        hashlib.sha256(document).digest()).decode()
    dev = domain_settings(tmp_path, extra={"listeners": {"imaps": {"port": 2993},
                                                         "submissions": {"port": 2465}}})
    assert pacc_document(DOMAIN, client_endpoints(dev)) is None
    records = expected_records(DOMAIN, dev, [])
    assert not [r for r in records.records if r.purpose == "pacc"]
    assert any("PACC is not published" in note for note in records.notes)
