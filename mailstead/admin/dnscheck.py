"""Compare what the DNS answers with what a domain should publish (admin/dns.py).

Each expected record becomes one :class:`RecordCheck`: ``ok``, ``missing`` (the name or
the record is not there), ``wrong`` (something else is), or ``unknown`` (the resolver did
not answer: SERVFAIL or a time-out, so nothing can be said). The queries go through
dnspython's async resolver configured as outbound delivery's (``delivery.nameservers``,
``dns_port``, ``dns_timeout_seconds``): what this server sees is what is checked.

Where a record can differ and still do its job, the comparison is by meaning, not text
(decision 0013):

- MX: ours must be among the exchanges; other (backup) hosts may be there too.
- SPF: exactly one ``v=spf1`` record (RFC 7208 §4.5), ending in ``-all`` or ``~all``, with
  a mechanism that covers this server (``a:HOSTNAME``, ``mx`` when our MX is published,
  ``ip4:``/``ip6:`` networks holding every address of the host). ``include:`` and
  ``redirect=`` are not followed: a record that relies on them is reported ``wrong``.
- DKIM: the ``p=`` key, ignoring whitespace and how the TXT strings are split, and ``k=``.
- DMARC: a policy at least as strict as ``dns.dmarc_policy``; a configured ``rua`` must be
  among the record's.
- MTA-STS: the ``id`` must be the current policy's, or senders keep an old one cached.
- TLS-RPT: a ``v=TLSRPTv1`` record with a ``rua``; a configured one must be among them.
- SRV: a record with our host and port (priority and weight are preferences).
- Names that must reach this server (``mta-sts.``, ``autoconfig.`` ...): a CNAME to the
  hostname, or addresses that are all the hostname's.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from mailstead.admin.dns import DomainRecords, PublishedRecord
from mailstead.config.schema import Settings
from mailstead.delivery.dns import make_resolver, to_ascii

Status = Literal["ok", "missing", "wrong", "unknown"]
_STRICTNESS = {"none": 0, "quarantine": 1, "reject": 2}
#: The most records of one name and type looked at; more are reported as found, cut.
MAX_FOUND = 20


@dataclass(frozen=True, slots=True)
class RecordCheck:
    """One expected record and what the DNS holds at its name. ``detail`` says why a
    record that differs is still ok, or what is wrong."""

    name: str
    type: str
    expected: str
    purpose: str
    status: Status
    found: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DomainCheck:
    domain: str
    hostname: str
    checks: tuple[RecordCheck, ...]

    @property
    def passed(self) -> bool:
        """Every record ok: ``dns check`` exits 0 only then."""
        return all(check.status == "ok" for check in self.checks)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for check in self.checks:
            found[check.status] = found.get(check.status, 0) + 1
        return found

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


class Unanswered(Exception):
    """The resolver gave no usable answer (SERVFAIL, time-out): the check is unknown."""


class DNSLookup:
    """The lookups a check needs, each returning the records' text; an empty list when the
    name or the records of that type do not exist."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver

    @classmethod
    def from_settings(cls, settings: Settings) -> DNSLookup:
        conf = settings.delivery
        return cls(make_resolver(conf.nameservers, conf.dns_port, conf.dns_timeout_seconds))

    async def _answer(self, name: str, rtype: str) -> list[Any]:
        try:
            answer = await self._resolver.resolve(to_ascii(name), rtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
            raise Unanswered(f"the lookup of {rtype} {name} timed out") from None
        except dns.resolver.NoNameservers:
            raise Unanswered(f"no nameserver answered {rtype} {name} (SERVFAIL)") from None
        except dns.exception.DNSException as exc:
            raise Unanswered(f"the lookup of {rtype} {name} failed: {exc}") from None
        return list(answer)[:MAX_FOUND]

    async def txt(self, name: str) -> list[str]:
        """Each record's character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in
                await self._answer(name, "TXT")]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return [(int(r.preference), _host(r.exchange)) for r in await self._answer(name, "MX")]

    async def srv(self, name: str) -> list[tuple[int, int, int, str]]:
        return [(int(r.priority), int(r.weight), int(r.port), _host(r.target))
                for r in await self._answer(name, "SRV")]

    async def cname(self, name: str) -> list[str]:
        return [_host(r.target) for r in await self._answer(name, "CNAME")]

    async def addresses(self, name: str) -> list[str]:
        found = []
        for rtype in ("A", "AAAA"):
            found += [r.to_text() for r in await self._answer(name, rtype)]
        return found


def _host(name: dns.name.Name) -> str:
    """A name as compared here: lower case without the final dot; the root stays "."."""
    if name == dns.name.root:
        return "."
    return str(name.to_text(omit_final_dot=True)).lower()


def _squash(text: str) -> str:
    return "".join(text.split())


def _tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DKIM, DMARC, MTA-STS, TLS-RPT), names lower case."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


class _Checker:
    def __init__(self, records: DomainRecords, settings: Settings, lookup: DNSLookup,
                 host_addresses: list[str]) -> None:
        self.records = records
        self.settings = settings
        self.lookup = lookup
        self.host = records.hostname
        self.host_addresses = host_addresses

    def result(self, record: PublishedRecord, status: Status, found: Sequence[str],
               detail: str = "") -> RecordCheck:
        return RecordCheck(record.name, record.type, record.value, record.purpose, status,
                           tuple(found), detail)

    async def check(self, record: PublishedRecord) -> RecordCheck:
        handlers: dict[str, Callable[[PublishedRecord], Awaitable[RecordCheck]]] = {
            "mx": self.mx, "spf": self.spf, "dkim": self.dkim, "dmarc": self.dmarc,
            "tls-rpt": self.tls_rpt, "srv": self.srv,
        }
        try:
            if record.type == "CNAME":
                return await self.points_here(record)
            if record.purpose == "mta-sts":
                return await self.mta_sts(record)
            if record.purpose == "pacc":
                return await self.exact_txt(record, "v=uaac1")
            return await handlers[record.purpose](record)
        except Unanswered as exc:
            return self.result(record, "unknown", (), str(exc))

    async def mx(self, record: PublishedRecord) -> RecordCheck:
        found = await self.lookup.mx(record.name)
        shown = [f"{pref} {host}." if host != "." else f"{pref} ." for pref, host in found]
        if not found:
            return self.result(record, "missing", shown)
        if any(host == self.host for _, host in found):
            others = [host for _, host in found if host != self.host]
            detail = f"other MX hosts too: {', '.join(others)}" if others else ""
            return self.result(record, "ok", shown, detail)
        return self.result(record, "wrong", shown, f"{self.host} is not among the MX hosts")

    async def spf(self, record: PublishedRecord) -> RecordCheck:
        found = [t for t in await self.lookup.txt(record.name)
                 if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
        if not found:
            return self.result(record, "missing", found)
        if len(found) > 1:
            return self.result(record, "wrong", found, "more than one SPF record is an "
                               "error for every receiver (RFC 7208 §4.5)")
        if found[0].split() == record.value.split():
            return self.result(record, "ok", found)
        status, detail = await self._spf_meaning(found[0])
        return self.result(record, status, found, detail)

    async def _spf_meaning(self, text: str) -> tuple[Status, str]:
        terms = [t.lower() for t in text.split()[1:]]
        all_terms = [t for t in terms if t.lstrip("+-~?") == "all"]
        if not all_terms or all_terms[-1] not in ("-all", "~all"):
            return "wrong", "it must end in -all or ~all, or anyone may send as the domain"
        for term in terms:
            qualifier = term[0] if term[0] in "+-~?" else "+"
            mechanism = term.lstrip("+-~?")
            if qualifier != "+":
                continue
            if mechanism in (f"a:{self.host}", f"mx:{self.host}") or (
                    mechanism == "a" and self.host == self.records.domain):
                return "ok", f"differs from the suggestion, but {mechanism} authorises " \
                    f"{self.host}"
            if mechanism == "mx" and any(
                    host == self.host for _, host in await self.lookup.mx(self.records.domain)):
                return "ok", f"differs from the suggestion, but mx authorises {self.host}"
            if mechanism.startswith(("ip4:", "ip6:")) and self._covers(mechanism[4:]):
                return "ok", f"differs from the suggestion, but {mechanism} holds every " \
                    f"address of {self.host}"
        return "wrong", f"no mechanism of it is known to authorise {self.host} (include: " \
            "and redirect= are not followed)"

    def _covers(self, network_text: str) -> bool:
        try:
            network = ipaddress.ip_network(network_text, strict=False)
        except ValueError:
            return False
        addresses = [ipaddress.ip_address(a) for a in self.host_addresses]
        same_family = [a for a in addresses if a.version == network.version]
        return bool(same_family) and all(a in network for a in same_family)

    async def dkim(self, record: PublishedRecord) -> RecordCheck:
        found = await self.lookup.txt(record.name)
        if not found:
            return self.result(record, "missing", found)
        want = _tags(record.value)
        for text in found:
            tags = _tags(text)
            if (_squash(tags.get("p", "")) == _squash(want["p"])
                    and tags.get("k", "rsa").lower() == want["k"]):
                return self.result(record, "ok", found)
        return self.result(record, "wrong", found, "the published key is not this server's "
                           "key: mail signed with it fails DKIM")

    async def dmarc(self, record: PublishedRecord) -> RecordCheck:
        found = [t for t in await self.lookup.txt(record.name)
                 if _tags(t).get("v", "").upper() == "DMARC1"]
        if not found:
            return self.result(record, "missing", found)
        if len(found) > 1:
            return self.result(record, "wrong", found, "more than one DMARC record: "
                               "receivers ignore them all (RFC 7489 §6.6.3)")
        tags = _tags(found[0])
        policy = tags.get("p", "").lower()
        wanted = self.settings.dns.dmarc_policy
        if policy not in _STRICTNESS:
            return self.result(record, "wrong", found, "no valid p= policy")
        if _STRICTNESS[policy] < _STRICTNESS[wanted]:
            return self.result(record, "wrong", found,
                               f"p={policy} is weaker than dns.dmarc_policy ({wanted})")
        rua = self.settings.dns.dmarc_rua
        if rua and rua.lower() not in _uris(tags.get("rua", "")):
            return self.result(record, "wrong", found, f"rua does not include {rua}")
        same = _squash(found[0].rstrip(";")).lower() == _squash(record.value).lower()
        return self.result(record, "ok", found,
                           "" if same else f"differs from the suggestion, but p={policy}")

    async def mta_sts(self, record: PublishedRecord) -> RecordCheck:
        found = [t for t in await self.lookup.txt(record.name)
                 if _tags(t).get("v", "") == "STSv1"]
        if not found:
            return self.result(record, "missing", found)
        if len(found) > 1:
            return self.result(record, "wrong", found, "more than one STSv1 record: senders "
                               "act as if there were none (RFC 8461 §3.1)")
        want = _tags(record.value)["id"]
        if _tags(found[0]).get("id") != want:
            return self.result(record, "wrong", found, "the id is not the current policy's: "
                               "senders keep the policy they cached")
        return self.result(record, "ok", found)

    async def tls_rpt(self, record: PublishedRecord) -> RecordCheck:
        found = [t for t in await self.lookup.txt(record.name)
                 if _tags(t).get("v", "") == "TLSRPTv1"]
        if not found:
            return self.result(record, "missing", found)
        if len(found) > 1:
            return self.result(record, "wrong", found, "more than one TLSRPTv1 record: "
                               "senders report to none (RFC 8460 §3)")
        uris = _uris(_tags(found[0]).get("rua", ""))
        if not uris:
            return self.result(record, "wrong", found, "no rua: reports have nowhere to go")
        configured = self.settings.dns.tls_rpt_rua
        if configured and configured.lower() not in uris:
            return self.result(record, "wrong", found, f"rua does not include {configured}")
        wanted = _uris(_tags(record.value)["rua"])
        detail = "" if set(wanted) <= set(uris) else f"reports go to {', '.join(uris)}"
        return self.result(record, "ok", found, detail)

    async def exact_txt(self, record: PublishedRecord, prefix: str) -> RecordCheck:
        found = [t for t in await self.lookup.txt(record.name)
                 if t.lower().startswith(prefix)]
        if not found:
            return self.result(record, "missing", found)
        if any(_squash(t) == _squash(record.value) for t in found):
            return self.result(record, "ok", found)
        return self.result(record, "wrong", found, "differs from what this server serves")

    async def srv(self, record: PublishedRecord) -> RecordCheck:
        found = await self.lookup.srv(record.name)
        shown = [f"{p} {w} {port} {target}{'' if target == '.' else '.'}"
                 for p, w, port, target in found]
        if not found:
            return self.result(record, "missing", shown)
        _, _, port_text, target = record.value.split()
        target = target.rstrip(".").lower() or "."
        if target == ".":
            if all(t == "." for *_, t in found):
                return self.result(record, "ok", shown)
            return self.result(record, "wrong", shown, "announces a service that no "
                               "listener here offers")
        if any(t == target and port == int(port_text) for _, _, port, t in found):
            return self.result(record, "ok", shown)
        return self.result(record, "wrong", shown, f"no record points to {target} port "
                           f"{port_text}")

    async def points_here(self, record: PublishedRecord) -> RecordCheck:
        """A name that must reach this server: a CNAME to the hostname, or addresses that
        are all the hostname's."""
        aliases = await self.lookup.cname(record.name)
        if self.host in aliases:
            return self.result(record, "ok", [f"{a}." for a in aliases])
        addresses = await self.lookup.addresses(record.name)
        shown = [f"{a}." for a in aliases] + addresses
        if not addresses:
            return self.result(record, "missing" if not aliases else "wrong", shown,
                               "" if not aliases else "the alias has no address")
        if self.host_addresses and set(addresses) <= set(self.host_addresses):
            return self.result(record, "ok", shown, f"not a CNAME, but the addresses are "
                               f"{self.host}'s")
        return self.result(record, "wrong", shown, f"does not lead to {self.host}'s "
                           "addresses")


def _uris(value: str) -> list[str]:
    return [u.strip().lower() for u in value.split(",") if u.strip()]


async def check_domain(records: DomainRecords, settings: Settings, lookup: DNSLookup
                       ) -> DomainCheck:
    """Check every record of ``records``, and first the hostname's own addresses, which
    the names pointing here and an ``ip4:``/``ip6:`` SPF record are compared with."""
    host = records.hostname
    try:
        addresses = await lookup.addresses(host)
        address_check = RecordCheck(
            host, "A/AAAA", "this server's public addresses", "address",
            "ok" if addresses else "missing", tuple(addresses),
            "" if addresses else f"{host} has no address: nothing can reach this server")
    except Unanswered as exc:
        addresses = []
        address_check = RecordCheck(host, "A/AAAA", "this server's public addresses",
                                    "address", "unknown", (), str(exc))
    checker = _Checker(records, settings, lookup, addresses)
    results = await asyncio.gather(*(checker.check(r) for r in records.records))
    return DomainCheck(records.domain, host, (address_check, *results))
