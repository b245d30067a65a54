"""Where a domain's mail goes: MX lookup with dnspython's async resolver.

RFC 5321 §5.1 in order:

- the MX records of the domain, lowest preference first; hosts of equal preference are
  tried in random order so load spreads over them;
- no MX records (but the name exists): the domain itself is the only host, an *implicit MX*,
  reached through its A/AAAA records;
- a *null MX* (RFC 7505 §3, one MX of preference 0 with the root as exchange) says the
  domain accepts no mail: a permanent failure, ``5.1.10`` (RFC 7505 §4.2);
- a name that does not exist (NXDOMAIN) is permanent; a resolver that does not answer
  (timeout, SERVFAIL) is temporary, the message stays queued (RFC 3463 ``4.4.3``).

The nameservers and their port come from configuration so tests point the resolver at a
DNS server on loopback (:mod:`mailstead.testing.dns`); empty uses ``/etc/resolv.conf``.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

#: A DNS host name in A-labels, lower case, no trailing dot (RFC 1035 §2.3.1, RFC 5890): what
#: a domain must look like to be hosted, signed for or checked.
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

log = logging.getLogger("mailstead.delivery.dns")

#: Which address records lead to a host (``delivery.ip_version``).
IPVersion = Literal["any", "ipv4", "ipv6"]
_RECORD_TYPES: dict[IPVersion, tuple[str, ...]] = {
    "any": ("AAAA", "A"), "ipv4": ("A",), "ipv6": ("AAAA",)}


class DNSFailure(Exception):
    """A lookup did not give a usable answer. ``temporary`` decides retry versus bounce;
    ``status`` is the RFC 3463 enhanced code the DSN reports."""

    def __init__(self, reason: str, *, temporary: bool, status: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.status = status


@dataclass(frozen=True, slots=True)
class MXHost:
    """One host to try. ``implicit`` marks the RFC 5321 §5.1 fallback to the domain itself."""

    preference: int
    name: str
    implicit: bool = False


def to_ascii(domain: str) -> str:
    """A U-label domain (SMTPUTF8 mail, RFC 6531) as the A-label form DNS needs."""
    if domain.isascii():
        return domain.lower().rstrip(".")
    return dns.name.from_unicode(domain.rstrip(".")).to_text(omit_final_dot=True)


def order_mx(records: Sequence[tuple[int, str]], rng: random.Random | None = None
             ) -> list[MXHost]:
    """Sort by preference, shuffling hosts of equal preference (RFC 5321 §5.1)."""
    rng = rng or random.Random()
    keyed = [(pref, rng.random(), name) for pref, name in records]
    return [MXHost(pref, name) for pref, _, name in sorted(keyed)]


def make_resolver(nameservers: Sequence[str] = (), port: int = 53, timeout: float = 10.0
                  ) -> dns.asyncresolver.Resolver:
    """dnspython's async resolver as ``delivery.nameservers``, ``dns_port`` and
    ``dns_timeout_seconds`` say: the one resolver configuration for delivery and for
    ``mailstead dns check``."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = list(nameservers)
        resolver.port = port
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 5.0)
    return resolver


class Resolver:
    """MX and address lookups for delivery; one per scheduler."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        port: int = 53,
        timeout: float = 10.0,
        ip_version: IPVersion = "any",
    ) -> None:
        self._resolver = make_resolver(nameservers, port, timeout)
        self.ip_version = ip_version

    async def _query(self, name: str, rtype: str) -> dns.resolver.Answer | None:
        """The answer, None when the name exists without records of that type (NODATA)."""
        try:
            return await self._resolver.resolve(name, rtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise DNSFailure(f"domain {name} does not exist (DNS NXDOMAIN)",
                             temporary=False, status="5.1.2") from None
        except dns.resolver.NoAnswer:
            return None
        except dns.resolver.NoNameservers as exc:
            raise DNSFailure(f"DNS lookup of {rtype} {name} failed (SERVFAIL): {exc}",
                             temporary=True, status="4.4.3") from None
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
            raise DNSFailure(f"DNS lookup of {rtype} {name} timed out",
                             temporary=True, status="4.4.3") from None
        except dns.exception.DNSException as exc:
            raise DNSFailure(f"DNS lookup of {rtype} {name} failed: {exc}",
                             temporary=True, status="4.4.3") from None

    async def mx(self, domain: str) -> list[MXHost]:
        """The hosts to try for ``domain``, best first. Raises :class:`DNSFailure`."""
        name = to_ascii(domain)
        answer = await self._query(name, "MX")
        if answer is None:
            return [MXHost(0, name, implicit=True)]
        records: list[tuple[int, str]] = []
        null_mx = False
        for rdata in answer:
            exchange = rdata.exchange
            if exchange == dns.name.root:
                null_mx = True  # RFC 7505 §3: "." means no mail service
                continue
            records.append((int(rdata.preference),
                            exchange.to_text(omit_final_dot=True).lower()))
        if not records:
            if null_mx:
                raise DNSFailure(f"domain {name} does not accept mail (null MX, RFC 7505)",
                                 temporary=False, status="5.1.10")
            return [MXHost(0, name, implicit=True)]
        return order_mx(records)

    async def addresses(self, host: str) -> list[str]:
        """IPv6 then IPv4 addresses of ``host`` (as configured). Empty when it has none;
        raises :class:`DNSFailure` when the name does not exist or DNS fails."""
        name = to_ascii(host)
        found: list[str] = []
        for rtype in _RECORD_TYPES[self.ip_version]:
            answer = await self._query(name, rtype)
            if answer is not None:
                found.extend(rdata.to_text() for rdata in answer)
        return found

    async def txt(self, name: str) -> list[str]:
        """TXT strings (each record's character-strings joined), for DKIM checks."""
        answer = await self._query(to_ascii(name), "TXT")
        if answer is None:
            return []
        return [b"".join(rdata.strings).decode("utf-8", "replace")
                for rdata in answer]
