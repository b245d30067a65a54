"""What a hosted domain publishes in the DNS, and the two documents tied to those records.

Pure: settings, the domain's DKIM keys and the client listeners in; records out, each with
the reason it exists, as zone-file lines or JSON (``mailstead dns records``, and the admin
API later). :mod:`mailstead.admin.dnscheck` compares them with what the DNS answers.

Two records depend on bytes that the HTTP front end serves, so the documents are built
here too and the routes serve exactly these bytes (decision 0013):

- the MTA-STS policy (RFC 8461 §3.2) and the ``id`` of its ``_mta-sts`` TXT record
  (§3.1), derived from the policy text so that it changes when, and only when, the
  policy changes;
- the PACC configuration document (draft-ietf-mailmaint-pacc) and the SHA-256 digest of
  it that the ``_ua-auto-config`` TXT record carries.

Choices (decision 0013 says why): SPF ``v=spf1 a:HOSTNAME -all``; DMARC ``p=quarantine``
unless ``dns.dmarc_policy`` says otherwise; TLS reports to ``postmaster@DOMAIN`` unless
``dns.tls_rpt_rua`` names another address.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mailstead.config.endpoints import ClientEndpoint, client_endpoints
from mailstead.config.schema import Settings
from mailstead.delivery.dkim import DKIMKey

#: Why a record exists; also what ``dns check`` groups by.
Purpose = Literal["mx", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt", "srv", "autoconfig",
                  "pacc"]
RecordType = Literal["MX", "TXT", "CNAME", "SRV"]

#: RFC 6186 service names of each (client protocol, TLS mode) of config/endpoints.py; the
#: implicit-TLS names are RFC 8314 §5.1's. Plain and STARTTLS listeners share a name.
SRV_SERVICES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("_submissions._tcp", "SMTP", ("implicit",)),
    ("_submission._tcp", "SMTP", ("starttls", "none")),
    ("_imaps._tcp", "IMAP", ("implicit",)),
    ("_imap._tcp", "IMAP", ("starttls", "none")),
    ("_pop3s._tcp", "POP3", ("implicit",)),
    ("_pop3._tcp", "POP3", ("starttls", "none")),
)
#: RFC 6186 §3.4 lets the priority say which service a client should prefer: IMAP over
#: POP3, and implicit TLS over STARTTLS (RFC 8314 §3). Lower is preferred.
_SECURITY = {"implicit": "implicit TLS", "starttls": "STARTTLS", "none": "no TLS"}
_SRV_PRIORITY = {"_imaps._tcp": 0, "_imap._tcp": 5, "_pop3s._tcp": 10, "_pop3._tcp": 15,
                 "_submissions._tcp": 0, "_submission._tcp": 5}

#: PACC names a host per protocol; the port and TLS are the protocol's implicit-TLS ones
#: (draft-ietf-mailmaint-pacc), so only a listener that matches can be announced.
PACC_PORTS: dict[str, tuple[str, int]] = {"IMAP": ("imap", 993), "POP3": ("pop3", 995),
                                          "SMTP": ("smtp", 465)}
PACC_MEDIA_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """One record to publish. ``value`` is the record data as a zone file writes it, but
    TXT text unquoted and unsplit (what a DNS provider's web form takes)."""

    name: str
    type: RecordType
    value: str
    purpose: Purpose
    why: str

    def zone_lines(self) -> list[str]:
        """A comment saying why, then the record; TXT text in strings of at most 255
        octets (RFC 1035 §3.3.14) with quotes and backslashes escaped."""
        data = self.value
        if self.type == "TXT":
            data = _quoted(self.value)
        return [f"; {self.why}", f"{self.name}. IN {self.type} {data}"]


@dataclass(frozen=True, slots=True)
class DomainRecords:
    """Everything ``dns records`` prints for one domain. ``notes`` are what the records
    cannot say: the server's own address records, a missing DKIM key, a warning."""

    domain: str
    hostname: str
    records: tuple[PublishedRecord, ...]
    notes: tuple[str, ...]

    def zone_text(self) -> str:
        lines = [f"; DNS records for {self.domain} (mail server {self.hostname})"]
        lines += [f"; NOTE: {note}" for note in self.notes]
        for record in self.records:
            lines.append("")
            lines.extend(record.zone_lines())
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _quoted(text: str) -> str:
    data = text.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    parts = ['"' + c.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"')
             + '"' for c in chunks]
    return parts[0] if len(parts) == 1 else "( " + " ".join(parts) + " )"


# -- MTA-STS ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MTASTSPolicy:
    """The one policy every hosted domain serves: its MX is this server."""

    mode: Literal["testing", "enforce", "none"]
    mx: tuple[str, ...]
    max_age: int

    def text(self) -> str:
        """The policy file (RFC 8461 §3.2): ``key: value`` lines ending in CRLF."""
        lines = ["version: STSv1", f"mode: {self.mode}"]
        lines += [f"mx: {mx}" for mx in self.mx]
        lines.append(f"max_age: {self.max_age}")
        return "".join(line + "\r\n" for line in lines)

    @property
    def id(self) -> str:
        """The ``id=`` of the ``_mta-sts`` record (RFC 8461 §3.1: 1 to 32 letters and
        digits): a digest of the policy, so a changed policy has a new id and senders
        fetch it again, and an unchanged one keeps its id across restarts."""
        return hashlib.sha256(self.text().encode()).hexdigest()[:32]


def mta_sts_policy(settings: Settings) -> MTASTSPolicy:
    conf = settings.mta_sts
    mx = [settings.hostname.lower().rstrip(".")]
    mx += [pattern for pattern in conf.extra_mx if pattern not in mx]
    return MTASTSPolicy(conf.mode, tuple(mx), conf.max_age_seconds)


# -- PACC ---------------------------------------------------------------------------------


def pacc_document(domain: str, endpoints: Sequence[ClientEndpoint]) -> bytes | None:
    """The PACC configuration (draft-ietf-mailmaint-pacc) for ``domain``; None when no
    listener can be announced in it (no implicit-TLS listener on 993, 995 or 465).

    Serialised once, compactly with sorted keys, because the ``_ua-auto-config``
    record carries the SHA-256 of these exact bytes and a client refuses a document
    whose digest differs."""
    protocols: dict[str, dict[str, str]] = {}
    for endpoint in endpoints:
        name, port = PACC_PORTS[endpoint.protocol]
        if endpoint.security == "implicit" and endpoint.port == port:
            protocols.setdefault(name, {"host": endpoint.host})
    if not protocols:
        return None
    document = {
        "protocols": protocols,
        "authentication": {"password": True},
        "info": {"provider": {"name": f"{domain} mail", "shortName": domain}},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def pacc_digest(document: bytes) -> str:
    """The ``d=`` of the ``_ua-auto-config`` record: base64 of the document's SHA-256."""
    return base64.b64encode(hashlib.sha256(document).digest()).decode()


# -- the records --------------------------------------------------------------------------


def spf_record(settings: Settings) -> str:
    terms = ["v=spf1", f"a:{settings.hostname.lower().rstrip('.')}", *settings.dns.spf_extra,
             "-all"]
    return " ".join(terms)


def dmarc_record(settings: Settings) -> str:
    value = f"v=DMARC1; p={settings.dns.dmarc_policy}"
    if settings.dns.dmarc_rua:
        value += f"; rua={settings.dns.dmarc_rua}"
    return value


def tls_rpt_record(domain: str, settings: Settings) -> str:
    return f"v=TLSRPTv1; rua={settings.dns.tls_rpt_rua or f'mailto:postmaster@{domain}'}"


def srv_records(domain: str, endpoints: Sequence[ClientEndpoint]) -> list[PublishedRecord]:
    """RFC 6186 SRV records for every client service; a service no listener offers gets
    the target "." (RFC 6186 §4: not provided), so clients stop looking for it."""
    records = []
    for service, protocol, modes in SRV_SERVICES:
        offered = [e for e in endpoints if e.protocol == protocol and e.security in modes]
        name = f"{service}.{domain}"
        if not offered:
            records.append(PublishedRecord(
                name, "SRV", "0 0 0 .", "srv",
                f"{service.split('.')[0][1:]} is not offered here (RFC 6186 §4)"))
            continue
        for endpoint in offered:
            records.append(PublishedRecord(
                name, "SRV", f"{_SRV_PRIORITY[service]} 1 {endpoint.port} {endpoint.host}.",
                "srv", f"mail clients find {protocol} ({_SECURITY[endpoint.security]}) "
                "here (RFC 6186)"))
    return records


def expected_records(domain: str, settings: Settings, dkim_keys: Sequence[DKIMKey],
                     endpoints: Sequence[ClientEndpoint] | None = None) -> DomainRecords:
    """Every record ``domain`` should publish for this server, with the reason for each.

    ``dkim_keys`` are the domain's keys (delivery/dkim.py ``load_keys``); ``endpoints``
    default to the enabled client listeners of ``settings``."""
    domain = domain.lower().rstrip(".")
    host = settings.hostname.lower().rstrip(".")
    if endpoints is None:
        endpoints = client_endpoints(settings)
    notes: list[str] = []
    if "." not in host or host == "localhost":
        notes.append(f"hostname is {host!r}: set hostname in the configuration to this "
                     "server's public name before publishing these records")
    notes.append(f"{host} needs A and/or AAAA records with this server's public addresses "
                 "(and the same names in the PTR records of those addresses): they are "
                 "yours to publish, mailstead cannot know them")
    records = [
        PublishedRecord(domain, "MX", f"10 {host}.", "mx",
                        f"mail for {domain} is delivered to {host} (RFC 5321 §5.1)"),
        PublishedRecord(domain, "TXT", spf_record(settings), "spf",
                        f"SPF: only {host} (and dns.spf_extra) may send mail from "
                        f"@{domain}; -all asks receivers to refuse the rest (RFC 7208)"),
    ]
    if settings.delivery.relay.host and not settings.dns.spf_extra:
        notes.append(f"mail leaves through the relay {settings.delivery.relay.host}: add its "
                     "SPF mechanism (such as include:...) to dns.spf_extra")
    for key in dkim_keys:
        records.append(PublishedRecord(
            key.record_name, "TXT", key.txt_value, "dkim",
            f"DKIM: receivers check the signature of selector {key.selector} "
            f"({key.algorithm}) with this key (RFC 6376 §3.6.1)"))
    if not dkim_keys:
        notes.append(f"{domain} has no DKIM key, so its mail is not signed: create one with "
                     f"`mailstead dkim keygen {domain}` and run this command again")
    records.append(PublishedRecord(
        f"_dmarc.{domain}", "TXT", dmarc_record(settings), "dmarc",
        f"DMARC: mail from @{domain} that fails both SPF and DKIM is "
        f"{_DMARC_MEANING[settings.dns.dmarc_policy]} (RFC 7489)"))
    rua = settings.dns.dmarc_rua
    if rua.startswith("mailto:") and not rua.lower().endswith("@" + domain):
        notes.append(f"DMARC reports go outside {domain}: the receiving domain must publish "
                     f"{domain}._report._dmarc.<its domain> TXT \"v=DMARC1\" (RFC 7489 §7.1)")
    policy = mta_sts_policy(settings)
    records += [
        PublishedRecord(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={policy.id}", "mta-sts",
                        f"MTA-STS: senders fetch the policy ({policy.mode}); the id changes "
                        "with the policy (RFC 8461 §3.1)"),
        PublishedRecord(f"mta-sts.{domain}", "CNAME", f"{host}.", "mta-sts",
                        f"the policy is served by {host} at https://mta-sts.{domain}"
                        "/.well-known/mta-sts.txt; its certificate must name "
                        f"mta-sts.{domain} (RFC 8461 §3.3)"),
        PublishedRecord(f"_smtp._tls.{domain}", "TXT", tls_rpt_record(domain, settings),
                        "tls-rpt", "TLS-RPT: where senders report TLS failures reaching "
                        f"{domain} (RFC 8460)"),
    ]
    records += srv_records(domain, endpoints)
    records += [
        PublishedRecord(f"autoconfig.{domain}", "CNAME", f"{host}.", "autoconfig",
                        "Thunderbird and others fetch http://autoconfig."
                        f"{domain}/mail/config-v1.1.xml from {host}"),
        PublishedRecord(f"autodiscover.{domain}", "CNAME", f"{host}.", "autoconfig",
                        f"Outlook posts its Autodiscover request to autodiscover.{domain}"),
    ]
    document = pacc_document(domain, endpoints)
    if document is None:
        notes.append("PACC is not published: it announces only implicit-TLS listeners on "
                     "the standard ports (IMAP 993, POP3 995, submission 465)")
    else:
        records += [
            PublishedRecord(f"ua-auto-config.{domain}", "CNAME", f"{host}.", "pacc",
                            f"PACC clients fetch https://ua-auto-config.{domain}/.well-known"
                            f"/user-agent-configuration.json from {host}"),
            PublishedRecord(f"_ua-auto-config.{domain}", "TXT",
                            f"v=UAAC1; a=sha256; d={pacc_digest(document)}", "pacc",
                            "PACC clients accept the configuration only if its SHA-256 is "
                            "this one; it changes when the listeners do"),
        ]
    return DomainRecords(domain, host, tuple(records), tuple(notes))


_DMARC_MEANING = {"none": "only reported", "quarantine": "put in spam",
                  "reject": "refused"}
