"""Stream.read_some and Stream.unread: bulk reads for data found by scanning (SMTP DATA)."""

from __future__ import annotations

import asyncio

import pytest

from mailstead.net.stream import IdleTimeout
from tests.unit.net.test_net_stream import Pair, pair  # noqa: F401  (fixture)


async def test_read_some_returns_what_arrived_and_unread_puts_it_back(pair: Pair) -> None:  # noqa: F811
    stream, _, client = pair
    client.write(b"a\r\n.\r\nQUIT\r\n")
    await client.drain()
    data = await stream.read_some()
    while not data.endswith(b"QUIT\r\n"):
        data += await stream.read_some()
    assert data == b"a\r\n.\r\nQUIT\r\n"
    stream.unread(data[6:])
    assert stream.pending_bytes() == 6
    assert await stream.readline(100) == b"QUIT\r\n"


async def test_read_some_respects_max_bytes_and_keeps_the_rest(pair: Pair) -> None:  # noqa: F811
    stream, _, client = pair
    client.write(b"abcdef\r\n")
    await client.drain()
    assert await stream.readline(100, timeout=5) == b"abcdef\r\n"
    client.write(b"0123456789")
    await client.drain()
    first = await stream.read_some(4)
    assert first == b"0123"
    rest = b""
    while len(rest) < 6:
        rest += await stream.read_some(100)
    assert rest == b"456789"


async def test_read_some_times_out(pair: Pair) -> None:  # noqa: F811
    stream, _, _ = pair
    with pytest.raises(IdleTimeout):
        await stream.read_some(timeout=0.05)


async def test_unread_bytes_are_discarded_by_start_tls_accounting(pair: Pair) -> None:  # noqa: F811
    stream, _, _ = pair
    stream.unread(b"MAIL FROM:<x@y>\r\n")
    assert stream.discard_pending() == len(b"MAIL FROM:<x@y>\r\n")
    await asyncio.sleep(0)
