"""Stream over real loopback sockets: line limits, timeouts, literals, STARTTLS injection."""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator

import pytest

from mailstead.net.stream import (
    ConnectionClosed,
    DeadlineExceeded,
    IdleTimeout,
    LineTooLong,
    Stream,
)
from mailstead.net.tls import TLSContexts
from mailstead.testing.waiting import eventually

Pair = tuple[Stream, asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A server-side Stream and the raw client end of the same loopback connection."""
    accepted: asyncio.Queue[Stream] = asyncio.Queue()
    done = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(Stream(reader, writer, session_id="test-1", idle_timeout=10))
        await done.wait()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c_reader, c_writer = await asyncio.open_connection("127.0.0.1", port)
    stream = await asyncio.wait_for(accepted.get(), 5)
    yield stream, c_reader, c_writer
    done.set()
    c_writer.close()
    await stream.close()
    server.close()


async def test_crlf_and_bare_lf(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"EHLO a\r\nNOOP\nQUIT\r\n")
    assert await stream.readline(512) == b"EHLO a\r\n"
    assert await stream.readline(512) == b"NOOP\n"
    assert await stream.readline(512) == b"QUIT\r\n"


async def test_line_split_across_packets(pair: Pair) -> None:
    stream, _, client = pair
    read = asyncio.create_task(stream.readline(512))
    for byte in b"HELO x\r\n":
        client.write(bytes([byte]))
        await client.drain()
        await asyncio.sleep(0)
    assert await read == b"HELO x\r\n"


async def test_long_line_discarded_next_line_read(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"A" * 200_000 + b"\r\nNEXT\r\n")
    with pytest.raises(LineTooLong) as info:
        await stream.readline(512)
    assert info.value.length == 200_002
    assert await stream.readline(512) == b"NEXT\r\n"


async def test_limit_counts_line_ending(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"x" * 510 + b"\r\n" + b"y" * 511 + b"\r\nok\r\n")
    assert len(await stream.readline(512)) == 512
    with pytest.raises(LineTooLong):
        await stream.readline(512)
    assert await stream.readline(512) == b"ok\r\n"


async def test_idle_timeout(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"partial")
    with pytest.raises(IdleTimeout):
        await stream.readline(512, timeout=0.1)
    client.write(b" line\r\n")  # the stream stays usable after a timeout
    assert await stream.readline(512) == b"partial line\r\n"


async def test_an_overall_deadline_is_told_apart_from_idleness(pair: Pair) -> None:
    """``until`` bounds a whole exchange (a login, a message) however active the peer is;
    reads that run into it raise DeadlineExceeded, into the idle timeout IdleTimeout."""
    stream, _, client = pair
    now = asyncio.get_running_loop().time()
    client.write(b"12345")
    with pytest.raises(DeadlineExceeded):  # the 10 s idle timeout never fires first
        async for _ in stream.iter_exactly(10, until=now + 0.1):
            pass
    with pytest.raises(DeadlineExceeded):
        await stream.read_some(until=now + 0.1)
    client.write(b"a line\r\n")
    with pytest.raises(DeadlineExceeded):  # passed: even a waiting line is not served
        await stream.readline(512, until=now)
    assert await stream.readline(512, until=float("inf")) == b"a line\r\n"  # no deadline
    with pytest.raises(IdleTimeout) as idle:
        await stream.readline(512, timeout=0.05, until=now + 60)
    assert not isinstance(idle.value, DeadlineExceeded)


async def test_stream_default_idle_timeout(pair: Pair) -> None:
    stream, _, _ = pair
    stream.idle_timeout = 0.05
    with pytest.raises(IdleTimeout):
        await stream.readexactly(10)


async def test_eof_is_connection_closed(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"last\r\nunterminated")
    client.close()
    assert await stream.readline(512) == b"last\r\n"
    with pytest.raises(ConnectionClosed):
        await stream.readline(512)


async def test_readexactly_across_chunks(pair: Pair) -> None:
    stream, _, client = pair
    payload = bytes(range(256)) * 1000  # 256000 bytes, several socket reads
    client.write(b"APPEND {256000}\r\n" + payload[:1000])
    assert await stream.readline(100) == b"APPEND {256000}\r\n"
    read = asyncio.create_task(stream.readexactly(len(payload)))
    await eventually(lambda: stream.pending_bytes() == 0, what="the first chunk taken")
    client.write(payload[1000:] + b" rest\r\n")
    assert await read == payload
    assert await stream.readline(100) == b" rest\r\n"


async def test_iter_exactly_yields_bounded_chunks(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"B" * 300_000 + b"NEXT\r\n")
    sizes = [len(chunk) async for chunk in stream.iter_exactly(300_000)]
    assert sum(sizes) == 300_000
    assert max(sizes) <= 64 * 1024
    assert await stream.readline(100) == b"NEXT\r\n"


async def test_readexactly_eof(pair: Pair) -> None:
    stream, _, client = pair
    client.write(b"short")
    client.close()
    with pytest.raises(ConnectionClosed):
        await stream.readexactly(100)


async def test_write_and_peer(pair: Pair) -> None:
    stream, reader, _ = pair
    stream.write(b"220 ready\r\n")
    await stream.drain()
    assert await reader.readline() == b"220 ready\r\n"
    assert stream.peer[0] == "127.0.0.1"
    assert stream.local[0] == "127.0.0.1"
    assert not stream.is_tls and stream.tls_info == ""


async def test_close_twice_and_after_peer_reset(pair: Pair) -> None:
    stream, _, client = pair
    client.transport.abort()
    await eventually(lambda: stream.at_eof, what="the close reaching the server")
    stream.write(b"x" * 100_000)
    await stream.close()
    await stream.close()


async def test_starttls_discards_pipelined_command(
    pair: Pair, tls_contexts: TLSContexts, client_context: ssl.SSLContext
) -> None:
    """CVE-2011-0411: "STARTTLS\\r\\nEVIL\\r\\n" in one packet; EVIL must not survive TLS."""
    stream, _, client = pair
    client.write(b"STARTTLS\r\nEVIL\r\n")
    await client.drain()
    assert await stream.readline(512) == b"STARTTLS\r\n"
    await eventually(lambda: stream.pending_bytes() == len(b"EVIL\r\n"), what="EVIL arriving")
    stream.write(b"220 2.0.0 go ahead\r\n")

    async def client_side() -> None:
        reader = pair[1]
        assert await reader.readline() == b"220 2.0.0 go ahead\r\n"
        await client.start_tls(client_context, server_hostname="localhost")
        client.write(b"EHLO after\r\n")
        await client.drain()

    dropped, _ = await asyncio.gather(stream.start_tls(tls_contexts.server_context), client_side())
    assert dropped == len(b"EVIL\r\n")
    assert stream.is_tls
    assert stream.tls_info.startswith("TLSv1.")
    assert await stream.readline(512, timeout=5) == b"EHLO after\r\n"


async def test_starttls_handshake_failure(pair: Pair, tls_contexts: TLSContexts) -> None:
    from mailstead.net.stream import TLSHandshakeError

    stream, _, client = pair
    client.write(b"this is not a TLS ClientHello\r\n" * 4)
    await client.drain()
    await eventually(lambda: stream.pending_bytes() == 31 * 4, what="the plaintext arriving")
    stream.discard_pending()
    client.write(b"\x16\x03\x01\x00\x05garbage")  # looks like a handshake record, is not
    with pytest.raises(TLSHandshakeError):
        await stream.start_tls(tls_contexts.server_context, handshake_timeout=2)


async def test_starttls_discards_bytes_arriving_after_the_command_was_read(
    pair: Pair, tls_contexts: TLSContexts, client_context: ssl.SSLContext
) -> None:
    """Injected bytes still in asyncio's reader buffer (not yet in ours) are dropped too."""
    stream, reader, client = pair
    client.write(b"STARTTLS\r\n")
    assert await stream.readline(512) == b"STARTTLS\r\n"
    client.write(b"MAIL FROM:<evil@example.org>\r\n")
    await client.drain()
    injected = len(b"MAIL FROM:<evil@example.org>\r\n")
    await eventually(lambda: stream.pending_bytes() == injected, what="the injection arriving")
    stream.write(b"220 go ahead\r\n")

    async def client_side() -> None:
        assert await reader.readline() == b"220 go ahead\r\n"
        await client.start_tls(client_context, server_hostname="localhost")
        client.write(b"EHLO again\r\n")

    dropped, _ = await asyncio.gather(stream.start_tls(tls_contexts.server_context), client_side())
    assert dropped == 30
    assert await stream.readline(512, timeout=5) == b"EHLO again\r\n"


async def test_output_is_sent_before_waiting_for_input(pair: Pair) -> None:
    """Writes are coalesced, but never held while the session waits for the client."""
    stream, c_reader, client = pair
    stream.write(b"* one\r\n")
    stream.write(b"* two\r\n")
    read = asyncio.create_task(stream.readline(512))
    assert await asyncio.wait_for(c_reader.readexactly(14), 5) == b"* one\r\n* two\r\n"
    client.write(b"A1 NOOP\r\n")
    assert await read == b"A1 NOOP\r\n"


async def test_write_while_a_read_waits_goes_out_at_once(pair: Pair) -> None:
    """IDLE: an update written while the session waits for DONE reaches the client."""
    stream, c_reader, client = pair
    read = asyncio.create_task(stream.readline(512))
    await eventually(lambda: stream._reading, what="the read waiting on the socket")
    stream.write(b"* 3 EXISTS\r\n")
    assert await asyncio.wait_for(c_reader.readline(), 5) == b"* 3 EXISTS\r\n"
    client.write(b"DONE\r\n")
    assert await read == b"DONE\r\n"


async def test_large_output_is_not_held_back(pair: Pair) -> None:
    stream, c_reader, _ = pair
    stream.write(b"x" * (70 * 1024))  # over the coalescing limit: handed over at once
    assert len(await asyncio.wait_for(c_reader.readexactly(70 * 1024), 5)) == 70 * 1024


async def test_close_sends_what_was_written(pair: Pair) -> None:
    stream, c_reader, _ = pair
    stream.write(b"* BYE\r\n")
    await stream.close()
    assert await asyncio.wait_for(c_reader.read(), 5) == b"* BYE\r\n"


async def test_uncompressed_stream_calls_the_reader_and_writer_directly(pair: Pair) -> None:
    """COMPRESS costs a connection that never uses it nothing: no layer in between."""
    stream, _, _ = pair
    assert stream._recv == stream._reader.read
    assert stream._send == stream._writer.write
    assert not stream.compressed


async def test_compressed_stream_both_ways_and_bounded_inflation(pair: Pair) -> None:
    stream, client_in, client = pair
    stream.write(b"a OK DEFLATE active\r\n")
    stream.start_compression()
    assert await client_in.readline() == b"a OK DEFLATE active\r\n"  # sent before the switch
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    # A line of 10 MB of zeros is 10 KB compressed: it is inflated a chunk at a time and
    # dropped as too long, never held whole; the line after it is read.
    bomb = deflate.compress(b"0" * 10_000_000 + b"\r\nb NOOP\r\n")
    bomb += deflate.flush(zlib.Z_SYNC_FLUSH)
    inflated: list[int] = []
    recv = stream._recv

    async def spy(limit: int) -> bytes:
        data = await recv(limit)
        inflated.append(len(data))
        return data

    stream._recv = spy
    client.write(bomb)
    with pytest.raises(LineTooLong):
        await stream.readline(1000)
    assert await stream.readline(1000) == b"b NOOP\r\n"
    assert max(inflated) <= 64 * 1024
    stream.write(b"* 1 EXISTS\r\n")
    stream.write(b"b OK done\r\n")
    await stream.drain()
    received = b""
    while not received.endswith(b"b OK done\r\n"):
        received += inflate.decompress(await client_in.read(65536))
    assert received == b"* 1 EXISTS\r\nb OK done\r\n"
    assert stream.compressed
    with pytest.raises(ValueError):
        stream.start_compression()
