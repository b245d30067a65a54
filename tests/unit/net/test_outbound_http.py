"""An outbound POST (net/outbound_http.py) over real sockets on 127.0.0.1: TLS verified
against the CA it is given and refused otherwise, the answer's body capped, one deadline
for the whole exchange."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailstead.net.client import client_context
from mailstead.net.outbound_http import OutboundPolicy, PostFailed, post
from mailstead.net.tls import ensure_self_signed


@dataclass
class Endpoint:
    port: int
    cert: Path
    received: list[bytes] = field(default_factory=list)
    answer: bytes = b""
    silent: bool = False


async def _serve(
    endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        endpoint.received.append(head + await reader.readexactly(length))
        if endpoint.silent:
            await asyncio.sleep(30)
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s"
            % (len(endpoint.answer), endpoint.answer)
        )
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed(cert, key, "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    found = Endpoint(0, cert)
    server = await asyncio.start_server(
        lambda r, w: _serve(found, r, w), "127.0.0.1", 0, ssl=context
    )
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found
        server.close()


def _policy(endpoint: Endpoint, **changes: object) -> OutboundPolicy:
    settings: dict[str, object] = {
        "allow_private": True,
        "timeout": 5.0,
        "tls": client_context(verify=True, cafile=str(endpoint.cert)),
    }
    settings.update(changes)
    return OutboundPolicy(**settings)  # type: ignore[arg-type]


async def test_a_post_over_verified_tls(endpoint: Endpoint) -> None:
    endpoint.answer = b"ok"
    answer = await post(
        f"https://localhost:{endpoint.port}/push/1?x=y",
        b'{"a":1}',
        [("Content-Type", "application/json"), ("TTL", "60")],
        _policy(endpoint),
    )
    assert answer.status == 201 and answer.body == b"ok"
    [request] = endpoint.received
    assert request.startswith(b"POST /push/1?x=y HTTP/1.1\r\n")
    assert f"host: localhost:{endpoint.port}\r\n".encode() in request.lower()
    assert b"ttl: 60\r\n" in request.lower() and request.endswith(b'{"a":1}')


async def test_an_unknown_certificate_is_refused(endpoint: Endpoint) -> None:
    with pytest.raises(PostFailed):
        await post(
            f"https://localhost:{endpoint.port}/",
            b"x",
            [],
            _policy(endpoint, tls=client_context(verify=True)),
        )
    assert endpoint.received == []


async def test_the_answer_is_capped(endpoint: Endpoint) -> None:
    endpoint.answer = b"z" * 10_000
    answer = await post(
        f"https://localhost:{endpoint.port}/", b"x", [], _policy(endpoint, max_answer=100)
    )
    assert answer.status == 201 and answer.body == b"z" * 100


async def test_one_deadline_for_the_exchange(endpoint: Endpoint) -> None:
    endpoint.silent = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PostFailed):
        await post(f"https://localhost:{endpoint.port}/", b"x", [], _policy(endpoint, timeout=0.5))
    assert loop.time() - started < 5
