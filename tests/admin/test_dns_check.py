"""``dns check`` against a real DNS server on loopback: each record ok, missing, wrong or
unknown, compared by meaning where the text may differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailstead.admin.dns import DomainRecords
from mailstead.admin.dnscheck import DNSLookup, DomainCheck, RecordCheck, check_domain
from mailstead.config.schema import Settings
from mailstead.testing.dns import TestDNSServer

from .conftest import DOMAIN, HOST, HOST_ADDRESS, publish


async def _check(records: DomainRecords, settings: Settings) -> DomainCheck:
    return await check_domain(records, settings, DNSLookup.from_settings(settings))


def _one(result: DomainCheck, name: str, rtype: str = "TXT") -> RecordCheck:
    return next(c for c in result.checks if c.name == name and c.type == rtype)


def _replace(dns: TestDNSServer, records: DomainRecords, name: str,
             *new: tuple[str, str]) -> None:
    """Remove every record at ``name``, put back the expected ones of other types, add
    ``new`` (type, value) pairs."""
    kept = [(r.type, r.value) for r in records.records if r.name == name
            and r.type not in {t for t, _ in new}]
    dns.remove(name)
    for rtype, value in [*kept, *new]:
        dns.add(name, rtype, value)


async def test_a_zone_as_printed_checks_ok(dns_server: TestDNSServer, records: DomainRecords,
                                           settings: Settings) -> None:
    publish(dns_server, records)
    result = await _check(records, settings)
    assert [c for c in result.checks if c.status != "ok"] == []
    assert result.passed and len(result.checks) == len(records.records) + 1
    assert _one(result, HOST, "A/AAAA").found == (HOST_ADDRESS,)


async def test_an_empty_zone_is_missing_everything(records: DomainRecords,
                                                   settings: Settings) -> None:
    result = await _check(records, settings)
    assert {c.status for c in result.checks} == {"missing"} and not result.passed


async def test_mx_may_list_other_hosts_but_must_list_ours(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings) -> None:
    publish(dns_server, records)
    dns_server.add(DOMAIN, "MX", "20 backup.example.net")
    check = _one(await _check(records, settings), DOMAIN, "MX")
    assert check.status == "ok" and "backup.example.net" in check.detail
    _replace(dns_server, records, DOMAIN, ("MX", "10 mx.elsewhere.example"))
    check = _one(await _check(records, settings), DOMAIN, "MX")
    assert check.status == "wrong" and check.found == ("10 mx.elsewhere.example.",)


@pytest.mark.parametrize(("spf", "status", "says"), [
    ("v=spf1 mx ~all", "ok", "mx authorises"),
    (f"v=spf1 ip4:{HOST_ADDRESS.rsplit('.', 1)[0]}.0/24 -all", "ok", "holds every address"),
    (f"v=spf1   a:{HOST.upper()}   -all", "ok", "a:mail.example.org authorises"),
    ("v=spf1 ip4:198.51.100.0/24 -all", "wrong", "no mechanism"),
    ("v=spf1 include:_spf.provider.example -all", "wrong", "include:"),
    (f"v=spf1 a:{HOST} +all", "wrong", "anyone may send"),
    (f"v=spf1 -a:{HOST} -all", "wrong", "no mechanism"),
])
async def test_spf_is_compared_by_what_it_authorises(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings, spf: str,
        status: str, says: str) -> None:
    publish(dns_server, records)
    _replace(dns_server, records, DOMAIN, ("TXT", spf), ("TXT", "google-site-verification=x"))
    check = _one(await _check(records, settings), DOMAIN)
    assert (check.status, check.found) == (status, (spf,))
    assert says in check.detail


async def test_two_spf_records_are_wrong(dns_server: TestDNSServer, records: DomainRecords,
                                         settings: Settings) -> None:
    publish(dns_server, records)
    dns_server.add(DOMAIN, "TXT", "v=spf1 mx -all")
    check = _one(await _check(records, settings), DOMAIN)
    assert check.status == "wrong" and "more than one" in check.detail


async def test_dkim_key_compared_ignoring_whitespace_and_splits(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings) -> None:
    publish(dns_server, records)
    dkim = next(r for r in records.records if r.purpose == "dkim")
    key = dkim.value.split("p=", 1)[1]
    spaced = "v=DKIM1;k=rsa; p=" + " ".join(key[i:i + 60] for i in range(0, len(key), 60))
    _replace(dns_server, records, dkim.name, ("TXT", spaced))
    assert _one(await _check(records, settings), dkim.name).status == "ok"
    other = key[:40] + ("A" if key[40] != "A" else "B") + key[41:]
    _replace(dns_server, records, dkim.name, ("TXT", f"v=DKIM1; k=rsa; p={other}"))
    check = _one(await _check(records, settings), dkim.name)
    assert check.status == "wrong" and "not this server's key" in check.detail


@pytest.mark.parametrize(("dmarc", "status"), [
    ("v=DMARC1; p=reject; rua=mailto:d@example.org", "ok"),  # stricter is fine
    ("v=DMARC1; p=none", "wrong"),
    ("v=DMARC1", "wrong"),
])
async def test_dmarc_must_be_at_least_as_strict(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings, dmarc: str,
        status: str) -> None:
    publish(dns_server, records)
    _replace(dns_server, records, f"_dmarc.{DOMAIN}", ("TXT", dmarc))
    assert _one(await _check(records, settings), f"_dmarc.{DOMAIN}").status == status


async def test_a_stale_mta_sts_id_and_a_foreign_report_address(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings) -> None:
    publish(dns_server, records)
    _replace(dns_server, records, f"_mta-sts.{DOMAIN}", ("TXT", "v=STSv1; id=20240101"))
    _replace(dns_server, records, f"_smtp._tls.{DOMAIN}",
             ("TXT", "v=TLSRPTv1; rua=mailto:tls@reports.example"))
    result = await _check(records, settings)
    stale = _one(result, f"_mta-sts.{DOMAIN}")
    assert stale.status == "wrong" and "cached" in stale.detail
    # The default report address is a suggestion: another one still receives reports.
    tls = _one(result, f"_smtp._tls.{DOMAIN}")
    assert tls.status == "ok" and "mailto:tls@reports.example" in tls.detail


async def test_srv_port_and_the_not_provided_target(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings) -> None:
    publish(dns_server, records)
    _replace(dns_server, records, f"_imaps._tcp.{DOMAIN}", ("SRV", f"0 1 143 {HOST}"))
    _replace(dns_server, records, f"_pop3._tcp.{DOMAIN}", ("SRV", f"0 1 110 {HOST}"))
    dns_server.remove(f"_submission._tcp.{DOMAIN}")
    result = await _check(records, settings)
    assert _one(result, f"_imaps._tcp.{DOMAIN}", "SRV").status == "wrong"
    offered = _one(result, f"_pop3._tcp.{DOMAIN}", "SRV")  # published, but disabled here
    assert offered.status == "wrong" and "no listener" in offered.detail
    assert _one(result, f"_submission._tcp.{DOMAIN}", "SRV").status == "missing"


async def test_names_that_must_reach_this_server(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings) -> None:
    publish(dns_server, records)
    dns_server.remove(f"mta-sts.{DOMAIN}")  # an address instead of the CNAME
    dns_server.add(f"mta-sts.{DOMAIN}", "A", HOST_ADDRESS)
    _replace(dns_server, records, f"autoconfig.{DOMAIN}", ("CNAME", "web.example.net"))
    dns_server.add("web.example.net", "A", "198.51.100.7")
    result = await _check(records, settings)
    by_address = _one(result, f"mta-sts.{DOMAIN}", "CNAME")
    assert by_address.status == "ok" and "addresses" in by_address.detail
    elsewhere = _one(result, f"autoconfig.{DOMAIN}", "CNAME")
    assert elsewhere.status == "wrong"
    assert elsewhere.found == ("web.example.net.", "198.51.100.7")


async def test_a_failing_nameserver_is_unknown_not_wrong(
        dns_server: TestDNSServer, records: DomainRecords, settings: Settings) -> None:
    publish(dns_server, records)
    dns_server.break_name(f"_dmarc.{DOMAIN}")
    dns_server.remove(HOST)
    result = await _check(records, settings)
    dmarc = _one(result, f"_dmarc.{DOMAIN}")
    assert dmarc.status == "unknown" and "SERVFAIL" in dmarc.detail
    assert _one(result, HOST, "A/AAAA").status == "missing"
    assert not result.passed


def test_the_command_prints_and_exits_by_the_result(tmp_path: Path,
                                                    dns_server: TestDNSServer) -> None:
    config = tmp_path / "mailstead.toml"
    config.write_text(
        f'hostname = "{HOST}"\ndata_dir = "data"\n'
        f'[delivery]\nnameservers = ["{dns_server.address}"]\ndns_port = {dns_server.port}\n'
        "dns_timeout_seconds = 5\n[listeners.imaps]\nport = 993\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSTEAD_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailstead", "--config", str(config),
                               *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)

    assert run("domain", "add", DOMAIN).returncode == 0
    assert run("dkim", "keygen", DOMAIN, "-a", "ed25519").returncode == 0
    unknown = run("dns", "check", "other.example")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1, "error: no mail domain other.example here (add it: mailstead domain add "
        "other.example)")
    printed = run("dns", "records", DOMAIN, "--format", "json")
    assert printed.returncode == 0, printed.stderr
    for record in json.loads(printed.stdout)["records"]:
        dns_server.add(record["name"], record["type"], record["value"])
    dns_server.add(HOST, "AAAA", "2001:db8::25")
    good = run("dns", "check", DOMAIN)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.rstrip().endswith("0 missing, 0 wrong, 0 unknown")
    dns_server.remove(f"_dmarc.{DOMAIN}")
    bad = run("dns", "check", DOMAIN)
    assert bad.returncode == 1 and bad.stderr == ""
    lines = bad.stdout.splitlines()
    at = lines.index(f"missing  TXT    _dmarc.{DOMAIN}")
    assert lines[at + 1].split() == ["expected:", "v=DMARC1;", "p=quarantine"]
    assert lines[at + 2].split() == ["found:", "-"]
