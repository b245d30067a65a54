"""COMPRESS=DEFLATE (RFC 4978) over a real socket.

imaplib cannot compress, so :class:`Deflated` is a small client of its own: raw DEFLATE
(zlib ``wbits=-15``) both ways, a sync flush after each command as RFC 4978 §4 asks.
"""

from __future__ import annotations

import logging
import os
import socket
import zlib
from collections.abc import Iterator

import pytest

from mailstead.testing.server import ServerThread
from tests.imap.conftest import Raw, append, connect, status_of

BIG = b"From: a@example.com\r\nSubject: big\r\n\r\n" + b"".join(
    b"line %06d of a long and dull message body\r\n" % n for n in range(60_000)
)


class Deflated:
    """A line client whose bytes are DEFLATE-compressed after ``start``."""

    def __init__(self, raw: Raw) -> None:
        self.sock = raw.sock
        self.plain = raw.file
        self.compress = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.decompress = zlib.decompressobj(-15)
        self.buffer = bytearray()
        self.tags = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.compress.compress(data) + self.compress.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buffer += self.decompress.decompress(chunk)

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            self._fill()
        end = self.buffer.index(b"\n") + 1
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        return line

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def command(self, text: str) -> list[bytes]:
        self.tags += 1
        tag = f"z{self.tags}"
        self.send(f"{tag} {text}\r\n".encode())
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.readline()
            if line.endswith(b"}\r\n"):
                size = int(line[line.rindex(b"{") + 1 : -3])
                line += self.read(size) + self.readline()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines


def start(raw: Raw) -> Deflated:
    """COMPRESS DEFLATE on ``raw``: the OK comes uncompressed, the rest is compressed."""
    lines = raw.command("COMPRESS DEFLATE")
    assert lines[-1].split()[1:3] == [b"OK", b"DEFLATE"], lines
    # The server says nothing more until asked, so the plain reader has buffered nothing
    # past the OK: the compressed client reads the socket from here.
    return Deflated(raw)


@pytest.fixture
def zraw(server: ServerThread, account: str) -> Iterator[Deflated]:
    r = Raw(server.port("imap"), login=account)
    yield start(r)
    r.close()


def test_advertised_and_refused_before_login(server: ServerThread) -> None:
    r = Raw(server.port("imap"))
    assert b"COMPRESS=DEFLATE" in r.greeting
    # RFC 4978 §3: authenticated or selected state only.
    assert status_of(r.command("COMPRESS DEFLATE")) == b"NO"
    r.close()


def test_unknown_algorithm_is_bad_and_second_compress_is_refused(zraw: Deflated) -> None:
    assert zraw.command("COMPRESS LZMA")[-1].split()[1] == b"BAD"
    again = zraw.command("COMPRESS DEFLATE")
    assert again[-1].split()[1:3] == [b"NO", b"[COMPRESSIONACTIVE]"], again
    assert zraw.command("NOOP")[-1].split()[1] == b"OK"


def test_many_commands_through_the_compressed_stream(
    server: ServerThread, account: str, zraw: Deflated
) -> None:
    c = connect(server, account)
    for n in range(5):
        append(c, b"Subject: m%d\r\n\r\nbody %d\r\n" % (n, n))
    c.logout()
    assert zraw.command("SELECT INBOX")[-1].split()[1] == b"OK"
    for n in range(300):
        lines = zraw.command(f"UID FETCH {n % 5 + 1} (FLAGS)" if n % 2 else "NOOP")
        assert lines[-1].split()[1] == b"OK"
        assert len(lines) == 1 + n % 2
    fetched = zraw.command("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert len(fetched) == 6 and b"Subject: m4" in fetched[4]


def test_commands_pipelined_right_after_compress(server: ServerThread, account: str) -> None:
    """What the client sends right after COMPRESS (in the same packet) is compressed
    already: the server must inflate it, not read it as plain text."""
    r = Raw(server.port("imap"), login=account)
    z = Deflated(r)
    compressed = z.compress.compress(b"p1 NOOP\r\np2 SELECT INBOX\r\n")
    compressed += z.compress.flush(zlib.Z_SYNC_FLUSH)
    r.send(b"c COMPRESS DEFLATE\r\n" + compressed)
    received = b""
    while b"\r\n" not in received:  # the socket itself: the OK and what follows it
        received += r.sock.recv(65536)
    ok, _, rest = received.partition(b"\r\n")
    assert ok.startswith(b"c OK")
    z.buffer += z.decompress.decompress(rest)
    assert z.until("p1")[-1].startswith(b"p1 OK")
    assert z.until("p2")[-1].startswith(b"p2 OK")
    r.close()


def test_idle_through_the_compressed_stream(
    server: ServerThread, account: str, zraw: Deflated
) -> None:
    zraw.command("SELECT INBOX")
    zraw.send(b"i1 IDLE\r\n")
    assert zraw.readline().startswith(b"+ ")
    c = connect(server, account)
    append(c)
    c.logout()
    while True:  # the EXISTS arrives while the client waits: flushed, not buffered
        line = zraw.readline()
        if line.endswith(b"EXISTS\r\n"):
            break
    zraw.send(b"DONE\r\n")
    assert zraw.until("i1")[-1].startswith(b"i1 OK")


def test_large_fetch_through_the_compressed_stream(
    server: ServerThread, account: str, zraw: Deflated
) -> None:
    c = connect(server, account)
    uid = append(c, BIG)
    c.logout()
    zraw.command("SELECT INBOX")
    lines = zraw.command(f"UID FETCH {uid} BODY.PEEK[]")
    assert lines[-1].split()[1] == b"OK"
    assert BIG in lines[0]


def test_large_append_through_the_compressed_stream(
    server: ServerThread, account: str, zraw: Deflated
) -> None:
    body = BIG + os.urandom(3000).hex().encode() + b"\r\n"
    zraw.send(b"a1 APPEND INBOX {%d}\r\n" % len(body))
    assert zraw.readline().startswith(b"+ ")
    zraw.send(body + b"\r\n")
    assert zraw.until("a1")[-1].startswith(b"a1 OK")
    assert server.inbox_messages(account)[-1] == body


def test_corrupt_stream_closes_cleanly_with_a_log_line(
    server: ServerThread, account: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailstead")
    r = Raw(server.port("imap"), login=account)
    start(r)
    r.send(b"\xff\xfe this is not deflate \x00\x01\x02" * 4)
    r.sock.settimeout(30)
    assert r.sock.recv(100) == b""  # closed, without a word it could not compress
    r.close()
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("corrupt DEFLATE stream" in m for m in messages), messages
    assert not any(rec.exc_info for rec in caplog.records)


def test_memory_of_an_idle_compressed_connection_is_bounded() -> None:
    """zlib's defaults would hold about 300 KiB per connection (a 32 KiB window and
    256 KiB of compressor tables); the chosen window and memLevel keep it under 100."""
    from bench.imap_idle import compressed_kib

    assert compressed_kib() < 100


def test_compression_inside_tls(server: ServerThread, account: str) -> None:
    """RFC 4978 §4: over IMAPS the DEFLATE layer is inside TLS (compress, then encrypt)."""
    sock = socket.create_connection(("127.0.0.1", server.port("imaps")), timeout=30)
    tls = server.client_ssl_context().wrap_socket(sock, server_hostname="localhost")
    f = tls.makefile("rb")
    assert f.readline().startswith(b"* OK")
    tls.sendall(f'l LOGIN {account} "correct horse"\r\nc COMPRESS DEFLATE\r\n'.encode())
    assert f.readline().startswith(b"l OK")
    assert f.readline().startswith(b"c OK")

    class Over(Raw):
        def __init__(self) -> None:
            self.sock = tls  # type: ignore[assignment]
            self.file = f

    z = Deflated(Over())
    assert z.command("NOOP")[-1].split()[1] == b"OK"
    lines = z.command("SELECT INBOX")
    assert lines[-1].split()[1] == b"OK" and any(b"EXISTS" in line for line in lines)
    tls.close()
