"""One HTTP POST to a URL someone else chose (a JMAP client's push URL), with the guards
such a request needs: the server must not become a way into its own network.

Invariants:

- only ``https`` URLs, unless the policy allows plain ``http`` (tests, a push relay on the
  same machine); no user information in the URL;
- the name is resolved here and every address it has must be public (not loopback,
  private, link-local, shared, reserved or multicast) unless the policy allows private
  destinations; the connection then goes to one of those checked addresses, so a second
  resolution cannot point it elsewhere (DNS rebinding), while TLS still verifies the name;
- the whole exchange has one deadline; the answer's body is read up to a cap and then the
  connection is dropped; redirects are not followed (a 3xx is an answer like any other);
- :class:`DestinationRefused` means "never to this URL" and :class:`PostFailed` "not this
  time": the caller retries only the second.

HTTP/1.1 is spoken with h11 (sans-I/O) over :func:`mailstead.net.client.connect`, so the
connection has the read limits and TLS handling of every other client of the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import h11

from mailstead.net.client import connect
from mailstead.net.stream import ConnectionClosed, Stream, StreamError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: A resolver: host and port in, IP addresses (as text) out; OSError when there are none.
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Longest URL accepted: push services hand out URLs of a few hundred characters.
MAX_URL_LENGTH = 2048


class DestinationRefused(ValueError):
    """The URL may not be posted to (its scheme, or an address in a private network)."""


class PostFailed(Exception):
    """The POST did not get an answer this time: network, TLS, timeout, protocol, size."""


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    allow_http: bool = False
    allow_private: bool = False
    timeout: float = 30.0  # seconds for the whole exchange, connecting included
    max_answer: int = 64 * 1024  # bytes of the answer's body read at most
    tls: ssl.SSLContext | None = None  # None: the system's CAs, name checked


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: Literal["https", "http"]
    host: str  # a name, or an IP address without brackets
    port: int
    target: str  # path and query, as the request line carries them

    @classmethod
    def parse(cls, url: str, *, allow_http: bool) -> Destination:
        """DestinationRefused with the reason for a URL that may not be used."""
        if len(url) > MAX_URL_LENGTH:
            raise DestinationRefused(f"longer than {MAX_URL_LENGTH} characters")
        if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in url):
            raise DestinationRefused("spaces, control or non-ASCII characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise DestinationRefused(f"not a URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme == "https":
            kind: Literal["https", "http"] = "https"
        elif scheme == "http" and allow_http:
            kind = "http"
        else:
            raise DestinationRefused("the URL must be https")
        if parts.username is not None or parts.password is not None:
            raise DestinationRefused("no user information in the URL")
        host = parts.hostname
        if not host:
            raise DestinationRefused("the URL names no host")
        if port == 0:
            raise DestinationRefused("port 0")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return cls(kind, host, port or (443 if kind == "https" else 80), target)

    @property
    def host_header(self) -> str:
        """RFC 9110 §7.2: the host, and the port when it is not the scheme's own."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def is_public(address: IPAddress) -> bool:
    """Whether an address is on the public internet: ``is_global`` excludes loopback,
    RFC 1918, link-local, shared (RFC 6598), documentation and reserved ranges; an
    IPv4-mapped IPv6 address is judged by its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(
    destination: Destination, *, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """The addresses to connect to, every one of them checked. A name with one private
    address among public ones is refused as a whole: which one a connection takes is not
    the caller's to choose."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(destination.host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = await resolver(destination.host, destination.port)
        except OSError as exc:
            raise PostFailed(f"cannot resolve {destination.host}: {exc}") from None
        if not found:
            raise PostFailed(f"{destination.host} has no address")
    if not allow_private:
        for text in found:
            if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):
                raise DestinationRefused(f"{destination.host} is in a private network")
    return found


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes  # at most the policy's max_answer bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key == lowered), None)


async def post(
    url: str,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    policy: OutboundPolicy,
    *,
    resolver: Resolver = system_resolver,
) -> Answer:
    """POST ``body`` to ``url``; the answer, whatever its status."""
    destination = Destination.parse(url, allow_http=policy.allow_http)
    try:
        async with asyncio.timeout(policy.timeout):
            addresses = await checked_addresses(
                destination, allow_private=policy.allow_private, resolver=resolver
            )
            stream = await _connect(destination, addresses, policy)
            try:
                return await _exchange(stream, destination, body, headers, policy.max_answer)
            finally:
                await stream.close(timeout=1.0)
    except TimeoutError:
        raise PostFailed(f"no answer within {policy.timeout:g}s") from None


async def _connect(
    destination: Destination, addresses: list[str], policy: OutboundPolicy
) -> Stream:
    tls = None
    if destination.scheme == "https":
        tls = policy.tls if policy.tls is not None else ssl.create_default_context()
    failures = []
    for address in addresses:
        try:
            return await connect(
                address,
                destination.port,
                timeout=policy.timeout,
                tls=tls,
                server_hostname=destination.host,
                session_prefix="push",
            )
        except StreamError as exc:
            failures.append(str(exc))
    raise PostFailed("; ".join(failures) or "no address to connect to")


async def _exchange(
    stream: Stream,
    destination: Destination,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    max_answer: int,
) -> Answer:
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=destination.target,
        headers=[
            ("Host", destination.host_header),
            ("User-Agent", "mailstead"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *headers,
        ],
    )
    stream.write(
        conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    )
    status = 0
    answer_headers: tuple[tuple[str, str], ...] = ()
    received = bytearray()
    try:
        await stream.drain()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.read_some(64 * 1024)
                except ConnectionClosed:
                    data = b""
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = tuple(
                    (name.decode("latin-1").lower(), value.decode("latin-1"))
                    for name, value in event.headers
                )
            elif isinstance(event, h11.Data):
                received += event.data
                if len(received) > max_answer:
                    # The status is what matters; a push service has no reason to say more.
                    return Answer(status, answer_headers, bytes(received[:max_answer]))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if not status:
                    raise PostFailed("the connection closed before an answer")
                return Answer(status, answer_headers, bytes(received))
            # h11.InformationalResponse (1xx): the final answer follows.
    except h11.ProtocolError as exc:
        raise PostFailed(f"not an HTTP answer: {exc}") from None
    except StreamError as exc:
        raise PostFailed(str(exc)) from None
