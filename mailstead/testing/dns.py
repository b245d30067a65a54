"""A real authoritative DNS server on loopback for tests (dnslib, UDP and TCP on one port).

Outbound delivery is tested against real DNS traffic rather than a mocked resolver: the
server answers MX, A, AAAA and TXT queries from an in-memory zone, NXDOMAIN for names it
does not know, and SERVFAIL for names marked broken (a temporary failure). Point mailstead
at it with :meth:`TestDNSServer.settings` (``delivery.nameservers`` and ``dns_port``).

Both transports listen on the same port because a resolver retries over TCP when a UDP
answer is truncated (RFC 7766), and a big DKIM TXT record can be.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from typing import Any

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, SRV, TXT, A, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

_TYPES = {"A": QTYPE.A, "AAAA": QTYPE.AAAA, "MX": QTYPE.MX, "TXT": QTYPE.TXT,
          "CNAME": QTYPE.CNAME, "SRV": QTYPE.SRV}
#: CNAMEs followed in one answer before giving up (a loop in a test zone).
_MAX_CHAIN = 8


def _key(name: str) -> str:
    return name.lower().rstrip(".") + "."


def txt_chunks(text: str) -> list[bytes]:
    """A TXT value as character-strings of at most 255 octets (RFC 1035 §3.3.14)."""
    data = text.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, Any]]] = {}
        self.broken: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        reply.header.aa = 1
        qname = str(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        key = _key(qname)
        with self.lock:
            self.queries.append((key, qtype))
            if key in self.broken:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            entries = self.records.get(key)
            if entries is None:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            for _hop in range(_MAX_CHAIN):
                alias = next((rdata for rtype, rdata in entries if rtype == "CNAME"), None)
                if alias is None or qtype == "CNAME":
                    break
                # RFC 1034 §3.6.2: the CNAME, then the answer for its target.
                reply.add_answer(RR(qname, QTYPE.CNAME, rdata=alias, ttl=60))
                qname = str(alias.label)
                entries = self.records.get(_key(qname), [])
            for rtype, rdata in entries:
                if rtype == qtype:
                    reply.add_answer(RR(qname, _TYPES[rtype], rdata=rdata, ttl=60))
        return reply


class TestDNSServer:
    """Authoritative answers for the names added with :meth:`add`; use as a context manager.

    ``add("b.test", "MX", "10 mx.b.test")``, ``add("mx.b.test", "A", "127.0.0.1")``,
    ``add("nullmx.test", "MX", "0 .")`` (RFC 7505), ``add("s._domainkey.b.test", "TXT",
    "v=DKIM1; ...")``, ``add("www.b.test", "CNAME", "b.test")`` (followed in answers to
    other types), ``add("_imaps._tcp.b.test", "SRV", "0 1 993 mx.b.test")``.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.port = 0
        self._resolver = _ZoneResolver()
        self._servers: list[DNSServer] = []

    # -- zone ----------------------------------------------------------------------------
    def add(self, name: str, rtype: str, value: str) -> TestDNSServer:
        rtype = rtype.upper()
        rdata: Any
        if rtype == "A":
            rdata = A(value)
        elif rtype == "AAAA":
            rdata = AAAA(value)
        elif rtype == "MX":
            preference, exchange = value.split()
            rdata = MX(DNSLabel(exchange), int(preference))
        elif rtype == "TXT":
            rdata = TXT(txt_chunks(value))
        elif rtype == "CNAME":
            rdata = CNAME(DNSLabel(value))
        elif rtype == "SRV":
            priority, weight, port, target = value.split()
            rdata = SRV(int(priority), int(weight), int(port), DNSLabel(target))
        else:
            raise ValueError(f"unsupported record type {rtype}")
        with self._resolver.lock:
            self._resolver.records.setdefault(_key(name), []).append((rtype, rdata))
        return self

    def add_many(self, records: Iterable[tuple[str, str, str]]) -> TestDNSServer:
        for name, rtype, value in records:
            self.add(name, rtype, value)
        return self

    def remove(self, name: str) -> None:
        with self._resolver.lock:
            self._resolver.records.pop(_key(name), None)

    def break_name(self, name: str, broken: bool = True) -> None:
        """Answer SERVFAIL for ``name`` (a temporary DNS failure) until unbroken."""
        with self._resolver.lock:
            (self._resolver.broken.add if broken else self._resolver.broken.discard)(_key(name))

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self._resolver.lock:
            return list(self._resolver.queries)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> TestDNSServer:
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data",
                           prefix=False)
        for _attempt in range(50):
            port = _free_udp_port(self.address)
            try:
                udp = DNSServer(self._resolver, address=self.address, port=port, logger=logger)
                try:
                    tcp = DNSServer(self._resolver, address=self.address, port=port, tcp=True,
                                    logger=logger)
                except OSError:
                    udp.server.server_close()
                    continue
            except OSError:
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:
                server.start_thread()
            return self
        raise RuntimeError("no free port for the test DNS server")

    def stop(self) -> None:
        # shutdown() waits for the serve loop's poll; stop both transports at once.
        stoppers = [threading.Thread(target=s.server.shutdown) for s in self._servers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                server.server.server_close()
        self._servers = []

    def __enter__(self) -> TestDNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The config fragment that points mailstead's resolver here."""
        return {"delivery": {"nameservers": [self.address], "dns_port": self.port,
                             "dns_timeout_seconds": 5}}

    def lookup_txt(self, name: bytes | str, timeout: int = 5) -> bytes | None:
        """Synchronous TXT lookup over UDP: a ``dnsfunc`` for ``dkim.verify``."""
        qname = name.decode() if isinstance(name, bytes) else name
        query = DNSRecord.question(qname.rstrip("."), "TXT")
        answer = DNSRecord.parse(query.send(self.address, self.port, timeout=timeout))
        for rr in answer.rr:
            if rr.rtype == QTYPE.TXT:
                return b"".join(rr.rdata.data)
        return None


def _free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                       socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
